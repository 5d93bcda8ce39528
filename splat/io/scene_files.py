"""Scene files by suffix: ``.ply`` (3DGS layout) and ``.splat``."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SplatError
from ..store import GaussianStore

FORMATS = ("ply", "splat")


def scene_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """``fmt`` if given, else the format named by the file's suffix."""
    fmt = fmt or Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise SplatError(f"{path}: unknown scene format '{fmt}' (use .ply or .splat)")
    return fmt


def load_scene(path: str | os.PathLike) -> GaussianStore:
    """Read a ``.ply`` or ``.splat`` scene."""
    from .ply import load_ply
    from .splat_format import load_splat

    return load_ply(path) if scene_format(path) == "ply" else load_splat(path)


def save_scene(store: GaussianStore, path: str | os.PathLike, fmt: str | None = None) -> None:
    """Write ``store`` atomically as ``fmt`` (default: from the suffix)."""
    from .ply import save_ply
    from .splat_format import save_splat

    (save_ply if scene_format(path, fmt) == "ply" else save_splat)(store, path)
