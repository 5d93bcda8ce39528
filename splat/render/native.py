"""Lazy builds of the native backends with ``torch.utils.cpp_extension.load``.

Builds are cached by a hash of every source and header, where they are installed,
the torch version and the flags, under ``$SPLAT_CACHE`` (default ``~/.cache/splat``):
a change to any file rebuilds, an unchanged tree loads in well under a second, and two
installs of the same code keep their own builds (torch's build files name the source paths,
so a shared folder would rebuild at every switch).

The sources ship inside the package as ``splat/native`` (in a checkout, a link to ``cuda/``),
so a wheel builds its backends like a checkout does.

One build of a kind runs at a time: a build holds an ``flock`` on ``NAME.lock`` beside its
folder. The kernel drops that lock when its owner dies, however it dies, so a killed build
never blocks the next one; torch's own ``lock`` file, which a killed build leaves behind
(and which makes torch wait for ever), is removed by whoever holds the flock.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
import time
from pathlib import Path

import torch

from ..cache import cache_dir
from ..errors import SplatError
from ..io.atomic import hold_flock

CUDA_DIR = Path(__file__).resolve().parents[1] / "native"  # package data: the cuda/ tree
_loaded: dict[str, object] = {}
_failed: dict[str, str] = {}
_threads = threading.RLock()


def _machine_id() -> str:
    """CPU model and flags: builds use -march=native, so a cache is per CPU kind."""
    import platform

    text = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                text += line
                if line.startswith("flags"):
                    break
    except OSError:
        pass
    return text


def _source_hash(root: Path, files: list[Path], flags: list[str]) -> str:
    h = hashlib.sha256()
    h.update(str(root.resolve()).encode())  # per install: see the module docstring
    h.update(torch.__version__.encode())
    h.update(_machine_id().encode())
    h.update(" ".join(flags).encode())
    for f in sorted(files):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def build_extension(kind: str, sources: list[str], extra_cflags: list[str], extra_ldflags: list[str],
                    hash_extra: str = "", root: Path = CUDA_DIR, **kw):
    """Build (or load from cache) one extension; ``kind`` names it ("cpu", "cuda").

    ``sources`` are relative to ``root`` (the shipped native tree; tests build others).
    ``hash_extra`` enters the cache key (e.g. the GPU architecture built for);
    ``kw`` goes to ``torch.utils.cpp_extension.load``. Returns what ``load`` returns.

    Raises:
        SplatError: sources missing or the build failed (one line, with the log path).
    """
    with _threads:  # one build at a time in this process too (the demo builds in a thread)
        return _build_extension(kind, sources, extra_cflags, extra_ldflags, hash_extra, Path(root), kw)


def _build_extension(kind: str, sources: list[str], extra_cflags: list[str], extra_ldflags: list[str],
                     hash_extra: str, root: Path, kw: dict):
    if kind in _loaded:
        return _loaded[kind]
    if kind in _failed:
        raise SplatError(_failed[kind])
    missing = [s for s in sources if not (root / s).is_file()]
    if missing:
        _failed[kind] = (f"native sources not found at {root} ({', '.join(missing)}): the package was "
                         "installed without them; reinstall splat")
        raise SplatError(_failed[kind])
    headers = [f for pattern in ("*.h", "*.cuh") for f in root.rglob(pattern)]
    files = [root / s for s in sources] + sorted(set(headers))
    flags = extra_cflags + extra_ldflags + [hash_extra] + [f"{k}={v}" for k, v in sorted(kw.items())]
    name = f"splat_{kind}_{_source_hash(root, files, flags)}"
    build_dir = cache_dir() / name
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _failed[kind] = f"the {kind} backend cannot be built: cache folder {build_dir} ({e.strerror}); set SPLAT_CACHE"
        raise SplatError(_failed[kind]) from None
    with _build_lock(kind, build_dir):
        mod = _load(kind, name, build_dir, root, sources, extra_cflags, extra_ldflags, kw)
    _loaded[kind] = mod
    return mod


@contextlib.contextmanager
def _build_lock(kind: str, build_dir: Path):
    """Hold the build lock of ``build_dir``, saying so when another process holds it."""
    if os.name != "posix":  # no flock: torch's own lock only
        yield
        return
    lock = build_dir.with_name(build_dir.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise SplatError(f"the {kind} backend cannot be built: {lock} ({e.strerror}); set SPLAT_CACHE") from None
    try:
        def waiting() -> str:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            return f"splat: waiting for another process (pid {owner}) that is building the {kind} backend in {build_dir} ..."

        hold_flock(fd, waiting, quiet_seconds=2.0)  # a warm load holds it for well under that
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        stale = build_dir / "lock"  # torch's baton: only a build that died leaves it while we hold the flock
        if stale.exists():
            print(f"splat: removing {stale} left by a build that was killed", file=sys.stderr, flush=True)
            stale.unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)  # releases the flock


def _load(kind: str, name: str, build_dir: Path, root: Path, sources: list[str], extra_cflags: list[str],
          extra_ldflags: list[str], kw: dict):
    """``torch.utils.cpp_extension.load`` of one extension, with one-line errors."""
    fresh = not any(build_dir.glob(f"{name}*.so")) and not any(build_dir.glob(f"{name}*.pyd"))
    t0 = time.perf_counter()
    if fresh:
        print(f"splat: building the {kind} backend (once; cached in {build_dir}) ...", file=sys.stderr, flush=True)
    from torch.utils.cpp_extension import load

    try:
        mod = load(
            name=name,
            sources=[str(root / s) for s in sources],
            extra_include_paths=[str(root / "include"), str(root)],
            extra_cflags=extra_cflags,
            extra_ldflags=extra_ldflags,
            build_directory=str(build_dir),
            verbose=False,
            **kw,
        )
    except Exception as e:  # compiler missing, compile error, ...
        msg = str(e).strip().splitlines()
        reason = msg[-1] if msg else type(e).__name__
        log = build_dir / "build_error.log"
        try:  # the whole compiler output, for whoever debugs the build
            log.write_text(str(e))
        except OSError:
            pass
        _failed[kind] = f"the {kind} backend could not be built ({reason[:200]}); compiler output: {log}"
        raise SplatError(_failed[kind]) from None
    if fresh:
        print(f"splat: {kind} backend built in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return mod
