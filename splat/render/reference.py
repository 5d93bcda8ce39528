"""The pure-torch reference rasterizer: the truth every other backend is tested against.

Short and readable on purpose; differentiated by autograd. Per camera:

1. ``project``: world -> camera, 3D covariance R S S^T R^T, EWA 2D covariance with
   the 0.3 px low-pass (antialiased mode scales opacity by the compensation),
   SH colour, and a screen extent: the axis-aligned box of the ellipse where
   ``opacity * exp(-0.5 d^T Sigma^-1 d) >= 1/255``. Outside it every alpha is
   below the skip threshold, so the image does not depend on the tiling.
2. ``blend_tile``: for each 16x16 tile, the Gaussians whose box touches it, front
   to back: alpha = min(0.99, o exp(-sigma)), skipped below 1/255, stopping
   before the Gaussian that would bring transmittance below 1e-4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..camera import Camera
from ..geometry import covariance_3d
from ..store import GaussianStore
from .constants import ALPHA_MAX, ALPHA_MIN, EPS2D, T_MIN, TILE
from .sh import eval_sh


@dataclass
class Projected:
    """Gaussians that survive culling for one camera (K of them), in depth order."""

    ids: torch.Tensor  # [K] indices into the store
    means2d: torch.Tensor  # [K, 2] pixel coordinates
    conics: torch.Tensor  # [K, 3] inverse 2D covariance (a, b, c): [[a, b], [b, c]]
    opacities: torch.Tensor  # [K] effective opacity (times compensation if antialiased)
    colors: torch.Tensor  # [K, 3] SH colour, clamped at 0
    depths: torch.Tensor  # [K] camera-space z
    extent: torch.Tensor  # [K, 2] half-widths of the screen box in pixels (x, y)


def project(
    store: GaussianStore, cam: Camera, sh_degree: int, antialiased: bool
) -> tuple[Projected, torch.Tensor, torch.Tensor]:
    """Project all Gaussians into ``cam``.

    Returns:
        (visible Gaussians sorted front to back,
         means2d [N, 2] for every Gaussian (zero where culled; the tensor whose
         gradient densification reads), radii [N] int32 (0 where culled)).
    """
    dt = store.dtype
    viewmat = cam.viewmat.to(store.device, dt)
    K = cam.K.to(store.device, dt)
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    n = len(store)

    # depth culling first, so nothing behind the camera enters a division
    depth_all = store.means.detach() @ R[2] + t[2]
    in_range = (depth_all > cam.near) & (depth_all < cam.far)
    ids = in_range.nonzero()[:, 0]

    means_c = store.means[ids] @ R.T + t  # [M, 3]
    cov_c = R @ covariance_3d(store.quats[ids], store.log_scales[ids].exp()) @ R.T  # [M, 3, 3]
    x, y, z = means_c.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # the Jacobian is evaluated at a point clamped to 1.3x the field of view (as 3DGS)
    lim_x = 0.3 * 0.5 * cam.width / fx
    lim_y = 0.3 * 0.5 * cam.height / fy
    xc = z * torch.clamp(x / z, min=-(cx / fx + lim_x), max=(cam.width - cx) / fx + lim_x)
    yc = z * torch.clamp(y / z, min=-(cy / fy + lim_y), max=(cam.height - cy) / fy + lim_y)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * xc / (z * z), zero, fy / z, -fy * yc / (z * z)], -1).reshape(-1, 2, 3)
    cov2d = J @ cov_c @ J.transpose(1, 2)  # [M, 2, 2]
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    det_orig = a * c - b * b
    a, c = a + EPS2D, c + EPS2D
    det = a * c - b * b
    ok = det > 0
    det = torch.where(ok, det, torch.ones_like(det))
    conics = torch.stack([c / det, -b / det, a / det], -1)
    opac = torch.sigmoid(store.opacity_logits[ids])
    if antialiased:
        opac = opac * torch.sqrt(torch.clamp(det_orig / det, min=0.0))
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)

    # screen box of the ellipse where alpha >= 1/255: d^T Sigma^-1 d <= 2 ln(255 o)
    with torch.no_grad():
        level = 2 * torch.log(torch.clamp(opac / ALPHA_MIN, min=1.0))
        ext = torch.stack([torch.sqrt(level * a), torch.sqrt(level * c)], -1)
        u, v = means2d[:, 0], means2d[:, 1]
        on_screen = (u + ext[:, 0] > 0) & (u - ext[:, 0] < cam.width) & (v + ext[:, 1] > 0) & (v - ext[:, 1] < cam.height)
        keep = ok & (level > 0) & on_screen
        order = torch.sort(z.detach()[keep], stable=True).indices
        sel = keep.nonzero()[:, 0][order]

    means2d_full = torch.zeros(n, 2, dtype=dt, device=store.device).index_put((ids,), means2d)
    radii = torch.zeros(n, dtype=torch.int32, device=store.device)
    radii[ids[keep]] = torch.ceil(ext[keep].max(-1).values).to(torch.int32)

    kept = ids[sel]
    dirs = F.normalize(store.means[kept] - (-R.T @ t), dim=-1)
    colors = torch.clamp(eval_sh(sh_degree, store.sh[kept], dirs) + 0.5, min=0.0)
    return (
        Projected(kept, means2d_full[kept], conics[sel], opac[sel], colors, z[sel], ext[sel]),
        means2d_full,
        radii,
    )


def blend_tile(
    pixels: torch.Tensor,  # [P, 2] pixel centres
    g: Projected,  # the K Gaussians touching this tile, front to back
    background: torch.Tensor,  # [3]
    absgrad_out: torch.Tensor | None = None,  # [N, 2]
):
    """Front-to-back alpha blending of K Gaussians over P pixels.

    ``absgrad_out``: during backward, each Gaussian's sum over pixels of
    |d loss / d mean2d| (per component) is added there (absgrad densification).

    Returns:
        color [P, 3], alpha [P], depth [P] (expected depth), weights [P, K]
        (alpha * T of each Gaussian at each pixel), median depth [P] (no grad: the depth of
        the Gaussian at which T falls to 0.5; 0 where it never does).
    """
    d = pixels[:, None, :] - g.means2d[None, :, :]  # [P, K, 2]
    if absgrad_out is not None and d.requires_grad:  # d's gradient is minus each pixel's part of the mean's
        def collect(v_d: torch.Tensor, ids=g.ids) -> None:
            absgrad_out.index_add_(0, ids, v_d.abs().sum(0))

        d.register_hook(collect)
    dx, dy = d[..., 0], d[..., 1]
    sigma = 0.5 * (g.conics[:, 0] * dx * dx + g.conics[:, 2] * dy * dy) + g.conics[:, 1] * dx * dy
    alpha = torch.clamp(g.opacities * torch.exp(-sigma), max=ALPHA_MAX)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
    with torch.no_grad():  # stop before the Gaussian that would bring T below T_MIN
        included = torch.cumprod(1 - alpha, dim=1) >= T_MIN
    alpha = alpha * included
    t_after = torch.cumprod(1 - alpha, dim=1)  # [P, K]
    t_before = torch.cat([torch.ones_like(t_after[:, :1]), t_after[:, :-1]], dim=1)
    weights = alpha * t_before
    t_final = t_after[:, -1] if t_after.shape[1] else torch.ones_like(pixels[:, 0])
    color = weights @ g.colors + t_final[:, None] * background
    acc = 1 - t_final
    depth_sum = weights @ g.depths
    with torch.no_grad():
        crossing = (t_before > 0.5) & (t_after <= 0.5)  # at most one Gaussian per pixel
        median = (crossing.to(g.depths.dtype) * g.depths).sum(1)
    return color, acc, depth_sum, weights, median


def _subset(g: Projected, idx: torch.Tensor) -> Projected:
    return Projected(*(getattr(g, f)[idx] for f in Projected.__dataclass_fields__))


def rasterize_torch(
    store: GaussianStore,
    cams: list[Camera],
    sh_degree: int,
    background: torch.Tensor,  # [C, 3]
    antialiased: bool,
    labels: torch.Tensor | None = None,  # [C, H, W] int64 label images
    num_labels: int = 0,
    contributions: bool = True,  # computed either way: cheap here
    absgrad_out: torch.Tensor | None = None,  # [C, N, 2], filled by backward
) -> dict:
    """Render a batch of cameras (same image size). Returns RenderResult fields."""
    projected = [project(store, cam, sh_degree, antialiased) for cam in cams]
    # one [C, N, 2] tensor that every tile reads from, so its .grad is complete
    means2d = torch.stack([m for _, m, _ in projected])
    if means2d.requires_grad:
        means2d.retain_grad()
    out = []
    for c, (cam, (g, _, _)) in enumerate(zip(cams, projected)):
        g.means2d = means2d[c][g.ids]
        out.append(_render_projected(store, cam, g, background[c], None if labels is None else labels[c], num_labels,
                                     None if absgrad_out is None else absgrad_out[c]))
    result = {k: torch.stack([o[k] for o in out]) if out[0][k] is not None else None for k in out[0]}
    result["radii"] = torch.stack([r for _, _, r in projected])
    result["means2d"] = means2d
    return result


def _render_projected(
    store: GaussianStore,
    cam: Camera,
    g: Projected,
    background: torch.Tensor,  # [3]
    labels: torch.Tensor | None,  # [H, W]
    num_labels: int,
    absgrad_out: torch.Tensor | None = None,  # [N, 2]
) -> dict:
    """Blend the projected Gaussians of one camera tile by tile."""
    W, H = cam.width, cam.height
    n, dev, dt = len(store), store.device, store.dtype
    tiles_x, tiles_y = math.ceil(W / TILE), math.ceil(H / TILE)
    with torch.no_grad():  # tile range of each Gaussian's box
        lo = torch.floor((g.means2d - g.extent) / TILE).long()
        hi = torch.floor((g.means2d + g.extent) / TILE).long()
    colors, alphas, depths, medians, pixel_ids = [], [], [], [], []
    contrib = torch.zeros(n, dtype=dt, device=dev)
    label_contrib = torch.zeros(num_labels, n, dtype=dt, device=dev) if labels is not None else None
    for ty in range(tiles_y):
        for tx in range(tiles_x):
            ys = torch.arange(ty * TILE, min((ty + 1) * TILE, H), device=dev)
            xs = torch.arange(tx * TILE, min((tx + 1) * TILE, W), device=dev)
            py, px = torch.meshgrid(ys, xs, indexing="ij")
            pix_id = (py * W + px).reshape(-1)
            pixels = torch.stack([px, py], -1).reshape(-1, 2).to(dt) + 0.5
            touch = (lo[:, 0] <= tx) & (hi[:, 0] >= tx) & (lo[:, 1] <= ty) & (hi[:, 1] >= ty)
            gt = _subset(g, touch.nonzero()[:, 0])
            color, acc, dsum, w, median = blend_tile(pixels, gt, background, absgrad_out)
            colors.append(color)
            medians.append(median)
            alphas.append(acc)
            depths.append(dsum)
            pixel_ids.append(pix_id)
            with torch.no_grad():
                contrib.index_add_(0, gt.ids, w.sum(0))
                if label_contrib is not None:
                    onehot = F.one_hot(labels.reshape(-1)[pix_id], num_labels).to(dt)  # [P, L]
                    label_contrib.index_add_(1, gt.ids, onehot.T @ w)
    inverse = torch.argsort(torch.cat(pixel_ids))  # tile order -> raster order
    color = torch.cat(colors)[inverse].reshape(H, W, 3)
    alpha = torch.cat(alphas)[inverse].reshape(H, W, 1)
    depth_sum = torch.cat(depths)[inverse].reshape(H, W, 1)
    depth = torch.where(alpha > 0, depth_sum / torch.clamp(alpha, min=1e-10), torch.zeros_like(alpha))
    median = torch.cat(medians)[inverse].reshape(H, W, 1)
    return dict(color=color, alpha=alpha, depth=depth, contributions=contrib, label_contributions=label_contrib,
                median_depth=median)
