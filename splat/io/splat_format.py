"""The ``.splat`` format (antimatter15 layout), 32 bytes per Gaussian, little-endian:
position f32×3, scale f32×3 (standard deviations), RGBA u8×4 (colour from the SH DC
term, alpha = opacity), rotation u8×4 (round(q·128) + 128, w first, clamped), sorted by
volume · opacity, largest first. No SH bands above 0, no extra fields.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import SplatError
from ..store import GaussianStore
from .atomic import open_input, write_bytes_atomic

RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def splat_bytes(store: GaussianStore) -> bytes:
    """Serialise a store to ``.splat`` bytes (lossy: SH degree 0, 8-bit colour and rotation)."""
    s = store.detach().to("cpu", torch.float64)
    scales = s.scales
    order = torch.argsort(-(scales.prod(-1) * s.opacities), stable=True)
    s = s.select(order)
    rec = np.zeros(len(s), RECORD)
    rec["position"] = s.means.numpy()
    rec["scale"] = s.scales.numpy()
    rgba = torch.cat([s.rgb.clamp(0, 1), s.opacities[:, None]], 1)
    rec["rgba"] = (rgba * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    rec["rot"] = (s.unit_quats * 128 + 128).round().clamp(0, 255).to(torch.uint8).numpy()
    return rec.tobytes()


def save_splat(store: GaussianStore, path: str | os.PathLike) -> None:
    """Write ``store`` as ``.splat`` atomically (the store is validated first)."""
    store.validate()
    write_bytes_atomic(path, splat_bytes(store))


def load_splat(path: str | os.PathLike) -> GaussianStore:
    """Read a ``.splat`` file into a store (SH degree 0, float32).

    Raises:
        SplatError: unreadable file, size not a multiple of 32 bytes, non-finite or
            non-positive scales, zero rotations.
    """
    path = Path(path)
    with open_input(path, ".splat") as f:
        raw = f.read()
    if len(raw) % RECORD.itemsize:
        raise SplatError(f"{path}: {len(raw)} bytes is not a whole number of 32-byte .splat records")
    rec = np.frombuffer(raw, RECORD)
    pos = torch.from_numpy(rec["position"].astype(np.float32))
    scale = torch.from_numpy(rec["scale"].astype(np.float32))
    if not (torch.isfinite(pos).all() and torch.isfinite(scale).all()):
        raise SplatError(f"{path}: positions or scales contain NaN or Inf")
    if (scale <= 0).any():
        raise SplatError(f"{path}: scales must be > 0")
    rgba = torch.from_numpy(rec["rgba"].astype(np.float32)) / 255
    quats = (torch.from_numpy(rec["rot"].astype(np.float32)) - 128) / 128
    if (quats.norm(dim=-1) == 0).any():
        raise SplatError(f"{path}: a rotation is all zeros")
    # alpha 0 and 255 are kept just inside (0, 1) so the logit stays finite
    alpha = rgba[:, 3].clamp(0.5 / 255, 1 - 0.5 / 255)
    return GaussianStore.from_activated(pos, scale, quats, alpha, rgba[:, :3])
