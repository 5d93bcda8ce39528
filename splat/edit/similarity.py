"""Similarity transforms of Gaussians: x′ = s·R·(x − p) + p + t.

A transform moves means, turns quaternions (q′ = q_R ⊗ q), scales log-scales by
log s and rotates every SH band of every channel, so the moved scene rendered from
a moved camera is the original image.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..errors import SplatError
from ..numbers import parse_numbers
from ..geometry import quat_to_rotmat
from ..store import GaussianStore
from .sh_rotation import rotate_sh


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a ⊗ b of (w, x, y, z) quaternions, broadcasting over [..., 4]."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], -1)


def euler_to_quat(degrees: Sequence[float]) -> tuple[float, float, float, float]:
    """(w, x, y, z) of rotations about the world x, then y, then z axis (R = Rz·Ry·Rx)."""
    q = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)
    for axis, deg in enumerate(degrees):
        h = math.radians(deg) / 2
        r = torch.zeros(4, dtype=torch.float64)
        r[0], r[axis + 1] = math.cos(h), math.sin(h)
        q = quat_multiply(r, q)
    return tuple(float(v) for v in q)


@dataclass
class Similarity:
    """x′ = scale · R(rotation) · (x − pivot) + pivot + translation.

    Attributes:
        translation: (tx, ty, tz).
        rotation: unit quaternion (w, x, y, z); normalised on construction.
        scale: uniform scale factor > 0.
        pivot: the point that rotation and scale keep fixed.
    """

    translation: Sequence[float] = (0.0, 0.0, 0.0)
    rotation: Sequence[float] = (1.0, 0.0, 0.0, 0.0)
    scale: float = 1.0
    pivot: Sequence[float] = field(default=(0.0, 0.0, 0.0))

    def __post_init__(self):
        vals = list(self.translation) + list(self.rotation) + [self.scale] + list(self.pivot)
        if len(self.translation) != 3 or len(self.rotation) != 4 or len(self.pivot) != 3:
            raise SplatError("transform: translation and pivot need 3 numbers, rotation 4 (w,x,y,z)")
        if not all(math.isfinite(float(v)) for v in vals):
            raise SplatError("transform: values must be finite")
        if not self.scale > 0:
            raise SplatError(f"transform: scale must be > 0, got {self.scale}")
        norm = math.sqrt(sum(float(v) ** 2 for v in self.rotation))
        if norm == 0:
            raise SplatError("transform: rotation quaternion has zero length")
        self.rotation = tuple(float(v) / norm for v in self.rotation)
        self.translation = tuple(float(v) for v in self.translation)
        self.pivot = tuple(float(v) for v in self.pivot)
        self.scale = float(self.scale)

    @property
    def rotation_matrix(self) -> torch.Tensor:
        """[3, 3] float64."""
        return quat_to_rotmat(torch.tensor([self.rotation], dtype=torch.float64))[0]

    def matrix(self) -> torch.Tensor:
        """[4, 4] float64 homogeneous matrix of the transform."""
        M = torch.eye(4, dtype=torch.float64)
        sR = self.scale * self.rotation_matrix
        p = torch.tensor(self.pivot, dtype=torch.float64)
        M[:3, :3] = sR
        M[:3, 3] = p - sR @ p + torch.tensor(self.translation, dtype=torch.float64)
        return M

    def is_identity(self) -> bool:
        return self.translation == (0.0, 0.0, 0.0) and self.scale == 1.0 and self.rotation == (1.0, 0.0, 0.0, 0.0)

    @classmethod
    def parse(cls, text: str) -> "Similarity":
        """Parse ``t=x,y,z;r=rx,ry,rz;q=w,x,y,z;s=k;p=x,y,z`` (any subset, any order;
        ``r`` is Euler degrees about world x, y, z)."""
        kw: dict = {}
        for part in filter(None, (p.strip() for p in text.split(";"))):
            m = re.fullmatch(r"([trqsp])=(.*)", part)
            if not m:
                raise SplatError(f"transform '{text}': '{part}' is not one of t=, r=, q=, s=, p=")
            key, vals = m.group(1), parse_numbers(m.group(2), f"transform '{text}'")
            need = {"t": 3, "r": 3, "q": 4, "s": 1, "p": 3}[key]
            if len(vals) != need:
                raise SplatError(f"transform '{text}': {key}= needs {need} numbers, got {len(vals)}")
            if key == "t":
                kw["translation"] = vals
            elif key == "r":
                kw["rotation"] = euler_to_quat(vals)
            elif key == "q":
                kw["rotation"] = vals
            elif key == "s":
                kw["scale"] = vals[0]
            else:
                kw["pivot"] = vals
        return cls(**kw)


def transform_gaussians(store: GaussianStore, xf: Similarity) -> GaussianStore:
    """Apply ``xf`` to every Gaussian of ``store`` (a new store; extras are kept)."""
    out = store.detach().clone()
    if xf.is_identity() or len(store) == 0:
        return out
    M = xf.matrix().to(store.means)
    out.means = store.means.detach() @ M[:3, :3].T + M[:3, 3]
    qr = torch.tensor(xf.rotation, dtype=store.dtype, device=store.device)
    out.quats = quat_multiply(qr.expand_as(store.quats), store.quats.detach())
    out.log_scales = store.log_scales.detach() + math.log(xf.scale)
    if store.sh.shape[1] > 1:
        out.sh = rotate_sh(store.sh.detach(), xf.rotation_matrix.to(store.device))
    return out


def transform_camera_viewmat(viewmat: torch.Tensor, xf: Similarity) -> torch.Tensor:
    """The viewmat that sees the original scene as ``viewmat`` sees the transformed one.

    With x′ = M x and M = [sR | b]: V (M x) = s · V′ x in camera space, and a
    uniform scale of camera coordinates changes depth but not the image, so
    V′ = V·M with its translation (and depth) divided by s.
    """
    V = viewmat.to(torch.float64) @ xf.matrix()
    V[:3, :] /= xf.scale
    return V
