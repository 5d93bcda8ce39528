"""PlayCanvas splat-transform, the reference reader and writer of the web formats (a peer).

It is a benchmark's and a test's dependency, never the product's: the README's test command
installs the pinned version with npm into the user cache, and this module finds it there
(or at ``$SPLAT_TRANSFORM``, the path of its ``splat-transform`` executable).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

PINNED = "2.7.1"
HOME = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "splat-peers" / f"splat-transform-{PINNED}"


def find() -> Path | None:
    """The splat-transform executable, or None when it is not installed."""
    given = os.environ.get("SPLAT_TRANSFORM")
    for path in ([Path(given)] if given else []) + [HOME / "node_modules" / ".bin" / "splat-transform"]:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def install_command() -> str:
    return f"npm install --prefix {HOME} @playcanvas/splat-transform@{PINNED}"


def convert(src: Path, dst: Path, *extra: str, timeout: float = 900) -> None:
    """``splat-transform -w [extra] src dst`` (SOG on the CPU: ``-g cpu``); raises on failure."""
    exe = find()
    if exe is None:
        raise RuntimeError(f"splat-transform is not installed; run: {install_command()}")
    args = [str(exe), "-q", "-w"]
    if dst.suffix == ".sog":
        args += ["-g", "cpu"]  # no WebGPU here: its k-means runs on the CPU
    r = subprocess.run(args + list(extra) + [str(src), str(dst)], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0 or not dst.is_file() or dst.stat().st_size == 0:
        raise RuntimeError(f"splat-transform {src.name} -> {dst.name} failed ({r.returncode}): {(r.stderr or r.stdout)[-400:]}")
