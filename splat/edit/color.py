"""Colour grading of Gaussians as one affine map of the view-dependent colour.

rgb′ = A·rgb + b with A = contrast · Sat · WB and b = (0.5·(1 − contrast) + brightness)·1:
white balance (temperature, tint) scales channels, contrast pivots around 0.5,
saturation mixes towards luma (0.299, 0.587, 0.114), brightness adds. The DC term
gets the whole map; the higher SH bands, which hold only view-dependent
deviations, get the linear part A. The colour a Gaussian shows in every direction
is therefore exactly A·c + b (before the renderer's clamp at 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import SplatError
from ..geometry import SH_C0

LUMA = (0.299, 0.587, 0.114)


@dataclass
class ColorGrade:
    """Attributes:
        brightness: added to R, G and B (−1..1).
        contrast: factor around mid-grey 0.5 (≥ 0; 1 = unchanged).
        saturation: 0 = grey, 1 = unchanged, > 1 more saturated.
        temperature: −1 (cooler, bluer) .. 1 (warmer, redder): R × (1 + 0.3t), B × (1 − 0.3t).
        tint: −1 (greener) .. 1 (more magenta): G × (1 − 0.3t), R and B × (1 + 0.15t).
    """

    brightness: float = 0.0
    contrast: float = 1.0
    saturation: float = 1.0
    temperature: float = 0.0
    tint: float = 0.0

    def __post_init__(self):
        for name in ("brightness", "contrast", "saturation", "temperature", "tint"):
            v = float(getattr(self, name))
            if not math.isfinite(v):
                raise SplatError(f"colour {name}: must be finite, got {v}")
            setattr(self, name, v)
        for name, lo, hi in (("brightness", -1, 1), ("temperature", -1, 1), ("tint", -1, 1),
                             ("contrast", 0, 10), ("saturation", 0, 10)):
            if not lo <= getattr(self, name) <= hi:
                raise SplatError(f"colour {name}: {getattr(self, name)} is outside {lo}..{hi}")

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A [3, 3], b [3]) in float64."""
        t, g = self.temperature, self.tint
        wb = torch.diag(torch.tensor([(1 + 0.3 * t) * (1 + 0.15 * g), 1 - 0.3 * g, (1 - 0.3 * t) * (1 + 0.15 * g)],
                                     dtype=torch.float64))
        luma = torch.tensor(LUMA, dtype=torch.float64)
        sat = self.saturation * torch.eye(3, dtype=torch.float64) + (1 - self.saturation) * torch.ones(3, 1, dtype=torch.float64) * luma
        A = self.contrast * sat @ wb
        b = torch.full((3,), 0.5 * (1 - self.contrast) + self.brightness, dtype=torch.float64)
        return A, b


def grade_sh(sh: torch.Tensor, grade: ColorGrade) -> torch.Tensor:
    """Apply ``grade`` to SH coefficients [N, K, 3]; returns a new tensor."""
    A, b = (x.to(sh) for x in grade.affine())
    out = sh @ A.T  # every band: c_k′ = A c_k
    # DC: rgb = C0·dc + 0.5, so dc′ = (A·rgb + b − 0.5)/C0 = A·dc + (A·0.5 + b − 0.5)/C0
    out[:, 0] += (A.sum(1) * 0.5 + b - 0.5) / SH_C0
    return out
