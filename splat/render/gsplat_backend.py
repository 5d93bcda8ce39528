"""The ``gsplat`` backend: gsplat's CUDA rasterizer behind our ``rasterize`` interface.

For side-by-side comparisons and for training with gsplat's kernels (``splat train
--backend gsplat``). Needs the ``gsplat`` package and a CUDA GPU; gsplat builds its
kernels on first use. It reports no contributions (``contributions`` is None) and takes
no label images.
"""

from __future__ import annotations

import torch

from ..camera import Camera
from ..errors import SplatError


def load_gsplat():
    """Import gsplat (raises SplatError when it or a GPU is missing)."""
    if not torch.cuda.is_available():
        raise SplatError("the gsplat backend needs a CUDA GPU and none is available")
    try:
        import gsplat
    except ImportError:
        raise SplatError("the gsplat backend needs the gsplat package (pip install gsplat)") from None
    return gsplat


def rasterize_gsplat(
    store,
    cams: list[Camera],
    sh_degree: int,
    background: torch.Tensor,  # [C, 3]
    antialiased: bool,
    labels: torch.Tensor | None = None,
    num_labels: int = 0,
    contributions: bool = True,
    absgrad_out: torch.Tensor | None = None,  # [C, N, 2], filled by backward
) -> dict:
    """Render a batch of cameras with gsplat.rasterization. Returns RenderResult fields."""
    gsplat = load_gsplat()
    if store.device.type != "cuda":
        raise SplatError(f"the gsplat backend needs the store on a CUDA device, it is on {store.device}")
    if labels is not None:
        raise SplatError("the gsplat backend cannot split contributions by label; use the cuda or cpu backend")
    dev, dt = store.device, store.dtype
    viewmats = torch.stack([c.viewmat for c in cams]).to(dev, dt)
    Ks = torch.stack([c.K for c in cams]).to(dev, dt)
    rgbd, alpha, info = gsplat.rasterization(
        store.means, store.quats, torch.exp(store.log_scales), torch.sigmoid(store.opacity_logits),
        store.sh[:, : (sh_degree + 1) ** 2], viewmats, Ks, cams[0].width, cams[0].height,
        near_plane=float(cams[0].near), far_plane=float(cams[0].far), sh_degree=sh_degree, packed=False,
        absgrad=absgrad_out is not None, rasterize_mode="antialiased" if antialiased else "classic",
        render_mode="RGB+ED",
    )
    means2d = info["means2d"]  # [C, N, 2]
    if means2d.requires_grad:
        means2d.retain_grad()
        if absgrad_out is not None:
            def collect(_grad, m=means2d) -> None:  # gsplat sets .absgrad during its backward
                absgrad_out.copy_(m.absgrad)

            means2d.register_hook(collect)
    radii = info["radii"]
    if radii.dim() == 3:  # gsplat >= 1.5 reports x and y radii
        radii = radii.max(-1).values
    # gsplat's colours hold SH + 0.5 like ours; the background is added here so it gets a gradient
    color = rgbd[..., :3] + (1 - alpha) * background[:, None, None, :]
    return {
        "color": color, "alpha": alpha, "depth": rgbd[..., 3:4], "contributions": None,
        "label_contributions": None, "radii": radii.int(), "means2d": means2d,
    }
