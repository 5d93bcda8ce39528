"""The native rasterizer's two stages, callable apart: project a store into one camera, then
blend projected Gaussians that may have come from anywhere (sharded training sends them
between processes in between). The same kernels and autograd functions as ``rasterize`` with
the cpu and cuda backends, so a blend of every visible Gaussian gives the same image.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from ..camera import Camera
from ..errors import SplatError
from ..store import GaussianStore
from .native_autograd import BlendFunction, ProjectFunction

STAGED_BACKENDS = ("cpu", "cuda")
# columns of a packed row: the differentiable values first, then the binning's extents and radius
WIDTHS = {"means2d": 2, "conics": 3, "opacities": 1, "colors": 3, "depths": 1, "extents": 2, "radii": 1}
PACKED_WIDTH = sum(WIDTHS.values())  # 13 floats per projected Gaussian


@dataclass
class Projection:
    """K Gaussians projected into one camera (culled ones have radius 0).

    Attributes: means2d [K, 2] pixels, conics [K, 3], opacities [K], colors [K, 3],
    depths [K], extents [K, 2] (no grad), radii [K] int32 (no grad).
    """

    means2d: torch.Tensor
    conics: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor
    depths: torch.Tensor
    extents: torch.Tensor
    radii: torch.Tensor

    def select(self, idx: torch.Tensor) -> "Projection":
        return Projection(*(getattr(self, f.name)[idx] for f in fields(self)))

    def packed(self) -> torch.Tensor:
        """[K, 13] one row per Gaussian (radii as floats: exact below 2^24), for sending."""
        cols = [getattr(self, f.name) for f in fields(self)]
        cols[-2:] = [cols[-2].detach(), cols[-1].detach().to(cols[0].dtype)]
        return torch.cat([c.reshape(len(c), -1) for c in cols], 1)

    @staticmethod
    def unpacked(rows: torch.Tensor) -> "Projection":
        """The inverse of ``packed``, for [K, 13] rows (gradients flow to the first 10 columns)."""
        parts, at = {}, 0
        for name, width in WIDTHS.items():
            block = rows[:, at:at + width]
            parts[name] = block if width > 1 else block[:, 0]
            at += width
        parts["extents"] = parts["extents"].detach().contiguous()
        parts["radii"] = parts["radii"].detach().round().to(torch.int32)
        return Projection(**{k: v.contiguous() for k, v in parts.items()})


def _extension(backend: str):
    if backend == "cpu":
        from .cpu_backend import load_cpu_extension

        return load_cpu_extension()
    if backend == "cuda":
        from .cuda_backend import load_cuda_extension

        return load_cuda_extension()
    raise SplatError(f"backend {backend!r} cannot render in stages (use one of {', '.join(STAGED_BACKENDS)})")


def project_stage(store: GaussianStore, cam: Camera, backend: str, sh_degree: int, antialiased: bool) -> Projection:
    """Every Gaussian of ``store`` projected into ``cam`` ([N, ...] fields; radius 0 = culled)."""
    params = [t.contiguous() for t in (store.means, store.log_scales, store.quats, store.opacity_logits, store.sh)]
    if backend == "cuda":
        from .cuda_backend import camera_args as cuda_camera_args

        out = ProjectFunction.apply(_extension(backend), *params, cuda_camera_args([cam]), sh_degree, antialiased)
        return Projection(*(t[0] for t in out))  # the batch of one camera
    from .cpu_backend import camera_args as cpu_camera_args

    return Projection(*ProjectFunction.apply(_extension(backend), *params, cpu_camera_args(cam), sh_degree, antialiased))


def blend_stage(p: Projection, cam: Camera, background: torch.Tensor, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(color [H, W, 3], alpha [H, W, 1]) of the projected Gaussians ``p`` over ``background`` [3]."""
    ext = _extension(backend)
    args = (p.means2d, p.conics, p.opacities, p.colors, p.depths, p.extents, p.radii)
    if backend == "cuda":
        color, alpha, *_ = BlendFunction.apply(ext, True, *(t.unsqueeze(0).contiguous() for t in args),
                                               background.reshape(1, 3).contiguous(), cam.width, cam.height, None, 0,
                                               False, None)
        return color[0], alpha[0]
    color, alpha, *_ = BlendFunction.apply(ext, False, *(t.contiguous() for t in args), background.contiguous(),
                                           cam.width, cam.height, None, 0, True, None)
    return color, alpha
