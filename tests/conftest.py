"""Shared test helpers: fresh random scenes and cameras."""

from __future__ import annotations

import pytest
import torch

import splat


def random_store(n: int, sh_degree: int = 0, dtype=torch.float32, seed: int = 0, spread: float = 1.0,
                 scale: tuple[float, float] = (0.03, 0.2)) -> splat.GaussianStore:
    """N random Gaussians around the origin, all parameters random."""
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    lo, hi = scale
    return splat.GaussianStore(
        means=(torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1).to(dtype) * spread,
        log_scales=torch.empty(n, 3, dtype=dtype).uniform_(float(torch.log(torch.tensor(lo))), float(torch.log(torch.tensor(hi))), generator=g),
        quats=torch.randn(n, 4, generator=g, dtype=dtype),
        opacity_logits=torch.randn(n, generator=g, dtype=dtype),
        sh=torch.randn(n, k, 3, generator=g, dtype=dtype) * 0.5,
    )


def front_camera(width: int = 64, height: int = 48, distance: float = 4.0, fov: float = 45.0) -> splat.Camera:
    """A camera on -y looking at the origin, z up."""
    return splat.Camera.look_at((0.3, -distance, 0.8), (0.0, 0.0, 0.0), (0, 0, 1), fov, width, height)


@pytest.fixture
def tmp_ply(tmp_path):
    return tmp_path / "scene.ply"
