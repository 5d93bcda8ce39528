"""Atomic file writes (a temporary file in the same folder, fsync, then rename) and input opening.

A reader (or a crash) never sees a partial file: the destination is either the
previous complete file or the new complete file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from ..errors import SplatError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise SplatError(f"{path}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise SplatError(f"{path}: cannot write ({e.strerror})") from None
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
            raise SplatError(f"{path}: cannot write ({e.strerror or e})") from None
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path`` with the same suffix, for writers that take a file
    name (video and mesh libraries); renamed onto ``path`` when the block succeeds."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise SplatError(f"{path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise SplatError(f"{path}: cannot write ({e.strerror or e})") from None
        raise


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
