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


class BlendFunction(torch.autograd.Function):
    """Blending through a native extension ``ext`` (its rasterize_fwd / rasterize_bwd), for
    both native backends. ``batched`` False: the CPU extension (one camera per call; it returns
    its tile lists as a list of tensors); True: the CUDA ops (a batch of cameras; an extra
    ``with_contributions`` argument; the tile ranges and ids, with radii, kept for backward).
    Per-pixel outputs are [H, W, ...] or [C, H, W, ...]; ``trans_final`` ends in a 1.
    ``absgrad_out`` ([N, 2] or [C, N, 2], or None) is filled by the backward pass."""

    @staticmethod
    def forward(ctx, ext, batched, means2d, conics, opac, colors, depths, extents, radii, background, width, height,
                labels, num_labels, with_contributions, absgrad_out):
        ctx.ext, ctx.batched, ctx.absgrad_out = ext, batched, absgrad_out
        outs = ext.rasterize_fwd(means2d, conics, opac, colors, depths, extents, radii, width, height, background,
                                 labels, num_labels, *((with_contributions,) if batched else ()))
        color, alpha, depth, depth_sum, trans_final, last, contrib, label_contrib = outs[:8]
        if batched:  # ... ranges, ids, median
            median, kept = outs[10], (radii, outs[8], outs[9])
        else:  # ... median, *tile lists
            median, kept = outs[8], tuple(outs[9:])
        ctx.n_kept = len(kept)
        ctx.save_for_backward(means2d, conics, opac, colors, depths, extents, background, trans_final, depth_sum, last,
                              *kept)
        ctx.mark_non_differentiable(contrib, label_contrib, median)
        return color, alpha, depth, contrib, label_contrib, median

    @staticmethod
    def backward(ctx, v_color, v_alpha, v_depth, _v_contrib, _v_label, _v_median):
        means2d, conics, opac, colors, depths, extents, background, trans_final, depth_sum, last, *kept = ctx.saved_tensors
        v_color = zeros_if_none(v_color, trans_final.expand(*trans_final.shape[:-1], 3))
        tiles = tuple(kept) if ctx.batched else (list(kept),)
        grads = ctx.ext.rasterize_bwd(
            means2d, conics, opac, colors, depths, extents, *tiles, background, trans_final, depth_sum, last,
            v_color, zeros_if_none(v_alpha, trans_final), zeros_if_none(v_depth, trans_final),
            ctx.absgrad_out is not None,
        )
        if ctx.absgrad_out is not None:
            ctx.absgrad_out.copy_(grads[5])
        # the background shows through the transmittance left at each pixel
        v_background = (v_color * trans_final).sum((-3, -2)) if ctx.needs_input_grad[9] else None
        return (None, None, *grads[:5], None, None, v_background, None, None, None, None, None, None)
