"""Image losses and metrics: L1, SSIM (11x11 Gaussian window, sigma 1.5), PSNR.

Images are [H, W, 3] float tensors in [0, 1]; an optional [H, W] weight map
restricts every term to masked pixels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_C1, _C2 = 0.01**2, 0.03**2


def _gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float32) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def ssim_map(a: torch.Tensor, b: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM of two [H, W, 3] images, averaged over channels: [H, W].

    Zero padding at the border, as the reference 3DGS code does. The Gaussian
    window is separable, so the five local moments take two 1-D passes.
    """
    x = torch.stack([a, b, a * a, b * b, a * b]).permute(0, 3, 1, 2).reshape(1, 15, *a.shape[:2])  # [1, 15, H, W]
    g = _gaussian_window(size, sigma, a.dtype).to(a.device)
    x = F.conv2d(x, g.view(1, 1, 1, size).expand(15, 1, 1, size).contiguous(), padding=(0, size // 2), groups=15)
    x = F.conv2d(x, g.view(1, 1, size, 1).expand(15, 1, size, 1).contiguous(), padding=(size // 2, 0), groups=15)
    mu_a, mu_b, aa, bb, ab = x.view(5, 3, *a.shape[:2])
    var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    s = ((2 * mu_a * mu_b + _C1) * (2 * cov + _C2)) / ((mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2))
    return s.mean(0)


def _weighted_mean(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of [H, W] (or [H, W, C]) values, weighted by an optional [H, W] map."""
    if weight is None:
        return x.mean()
    w = weight if x.dim() == 2 else weight[..., None].expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1e-8)


def ssim(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None, fused: bool = False) -> torch.Tensor:
    """Mean SSIM of two [H, W, 3] images (over ``weight`` [H, W] where given).

    ``fused``: use the C++ op for CPU images (same math, one pass; gradient to ``a`` only).
    """
    if fused and a.device.type == "cpu":
        from .fused import fused_ssim_map

        return _weighted_mean(fused_ssim_map(a, b).mean(-1), weight)
    return _weighted_mean(ssim_map(a, b), weight)


def l1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference of two [H, W, C] images (over ``weight`` where given)."""
    return _weighted_mean((a - b).abs(), weight)


def photometric_loss(render: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                     ssim_weight: float = 0.2, fused: bool = False) -> torch.Tensor:
    """The 3DGS loss (1 - w) L1 + w (1 - SSIM) of [H, W, 3] images (``fused``: see ``ssim``)."""
    return (1 - ssim_weight) * l1(render, target, weight) + ssim_weight * (1 - ssim(render, target, weight, fused))


def psnr(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> float:
    """PSNR in dB of images in [0, 1] (inf for identical images)."""
    mse = float(_weighted_mean((a.double() - b.double()) ** 2, weight))
    return math.inf if mse == 0 else -10 * math.log10(mse)
