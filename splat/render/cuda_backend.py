"""The CUDA backend: autograd glue over the kernels in cuda/*.cu.

As the CPU backend, two autograd functions (``native_autograd``: projection per Gaussian,
blending per tile) with the [C, N, 2] means2d tensor between them, so that its ``.grad``
is what densification reads. Unlike it, every camera of a batch goes through
the kernels at once.
"""

from __future__ import annotations

import os

import torch

from ..camera import Camera
from ..errors import SplatError
from .native import build_extension
from .native_autograd import BlendFunction, ProjectFunction

SOURCES = [
    "project.cu",
    "bin.cu",
    "sort.cu",
    "blend_forward.cu",
    "blend_backward.cu",
    "glue/project_ops.cpp",
    "glue/raster_ops.cpp",
]


_ops = None


def load_cuda_extension():
    """Build (once, for the GPU present only) and load the CUDA kernels; returns ``torch.ops.splat_cuda``.

    Raises:
        SplatError: no CUDA device, or the build failed.
    """
    global _ops
    if _ops is not None:  # called several times per render: the first call did the work
        return _ops
    if not torch.cuda.is_available():
        raise SplatError("the cuda backend needs a CUDA GPU, and torch sees none")
    # SPLAT_CUDA_NO_FMA=1: no fused multiply-adds, rounding closer to the CPU backend's (slower);
    # SPLAT_CUDA_FAST_MATH=1: --use_fast_math as gsplat builds (approximate exp and division:
    # further from the reference, closer to gsplat's rounding)
    cuda_flags = ["-O3"] + (["-fmad=false"] if os.environ.get("SPLAT_CUDA_NO_FMA") == "1" else [])
    cuda_flags += ["--use_fast_math"] if os.environ.get("SPLAT_CUDA_FAST_MATH") == "1" else []
    major, minor = torch.cuda.get_device_capability()
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST") or f"{major}.{minor}"
    saved = os.environ.get("TORCH_CUDA_ARCH_LIST")
    os.environ["TORCH_CUDA_ARCH_LIST"] = arch  # build for this GPU only: a fraction of the compile time
    try:
        build_extension(
            "cuda", SOURCES, extra_cflags=["-O2"], extra_ldflags=[], hash_extra=arch,
            extra_cuda_cflags=cuda_flags, is_python_module=False,
        )
    finally:
        if saved is None:
            del os.environ["TORCH_CUDA_ARCH_LIST"]
        else:
            os.environ["TORCH_CUDA_ARCH_LIST"] = saved
    _ops = torch.ops.splat_cuda
    return _ops


def camera_args(cams: list[Camera]):
    """viewmats [C, 4, 4], Ks [C, 3, 3], near_far [C, 2] (float64, CPU), width, height."""
    viewmats = torch.stack([c.viewmat.detach().cpu().to(torch.float64) for c in cams]).contiguous()
    Ks = torch.stack([c.K.detach().cpu().to(torch.float64) for c in cams]).contiguous()
    near_far = torch.tensor([[float(c.near), float(c.far)] for c in cams], dtype=torch.float64)
    return viewmats, Ks, near_far, cams[0].width, cams[0].height


def rasterize_cuda(
    store,
    cams: list[Camera],
    sh_degree: int,
    background: torch.Tensor,  # [C, 3]
    antialiased: bool,
    labels: torch.Tensor | None = None,  # [C, H, W]
    num_labels: int = 0,
    contributions: bool = True,
    absgrad_out: torch.Tensor | None = None,  # [C, N, 2], filled by backward
) -> dict:
    """Render a batch of cameras with the CUDA kernels. Returns RenderResult fields."""
    if store.device.type != "cuda":
        raise SplatError(f"the cuda backend needs the store on a CUDA device, it is on {store.device}")
    params = [t.contiguous() for t in (store.means, store.log_scales, store.quats, store.opacity_logits, store.sh)]
    cam_args = camera_args(cams)
    means2d, conics, opac, colors, depths, extents, radii = ProjectFunction.apply(
        load_cuda_extension(), *params, cam_args, sh_degree, antialiased
    )
    if means2d.requires_grad:
        means2d.retain_grad()
    W, H = cam_args[3], cam_args[4]
    lab = None if labels is None else labels.contiguous()
    color, alpha, depth, contrib, label_contrib, median = BlendFunction.apply(
        load_cuda_extension(), True, means2d, conics, opac, colors, depths, extents, radii, background.contiguous(), W,
        H, lab, num_labels, contributions or lab is not None, absgrad_out,
    )
    return {
        "color": color,
        "alpha": alpha,
        "depth": depth,
        "contributions": contrib if contributions else None,
        "label_contributions": label_contrib if labels is not None else None,
        "median_depth": median,
        "radii": radii,
        "means2d": means2d,
    }
