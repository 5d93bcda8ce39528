"""A scene as the web formats see it: float32 numpy columns in the 3DGS PLY convention.

Every compressed format (``.spz``, ``.compressed.ply``, ``.sog``, ``.ksplat``) quantises the
same five quantities, so their writers start from one :class:`WebColumns` and their readers
end in one. The convention is the PLY's: log-scales, opacity logits, unit quaternions
(w, x, y, z) and SH coefficients [N, (d+1)^2, 3] whose first basis is the DC term.

Writers first drop what viewers cannot show, as the field's exporters do: rows with NaN or
Inf and Gaussians with alpha below 1/255 (:func:`export_columns` says how many).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import SplatError
from ..store import GaussianStore, num_sh_bases

MIN_ALPHA = 1.0 / 255.0  # a Gaussian below this never changes an 8-bit pixel


@dataclass
class WebColumns:
    """N Gaussians as float32 arrays.

    Attributes:
        means: [N, 3] positions.
        log_scales: [N, 3] log standard deviations.
        quats: [N, 4] unit quaternions (w, x, y, z).
        opacity_logits: [N] logits of alpha.
        sh: [N, (d+1)^2, 3] SH coefficients, DC first.
    """

    means: np.ndarray
    log_scales: np.ndarray
    quats: np.ndarray
    opacity_logits: np.ndarray
    sh: np.ndarray

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return int(round(self.sh.shape[1] ** 0.5)) - 1

    @property
    def alpha(self) -> np.ndarray:
        """[N] float32 opacity in (0, 1)."""
        return (1.0 / (1.0 + np.exp(-self.opacity_logits.astype(np.float64)))).astype(np.float32)

    def select(self, index: np.ndarray) -> "WebColumns":
        """The rows ``index`` (bool mask or integer order)."""
        return WebColumns(self.means[index], self.log_scales[index], self.quats[index],
                          self.opacity_logits[index], self.sh[index])

    def to_store(self) -> GaussianStore:
        """A float32 store of these Gaussians."""
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        return GaussianStore(t(self.means), t(self.log_scales), t(self.quats), t(self.opacity_logits), t(self.sh))


@dataclass
class Dropped:
    """What a writer left out, and why."""

    non_finite: int = 0
    transparent: int = 0

    def describe(self) -> str:
        """'' when nothing was dropped, else e.g. 'dropped 3 with NaN/Inf, 120 with alpha < 1/255'."""
        parts = []
        if self.non_finite:
            parts.append(f"{self.non_finite} with NaN/Inf")
        if self.transparent:
            parts.append(f"{self.transparent} with alpha < 1/255")
        return ("dropped " + ", ".join(parts)) if parts else ""


def checked_sh_degree(store: GaussianStore, sh_degree: int | None) -> int:
    """``sh_degree`` (default: the store's), refused in one line outside 0..the store's degree."""
    degree = store.sh_degree if sh_degree is None else int(sh_degree)
    if not 0 <= degree <= 3:
        raise SplatError(f"--sh-degree {degree}: must be 0, 1, 2 or 3")
    if degree > store.sh_degree:
        raise SplatError(f"--sh-degree {degree}: the scene has SH degree {store.sh_degree} only")
    return degree


_OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])


def smallest_three(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N, 4] unit quaternions -> (index of the largest |component| [N], the other three [N, 3]
    in order, signed so that the largest is positive): what every web format stores."""
    largest = np.abs(q).argmax(1)
    q = q * np.where(np.take_along_axis(q, largest[:, None], 1) < 0, -1.0, 1.0)
    return largest, np.take_along_axis(q, _OTHERS[largest], 1)


def from_smallest_three(largest: np.ndarray, small: np.ndarray) -> np.ndarray:
    """The inverse of ``smallest_three``: [N, 4] float64, the largest component rebuilt >= 0."""
    q = np.zeros((len(small), 4))
    np.put_along_axis(q, _OTHERS[largest], small, 1)
    np.put_along_axis(q, largest[:, None], np.sqrt(np.clip(1.0 - (small**2).sum(1), 0.0, None))[:, None], 1)
    return q


def export_columns(store: GaussianStore, sh_degree: int | None = None,
                   path: str | os.PathLike = "") -> tuple[WebColumns, Dropped]:
    """The store's Gaussians that a viewer can show, as columns.

    Args:
        store: the scene (any dtype or device).
        sh_degree: keep SH bands up to this degree (default: the store's); higher than the
            store's is an error.
        path: named in errors.

    Raises:
        SplatError: a bad ``sh_degree``, or no Gaussian left to write.
    """
    degree = checked_sh_degree(store, sh_degree)
    s = store.detach().to("cpu", torch.float64)
    bad = s.invalid_rows()
    s = s.select(~bad)
    visible = s.opacities >= MIN_ALPHA
    dropped = Dropped(int(bad.sum()), int((~visible).sum()))
    s = s.select(visible)
    if len(s) == 0:
        where = f"{path}: " if path else ""
        raise SplatError(f"{where}no Gaussian left to write ({dropped.describe() or 'the scene is empty'})")
    f32 = lambda t: t.to(torch.float32).numpy()  # noqa: E731
    cols = WebColumns(f32(s.means), f32(s.log_scales), f32(s.unit_quats), f32(s.opacity_logits),
                      f32(s.sh[:, : num_sh_bases(degree)]))
    return cols, dropped


def morton_order(means: np.ndarray) -> np.ndarray:
    """[N] int64 order of the points along a 3D Morton (Z-order) curve, 21 bits per axis.

    Neighbours in space become neighbours in the file, which is what makes per-chunk ranges
    (compressed PLY) and image compression (SOG) work.
    """
    if len(means) == 0:
        return np.zeros(0, np.int64)
    lo, hi = means.min(0), means.max(0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    q = np.clip((means - lo) / span * (2**21 - 1), 0, 2**21 - 1).astype(np.uint64)

    def spread(v: np.ndarray) -> np.ndarray:  # put two zero bits between the 21 bits of v
        v = v & np.uint64(0x1FFFFF)
        for shift, mask in ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
                            (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249)):
            v = (v | (v << np.uint64(shift))) & np.uint64(mask)
        return v

    code = spread(q[:, 0]) | (spread(q[:, 1]) << np.uint64(1)) | (spread(q[:, 2]) << np.uint64(2))
    return np.argsort(code, kind="stable")


def sh_rest_channel_major(sh: np.ndarray) -> np.ndarray:
    """[N, B, 3] SH -> [N, 3*(B-1)] ``f_rest`` in the PLY's order (all red, then green, blue)."""
    return np.ascontiguousarray(sh[:, 1:].transpose(0, 2, 1).reshape(len(sh), -1))


def sh_from_parts(dc: np.ndarray, rest: np.ndarray | None) -> np.ndarray:
    """[N, 3] DC and [N, 3*(B-1)] channel-major ``f_rest`` (or None) -> [N, B, 3]."""
    n = len(dc)
    if rest is None or rest.shape[1] == 0:
        return dc.reshape(n, 1, 3).astype(np.float32)
    rest = rest.reshape(n, 3, -1).transpose(0, 2, 1)
    return np.concatenate([dc.reshape(n, 1, 3), rest], 1).astype(np.float32)


def checked_count(path: Path, count: int, limit: int, what: str = "Gaussians") -> int:
    """A count from a file's header, refused when it is negative or larger than ``limit``
    (the most the file's size can hold): forged counts never allocate."""
    if count < 0 or count > limit:
        raise SplatError(f"{path}: header says {count} {what}, but the file can hold at most {limit}")
    return count
