"""Geometry every part of splat shares: quaternions, covariances and the SH constants.

The reference renderer, the strategies, editing and the viewer all use these; they live here,
not in a renderer, so that reading one of them does not mean reading the rasterizer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# real spherical harmonics in the 3DGS basis order (band 1 is -y, z, -x scaled by SH_C1)
SH_C0 = 0.28209479177387814  # Y_0^0: RGB = SH_C0 * dc + 0.5
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
    -0.4570457994644658, 1.445305721320277, -0.5900435899266435,
)


def rgb_to_sh_dc(rgb: torch.Tensor) -> torch.Tensor:
    """The SH DC coefficient that shows colour ``rgb`` [..., 3] (the inverse of the DC colour)."""
    return (rgb - 0.5) / SH_C0


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """[N, 4] quaternions (w, x, y, z), any length -> [N, 3, 3] rotation matrices."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return R.reshape(-1, 3, 3)


def covariance_3d(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """[N, 4] quaternions, [N, 3] scales -> [N, 3, 3] covariance R S S^T R^T."""
    M = quat_to_rotmat(quats) * scales[:, None, :]  # R S
    return M @ M.transpose(1, 2)
