"""SuperSplat's compressed PLY (``.compressed.ply``): 16 bytes per Gaussian plus SH bytes.

Gaussians are put in Morton order and cut into chunks of 256. Element ``chunk`` holds, per
chunk, 18 floats: the min and max of x, y, z, of the three log-scales (clamped to ±20) and of
the colour ``f_dc · C0 + 0.5`` per channel. Element ``vertex`` holds four uint32 per Gaussian,
each field a fraction of its chunk's range:

* ``packed_position``, ``packed_scale``: 11-10-11 bits (x in the high bits);
* ``packed_rotation``: 2 bits naming the largest |component| of the (w, x, y, z) quaternion
  (made positive), then the other three as 10-bit ``q · √2/2 + 0.5``;
* ``packed_color``: 8-8-8-8, the colour's three channels and alpha (not a fraction).

An optional element ``sh`` holds the ``f_rest`` coefficients as bytes, ``trunc((c/8 + 0.5)·256)``
in the PLY's channel-major order. A reader that meets 12 chunk properties (no colour range)
takes the colour bytes as absolute values.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import SplatError
from ..geometry import SH_C0
from ..store import GaussianStore
from .atomic import write_bytes_atomic
from .web_columns import (Dropped, WebColumns, export_columns, from_smallest_three, morton_order, sh_from_parts,
                          sh_rest_channel_major, smallest_three)

CHUNK = 256
_AXES = ("x", "y", "z")
_CHUNK_PROPS = ([f"min_{a}" for a in _AXES] + [f"max_{a}" for a in _AXES]
                + [f"min_scale_{a}" for a in _AXES] + [f"max_scale_{a}" for a in _AXES]
                + [f"min_{c}" for c in "rgb"] + [f"max_{c}" for c in "rgb"])
_VERTEX_PROPS = ("packed_position", "packed_rotation", "packed_scale", "packed_color")


# -- encoding -----------------------------------------------------------------------------
def _unorm(v: np.ndarray, bits: int) -> np.ndarray:
    t = (1 << bits) - 1
    return np.clip(np.floor(v * t + 0.5), 0, t).astype(np.uint32)


def _fraction(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(v - lo) / (hi - lo) per chunk, 0 where the range is (nearly) empty."""
    span = hi - lo
    return np.where(span < 1e-5, 0.0, np.clip((v - lo) / np.where(span < 1e-5, 1.0, span), 0.0, 1.0))


def _pack_111011(f: np.ndarray) -> np.ndarray:
    return (_unorm(f[..., 0], 11) << 21) | (_unorm(f[..., 1], 10) << 11) | _unorm(f[..., 2], 11)


def _pack_rotation(q: np.ndarray) -> np.ndarray:
    """[N, 4] unit (w, x, y, z) -> uint32: 2-bit largest index, three 10-bit components."""
    largest, small = smallest_three(q)
    out = largest.astype(np.uint32)
    for k in range(3):
        out = (out << 10) | _unorm(small[:, k] * (np.sqrt(2) * 0.5) + 0.5, 10)
    return out.astype(np.uint32)


