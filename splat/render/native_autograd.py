"""Autograd pieces that the native backends (cpu, cuda) share."""

from __future__ import annotations

import torch


def zeros_if_none(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """The incoming gradient made contiguous, or zeros shaped like ``like`` where none came."""
    return torch.zeros_like(like) if grad is None else grad.contiguous()


class ProjectFunction(torch.autograd.Function):
    """Projection of every Gaussian through a native extension ``ext`` (its project_fwd /
    project_bwd). Per-Gaussian outputs have radii's leading shape: [N] for one camera
    (cpu), [C, N] for a batch (cuda)."""

    @staticmethod
    def forward(ctx, ext, means, log_scales, quats, logits, sh, cam_args, sh_degree, antialiased):
        means2d, conics, opac, colors, depths, extents, radii = ext.project_fwd(
            means, log_scales, quats, logits, sh, *cam_args, sh_degree, antialiased
        )
        ctx.save_for_backward(means, log_scales, quats, logits, sh, radii)
        ctx.args = (ext, cam_args, sh_degree, antialiased)
        ctx.mark_non_differentiable(extents, radii)
        return means2d, conics, opac, colors, depths, extents, radii

    @staticmethod
    def backward(ctx, v_means2d, v_conics, v_opac, v_colors, v_depths, _v_ext, _v_radii):
        means, log_scales, quats, logits, sh, radii = ctx.saved_tensors
        ext, cam_args, sh_degree, antialiased = ctx.args
        lead = radii.shape

        def like(*k):
            return means.new_empty(*lead, *k)

        grads = ext.project_bwd(
            means, log_scales, quats, logits, sh, *cam_args, sh_degree, antialiased, radii,
            zeros_if_none(v_means2d, like(2)), zeros_if_none(v_conics, like(3)), zeros_if_none(v_opac, like()),
            zeros_if_none(v_colors, like(3)), zeros_if_none(v_depths, like()),
        )
        return (None, *grads, None, None, None)
