"""The C++/OpenMP backend: autograd glue over the native kernels in cuda/cpu.

Two autograd functions, as in the torch reference: projection (per Gaussian)
and blending (per tile). The [C, N, 2] means2d tensor sits between them, so its
``.grad`` is what densification reads.
"""

from __future__ import annotations

import torch

from ..camera import Camera
from ..store import GaussianStore
from .native import build_extension
from .native_autograd import ProjectFunction, zeros_if_none


def load_cpu_extension():
    """Build or load the CPU extension (raises SplatError if it cannot be built)."""
    return build_extension(
        "cpu",
        ["cpu/project_cpu.cpp", "cpu/bin_cpu.cpp", "cpu/blend_cpu.cpp", "cpu/bindings.cpp", "cpu/train_ops.cpp"],
        extra_cflags=["-O3", "-fopenmp", "-ffp-contract=off", "-fno-trapping-math", "-fno-math-errno", "-march=native"],
        extra_ldflags=["-fopenmp"],
    )


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """torch.stack, without the copy for a single camera (the common case)."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def _camera_args(cam: Camera):
    return (cam.viewmat.contiguous(), cam.K.contiguous(), cam.width, cam.height, float(cam.near), float(cam.far))


class _Blend(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d, conics, opac, colors, depths, extents, radii, background, width, height, labels, num_labels,
                absgrad_out):
        ext = load_cpu_extension()
        ctx.absgrad_out = absgrad_out  # [N, 2] filled by the backward pass, or None
        color, alpha, depth, depth_sum, trans_final, last, contrib, label_contrib, median, *lists = ext.rasterize_fwd(
            means2d, conics, opac, colors, depths, extents, radii, width, height, background, labels, num_labels
        )
        # lists: tile offsets, tile ids, chunk masks, depth order, per-Gaussian pair lists (for the backward pass)
        ctx.save_for_backward(means2d, conics, opac, colors, depths, extents, background, trans_final, depth_sum, last,
                              *lists)
        ctx.mark_non_differentiable(contrib, label_contrib, median)
        return color, alpha, depth, contrib, label_contrib, median

    @staticmethod
    def backward(ctx, v_color, v_alpha, v_depth, _v_contrib, _v_label, _v_median):
        means2d, conics, opac, colors, depths, extents, background, trans_final, depth_sum, last, *lists = ctx.saved_tensors
        v_color = zeros_if_none(v_color, trans_final.expand(*trans_final.shape[:2], 3))
        grads = load_cpu_extension().rasterize_bwd(
            means2d, conics, opac, colors, depths, extents, lists, background, trans_final, depth_sum, last,
            v_color, zeros_if_none(v_alpha, trans_final), zeros_if_none(v_depth, trans_final),
            ctx.absgrad_out is not None,
        )
        if ctx.absgrad_out is not None:
            ctx.absgrad_out.copy_(grads[5])
        # the background shows through the transmittance left at each pixel
        v_background = (v_color * trans_final).sum((0, 1)) if ctx.needs_input_grad[7] else None
        return (*grads[:5], None, None, v_background, None, None, None, None, None)


def rasterize_cpu(
    store: GaussianStore,
    cams: list[Camera],
    sh_degree: int,
    background: torch.Tensor,  # [C, 3]
    antialiased: bool,
    labels: torch.Tensor | None = None,  # [C, H, W]
    num_labels: int = 0,
    contributions: bool = True,  # computed either way: cheap here
    absgrad_out: torch.Tensor | None = None,  # [C, N, 2], filled by backward
) -> dict:
    """Render a batch of cameras with the native CPU kernels. Returns RenderResult fields."""
    if store.device.type != "cpu":
        from ..errors import SplatError

        raise SplatError(f"the cpu backend needs the store on the CPU, it is on {store.device}")
    params = [t.contiguous() for t in (store.means, store.log_scales, store.quats, store.opacity_logits, store.sh)]
    ext = load_cpu_extension()
    projected = [ProjectFunction.apply(ext, *params, _camera_args(cam), sh_degree, antialiased) for cam in cams]
    means2d = _stack([p[0] for p in projected])  # [C, N, 2]
    if means2d.requires_grad:
        means2d.retain_grad()
    W, H = cams[0].width, cams[0].height
    out = {k: [] for k in ("color", "alpha", "depth", "contributions", "label_contributions", "median_depth")}
    for c, (_, conics, opac, colors, depths, extents, radii) in enumerate(projected):
        lab = None if labels is None else labels[c].contiguous()
        color, alpha, depth, contrib, label_contrib, median = _Blend.apply(
            means2d[c], conics, opac, colors, depths, extents, radii, background[c].contiguous(), W, H, lab, num_labels,
            None if absgrad_out is None else absgrad_out[c],
        )
        out["color"].append(color)
        out["alpha"].append(alpha)
        out["depth"].append(depth)
        out["contributions"].append(contrib)
        out["label_contributions"].append(label_contrib if labels is not None else None)
        out["median_depth"].append(median)
    result = {k: _stack(v) if v[0] is not None else None for k, v in out.items()}
    result["radii"] = _stack([p[6] for p in projected])
    result["means2d"] = means2d
    return result
