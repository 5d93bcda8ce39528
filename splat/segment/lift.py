"""Lifting 2D label images to per-Gaussian labels (a FlashSplat-style solve).

For each view and label image M, the blend loop accumulates A[M(p), i] += alpha_i(p)·T_i(p)
for every Gaussian i that contributes to pixel p (the rasterizer's label contributions).
Summed over views, each Gaussian's column is L2-normalised over labels, a bias is added
to the background row (negative favours foreground), and the label is the argmax.
Gaussians that no view saw (a zero column) stay unlabelled (-1).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..camera import Camera
from ..errors import SplatError
from ..geometry import rgb_to_sh_dc
from ..render import rasterize
from ..store import GaussianStore


def label_votes(store: GaussianStore, cameras: Sequence[Camera], label_images: Sequence[torch.Tensor],
                num_labels: int | None = None, backend: str = "auto") -> torch.Tensor:
    """A [L, N] float64: per label and Gaussian, the sum over views and pixels of alpha·T.

    Args:
        cameras: one camera per label image.
        label_images: [H, W] integer images (>= 0), each of its camera's size.
        num_labels: L (default: the largest label + 1).
    """
    if len(cameras) != len(label_images):
        raise SplatError(f"{len(cameras)} cameras but {len(label_images)} label images")
    if not cameras:
        raise SplatError("no views to lift labels from")
    imgs = [torch.as_tensor(m).long() for m in label_images]
    L = num_labels or max(int(m.max()) for m in imgs) + 1
    votes = torch.zeros(L, len(store), dtype=torch.float64)
    with torch.no_grad():
        for cam, m in zip(cameras, imgs):
            if tuple(m.shape) != (cam.height, cam.width):
                raise SplatError(f"label image is {m.shape[1]}x{m.shape[0]}, its camera {cam.width}x{cam.height}")
            r = rasterize(store, cam, backend=backend, sh_degree=0, labels=m[None].to(store.device), num_labels=L)
            if r.label_contributions is None:
                raise SplatError(f"the {backend} backend gives no label contributions; use cpu, cuda or torch")
            votes += r.label_contributions[0].double().cpu()
    return votes


def assign_labels(votes: torch.Tensor, background_bias: float = 0.0, background: int = 0) -> torch.Tensor:
    """[N] int64 labels from [L, N] votes: argmax of the L2-normalised columns with
    ``background_bias`` added to row ``background``; -1 where a column is all zero."""
    norm = votes.norm(dim=0)
    seen = norm > 0
    p = votes / norm.clamp_min(1e-300)
    if 0 <= background < votes.shape[0]:
        p[background] += background_bias
    labels = p.argmax(0)
    labels[~seen] = -1
    return labels


def lift_labels(store: GaussianStore, cameras: Sequence[Camera], label_images: Sequence[torch.Tensor],
                background_bias: float = 0.0, backend: str = "auto") -> GaussianStore:
    """A copy of ``store`` with ``labels`` [N] lifted from the label images."""
    out = store.detach().clone()
    out.extras["labels"] = assign_labels(label_votes(store, cameras, label_images, backend=backend), background_bias)
    return out


def render_labels(store: GaussianStore, camera: Camera, backend: str = "auto", min_alpha: float = 0.5) -> torch.Tensor:
    """[H, W] int64: the label with the largest blend weight at each pixel; 0 (background) where
    the accumulated opacity is below ``min_alpha``; unlabelled Gaussians (-1) count as background.

    Labels are rendered three at a time as one-hot RGB colours (SH degree 0, black background).
    """
    labels = store.labels
    if labels is None:
        raise SplatError("the scene has no labels")
    labels = labels.clamp_min(0)
    classes = torch.unique(labels).tolist()
    H, W = camera.height, camera.width
    weights = torch.zeros(len(classes), H, W)
    s = GaussianStore(store.means.detach(), store.log_scales.detach(), store.quats.detach(),
                      store.opacity_logits.detach(), torch.zeros(len(store), 1, 3, dtype=store.dtype, device=store.device))
    alpha = None
    with torch.no_grad():
        for start in range(0, len(classes), 3):
            group = classes[start:start + 3]
            rgb = torch.zeros(len(store), 3, dtype=store.dtype, device=store.device)
            for j, k in enumerate(group):
                rgb[labels == k, j] = 1.0
            s.sh = rgb_to_sh_dc(rgb)[:, None, :]
            r = rasterize(s, camera, backend=backend, sh_degree=0, contributions=False)
            weights[start:start + len(group)] = r.color[0, :, :, : len(group)].permute(2, 0, 1).float().cpu()
            alpha = r.alpha[0, :, :, 0].float().cpu()
    best = torch.tensor(classes)[weights.argmax(0)]
    return torch.where(alpha >= min_alpha, best, torch.zeros_like(best))
