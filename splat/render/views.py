"""Default viewpoints for a store: an orbit around the scene's centre."""

from __future__ import annotations

import torch

from ..camera import Camera, orbit_cameras
from ..errors import SplatError
from ..store import GaussianStore


DENSE_FRACTION = 0.8  # the share of the Gaussians a default view frames


def scene_center_radius(store: GaussianStore) -> tuple[torch.Tensor, float]:
    """Robust centre (median) and radius of the dense part of the scene: the distance within
    which ``DENSE_FRACTION`` of the finite means lie, x 1.1. A trained scene keeps about a tenth
    of its Gaussians on a far sphere for the sky; framing all of them would show that sphere."""
    m = store.means.detach().double().cpu()
    m = m[torch.isfinite(m).all(1)]
    if len(m) == 0:
        raise SplatError("the scene has no Gaussians to look at")
    center = m.median(0).values
    dist = (m - center).norm(dim=-1)
    radius = 1.1 * float(torch.quantile(dist, DENSE_FRACTION)) if len(m) > 1 else 1.0
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
