"""Editing operations over the store. Each returns a new store; inputs are never changed."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import SplatError
from ..store import GaussianStore, num_sh_bases
from .color import ColorGrade, grade_sh
from .selection import All, Selection
from .similarity import Similarity, transform_gaussians


def _mask(store: GaussianStore, selection: Selection | None) -> torch.Tensor:
    return (selection or All()).mask(store)


def crop(store: GaussianStore, selection: Selection) -> GaussianStore:
    """Keep only the selected Gaussians."""
    return store.detach().select(_mask(store, selection))


def delete(store: GaussianStore, selection: Selection) -> GaussianStore:
    """Remove the selected Gaussians."""
    return store.detach().select(~_mask(store, selection))


def transform(store: GaussianStore, xf: Similarity, selection: Selection | None = None) -> GaussianStore:
    """Move the selected Gaussians (all when ``selection`` is None) by ``xf``; order is kept."""
    m = _mask(store, selection)
    out = store.detach().clone()
    if m.any():
        moved = transform_gaussians(store.select(m), xf)
        for name, t in moved.fields().items():
            out.fields()[name][m] = t
    return out


def color(store: GaussianStore, grade: ColorGrade, selection: Selection | None = None) -> GaussianStore:
    """Colour-grade the selected Gaussians (see ``ColorGrade``)."""
    m = _mask(store, selection)
    out = store.detach().clone()
    if m.any():
        out.sh[m] = grade_sh(store.sh.detach()[m], grade)
    return out


def duplicate(store: GaussianStore, selection: Selection, xf: Similarity) -> GaussianStore:
    """Append a copy of the selection moved by ``xf`` (labels and other fields are copied)."""
    return GaussianStore.concat(store.detach(), transform_gaussians(crop(store, selection), xf))


def merge(stores: Sequence[GaussianStore], transforms: Sequence[Similarity | None] | None = None) -> GaussianStore:
    """Concatenate stores, each first moved by its transform (None = unchanged)."""
    transforms = list(transforms) if transforms is not None else [None] * len(stores)
    if len(transforms) != len(stores):
        raise SplatError(f"merge: {len(stores)} scenes but {len(transforms)} transforms")
    moved = [s.detach() if xf is None else transform_gaussians(s, xf) for s, xf in zip(stores, transforms)]
    dtype = moved[0].dtype
    return GaussianStore.concat([s.to(dtype=dtype) for s in moved])


def truncate_sh(store: GaussianStore, degree: int) -> GaussianStore:
    """Drop SH bands above ``degree`` (0..3, at most the store's degree)."""
    if not 0 <= degree <= store.sh_degree:
        raise SplatError(f"sh-degree: {degree} is outside 0..{store.sh_degree} (the scene's degree)")
    out = store.detach().clone()
    out.sh = out.sh[:, : num_sh_bases(degree)].contiguous()
    return out


def clean_masks(
    store: GaussianStore,
    min_opacity: float = 1 / 255,
    max_scale: float | None = None,
    outliers: bool = True,
    neighbors: int = 20,
    std_ratio: float = 3.0,
) -> dict[str, torch.Tensor]:
    """Bool masks [N] of Gaussians to drop, by reason, in the order they are applied:
    ``non_finite`` (NaN/Inf anywhere), ``transparent`` (opacity < min_opacity), ``huge``
    (largest axis above ``max_scale``; default: the diagonal of the 1–99 % box of the
    centres, so no single Gaussian outgrows the scene), ``outlier`` (open3d's statistical
    outlier removal over centres: mean distance to ``neighbors`` neighbours beyond
    ``std_ratio`` standard deviations). Each mask excludes what earlier reasons took."""
    if not (0 <= min_opacity <= 1):
        raise SplatError(f"clean: min opacity {min_opacity} is outside 0..1")
    if neighbors < 1 or not (std_ratio > 0):
        raise SplatError("clean: neighbours must be >= 1 and the std ratio > 0")
    s = store.detach()
    finite = ~s.invalid_rows()
    out = {"non_finite": ~finite}
    alive = finite.clone()
    transparent = alive & ~(s.opacities >= min_opacity)
    out["transparent"] = transparent
    alive &= ~transparent
    if max_scale is None and alive.sum() > 1:
        pts = s.means[alive].double()
        lo, hi = torch.quantile(pts, 0.01, dim=0), torch.quantile(pts, 0.99, dim=0)
        max_scale = max(float((hi - lo).norm()), 1e-12)
    if max_scale is not None:
        if not max_scale > 0:
            raise SplatError(f"clean: max scale {max_scale} must be a positive number")
        huge = alive & (s.log_scales.amax(-1) > math.log(max_scale))
    else:
        huge = torch.zeros_like(alive)
    out["huge"] = huge
    alive &= ~huge
    outlier = torch.zeros_like(alive)
    if outliers and alive.sum() > neighbors:
        import numpy as np
        import open3d as o3d

        idx = alive.nonzero()[:, 0]
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(s.means[idx].double().cpu().numpy()))
        _, kept = pcd.remove_statistical_outlier(nb_neighbors=int(neighbors), std_ratio=float(std_ratio))
        keep = torch.zeros(len(idx), dtype=torch.bool)
        keep[torch.as_tensor(np.asarray(kept, dtype=np.int64))] = True
        outlier[idx[~keep.to(idx.device)]] = True
    out["outlier"] = outlier
    return out


def clean(store: GaussianStore, **kw) -> GaussianStore:
    """Drop what ``clean_masks`` finds (same keyword arguments)."""
    drop = torch.zeros(len(store), dtype=torch.bool, device=store.device)
    for m in clean_masks(store, **kw).values():
        drop |= m
    return store.detach().select(~drop)
