"""KSplat (the mkkellogg GaussianSplats3D viewer's format), read only.

A 4096-byte main header (u8 major 0, u8 minor ≥ 1, u32 section count at 4, u32 Gaussians at
16, u16 compression mode at 20: 0 = float32, 1 = float16, 2 = float16 with 8-bit SH; f32 SH
range at 36 and 40), then one 1024-byte header per section, then each section's data: the
partial buckets' sizes (u32), the bucket centres (3 × f32 each), and per Gaussian the position
(f32, or u16 offsets from its bucket's centre), linear scales, a (w, x, y, z) quaternion,
RGBA bytes and the SH coefficients (per band, channel-major within the band).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ..errors import SplatError
from ..geometry import SH_C0
from ..store import GaussianStore
from .atomic import open_input
from .web_columns import WebColumns, checked_count

_MAIN, _SECTION = 4096, 1024
# (position, scale, rotation bytes, bytes per SH value, default quantisation range) per mode
_MODES = {0: (12, 12, 16, 4, 1), 1: (6, 6, 8, 2, 32767), 2: (6, 6, 8, 1, 32767)}
_SH_COUNT = (0, 9, 24, 45)


def _sh_columns(count: int) -> np.ndarray:
    """Storage position i -> (coefficient 1.., channel): band by band, channel-major inside."""
    out, start = [], 0
    for band, width in ((1, 3), (2, 5), (3, 7)):
        if start >= count:
            break
        for i in range(3 * width):
            out.append((start // 3 + i % width + 1, i // width))
        start += 3 * width
    return np.array(out[:count], np.int64).reshape(-1, 2)


def read_ksplat(path: str | os.PathLike) -> WebColumns:
    """Read a ``.ksplat`` file into columns.

    Raises:
        SplatError: too short, unknown version or mode, sections that run past the end, a
            count that does not match the sections.
    """
    path = Path(path)
    with open_input(path, ".ksplat") as f:
        data = f.read()
    if len(data) < _MAIN:
        raise SplatError(f"{path}: truncated .ksplat file ({len(data)} bytes, the header is {_MAIN})")
    major, minor = data[0], data[1]
    if major != 0 or minor < 1:
        raise SplatError(f"{path}: .ksplat version {major}.{minor} is not supported (0.1 and later are)")
    (sections,) = struct.unpack_from("<I", data, 4)
    (total,) = struct.unpack_from("<I", data, 16)
    (mode,) = struct.unpack_from("<H", data, 20)
    sh_lo, sh_hi = struct.unpack_from("<ff", data, 36)
    sh_lo, sh_hi = (sh_lo or -1.5), (sh_hi or 1.5)
    if mode not in _MODES:
        raise SplatError(f"{path}: .ksplat compression mode {mode} is not supported (0, 1, 2)")
    if _MAIN + sections * _SECTION > len(data):
        raise SplatError(f"{path}: .ksplat header says {sections} sections; the file is too short for them")
    pos_b, scale_b, rot_b, sh_b, default_range = _MODES[mode]
    checked_count(path, total, len(data) // (pos_b + scale_b + rot_b + 4))
    degrees = [struct.unpack_from("<H", data, _MAIN + i * _SECTION + 40)[0] for i in range(sections)]
    if any(d > 3 for d in degrees):
        raise SplatError(f"{path}: .ksplat SH degree above 3")
    degree = max([d for i, d in enumerate(degrees) if struct.unpack_from("<I", data, _MAIN + i * _SECTION)[0]] or [0])
    n_rest = (degree + 1) ** 2 - 1
    parts: list[tuple[np.ndarray, ...]] = []
    at = _MAIN + sections * _SECTION
    f16 = "<f2" if mode else "<f4"
    for i in range(sections):
        count, capacity_max, bucket_cap, buckets = struct.unpack_from("<IIII", data, _MAIN + i * _SECTION)
        (block,) = struct.unpack_from("<f", data, _MAIN + i * _SECTION + 16)
        (bucket_bytes,) = struct.unpack_from("<H", data, _MAIN + i * _SECTION + 20)
        (qrange,) = struct.unpack_from("<I", data, _MAIN + i * _SECTION + 24)
        full, partial = struct.unpack_from("<II", data, _MAIN + i * _SECTION + 32)
        qrange = qrange or default_range
        sec_rest = _SH_COUNT[degrees[i]]
        per = pos_b + scale_b + rot_b + 4 + sec_rest * sh_b
        meta = bucket_bytes * buckets + 4 * partial
        end = at + meta + per * capacity_max
        if mode and buckets and bucket_bytes < 12:
            raise SplatError(f"{path}: .ksplat section {i} stores {bucket_bytes} bytes per bucket, its centres need 12")
        if count > capacity_max or end > len(data) or partial > buckets or full > buckets:
            raise SplatError(f"{path}: .ksplat section {i} runs past the end of the file or its own capacity")
        partial_sizes = np.frombuffer(data, "<u4", partial, at).astype(np.int64)
        centres = np.frombuffer(data, "<f4", 3 * buckets, at + 4 * partial).reshape(buckets, 3) if mode else None
        rec = np.frombuffer(data, np.uint8, per * count, at + meta).reshape(count, per)
        if mode:
            cap_full = full * bucket_cap
            bucket = np.empty(count, np.int64)
            bucket[: min(cap_full, count)] = np.arange(min(cap_full, count)) // max(bucket_cap, 1)
            if count > cap_full:
                bounds = np.cumsum(partial_sizes)
                bucket[cap_full:] = full + np.searchsorted(bounds, np.arange(count - cap_full), side="right")
            if count and bucket.max() >= buckets:
                raise SplatError(f"{path}: .ksplat section {i} has Gaussians beyond its buckets")
            q = rec[:, :6].copy().view("<u2").astype(np.float64)
            means = (q - qrange) * (block / 2.0 / qrange) + centres[bucket]
        else:
            means = rec[:, :12].copy().view("<f4").astype(np.float64)
        o = pos_b
        scales = rec[:, o: o + scale_b].copy().view(f16).astype(np.float64)
        o += scale_b
        quats = rec[:, o: o + rot_b].copy().view(f16).astype(np.float64)
        o += rot_b
        rgba = rec[:, o: o + 4].astype(np.float64) / 255.0
        o += 4
        rest = np.zeros((count, n_rest, 3))
        if sec_rest and count:  # an empty section may name a degree the others lack
            raw = rec[:, o: o + sec_rest * sh_b].copy()
            vals = raw.view({4: "<f4", 2: "<f2", 1: np.uint8}[sh_b]).astype(np.float64)
            if sh_b == 1:
                vals = sh_lo + vals / 255.0 * (sh_hi - sh_lo)
            place = _sh_columns(sec_rest)
            rest[:, place[:, 0] - 1, place[:, 1]] = vals
        parts.append((means, scales, quats, rgba, rest))
        at = end
    got = sum(len(p[0]) for p in parts)
    if got != total:
        raise SplatError(f"{path}: .ksplat header says {total} Gaussians, its sections hold {got}")
    if total == 0:
        raise SplatError(f"{path}: .ksplat file holds no Gaussians")
    means, scales, quats, rgba, rest = (np.concatenate(x) for x in zip(*parts))
    norm = np.linalg.norm(quats, axis=1, keepdims=True)
    quats = np.where(norm > 0, quats / np.where(norm > 0, norm, 1), [1.0, 0, 0, 0])
    alpha = np.clip(rgba[:, 3], 1e-6, 1 - 1e-6)
    dc = (rgba[:, :3] - 0.5) / SH_C0
    with np.errstate(divide="ignore"):
        log_scales = np.where(scales > 0, np.log(np.where(scales > 0, scales, 1)), -10.0)
    sh = np.concatenate([dc[:, None, :], rest], 1)
    cols = WebColumns(means.astype(np.float32), log_scales.astype(np.float32), quats.astype(np.float32),
                      np.log(alpha / (1 - alpha)).astype(np.float32), sh.astype(np.float32))
    if not (np.isfinite(cols.means).all() and np.isfinite(cols.log_scales).all() and np.isfinite(cols.sh).all()):
        raise SplatError(f"{path}: .ksplat positions, scales or SH contain NaN or Inf")
    return cols


def load_ksplat(path: str | os.PathLike) -> GaussianStore:
    """Read a ``.ksplat`` file into a float32 store."""
    return read_ksplat(path).to_store()
