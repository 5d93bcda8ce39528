"""Procedural solid textures: colours as functions of a point in the object's frame.

Fine detail (stripes, checks, value noise) that splats must work to fit and that
SIFT can match. Every function takes points [M, 3] and returns colours [M, 3] in [0, 1].
"""

from __future__ import annotations

import numpy as np

from ..errors import SplatError

KINDS = ("stripes", "checks", "noise")


def _hash01(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic pseudo-random value in [0, 1) per integer lattice point."""
    h = (ix.astype(np.int64) * 73856093) ^ (iy.astype(np.int64) * 19349663) ^ (iz.astype(np.int64) * 83492791)
    h = (h ^ (seed * 2654435761)) & 0xFFFFFFFF
    h = (h * 2246822519 + 3266489917) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 668265263) & 0xFFFFFFFF
    h ^= h >> 13
    return (h & 0xFFFFFF).astype(np.float64) / float(1 << 24)


def _fade(feature: float, footprint: np.ndarray | None) -> np.ndarray | float:
    """How much of a pattern of size ``feature`` a pixel of ``footprint`` [M] resolves: 1 when the
    feature spans >= 2 footprints, 0 at <= 1, linear between (the band limit of the camera)."""
    if footprint is None:
        return 1.0
    return np.clip(feature / np.maximum(footprint, 1e-12) - 1.0, 0.0, 1.0)


def value_noise(p: np.ndarray, period: float, seed: int, octaves: int = 3, footprint: np.ndarray | None = None) -> np.ndarray:
    """Trilinear value noise of feature size ``period``, octaves summed; [M] in [0, 1].

    Octaves finer than the pixel ``footprint`` [M] (world size of a pixel at each point) fade to
    their mean, so the camera never samples detail it cannot resolve (no aliasing).
    """
    total, amp, norm = np.zeros(len(p)), 1.0, 0.0
    for o in range(octaves):
        q = p / (period / 2**o)
        i = np.floor(q)
        f = q - i
        f = f * f * (3 - 2 * f)  # smoothstep: no visible lattice
        ix, iy, iz = (i[:, k].astype(np.int64) for k in range(3))
        acc = np.zeros(len(p))
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    w = (f[:, 0] if dx else 1 - f[:, 0]) * (f[:, 1] if dy else 1 - f[:, 1]) * (f[:, 2] if dz else 1 - f[:, 2])
                    acc += w * _hash01(ix + dx, iy + dy, iz + dz, seed + 101 * o)
        total += amp * (0.5 + (acc - 0.5) * _fade(period / 2**o, footprint))
        norm += amp
        amp *= 0.5
    return total / norm


def _filtered_square_wave(x: np.ndarray, w: np.ndarray | float) -> np.ndarray:
    """The square wave +1 on [2k, 2k+1), -1 on [2k+1, 2k+2), box-filtered over width ``w``
    (its exact average over [x - w/2, x + w/2]); w -> 0 gives the wave itself."""
    w = np.maximum(w, 1e-6)
    tri = lambda y: np.abs(np.mod(y * 0.5, 1.0) - 0.5)  # noqa: E731  (integral of the wave, up to scale)
    return 2.0 * (tri(x - 0.5 * w) - tri(x + 0.5 * w)) / w


def texture_color(tex: dict, p: np.ndarray, seed: int, footprint: np.ndarray | None = None) -> np.ndarray:
    """Colours [M, 3] of texture ``tex`` (a recipe entry) at points p [M, 3] in the object frame.

    ``footprint`` [M]: the world size of a pixel at each point; the texture is band-limited
    to it (detail finer than a pixel averages out, as in a real camera). None: unfiltered.
    """
    kind = tex.get("kind")
    period = float(tex.get("period", 0.1))
    if kind not in KINDS:
        raise SplatError(f"texture kind '{kind}' is unknown (known: {', '.join(KINDS)})")
    if not period > 0:
        raise SplatError(f"texture period {period} must be positive")
    c0, c1 = (np.asarray(c, dtype=np.float64) for c in tex.get("colors", [[0, 0, 0], [1, 1, 1]]))
    if kind == "stripes":
        axis = np.asarray(tex.get("axis", [0, 0, 1]), dtype=np.float64)
        axis = axis / max(np.linalg.norm(axis), 1e-12)
        t = np.clip(0.5 + 2.0 * np.sin(2 * np.pi * (p @ axis) / period), 0.0, 1.0)  # sharp-edged stripes
        t = 0.5 + (t - 0.5) * _fade(period / 2, footprint)
    elif kind == "checks":
        # a solid checkerboard: the product of square waves along x, y, z. The lattice is shifted
        # by a quarter cell so that planes through the origin do not sit on a cell boundary.
        w = 1e-6 if footprint is None else footprint / period
        q = p / period + 0.25
        t = 0.5 - 0.5 * np.prod([_filtered_square_wave(q[:, k], w) for k in range(3)], axis=0)
    else:
        t = np.clip((value_noise(p, period, seed, footprint=footprint) - 0.5) * 2.5 + 0.5, 0.0, 1.0)
    amount = float(tex.get("noise", 0.0))
    if amount > 0:  # fine grain on top, so flat regions still have texture
        t = np.clip(t + amount * (value_noise(p, period / 3, seed + 7, footprint=footprint) - 0.5), 0.0, 1.0)
    return c0[None] * (1 - t[:, None]) + c1[None] * t[:, None]
