"""Render a store along a camera path into a video file."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..camera import Camera
from ..io.video import write_video
from ..store import GaussianStore
from .api import rasterize


def render_video(store: GaussianStore, cameras: list[Camera], out: str | Path, fps: int = 30, backend: str = "auto",
                 background=(0.0, 0.0, 0.0), progress: Callable[[int, int], None] | None = None) -> Path:
    """Render ``store`` at each camera (all of one size) and write ``out`` (.mp4 or .gif)."""
    frames = []
    for k, cam in enumerate(cameras):
        with torch.no_grad():
            res = rasterize(store, cam, backend=backend, background=background, contributions=False)
        frames.append(res.color[0].clamp(0, 1).cpu().numpy())
        if progress:
            progress(k + 1, len(cameras))
    write_video(frames, out, fps=fps)
    return Path(out)
