"""Turning a store and a camera into the JPEG-ready frame the viewer sends, and the
resolution policy that holds a frame rate while the camera moves."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..camera import Camera
from ..render import rasterize
from ..store import GaussianStore

MODES = ("RGB", "depth", "alpha")


@dataclass
class FrameSettings:
    """What the GUI controls: backend, render mode, SH degree, longest side, background."""

    backend: str = "auto"
    mode: str = "RGB"
    sh_degree: int = 3
    max_side: int = 1280
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)


def render_frame(store: GaussianStore, camera: Camera, settings: FrameSettings) -> np.ndarray:
    """[H, W, 3] uint8 image of ``store`` seen by ``camera`` in the settings' mode.

    Depth is shown as inverse depth normalised over the frame (near = bright)."""
    with torch.no_grad():
        deg = min(settings.sh_degree, store.sh_degree)
        r = rasterize(store, camera, backend=settings.backend, sh_degree=deg,
                      background=settings.background, contributions=False)
    if settings.mode == "RGB":
        img = r.color[0]
    elif settings.mode == "alpha":
        img = r.alpha[0].expand(-1, -1, 3)
    else:
        a = r.alpha[0]
        d = r.depth[0] / a.clamp_min(1e-6)
        inv = torch.where(a > 0.5, 1 / d.clamp_min(1e-6), torch.zeros_like(d))
        lo = inv[a > 0.5].min() if (a > 0.5).any() else inv.new_tensor(0.0)
        hi = inv.max()
        img = ((inv - lo) / (hi - lo).clamp_min(1e-9)).clamp(0, 1).expand(-1, -1, 3)
    return (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


class ResolutionPolicy:
    """Scale of moving frames: after each frame, scale ← scale·sqrt(target / measured time),
    damped, within [min_scale, 1] (time grows with pixel count, i.e. scale²). Still frames
    render at full resolution."""

    def __init__(self, target_fps: float = 10.0, min_scale: float = 0.1):
        self.target = 1.0 / target_fps
        self.min_scale = min_scale
        self.scale = 0.5

    def update(self, seconds: float, scale: float) -> None:
        """Record that a frame at ``scale`` took ``seconds``."""
        if seconds <= 0:
            return
        ratio = math.sqrt(self.target / seconds)
        proposal = scale * min(max(ratio, 0.5), 1.5)
        self.scale = min(1.0, max(self.min_scale, 0.5 * self.scale + 0.5 * proposal))