def compressed_ply_bytes(cols: WebColumns) -> bytes:
    """Serialise columns to a compressed PLY (Morton order, chunks of 256)."""
    cols = cols.select(morton_order(cols.means))
    n, chunks = len(cols), -(-len(cols) // CHUNK)
    pad = chunks * CHUNK - n  # the last chunk repeats its last Gaussian, as the reference does

    def chunked(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float64)
        a = np.concatenate([a, np.repeat(a[-1:], pad, 0)]) if pad else a
        return a.reshape(chunks, CHUNK, *a.shape[1:])

    pos = chunked(cols.means)
    scl = chunked(cols.log_scales)
    rgb = chunked(cols.sh[:, 0] * SH_C0 + 0.5)
    ranges = []
    for a, clamp in ((pos, None), (scl, 20.0), (rgb, None)):
        lo, hi = a.min(1), a.max(1)
        if clamp is not None:
            lo, hi = np.clip(lo, -clamp, clamp), np.clip(hi, -clamp, clamp)
        ranges.append((lo, hi))
    table = np.concatenate([np.concatenate([lo, hi], 1) for lo, hi in ranges], 1).astype("<f4")
    frac = lambda a, r: _fraction(a, r[0][:, None], r[1][:, None]).reshape(-1, 3)[:n]  # noqa: E731
    color_bits = _unorm(frac(rgb, ranges[2]), 8)
    alpha = _unorm(cols.alpha.astype(np.float64), 8)
    packed = np.stack([
        _pack_111011(frac(pos, ranges[0])),
        _pack_rotation(cols.quats.astype(np.float64)),
        _pack_111011(frac(scl, ranges[1])),
        (color_bits[:, 0] << 24) | (color_bits[:, 1] << 16) | (color_bits[:, 2] << 8) | alpha,
    ], 1).astype("<u4")
    rest = sh_rest_channel_major(cols.sh)
    header = ["ply", "format binary_little_endian 1.0", "comment written by splat",
              f"element chunk {chunks}"] + [f"property float {p}" for p in _CHUNK_PROPS]
    header += [f"element vertex {n}"] + [f"property uint {p}" for p in _VERTEX_PROPS]
    body = [table.tobytes(), packed.tobytes()]
    if rest.shape[1]:
        header += [f"element sh {n}"] + [f"property uchar f_rest_{i}" for i in range(rest.shape[1])]
        body.append(np.clip(np.trunc((rest.astype(np.float64) / 8 + 0.5) * 256), 0, 255).astype(np.uint8).tobytes())
    return ("\n".join(header + ["end_header"]) + "\n").encode("ascii") + b"".join(body)


def save_compressed_ply(store: GaussianStore, path: str | os.PathLike, sh_degree: int | None = None) -> Dropped:
    """Write ``store`` as a compressed PLY, atomically. Returns what was left out."""
    cols, dropped = export_columns(store, sh_degree, path)
    write_bytes_atomic(path, compressed_ply_bytes(cols))
    return dropped


# -- decoding -----------------------------------------------------------------------------
def _unpack_unorm(v: np.ndarray, shift: int, bits: int) -> np.ndarray:
    return ((v >> np.uint32(shift)) & np.uint32((1 << bits) - 1)).astype(np.float64) / ((1 << bits) - 1)


def _unpack_111011(v: np.ndarray) -> np.ndarray:
    return np.stack([_unpack_unorm(v, 21, 11), _unpack_unorm(v, 11, 10), _unpack_unorm(v, 0, 11)], 1)


def _unpack_rotation(v: np.ndarray) -> np.ndarray:
    small = np.stack([(_unpack_unorm(v, s, 10) - 0.5) / (np.sqrt(2) * 0.5) for s in (20, 10, 0)], 1)
    return from_smallest_three((v >> np.uint32(30)).astype(np.int64), small)


def is_compressed(elements: dict[str, np.ndarray]) -> bool:
    """Whether a PLY's elements are the compressed layout (a ``vertex`` of packed fields)."""
    vertex = elements.get("vertex")
    return vertex is not None and "packed_position" in (vertex.dtype.names or ())


def columns_from_elements(path: Path, elements: dict[str, np.ndarray]) -> WebColumns:
    """Decode the ``chunk``, ``vertex`` and ``sh`` elements of a compressed PLY."""
    chunk, vertex = elements.get("chunk"), elements.get("vertex")
    if chunk is None or vertex is None:
        raise SplatError(f"{path}: a compressed PLY needs 'chunk' and 'vertex' elements")
    have = set(chunk.dtype.names or ())
    missing = [p for p in _CHUNK_PROPS[:12] if p not in have]
    missing += [p for p in _VERTEX_PROPS if p not in (vertex.dtype.names or ())]
    if missing:
        raise SplatError(f"{path}: compressed PLY lacks properties {', '.join(missing)}")
    n = len(vertex)
    if len(chunk) != -(-n // CHUNK):
        raise SplatError(f"{path}: {len(chunk)} chunks for {n} Gaussians; expected {-(-n // CHUNK)}")
    which = np.arange(n) // CHUNK
    get = lambda name: np.asarray(chunk[name], np.float64)[which]  # noqa: E731
    lerp = lambda prefix, t: np.stack(  # noqa: E731
        [get(f"min_{prefix}{a}") + (get(f"max_{prefix}{a}") - get(f"min_{prefix}{a}")) * t[:, i]
         for i, a in enumerate(_AXES)], 1)
    packed = {p: np.asarray(vertex[p]).astype(np.uint32) for p in _VERTEX_PROPS}
    means = lerp("", _unpack_111011(packed["packed_position"]))
    log_scales = lerp("scale_", _unpack_111011(packed["packed_scale"]))
    c = packed["packed_color"]
    rgb = np.stack([_unpack_unorm(c, s, 8) for s in (24, 16, 8)], 1)
    if all(f"min_{k}" in have and f"max_{k}" in have for k in "rgb"):
        rgb = np.stack([get(f"min_{k}") + (get(f"max_{k}") - get(f"min_{k}")) * rgb[:, i] for i, k in enumerate("rgb")], 1)
    alpha = np.clip(_unpack_unorm(c, 0, 8), 0.5 / 255, 1 - 0.5 / 255)
    rest = None
    if "sh" in elements:
        sh = elements["sh"]
        names = [f"f_rest_{i}" for i in range(len(sh.dtype.names or ()))]
        if len(sh) != n or list(sh.dtype.names or ()) != names or len(names) not in (9, 24, 45):
            raise SplatError(f"{path}: compressed PLY 'sh' element must hold 9, 24 or 45 f_rest bytes per Gaussian")
        raw = np.stack([np.asarray(sh[k]).astype(np.float64) for k in names], 1)
        # the reference reader's rule: 0 and 255 are the ends, other bytes are bucket centres
        norm = np.where(raw == 0, 0.0, np.where(raw == 255, 1.0, (raw + 0.5) / 256))
        rest = (norm - 0.5) * 8
    dc = (rgb - 0.5) / SH_C0
    cols = WebColumns(means.astype(np.float32), log_scales.astype(np.float32),
                      _unpack_rotation(packed["packed_rotation"]).astype(np.float32),
                      np.log(alpha / (1 - alpha)).astype(np.float32), sh_from_parts(dc, rest))
    if not (np.isfinite(cols.means).all() and np.isfinite(cols.log_scales).all()):
        raise SplatError(f"{path}: compressed PLY chunk ranges contain NaN or Inf")
    return cols


def read_compressed_ply(path: str | os.PathLike) -> WebColumns:
    """Read a compressed PLY into columns.

    Raises:
        SplatError: not a PLY, missing elements or properties, chunk count not matching the
            Gaussians, truncated data, non-finite ranges.
    """
    from .ply import read_elements

    path = Path(path)
    return columns_from_elements(path, read_elements(path))


def load_compressed_ply(path: str | os.PathLike) -> GaussianStore:
    """Read a compressed PLY into a float32 store."""
    return read_compressed_ply(path).to_store()
