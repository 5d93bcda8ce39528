"""A small procedural Gaussian scene built in code: no files, no downloads.

Used by ``splat demo`` and tests that need a recognisable scene: a checkered
ground disc, a red sphere, a blue torus and a green box, with view-dependent
colour in SH band 1 on the sphere.
"""

from __future__ import annotations

import math

import torch

from .store import GaussianStore, num_sh_bases


def _surface_gaussians(points: torch.Tensor, normals: torch.Tensor, size: float):
    """Flat Gaussians lying on a surface: quaternion turning z onto the normal."""
    z = torch.tensor([0.0, 0.0, 1.0]).expand_as(normals)
    axis = torch.linalg.cross(z, normals)
    w = 1.0 + (z * normals).sum(-1, keepdim=True)
    q = torch.cat([w, axis], -1)
    flip = w[:, 0] < 1e-6  # normal = -z: rotate 180 degrees about x
    q[flip] = torch.tensor([0.0, 1.0, 0.0, 0.0])
    scales = torch.tensor([size, size, size * 0.1]).expand(len(points), 3).clone()
    return q, scales


def builtin_scene(n_per_object: int = 4000, sh_degree: int = 1, seed: int = 0) -> GaussianStore:
    """The demo scene. Args: n_per_object Gaussians per object. Returns a store (labels 0..4)."""
    g = torch.Generator().manual_seed(seed)
    parts = []

    def add(points, normals, rgb, size, label):
        q, s = _surface_gaussians(points, normals, size)
        parts.append((points, s, q, rgb, torch.full((len(points),), label, dtype=torch.int64)))

    # ground disc, radius 2, checkerboard
    r = 2.0 * torch.sqrt(torch.rand(n_per_object * 2, generator=g))
    th = 2 * math.pi * torch.rand(n_per_object * 2, generator=g)
    p = torch.stack([r * torch.cos(th), r * torch.sin(th), torch.zeros_like(r)], -1)
    check = ((torch.floor(p[:, 0] * 2) + torch.floor(p[:, 1] * 2)) % 2)[:, None]
    add(p, torch.tensor([0.0, 0, 1]).expand_as(p), 0.85 - 0.6 * check + torch.zeros(1, 3), 0.04, 1)
    # red sphere
    d = torch.nn.functional.normalize(torch.randn(n_per_object, 3, generator=g), dim=-1)
    add(d * 0.5 + torch.tensor([0.7, 0.0, 0.5]), d, torch.tensor([[0.9, 0.15, 0.1]]).expand(len(d), 3), 0.035, 2)
    # blue torus (R 0.45, r 0.15) standing upright
    u = 2 * math.pi * torch.rand(n_per_object, generator=g)
    v = 2 * math.pi * torch.rand(n_per_object, generator=g)
    centre = torch.stack([0.45 * torch.cos(u), torch.zeros_like(u), 0.45 * torch.sin(u)], -1)
    nrm = torch.stack([torch.cos(v) * torch.cos(u), torch.sin(v), torch.cos(v) * torch.sin(u)], -1)
    add(centre + 0.15 * nrm + torch.tensor([-0.7, 0.3, 0.65]), nrm, torch.tensor([[0.1, 0.3, 0.9]]).expand(len(u), 3), 0.03, 3)
    # green box 0.6 x 0.6 x 0.6 on the ground
    face = torch.randint(0, 6, (n_per_object,), generator=g)
    uv = torch.rand(n_per_object, 2, generator=g) - 0.5
    axis = face // 2
    sign = (face % 2) * 2 - 1.0
    pts = torch.zeros(n_per_object, 3)
    nrm = torch.zeros(n_per_object, 3)
    for a in range(3):
        m = axis == a
        others = [i for i in range(3) if i != a]
        pts[m, a] = 0.5 * sign[m]
        pts[m, others[0]] = uv[m, 0]
        pts[m, others[1]] = uv[m, 1]
        nrm[m, a] = sign[m]
    stripes = (torch.floor((pts[:, 0] + pts[:, 1] + pts[:, 2]) * 8) % 2)[:, None]
    add(pts * 0.6 + torch.tensor([0.0, -0.8, 0.3]), nrm, torch.tensor([[0.15, 0.75, 0.2]]) * (1 - 0.4 * stripes), 0.03, 4)

    means, scales, quats, rgb, labels = (torch.cat(x) for x in zip(*parts))
    opac = torch.full((len(means),), 0.9)
    store = GaussianStore.from_activated(means, scales, quats, opac, rgb, sh_degree=sh_degree, labels=labels)
    if sh_degree >= 1:  # a little view-dependent sheen on the sphere
        sphere = labels == 2
        store.sh[sphere, 1:num_sh_bases(1)] = 0.15
    return store
