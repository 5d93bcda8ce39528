"""Lazy builds of the native backends with ``torch.utils.cpp_extension.load``.

Builds are cached by a hash of every source and header, the torch version and
the flags, under ``$SPLAT_CACHE`` (default ``~/.cache/splat``): a change to any
file rebuilds, an unchanged tree loads in well under a second.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import torch

from ..errors import SplatError

CUDA_DIR = Path(__file__).resolve().parents[2] / "cuda"
_loaded: dict[str, object] = {}
_failed: dict[str, str] = {}


def cache_dir() -> Path:
    return Path(os.environ.get("SPLAT_CACHE", Path.home() / ".cache" / "splat"))


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


def _source_hash(files: list[Path], flags: list[str]) -> str:
    h = hashlib.sha256()
    h.update(torch.__version__.encode())
    h.update(_machine_id().encode())
    h.update(" ".join(flags).encode())
    for f in sorted(files):
        h.update(str(f.relative_to(CUDA_DIR)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def build_extension(kind: str, sources: list[str], extra_cflags: list[str], extra_ldflags: list[str],
                    hash_extra: str = "", **kw):
    """Build (or load from cache) one extension; ``kind`` names it ("cpu", "cuda").

    ``hash_extra`` enters the cache key (e.g. the GPU architecture built for);
    ``kw`` goes to ``torch.utils.cpp_extension.load``. Returns what ``load`` returns.

    Raises:
        SplatError: sources missing or the build failed (one line, with the log path).
    """
    if kind in _loaded:
        return _loaded[kind]
    if kind in _failed:
        raise SplatError(_failed[kind])
    if not (CUDA_DIR / "include").is_dir():
        _failed[kind] = f"native sources not found at {CUDA_DIR} (install from a source checkout: pip install -e .)"
        raise SplatError(_failed[kind])
    headers = [f for pattern in ("*.h", "*.cuh") for f in CUDA_DIR.rglob(pattern)]
    files = [CUDA_DIR / s for s in sources] + sorted(set(headers))
    flags = extra_cflags + extra_ldflags + [hash_extra] + [f"{k}={v}" for k, v in sorted(kw.items())]
    name = f"splat_{kind}_{_source_hash(files, flags)}"
    build_dir = cache_dir() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    fresh = not any(build_dir.glob(f"{name}*.so")) and not any(build_dir.glob(f"{name}*.pyd"))
    t0 = time.perf_counter()
    if fresh:
        print(f"splat: building the {kind} backend (once; cached in {build_dir}) ...", file=sys.stderr, flush=True)
    from torch.utils.cpp_extension import load

    try:
        mod = load(
            name=name,
            sources=[str(CUDA_DIR / s) for s in sources],
            extra_include_paths=[str(CUDA_DIR / "include"), str(CUDA_DIR)],
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
    _loaded[kind] = mod
    return mod
