"""Selections of Gaussians that compose: each is a predicate giving a bool mask [N].

``a | b`` (union), ``a & b`` (intersection), ``a - b`` (difference), ``~a`` (invert).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..camera import Camera
from ..errors import SplatError
from ..geometry import quat_to_rotmat
from ..store import GaussianStore


class Selection:
    """Base class: ``mask(store)`` returns a bool tensor [N]."""

    def mask(self, store: GaussianStore) -> torch.Tensor:
        raise NotImplementedError

    def __or__(self, other: "Selection") -> "Selection":
        return _Combined("union", self, other, lambda a, b: a | b)

    def __and__(self, other: "Selection") -> "Selection":
        return _Combined("intersection", self, other, lambda a, b: a & b)

    def __sub__(self, other: "Selection") -> "Selection":
        return _Combined("difference", self, other, lambda a, b: a & ~b)

    def __invert__(self) -> "Selection":
        return _Inverted(self)


@dataclass
class _Combined(Selection):
    name: str
    a: Selection
    b: Selection
    op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def mask(self, store):
        return self.op(self.a.mask(store), self.b.mask(store))


@dataclass
class _Inverted(Selection):
    inner: Selection

    def mask(self, store):
        return ~self.inner.mask(store)


class All(Selection):
    """Every Gaussian."""

    def mask(self, store):
        return torch.ones(len(store), dtype=torch.bool, device=store.device)


def combine(selections: Sequence[Selection], how: str = "union") -> Selection:
    """Fold selections left to right by ``union``, ``intersection`` or ``difference``
    (the first minus all the others). An empty list selects everything."""
    if how not in ("union", "intersection", "difference"):
        raise SplatError(f"combine: '{how}' is not union, intersection or difference")
    if not selections:
        return All()
    out = selections[0]
    for s in selections[1:]:
        out = out | s if how == "union" else (out & s if how == "intersection" else out - s)
    return out


def _vec(values: Sequence[float], n: int, what: str) -> torch.Tensor:
    v = torch.as_tensor([float(x) for x in values], dtype=torch.float64)
    if v.shape != (n,) or not torch.isfinite(v).all():
        raise SplatError(f"{what}: expected {n} finite numbers")
    return v


@dataclass
class Box(Selection):
    """Centres inside a box of full side lengths ``size`` around ``center``, optionally
    turned by the unit quaternion ``rotation`` (w, x, y, z) from world axes."""

    center: Sequence[float]
    size: Sequence[float]
    rotation: Sequence[float] = (1.0, 0.0, 0.0, 0.0)

    def __post_init__(self):
        self._c = _vec(self.center, 3, "box centre")
        self._s = _vec(self.size, 3, "box size")
        q = _vec(self.rotation, 4, "box rotation")
        if (self._s < 0).any():
            raise SplatError("box size: side lengths must be >= 0")
        if q.norm() == 0:
            raise SplatError("box rotation: zero-length quaternion")
        self._R = quat_to_rotmat(q[None])[0]

    def mask(self, store):
        local = (store.means.detach().double().cpu() - self._c) @ self._R  # world -> box frame
        return (local.abs() <= self._s / 2).all(-1).to(store.device)


@dataclass
class Sphere(Selection):
    """Centres within ``radius`` of ``center``."""

    center: Sequence[float]
    radius: float

    def __post_init__(self):
        self._c = _vec(self.center, 3, "sphere centre")
        if not (math.isfinite(self.radius) and self.radius >= 0):
            raise SplatError(f"sphere radius: must be a finite number >= 0, got {self.radius}")

    def mask(self, store):
        d = (store.means.detach().double().cpu() - self._c).norm(dim=-1)
        return (d <= self.radius).to(store.device)


@dataclass
class Frustum(Selection):
    """Centres that project inside the camera's image, between its near and far planes."""

    camera: Camera

    def mask(self, store):
        cam = self.camera
        x = store.means.detach().double().cpu()
        pc = x @ cam.viewmat[:3, :3].T + cam.viewmat[:3, 3]
        z = pc[:, 2]
        uv = pc @ cam.K.T
        u, v = uv[:, 0] / z.clamp_min(1e-12), uv[:, 1] / z.clamp_min(1e-12)
        inside = (z > cam.near) & (z < cam.far) & (u >= 0) & (u <= cam.width) & (v >= 0) & (v <= cam.height)
        return inside.to(store.device)


@dataclass
class Label(Selection):
    """Gaussians whose ``labels`` field equals ``label``."""

    label: int

    def mask(self, store):
        if store.labels is None:
            raise SplatError("--label: this scene has no labels (run `splat segment` first)")
        return store.labels == int(self.label)


@dataclass
class OpacityBelow(Selection):
    """Opacity (after the sigmoid) below ``threshold``."""

    threshold: float

    def mask(self, store):
        return store.opacities.detach() < self.threshold


@dataclass
class ScaleAbove(Selection):
    """Largest axis standard deviation above ``threshold`` (world units)."""

    threshold: float

    def mask(self, store):
        return store.scales.detach().amax(-1) > self.threshold


@dataclass
class ColorNear(Selection):
    """DC colour (RGB in 0..1) within Euclidean distance ``tolerance`` of ``rgb``."""

    rgb: Sequence[float]
    tolerance: float = 0.1

    def __post_init__(self):
        self._rgb = _vec(self.rgb, 3, "colour")
        if not ((self._rgb >= 0) & (self._rgb <= 1)).all():
            raise SplatError("colour: R,G,B must be in 0..1 (or give #rrggbb)")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise SplatError(f"colour tolerance: must be a finite number >= 0, got {self.tolerance}")

    def mask(self, store):
        d = (store.rgb.detach().double().cpu().clamp(0, 1) - self._rgb).norm(dim=-1)
        return (d <= self.tolerance).to(store.device)
