"""``rasterize``: one entry point over every backend."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Dict, Sequence

import torch

from ..camera import Camera, as_camera_list
from ..errors import SplatError
from ..store import GaussianStore
from .reference import rasterize_torch

from .constants import TILE

MODES = ("classic", "antialiased")


@dataclass
class RenderResult:
    """What a render returns for C cameras of H x W pixels and N Gaussians.

    Attributes:
        color: [C, H, W, 3] blended colour plus T_final * background.
        alpha: [C, H, W, 1] accumulated opacity 1 - T_final.
        depth: [C, H, W, 1] expected depth sum(w z) / alpha (0 where alpha = 0).
        radii: [C, N] int32 screen radius in pixels, 0 where culled.
        means2d: [C, N, 2] projected centres; its ``.grad`` is filled by
            ``backward()`` when the store requires grad (densification reads it).
        contributions: [C, N] sum over pixels of alpha * T per Gaussian (no grad);
            None when the render was asked not to compute them.
        label_contributions: [C, L, N] the same split by the label of each pixel,
            when ``labels`` were given (no grad), else None.
        median_depth: [C, H, W, 1] depth of the Gaussian at which the transmittance
            falls to 0.5 (0 where it never does; no grad); None from the gsplat backend.
        means2d_absgrad: [C, N, 2] when asked for (``absgrad=True``): zeros until
            ``backward()`` fills in each Gaussian's sum over pixels of
            |d loss / d mean2d| per component (absgrad densification); else None.
    """

    color: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    radii: torch.Tensor
    means2d: torch.Tensor
    contributions: torch.Tensor | None
    label_contributions: torch.Tensor | None = None
    median_depth: torch.Tensor | None = None
    means2d_absgrad: torch.Tensor | None = None

    @torch.no_grad()
    def tile_pairs_per_pixel(self) -> float:
        """The blend's work per pixel: (tile, Gaussian) pairs of the visible Gaussians' square
        footprints (centre +- radius, in whole tiles) x the tile's area / the pixels, averaged
        over the cameras. An upper bound of the pairs the native binning keeps (it also drops
        tile corners an ellipse misses), cheap enough to log."""
        C, H, W = self.color.shape[:3]
        tiles_x, tiles_y = -(-W // TILE), -(-H // TILE)
        r = self.radii.float()
        m = self.means2d.detach()
        lo_x, hi_x = torch.floor((m[..., 0] - r) / TILE), torch.floor((m[..., 0] + r) / TILE)
        lo_y, hi_y = torch.floor((m[..., 1] - r) / TILE), torch.floor((m[..., 1] + r) / TILE)
        seen = (r > 0) & (hi_x >= 0) & (lo_x < tiles_x) & (hi_y >= 0) & (lo_y < tiles_y)
        span_x = hi_x.clamp(max=tiles_x - 1) - lo_x.clamp(min=0) + 1
        span_y = hi_y.clamp(max=tiles_y - 1) - lo_y.clamp(min=0) + 1
        pairs = (span_x * span_y * seen).sum()
        return float(pairs) * TILE * TILE / (C * H * W)


def _cpu_backend() -> Callable[..., dict]:
    from .cpu_backend import load_cpu_extension, rasterize_cpu

    load_cpu_extension()  # raises SplatError if it cannot be built
    return rasterize_cpu


def _cuda_backend() -> Callable[..., dict]:
    from .cuda_backend import load_cuda_extension, rasterize_cuda

    load_cuda_extension()  # raises SplatError without a GPU or if it cannot be built
    return rasterize_cuda


def _gsplat_backend() -> Callable[..., dict]:
    from .gsplat_backend import load_gsplat, rasterize_gsplat

    load_gsplat()  # raises SplatError without gsplat or a GPU
    return rasterize_gsplat


# name -> loader returning the backend function (raises SplatError if unavailable)
BACKENDS: Dict[str, Callable[[], Callable[..., dict]]] = {
    "cuda": _cuda_backend,
    "cpu": _cpu_backend,
    "torch": lambda: rasterize_torch,
    "gsplat": _gsplat_backend,  # not in AUTO_ORDER: only when asked for
}
AUTO_ORDER = ("cuda", "cpu", "torch")


def available_backends() -> list[str]:
    """Backends that can run here, in the order ``auto`` tries them (builds native ones)."""
    names = []
    for name in AUTO_ORDER:
        try:
            if name in BACKENDS:
                BACKENDS[name]()
                names.append(name)
        except SplatError:
            pass
    return names


def check_backend_name(backend: str) -> None:
    """A one-line error unless ``backend`` is "auto" or a registered backend (nothing is built)."""
    if backend != "auto" and backend not in BACKENDS:
        known = ", ".join(["auto"] + list(BACKENDS))
        raise SplatError(f"backend '{backend}' is unknown (known: {known})")


def resolve_backend(backend: str, device: torch.device) -> Callable[..., dict]:
    """The render function ``backend`` names for stores on ``device``, built now if native.

    Raises:
        SplatError: an unknown name, or a backend that cannot run here.
    """
    if backend == "auto":
        # cuda for stores on a GPU; on the CPU the native backend, else the reference
        order = [b for b in AUTO_ORDER if (b == "cuda") == (device.type == "cuda") or b == "torch"]
        for name in order:
            if name not in BACKENDS:
                continue
            try:
                return BACKENDS[name]()
            except SplatError as e:
                warn_once(f"{e}; falling back to the next backend")
        raise SplatError(f"no backend can render a store on {device}")
    check_backend_name(backend)
    return BACKENDS[backend]()


def _background(background, n_cams: int, like: torch.Tensor) -> torch.Tensor:
    if background is None:
        return torch.zeros(n_cams, 3, dtype=like.dtype, device=like.device)
    bg = torch.as_tensor(background, device=like.device).to(like.dtype)
    if bg.shape == (3,):
        return bg.expand(n_cams, 3)
    if bg.shape == (n_cams, 3):
        return bg
    raise SplatError(f"background: shape {tuple(bg.shape)}, expected (3,) or ({n_cams}, 3)")


def rasterize(
    store: GaussianStore,
    cameras: Camera | Sequence[Camera],
    backend: str = "auto",
    sh_degree: int | None = None,
    background=None,
    mode: str = "classic",
    labels: torch.Tensor | None = None,
    num_labels: int | None = None,
    contributions: bool = True,
    absgrad: bool = False,
) -> RenderResult:
    """Render ``store`` from one or more cameras of the same image size.

    Args:
        store: the Gaussians; gradients flow to its tensors.
        cameras: a Camera or a sequence of C Cameras.
        backend: "auto" (cuda, then cpu, then torch), "torch", "cpu", "cuda", or
            "gsplat" (gsplat's CUDA kernels; no contributions, no labels).
        sh_degree: SH bands to use; None = all the store has.
        background: [3] or [C, 3] colour added where transmittance remains; default black.
        mode: "classic" or "antialiased" (opacity times the low-pass compensation).
        labels: optional [C, H, W] integer label images (>= 0) to split contributions by.
        num_labels: L, the number of label rows (default: max label + 1).
        contributions: compute ``contributions`` (the cuda backend then runs a
            slower blend; training passes False).
        absgrad: also collect ``means2d_absgrad`` during the backward pass.
    Returns:
        RenderResult.
    """
    cams = as_camera_list(cameras)
    if len({(c.width, c.height) for c in cams}) != 1:
        raise SplatError("all cameras in one render call must have the same image size")
    if mode not in MODES:
        raise SplatError(f"mode '{mode}' is unknown (use classic or antialiased)")
    if sh_degree is None:
        sh_degree = store.sh_degree
    if not 0 <= sh_degree <= store.sh_degree:
        raise SplatError(f"sh_degree {sh_degree} is out of range 0..{store.sh_degree} for this store")
    bg = _background(background, len(cams), store.means)
    H, W = cams[0].height, cams[0].width
    if labels is not None:
        labels = torch.as_tensor(labels, device=store.device)
        if labels.dtype.is_floating_point or labels.dtype == torch.bool or tuple(labels.shape) != (len(cams), H, W):
            raise SplatError(f"labels: expected an integer tensor of shape ({len(cams)}, {H}, {W}), got {labels.dtype} {tuple(labels.shape)}")
        labels = labels.long()
        if labels.numel() and labels.min() < 0:
            raise SplatError("labels: values must be >= 0")
        needed = int(labels.max()) + 1 if labels.numel() else 0
        num_labels = needed if num_labels is None else num_labels
        if num_labels < needed:
            raise SplatError(f"num_labels {num_labels} is smaller than the largest label + 1 ({needed})")
    fn = resolve_backend(backend, store.device)
    absgrad_out = torch.zeros(len(cams), len(store), 2, dtype=store.dtype, device=store.device) if absgrad else None
    out = fn(store, cams, sh_degree, bg, mode == "antialiased", labels, num_labels or 0, contributions=contributions,
             absgrad_out=absgrad_out)
    if not contributions:
        out["contributions"] = None
    return RenderResult(**out, means2d_absgrad=absgrad_out)


def register_backend(name: str, loader: Callable[[], Callable[..., dict]]) -> None:
    """Make a backend available to ``rasterize``: ``loader()`` returns the render function."""
    BACKENDS[name] = loader


def warn_once(message: str, _seen=set()) -> None:
    """A one-line warning on stderr, once per process."""
    if message not in _seen:
        _seen.add(message)
        print(f"warning: {message}", file=sys.stderr)
