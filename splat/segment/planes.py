"""The scene's large planes, a cue for click segmentation without model weights.

Objects stand on something: the dominant plane of a scene (a floor, a table top) holds many
opaque Gaussians, and a selection should stop where an object meets it. A room seen from
inside has more: its walls and ceiling are planes too, and together with the floor they are
one surface, the room's shell. ``support_planes`` finds them by RANSAC over the opaque
Gaussians' centres, one after the other on the centres left:

* the dominant plane, kept when it holds at least ``min_share`` of them (else no plane cue);
* each further plane that holds at least ``more_share`` of them. A plane parallel to one
  already found and within ``layer`` x the scene radius of it is the same surface's thickness
  (a floor's Gaussians lie in a slab a few tolerances thick): its centres are set aside and it
  is not counted, and neither is a further plane whose centres do not spread over ``span`` x
  the scene radius (90 % of them within that of their mean): the faces of boxes stacked flush
  lie in one plane too, but a small one. Measured on the built-in scenes (demo schedule, 30,000 Gaussians): the
  tabletop's and the stacked scene's next planes hold 5.4 % and 3.3 % and are such layers;
  the room's walls 11–14 % and its ceiling 6 %.

Segmentation then never crosses between a pixel on any of the planes and one off them
(``on_planes``), and crosses freely between two of them: floor, walls and ceiling meet at
folds without a depth jump, so they come out as one segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ..store import GaussianStore

LAYER_COS = 0.95  # normals closer than about 18 degrees are parallel


@dataclass
class Plane:
    """n·x + d = 0 in world coordinates; points within ``tolerance`` are on it."""

    normal: torch.Tensor  # [3] float64 unit
    offset: float
    tolerance: float

    def distance(self, X: torch.Tensor) -> torch.Tensor:
        return (X.double() @ self.normal + self.offset).abs()


def _ransac(X: torch.Tensor, tol: float, iterations: int, g: torch.Generator) -> torch.Tensor | None:
    """[M] bool: the inliers of the plane through three of ``X`` [M, 3] that holds the most."""
    idx = torch.randint(len(X), (iterations, 3), generator=g)
    a, b, c = X[idx[:, 0]], X[idx[:, 1]], X[idx[:, 2]]
    n = torch.linalg.cross(b - a, c - a)
    ok = n.norm(dim=1) > 1e-12
    n, a = F.normalize(n[ok], dim=1), a[ok]
    if not len(n):
        return None
    d = -(n * a).sum(1)
    counts = ((X @ n.T + d).abs() < tol).sum(0)
    best = int(counts.argmax())
    return (X @ n[best] + d[best]).abs() < tol


def _fitted(inliers: torch.Tensor, tol: float) -> Plane:
    mean = inliers.mean(0)
    normal = torch.linalg.svd(inliers - mean, full_matrices=False).Vh[-1]
    return Plane(normal, float(-(normal @ mean)), tol)


def support_planes(store: GaussianStore, tolerance: float = 0.01, min_share: float = 0.15,
                   more_share: float = 0.06, layer: float = 0.1, span: float = 0.3, most: int = 8,
                   iterations: int = 300, seed: int = 0) -> list[Plane]:
    """The scene's large planes, the dominant one first (module docstring); inlier distance
    ``tolerance`` x the scene radius. Empty when the dominant one holds fewer than
    ``min_share`` of the opaque centres; ``more_share`` 0 keeps the dominant one alone.
    Draws from its own generator (``seed``): the same scene gives the same planes."""
    from ..render.views import scene_center_radius

    X = store.means.detach().double().cpu()[store.opacities.detach().cpu() > 0.5]
    if len(X) < 10:
        return []
    center, radius = scene_center_radius(store)
    X = X[(X - center).norm(dim=1) <= radius]
    total, tol = len(X), tolerance * radius
    g = torch.Generator().manual_seed(seed)
    planes: list[Plane] = []
    for _ in range(most * 2):  # layers do not count towards ``most``
        if len(planes) >= (most if more_share > 0 else 1) or len(X) < 10:
            break
        on = _ransac(X, tol, iterations, g)
        if on is None:
            break
        plane, centre = _fitted(X[on], tol), X[on].mean(0)
        is_layer = any(abs(float(plane.normal @ q.normal)) > LAYER_COS and float(q.distance(centre[None])[0]) < layer * radius
                       for q in planes)
        if not is_layer:
            if int(on.sum()) / total < (more_share if planes else min_share):
                break  # RANSAC takes the largest first: the rest are smaller
            if not planes or float((X[on] - centre).norm(dim=1).quantile(0.9)) >= span * radius:
                planes.append(plane)  # a further plane must span the scene: a wall, not a box's face
        X = X[~on]
    return planes


def _on_one(s, plane: Plane) -> torch.Tensor:
    """[H, W] bool: pixels of a view (``click._Surface``) whose surface point lies on ``plane``.

    Rendered depth is biased towards the camera by up to a Gaussian's extent (the
    transmittance falls at the near side of the footprints), so the plane's offset is
    re-estimated in each view: the median signed distance of the pixels near the plane,
    with a window that shrinks to three robust standard deviations."""
    V = s.camera.viewmat.float()
    world = (s.points - V[:3, 3]) @ V[:3, :3]  # camera -> world: R^T (p - t)
    signed = (world.double() @ plane.normal + plane.offset)
    valid = s.depth > 0
    centre, window = 0.0, 4 * plane.tolerance
    for _ in range(3):
        near = valid & ((signed - centre).abs() < window)
        if int(near.sum()) < 20:
            return torch.zeros_like(valid)
        centre = float(signed[near].median())
        mad = float((signed[near] - centre).abs().median())
        window = min(max(3 * 1.4826 * mad, 0.5 * plane.tolerance), 4 * plane.tolerance)
    return valid & ((signed - centre).abs() < window)


def on_planes(s, planes: Sequence[Plane]) -> torch.Tensor:
    """[H, W] bool: pixels of a view whose surface point lies on any of ``planes``."""
    on = torch.zeros_like(s.depth, dtype=torch.bool)
    for plane in planes:
        on |= _on_one(s, plane)
    return on


def near_planes(planes: Sequence[Plane], X: torch.Tensor, widen: float = 1.0) -> torch.Tensor:
    """[M] bool: which points ``X`` [M, 3] lie within ``widen`` x the tolerance of any of ``planes``."""
    near = torch.zeros(len(X), dtype=torch.bool)
    for plane in planes:
        near |= plane.distance(X) < widen * plane.tolerance
    return near
