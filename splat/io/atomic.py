"""Atomic file writes (a temporary file in the same folder, fsync, then rename) and input opening.

A reader (or a crash) never sees a partial file: the destination is either the
previous complete file or the new complete file. A write through a symbolic link replaces
the file the link names (the link stays); a replaced file keeps its permissions and a new
one gets the user's umask, as a plain ``open`` would give it.

``refuse_inputs`` keeps a command from writing over one of its inputs; ``locked`` serialises
read-modify-write updates of one file (``--in-place``) across processes.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import IO, Iterator

from ..errors import SplatError


def _umask() -> int:
    try:  # Linux says it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        m = os.umask(0o022)
        os.umask(m)
        return m


_umask_lock = threading.Lock()


def _real_destination(path: Path) -> Path:
    """The file a write to ``path`` should replace: a symbolic link's target."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _file_mode(dest: Path) -> int:
    """The permissions the new file gets: the replaced file's, else 0666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(dest).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _temporary_beside(path: Path, display: Path, prefix: str, suffix: str) -> tuple[int, str]:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise SplatError(f"{display}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    except OSError as e:
        raise SplatError(f"{display}: cannot write ({e.strerror})") from None
    try:
        os.fchmod(fd, _file_mode(path))
    except OSError:
        pass
    return fd, tmp


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    shown = Path(path)
    path = _real_destination(shown)
    fd, tmp = _temporary_beside(path, shown, f".{path.name}.", ".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):  # disk full, I/O error: one line, nothing half-written
            raise SplatError(f"{shown}: cannot write ({e.strerror or e})") from None
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path`` with the same suffix, for writers that take a file
    name (video and mesh libraries); renamed onto ``path`` when the block succeeds."""
    shown = Path(path)
    path = _real_destination(shown)
    fd, tmp = _temporary_beside(path, shown, f".{path.stem}.", path.suffix)
    os.close(fd)
    mode = _file_mode(path)
    try:
        yield Path(tmp)
        with contextlib.suppress(OSError):  # the library may have written a new file there
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise SplatError(f"{shown}: cannot write ({e.strerror or e})") from None
        raise


def check_writable(path: str | os.PathLike) -> None:
    """A one-line error now, before a long computation, when ``path`` could not be written."""
    shown = Path(path)
    fd, tmp = _temporary_beside(_real_destination(shown), shown, f".{shown.name}.", ".probe")
    os.close(fd)
    os.unlink(tmp)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name one file (through links and relative paths)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one is missing: compare where they would be
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_inputs(out: str | os.PathLike, inputs, hint: str = "choose another output") -> None:
    """A one-line error when ``out`` is one of ``inputs``: no command writes over what it reads
    unless asked to (``--in-place``)."""
    for src in inputs:
        if same_file(out, src):
            raise SplatError(f"{out}: is an input of this command ({src}); {hint}")


def hold_flock(fd: int, waiting, quiet_seconds: float = 0.0) -> None:
    """Take an exclusive ``flock`` on ``fd``. If another process holds it for longer than
    ``quiet_seconds``, print the line ``waiting()`` on stderr first, then wait: never silently.
    Where the file system has no locks, return unlocked."""
    import fcntl
    import sys
    import time

    end = time.monotonic() + quiet_seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= end:
                break
            time.sleep(0.05)
        except OSError:  # no locks here
            return
    print(waiting(), file=sys.stderr, flush=True)
    fcntl.flock(fd, fcntl.LOCK_EX)


@contextlib.contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock for updating ``path`` in place (read, change, write back).

    The lock is an ``flock`` on the folder that holds the file (the file itself is replaced by
    the atomic write, so a lock on it would not stop the next reader); the kernel drops it when
    the holder exits, however it exits. Where locks are not supported the block runs unlocked.
    """
    if os.name != "posix":  # no flock: unlocked
        yield
        return
    folder = _real_destination(Path(path)).parent
    try:
        fd = os.open(folder if str(folder) else ".", os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        hold_flock(fd, lambda: f"splat: waiting for another command that is updating a file in {folder} ...")
        yield
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)


def open_input(path: str | os.PathLike, kind: str) -> IO[bytes]:
    """Open a user's input file for binary reading; a missing file, a folder or an
    unreadable file is a one-line SplatError naming ``kind`` (e.g. ".ply")."""
    path = Path(path)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise SplatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SplatError(f"{path}: is a folder, expected a {kind} file") from None
    except OSError as e:
        raise SplatError(f"{path}: cannot read ({e.strerror})") from None
