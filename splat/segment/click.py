"""Click segmentation without model weights.

1. Seed: the clicked pixels' surface points, from the rendered median depth of the view.
2. In each of a set of views where a seed is visible (rendered depth at its projection
   agrees with its own depth), a region grows from the seed's pixel over the rendered
   surface: through neighbouring pixels that are opaque (alpha > 0.5), with no depth jump
   (relative change below ``jump``), and not into "concave" pixels. Inverse depth is an
   affine function of the pixel coordinates on any plane, so its Laplacian is zero on
   planes, negative on convex surfaces, and positive where the surface folds away from
   the camera: the line where an object meets what it stands on, and the far side of an
   occlusion boundary. A pixel whose inverse depth lies more than ``concave`` (relative)
   below the mean of its (2r+1)² neighbourhood stops the growth. Optionally a colour step
   larger than ``color_step`` stops it too (off by default: textured objects have strong
   colour edges inside them).
   Scenes of objects standing on a floor or table get one more cue: the scene's large
   planes (``planes.support_planes``: the dominant one, and a room's walls and ceiling). A
   region never crosses between plane pixels and off-plane pixels, so a click on an object
   stops where it meets the floor, and a click on the floor selects the floor (in a room,
   the floor with its walls).
3. The regions are lifted with the same solve as label masks (``lift.assign_labels``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ..camera import Camera
from ..errors import SplatError
from ..render import rasterize
from ..store import GaussianStore
from .lift import assign_labels, label_votes
from .planes import Plane, on_planes, support_planes


@dataclass
class GrowParams:
    """Region-growing thresholds (see the module docstring)."""

    jump: float = 0.03
    jump_ratio: float = 3.0  # a jump also steps this many times more than a neighbouring edge (0: off)
    concave: float = 0.006
    radius: int = 2
    dilate: int = 0  # widen the stopping lines by this many pixels
    plane: bool = True  # use the scene's large planes as a boundary
    plane_tolerance: float = 0.01  # distance to the plane, as a fraction of the scene radius
    more_planes: float = 0.06  # further planes holding this share of opaque centres count too (a room's walls)
    min_alpha: float = 0.5
    color_step: float | None = None
    max_side: int = 128  # views are rendered at most this large for growing and lifting
    max_views: int = 16


@dataclass
class _Surface:
    """What a render tells about the visible surface of one view."""

    camera: Camera
    color: torch.Tensor  # [H, W, 3]
    alpha: torch.Tensor  # [H, W]
    depth: torch.Tensor  # [H, W] median depth (0 where the transmittance never reaches 0.5)
    points: torch.Tensor  # [H, W, 3] camera-space points of the median depth


def _pixel_rays(camera: Camera) -> torch.Tensor:
    """[H, W, 3] camera-space directions with z = 1 through the pixel centres."""
    K = camera.K.float()
    v, u = torch.meshgrid(torch.arange(camera.height) + 0.5, torch.arange(camera.width) + 0.5, indexing="ij")
    return torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)


def _surface(store: GaussianStore, camera: Camera, backend: str) -> _Surface:
    with torch.no_grad():
        r = rasterize(store, camera, backend=backend, sh_degree=0, contributions=False)
    if r.median_depth is None:
        raise SplatError(f"click selection needs median depth, which the {backend} backend does not give")
    alpha = r.alpha[0, ..., 0].float().cpu()
    median = r.median_depth[0, ..., 0].float().cpu()
    rays = _pixel_rays(camera)
    return _Surface(camera, r.color[0].float().cpu(), alpha, median, rays * median[..., None])


def _inverse_depth_dip(depth: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """([H, W] inverse depth, [H, W] its mean over the (2·radius+1)² neighbourhood minus it),
    pixels without depth left out of the mean."""
    f = torch.where(depth > 0, 1 / depth.clamp_min(1e-9), torch.zeros_like(depth))[None, None]
    has = (depth > 0).float()[None, None]
    k = 2 * radius + 1
    mean = F.avg_pool2d(f, k, 1, radius) / F.avg_pool2d(has, k, 1, radius).clamp_min(1e-9)
    return f[0, 0], (mean - f)[0, 0]


def concave_pixels(depth: torch.Tensor, radius: int, threshold: float) -> torch.Tensor:
    """[H, W] bool: pixels whose inverse depth is more than ``threshold`` (relative) below the
    mean over their (2·radius+1)² neighbourhood (pixels without depth are left out of the mean)."""
    f, dip = _inverse_depth_dip(depth, radius)
    return (dip > threshold * f) & (depth > 0)


def convex_pixels(depth: torch.Tensor, radius: int, threshold: float) -> torch.Tensor:
    """[H, W] bool: the opposite fold: inverse depth more than ``threshold`` above the mean (a
    box's edge, a ball's curve)."""
    f, dip = _inverse_depth_dip(depth, radius)
    return (-dip > threshold * f) & (depth > 0)


def scene_planes(store: GaussianStore, p: GrowParams) -> list[Plane]:
    """The planes ``p`` asks for (``planes.support_planes``); none with ``p.plane`` off."""
    return support_planes(store, p.plane_tolerance, more_share=p.more_planes) if p.plane else []


def depth_jumps(depth: torch.Tensor, p: GrowParams, dim: int) -> torch.Tensor:
    """Bool per pixel edge along ``dim`` (1: [H, W-1], 0: [H-1, W]): a depth discontinuity.

    The depth changes by more than ``jump`` (relative) across the edge and, with
    ``jump_ratio``, by that many times more than across one of the two neighbouring edges
    in the same direction. Inverse depth is affine along a plane, so a floor seen at a
    grazing angle steps evenly from pixel to pixel and is not cut, while an occlusion
    boundary is a lone step."""
    d = depth.transpose(0, 1) if dim == 0 else depth
    f = torch.where(d > 0, 1 / d.clamp_min(1e-9), torch.zeros_like(d))
    a, b = d[:, :-1], d[:, 1:]
    big = (a - b).abs() >= p.jump * torch.minimum(a, b)
    if p.jump_ratio > 0:
        g = (f[:, 1:] - f[:, :-1]).abs()
        inf = torch.full_like(g[:, :1], float("inf"))
        prev, nxt = torch.cat([inf, g[:, :-1]], 1), torch.cat([g[:, 1:], inf], 1)
        big &= g > p.jump_ratio * torch.minimum(prev, nxt)
    return big.transpose(0, 1) if dim == 0 else big


def _edge_ok(s: _Surface, blocked: torch.Tensor, a: tuple, b: tuple, p: GrowParams, jumps: torch.Tensor) -> torch.Tensor:
    """Bool map of whether growth may cross between pixel sets a and b (same shape)."""
    da, db = s.depth[a], s.depth[b]
    ok = (s.alpha[a] > p.min_alpha) & (s.alpha[b] > p.min_alpha) & (da > 0) & (db > 0)
    ok &= ~jumps
    ok &= ~blocked[a] & ~blocked[b]
    if p.color_step is not None:
        ok &= (s.color[a] - s.color[b]).norm(dim=-1) < p.color_step
    return ok


def crossable(s: _Surface, p: GrowParams, planes: Sequence[Plane] = (), seed_yx: tuple[int, int] | None = None,
              concave: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """([H, W-1], [H-1, W]) bool: whether growth may cross each horizontal and vertical pixel
    edge: no depth jump, both opaque, neither on a concave line (``concave``), and not between
    a pixel on the scene's plane and one off it. With ``seed_yx`` the seed's side of the
    plane is the only one open (the floor clicked: the floor; an object: off the floor)."""
    H, W = s.alpha.shape
    blocked = concave_pixels(s.depth, p.radius, p.concave) if concave else torch.zeros(H, W, dtype=torch.bool)
    on = on_planes(s, planes) if planes else None
    if on is not None and seed_yx is not None:
        blocked = ~on if on[seed_yx] else blocked | on  # on the floor, concave lines do not stop it
    if p.dilate > 0:
        k = 2 * p.dilate + 1
        blocked = F.max_pool2d(blocked.float()[None, None], k, 1, p.dilate)[0, 0] > 0
    if seed_yx is not None:
        blocked[seed_yx] = False  # a click on a crease still starts somewhere
    a_r, b_r = (slice(None), slice(0, W - 1)), (slice(None), slice(1, W))
    a_d, b_d = (slice(0, H - 1), slice(None)), (slice(1, H), slice(None))
    right = _edge_ok(s, blocked, a_r, b_r, p, depth_jumps(s.depth, p, 1))
    down = _edge_ok(s, blocked, a_d, b_d, p, depth_jumps(s.depth, p, 0))
    if on is not None and seed_yx is None:
        right &= on[a_r] == on[b_r]
        down &= on[a_d] == on[b_d]
    return right, down


def grow_region(s: _Surface, seed_yx: tuple[int, int], p: GrowParams, planes: Sequence[Plane] = ()) -> torch.Tensor:
    """[H, W] bool: pixels connected to ``seed_yx`` through crossable edges."""
    H, W = s.alpha.shape
    right, down = crossable(s, p, planes, seed_yx)
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[seed_yx] = True
    while True:
        new = mask.clone()
        new[:, 1:] |= mask[:, :-1] & right
        new[:, :-1] |= mask[:, 1:] & right
        new[1:] |= mask[:-1] & down
        new[:-1] |= mask[1:] & down
        if torch.equal(new, mask):
            return mask
        mask = new


def check_pixel(camera: Camera, x: float, y: float) -> None:
    """A one-line error when pixel (x, y) lies outside ``camera``'s image."""
    if not (0 <= x < camera.width and 0 <= y < camera.height):
        raise SplatError(f"pixel {x:g},{y:g} is outside the {camera.width}x{camera.height} view")


