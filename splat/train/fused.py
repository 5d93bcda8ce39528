"""Fused CPU training ops (C++/OpenMP over cuda/include/splat/{ssim,adam}.h), part of
the CPU backend's extension (cuda/cpu/train_ops.cpp).

The torch versions in ``losses.py`` and ``adam.py`` are the reference; these do the
same math in one pass over memory, which is what a 2-core CPU needs. Used for CPU
tensors when the extension builds; otherwise the torch path runs (one warning).
"""

from __future__ import annotations

import torch

from ..errors import SplatError


def load_train_extension():
    """Build or load the CPU extension that holds the training ops (raises SplatError if it cannot)."""
    from ..render.cpu_backend import load_cpu_extension

    return load_cpu_extension()


def train_extension():
    """The extension, or None where it cannot be built (warned once)."""
    try:
        return load_train_extension()
    except SplatError as e:
        from ..render.api import warn_once

        warn_once(f"{e}; training uses the torch SSIM and Adam")
        return None


class _FusedSSIM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        ext = load_train_extension()
        a, b = a.contiguous(), b.contiguous()
        ssim_map, moments = ext.ssim_fwd(a, b)
        ctx.save_for_backward(a, b, moments)
        return ssim_map

    @staticmethod
    def backward(ctx, v_map):
        a, b, moments = ctx.saved_tensors
        return load_train_extension().ssim_bwd(a, b, moments, v_map.contiguous()), None


def fused_ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel, per-channel SSIM [H, W, 3] of [H, W, 3] CPU images; gradient flows to ``a`` only."""
    return _FusedSSIM.apply(a, b.detach())
