"""Real spherical harmonics in the 3DGS basis order, degree 0..3."""

from __future__ import annotations

import torch

from ..geometry import SH_C0 as C0
from ..geometry import SH_C1 as C1
from ..geometry import SH_C2 as C2
from ..geometry import SH_C3 as C3


def sh_basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """SH basis values at unit directions.

    Args:
        degree: 0..3.
        dirs: [..., 3] unit vectors.
    Returns:
        [..., (degree+1)^2] basis values, 3DGS order (band 1 is -y, z, -x scaled by C1).
    """
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, C0)]
    if degree >= 1:
        out += [-C1 * y, C1 * z, -C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            C2[0] * x * y,
            C2[1] * y * z,
            C2[2] * (2 * zz - xx - yy),
            C2[3] * x * z,
            C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            C3[0] * y * (3 * xx - yy),
            C3[1] * x * y * z,
            C3[2] * y * (4 * zz - xx - yy),
            C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            C3[4] * x * (4 * zz - xx - yy),
            C3[5] * z * (xx - yy),
            C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(degree: int, sh: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Colour from SH coefficients, before the +0.5 offset.

    Args:
        degree: bands to use, 0..3 (at most the stored degree).
        sh: [N, K, 3] coefficients, K >= (degree+1)^2.
        dirs: [N, 3] unit view directions (camera centre -> Gaussian).
    Returns:
        [N, 3] sum_k basis_k(dir) * sh_k.
    """
    basis = sh_basis(degree, dirs)  # [N, B]
    return (basis[:, :, None] * sh[:, : basis.shape[1], :]).sum(1)
