"""Default viewpoints for a store: an orbit around the scene's centre."""

from __future__ import annotations

import torch

from ..camera import Camera, orbit_cameras
from ..errors import SplatError
from ..store import GaussianStore


def scene_center_radius(store: GaussianStore) -> tuple[torch.Tensor, float]:
    """Robust centre (median) and radius (98th percentile distance) of the means."""
    if len(store) == 0:
        raise SplatError("the scene has no Gaussians to look at")
    m = store.means.detach().double().cpu()
    center = m.median(0).values
    dist = (m - center).norm(dim=-1)
    radius = float(torch.quantile(dist, 0.98)) if len(m) > 1 else 1.0
    return center, max(radius, 1e-3)


def default_cameras(
    store: GaussianStore, n: int = 1, width: int = 512, height: int = 512, fov_deg: float = 50.0
) -> list[Camera]:
    """``n`` orbit cameras looking at the scene's centre, far enough to frame it.

    World up is +z (the convention of our generated scenes).
    """
    center, radius = scene_center_radius(store)
    import math

    distance = radius / math.sin(math.radians(fov_deg) / 2) * 1.05
    return orbit_cameras(center, distance, n, elevation_deg=25.0, fov_deg=fov_deg, width=width, height=height)
