"""The C++/OpenMP backend: autograd glue over the native kernels in cuda/cpu.

Two autograd functions (``native_autograd``, shared with the CUDA backend), as in the
torch reference: projection (per Gaussian) and blending (per tile). The [C, N, 2] means2d tensor sits between them, so its
``.grad`` is what densification reads.
"""

from __future__ import annotations

import torch

from ..camera import Camera
from ..store import GaussianStore
from .native import build_extension
from .native_autograd import BlendFunction, ProjectFunction


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


def camera_args(cam: Camera):
    return (cam.viewmat.contiguous(), cam.K.contiguous(), cam.width, cam.height, float(cam.near), float(cam.far))


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
    projected = [ProjectFunction.apply(ext, *params, camera_args(cam), sh_degree, antialiased) for cam in cams]
    means2d = _stack([p[0] for p in projected])  # [C, N, 2]
    if means2d.requires_grad:
        means2d.retain_grad()
    W, H = cams[0].width, cams[0].height
    out = {k: [] for k in ("color", "alpha", "depth", "contributions", "label_contributions", "median_depth")}
    for c, (_, conics, opac, colors, depths, extents, radii) in enumerate(projected):
        lab = None if labels is None else labels[c].contiguous()
        color, alpha, depth, contrib, label_contrib, median = BlendFunction.apply(
            ext, False, means2d[c], conics, opac, colors, depths, extents, radii, background[c].contiguous(), W, H, lab,
            num_labels, True, None if absgrad_out is None else absgrad_out[c],
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