def _scaled(camera: Camera, max_side: int) -> Camera:
    scale = min(1.0, max_side / max(camera.width, camera.height))
    return camera if scale >= 1.0 else camera.scaled(scale)


def seed_points(store: GaussianStore, camera: Camera, pixels: Sequence[tuple[float, float]],
                backend: str = "auto") -> torch.Tensor:
    """[P, 3] world points under the clicked pixels (x, y in pixels of ``camera``)."""
    s = _surface(store, camera, backend)
    out = []
    for x, y in pixels:
        check_pixel(camera, x, y)
        yi, xi = int(y), int(x)
        if s.depth[yi, xi] <= 0 or s.alpha[yi, xi] < 0.5:
            raise SplatError(f"nothing there: pixel {x:g},{y:g} shows no surface (opacity {float(s.alpha[yi, xi]):.2f})")
        pc = s.points[yi, xi].double()
        R, t = camera.viewmat[:3, :3], camera.viewmat[:3, 3]
        out.append(R.T @ (pc - t))
    return torch.stack(out)


def _project(camera: Camera, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """([P, 2] pixel coordinates, [P] depth) of world points."""
    pc = X @ camera.viewmat[:3, :3].T + camera.viewmat[:3, 3]
    uv = pc @ camera.K.T
    return uv[:, :2] / pc[:, 2:3].clamp_min(1e-9), pc[:, 2]


def click_masks(store: GaussianStore, seeds: torch.Tensor, cameras: Sequence[Camera], params: GrowParams,
                backend: str = "auto") -> tuple[list[Camera], list[torch.Tensor]]:
    """Per view where a seed is visible: (its camera at the growing size, [H, W] 0/1 region);
    empty lists where no view sees one."""
    cams, masks = [], []
    planes = scene_planes(store, params)
    step = max(1, math.ceil(len(cameras) / params.max_views))
    for cam in list(cameras)[::step]:
        cam = _scaled(cam, params.max_side)
        s = _surface(store, cam, backend)
        uv, z = _project(cam, seeds)
        region = torch.zeros(cam.height, cam.width, dtype=torch.bool)
        visible = False
        for (u, v), d in zip(uv.tolist(), z.tolist()):
            if d <= 0 or not (0 <= u < cam.width and 0 <= v < cam.height):
                continue
            yx = (int(v), int(u))
            if s.depth[yx] <= 0 or abs(float(s.depth[yx]) - d) > params.jump * 2 * d:
                continue  # occluded here
            visible = True
            region |= grow_region(s, yx, params, planes)
        if visible:
            cams.append(cam)
            masks.append(region.long())
    return cams, masks


def click_select(store: GaussianStore, camera: Camera, pixels: Sequence[tuple[float, float]],
                 cameras: Sequence[Camera], params: GrowParams | None = None, background_bias: float = 0.0,
                 backend: str = "auto") -> torch.Tensor:
    """[N] bool: the Gaussians of the object under the clicked pixels of ``camera``.

    Args:
        camera: the view that was clicked; pixels are (x, y) in its pixels.
        cameras: views to grow regions in (e.g. the training cameras).
    """
    params = params or GrowParams()
    seeds = seed_points(store, camera, pixels, backend)
    cams, masks = click_masks(store, seeds, cameras, params, backend)
    if not cams:  # no other view sees the point (a view of its own, a hidden corner): the clicked view alone
        cams, masks = click_masks(store, seeds, [camera], params, backend)
    if not cams:
        raise SplatError("the clicked point is not visible even in the clicked view")
    votes = label_votes(store, cams, masks, num_labels=2, backend=backend)
    return assign_labels(votes, background_bias) == 1
