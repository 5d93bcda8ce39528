"""Rotation of SH coefficients, band by band, in the 3DGS basis (``splat.render.sh``).

Each band l is closed under rotation: Y_l(Rᵀd) = D_l(R) Y_l(d) for a (2l+1)×(2l+1)
matrix D_l. Rotating a Gaussian by R must keep the colour it shows towards every
direction: the new coefficients c′ satisfy Y(d)·c′ = Y(Rᵀd)·c, so c′ = D_lᵀ c.
D_l is solved exactly (least squares on a fixed, well-conditioned set of directions,
float64) from the same basis functions the renderer evaluates, so the rotation can
never disagree with the renderer's ordering or signs.
"""

from __future__ import annotations

import math

import torch

from ..render.sh import sh_basis


def _directions(m: int = 64) -> torch.Tensor:
    """[m, 3] unit vectors on a Fibonacci sphere (float64)."""
    i = torch.arange(m, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / m
    r = (1 - z * z).sqrt()
    phi = i * math.pi * (3 - math.sqrt(5))
    return torch.stack([r * phi.cos(), r * phi.sin(), z], -1)


def band_rotations(rotation: torch.Tensor, degree: int) -> list[torch.Tensor]:
    """Per band l = 1..degree, the matrix M_l [(2l+1), (2l+1)] with c′_l = M_l c_l.

    Args:
        rotation: [3, 3] rotation matrix (world → world).
        degree: highest SH degree, 0..3.
    Returns:
        list of ``degree`` float64 matrices (empty for degree 0).
    """
    R = torch.as_tensor(rotation, dtype=torch.float64)
    dirs = _directions()
    basis = sh_basis(degree, dirs)  # [m, K]
    rotated = sh_basis(degree, dirs @ R)  # rows: Y(Rᵀ d)
    out = []
    for l in range(1, degree + 1):
        sl = slice(l * l, (l + 1) * (l + 1))
        # rotated = basis @ Dᵀ, so lstsq(basis, rotated) is Dᵀ, the matrix taking c to c′
        out.append(torch.linalg.lstsq(basis[:, sl], rotated[:, sl]).solution.contiguous())
    return out


def rotate_sh(sh: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate SH coefficients of every band and channel.

    Args:
        sh: [N, (d+1)^2, 3] coefficients (band 0 is unchanged by rotation).
        rotation: [3, 3] rotation matrix.
    Returns:
        [N, (d+1)^2, 3] rotated coefficients, same dtype as ``sh``.
    """
    degree = int(round(math.sqrt(sh.shape[1]))) - 1
    out = sh.clone()
    for l, M in enumerate(band_rotations(rotation, degree), start=1):
        sl = slice(l * l, (l + 1) * (l + 1))
        out[:, sl] = torch.einsum("ij,njc->nic", M.to(sh), sh[:, sl])
    return out
