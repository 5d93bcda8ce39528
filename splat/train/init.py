"""Initial Gaussians: the dataset's points when it has them, else random points
in the scene bounds; scales from the mean distance to the 3 nearest neighbours."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data.dataset import Dataset
from ..store import GaussianStore


def _morton_order(points: torch.Tensor, shift: float) -> torch.Tensor:
    """Indices sorting [N, 3] points along a Z-order curve of a 2^10 grid shifted by ``shift`` cells."""
    lo, hi = points.min(0).values, points.max(0).values
    q = ((points - lo) / (hi - lo).clamp_min(1e-12) * 1023 + shift).long().clamp(0, 1023)
    code = torch.zeros(len(points), dtype=torch.int64)
    for bit in range(10):
        for axis in range(3):
            code |= ((q[:, axis] >> bit) & 1) << (3 * bit + axis)
    return torch.argsort(code)


def knn_mean_distance(points: torch.Tensor, k: int = 3, exact_below: int = 16384) -> torch.Tensor:
    """Mean distance of each of [N, 3] points to its ``k`` nearest others: [N].

    Exact (chunked pairwise distances) up to ``exact_below`` points; above that,
    candidates are the 32 neighbours on each side along two shifted Z-order
    curves, which is close to exact for the point clouds training starts from.
    """
    n = len(points)
    if n <= 1:
        return torch.ones(n, dtype=points.dtype)
    k = min(k, n - 1)
    p = points.float()
    if n <= exact_below:
        best = []
        for start in range(0, n, 2048):
            d = torch.cdist(p[start:start + 2048], p, compute_mode="donot_use_mm_for_euclid_dist")
            d[torch.arange(d.shape[0]), torch.arange(start, start + d.shape[0])] = math.inf
            best.append(d.topk(k, largest=False).values)
        return torch.cat(best).mean(1).to(points.dtype)
    window = 32
    offsets = torch.tensor([o for o in range(-window, window + 1) if o != 0])
    cand = []
    for shift in (0.0, 0.5):
        order = _morton_order(p, shift)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(n)
        cand.append(order[(rank[:, None] + offsets).clamp(0, n - 1)])  # [N, 2 window] original indices
    cand = torch.cat(cand, 1).sort(1).values
    d = (p[:, None, :] - p[cand]).norm(dim=2)
    repeated = torch.zeros_like(cand, dtype=torch.bool)
    repeated[:, 1:] = cand[:, 1:] == cand[:, :-1]
    d[repeated | (cand == torch.arange(n)[:, None])] = math.inf  # each neighbour once, never itself
    best = d.topk(k, largest=False).values
    return best.mean(1).to(points.dtype)


def scene_centre(dataset: Dataset) -> torch.Tensor:
    """[3] the mean camera centre: the middle of the scene as training sees it."""
    return torch.stack([c.center for c in dataset.cameras]).mean(0).float()


def scene_scale(dataset: Dataset) -> float:
    """1.1 x the largest distance of a camera centre from their mean (the 3DGS scene extent)."""
    centres = torch.stack([c.center for c in dataset.cameras])
    r = float((centres - centres.mean(0)).norm(dim=1).max()) if len(centres) > 1 else 1.0
    return 1.1 * (r if r > 0 else 1.0)


def initial_points(dataset: Dataset, count: int, extent: float, generator: torch.Generator):
    """([P, 3] points, [P, 3] colours in [0, 1]): the dataset's points (at most ``count``,
    a random subset) or ``count`` uniform points in a cube of half-size ``extent``
    around the mean camera centre, coloured from a training image they project into."""
    if dataset.points is not None and len(dataset.points):
        pts = torch.from_numpy(np.asarray(dataset.points, dtype=np.float32))
        cols = (torch.from_numpy(np.asarray(dataset.point_colors, dtype=np.float32))
                if dataset.point_colors is not None else torch.full_like(pts, 0.5))
        if len(pts) > count:
            keep = torch.randperm(len(pts), generator=generator)[:count]
            pts, cols = pts[keep], cols[keep]
        return pts, cols
    centre = torch.stack([c.center for c in dataset.cameras]).mean(0).float()
    pts = centre + extent * (2 * torch.rand(count, 3, generator=generator) - 1)
    return pts, _colour_from_views(pts, dataset)


def sky_radius(points: torch.Tensor, centre: torch.Tensor, radius: float, share: float = 0.99) -> float:
    """``radius``, or beyond ``share`` of the ``points`` [P, 3] from ``centre`` [3] (x 1.1) where
    they reach further: cameras inside a room see its walls all around them, and a sphere
    inside the walls would start as a layer of floaters in front of them (the furnished
    room, 96 % of its points beyond 3 x the scene scale). A few far outliers do not count."""
    if len(points) == 0:
        return radius
    return max(radius, 1.1 * float(torch.quantile((points.float() - centre).norm(dim=1), share)))


def sky_points(dataset: Dataset, count: int, radius: float, generator: torch.Generator):
    """([count, 3] points, colours): a sphere of ``radius`` around the mean camera centre,
    far behind the scene, where Gaussians can stand for sky and distant background
    (without them the optimiser paints the background onto haze in front of the scene)."""
    centre = scene_centre(dataset)
    d = torch.nn.functional.normalize(torch.randn(count, 3, generator=generator), dim=-1)
    pts = centre + radius * d
    return pts, _colour_from_views(pts, dataset)


def _colour_from_views(points: torch.Tensor, dataset: Dataset, views: int = 8) -> torch.Tensor:
    """Colour each point with the pixel it projects to in one of a few training images (grey if none)."""
    cols = torch.full_like(points, 0.5)
    done = torch.zeros(len(points), dtype=torch.bool)
    train = dataset.train or list(range(len(dataset)))
    for i in train[:: max(1, len(train) // views)][:views]:
        cam = dataset.cameras[i]
        V = cam.viewmat.float()
        pc = points @ V[:3, :3].T + V[:3, 3]
        uv = pc @ cam.K.float().T
        z = pc[:, 2]
        u, v = uv[:, 0] / z.clamp_min(1e-9), uv[:, 1] / z.clamp_min(1e-9)
        ok = ~done & (z > cam.near) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
        if ok.any():
            img = dataset.image(i)
            cols[ok] = img[v[ok].long(), u[ok].long()]
            done |= ok
    return cols


def initial_store(points: torch.Tensor, colors: torch.Tensor, sh_degree: int, opacity: float = 0.1,
                  scale_factor: float = 1.0) -> GaussianStore:
    """Isotropic Gaussians at ``points`` [P, 3] with DC colour ``colors`` [P, 3].

    Scale = ``scale_factor`` x mean distance to the 3 nearest neighbours.
    """
    dist = knn_mean_distance(points).clamp_min(1e-7)
    n = len(points)
    scales = (dist * scale_factor)[:, None].expand(n, 3)
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1
    return GaussianStore.from_activated(points.float(), scales.float(), quats, torch.full((n,), float(opacity)),
                                        colors.float().clamp(0, 1), sh_degree=sh_degree)


def starting_store(config, dataset: Dataset, scale: float, generator: torch.Generator) -> GaussianStore:
    """The Gaussians a run of ``config`` (a TrainConfig with its cap set) starts from: the
    dataset's points (or random ones) and a far sphere for the background, at most the cap,
    scaled and made opaque as the chosen strategy starts them; ``scale`` is the scene scale.
    Draws from ``generator``."""
    count = min(config.init_count, config.cap)  # the cap holds from step 0
    pts, cols = initial_points(dataset, count, config.init_extent * scale, generator)
    n_sky = min(int(config.sky_fraction * count), config.cap - len(pts))
    if n_sky > 0:
        sky, sky_cols = sky_points(dataset, n_sky, sky_radius(pts, scene_centre(dataset), config.sky_radius * scale),
                                   generator)
        pts, cols = torch.cat([pts, sky]), torch.cat([cols, sky_cols])
    settings = config.strategy_config()
    return initial_store(pts, cols, config.sh_degree, opacity=settings.init_opacity, scale_factor=settings.init_scale)
