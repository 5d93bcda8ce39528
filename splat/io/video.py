"""Videos: frames to .mp4 (H.264 through imageio's ffmpeg) or .gif, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import SplatError
from .atomic import atomic_path
from .images import to_uint8

VIDEO_SUFFIXES = (".mp4", ".gif")


def write_video(frames: Iterable, path: str | os.PathLike, fps: int = 30) -> None:
    """Write [H, W, 3] frames (float in [0, 1] or uint8) to ``path``; the file appears complete or not at all."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise SplatError(f"{path}: video must end in {' or '.join(VIDEO_SUFFIXES)}")
    arr = np.stack([to_uint8(f) for f in frames])
    if arr.shape[1] % 2 or arr.shape[2] % 2:  # H.264 wants even sizes
        arr = arr[:, : arr.shape[1] // 2 * 2, : arr.shape[2] // 2 * 2]
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".mp4":
            iio.imwrite(tmp, arr, fps=fps, codec="libx264", macro_block_size=1, extension=".mp4")
        else:
            iio.imwrite(tmp, arr, duration=1000 / fps, loop=0, extension=".gif")
