"""SPZ (Niantic's compressed splats), versions 2 to 4; we write version 4, as splat-transform does.

Layout, all little-endian. A 16-byte header: ``NGSP`` magic, u32 version, u32 count,
u8 SH degree, u8 fractional bits, u8 flags (1 = antialiased, 2 = extensions), u8 (v4: number
of streams). Then per-Gaussian streams, each a column for all Gaussians:

====================  ==========================================================
positions  9 B        3 × 24-bit signed fixed point, ``round(x · 2^fractional_bits)``
alphas     1 B        ``round(sigmoid(logit) · 255)``
colours    3 B        ``round((f_dc · 0.15 + 0.5) · 255)``
scales     3 B        ``round((log_scale + 10) · 16)``
rotations  4 B        smallest three (v3+): 2-bit index of the largest |component| of the
                      (x, y, z, w) quaternion, then the other three as 9-bit magnitude +
                      sign bit relative to the largest's sign; v2: 3 B ``x, y, z`` with w ≥ 0
SH         3·(B-1) B  ``128 + 128·c`` in buckets (8 wide for degree 1, 16 above), per
                      coefficient then per channel
====================  ==========================================================

Version 2-3 files are one gzip stream of header + streams. Version 4 has a 32-byte plain
header (u32 TOC offset at byte 16), optional extension records up to the TOC, a TOC of
(compressed, raw) u64 sizes per stream and each stream compressed alone with zstd.

Coordinates: SPZ stores the RUB convention (x right, y up, z back); the 3DGS PLY (and this
project) is RDF, so y and z flip on the way in and out, with the quaternion's y, z and the
SH coefficients odd in y·z following, as the reference library's converter does.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import SplatError
from ..store import GaussianStore
from .atomic import open_input, write_bytes_atomic
from .web_columns import Dropped, WebColumns, checked_count, export_columns, from_smallest_three, smallest_three

MAGIC = b"NGSP"
COLOR_SCALE = 0.15
FRACTIONAL_BITS = 12
SH1_BUCKET, SH_REST_BUCKET = 8, 16  # 5 bits for degree 1, 4 above (the reference's defaults)
FLAG_ANTIALIASED, FLAG_EXTENSIONS = 1, 2
_V4_HEADER = 32
_ZSTD_LEVEL = 12

# sign of each SH basis (degrees 1..3, in the standard order) under y -> -y, z -> -z
_SH_FLIP = np.array([-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], np.float32)
_FLIP3 = np.array([1, -1, -1], np.float32)


def _stream_sizes(n: int, degree: int, version: int) -> list[int]:
    rot = 3 if version == 2 else 4
    sizes = [9 * n, n, 3 * n, 3 * n, rot * n]
    if degree:
        sizes.append(3 * ((degree + 1) ** 2 - 1) * n)
    return sizes


# -- encoding -----------------------------------------------------------------------------
def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _pack_rotations(quats_wxyz: np.ndarray) -> np.ndarray:
    """[N, 4] unit (w, x, y, z) -> [N, 4] bytes, smallest three of (x, y, z, w)."""
    largest, small = smallest_three(quats_wxyz[:, [1, 2, 3, 0]].astype(np.float64))
    comp = largest.astype(np.uint32)
    for k in range(3):
        mag = np.floor(511 * np.abs(small[:, k]) / np.sqrt(0.5) + 0.5).clip(0, 511).astype(np.uint32)
        comp = (comp << 10) | ((small[:, k] < 0).astype(np.uint32) << 9) | mag
    return comp.astype("<u4").view(np.uint8).reshape(-1, 4)


def _quantize_sh(rest: np.ndarray) -> np.ndarray:
    """[N, B-1, 3] SH -> bytes, bucketed like the reference encoder."""
    q = np.round(rest.astype(np.float64) * 128 + 128)
    bucket = np.full(rest.shape[1], SH_REST_BUCKET, np.float64)
    bucket[:3] = SH1_BUCKET
    b = bucket[None, :, None]
    q = np.floor((q + b / 2) / b) * b
    return np.clip(q, 0, 255).astype(np.uint8)


def _raw_streams(cols: WebColumns, version: int) -> list[bytes]:
    """The uncompressed streams, in file order (rotations: 3 bytes for version 2, else 4)."""
    n = len(cols)
    fixed = np.round(cols.means.astype(np.float64) * _FLIP3 * (1 << FRACTIONAL_BITS))
    limit = 1 << 23
    if (np.abs(fixed) >= limit).any():
        raise SplatError(f"a position is beyond ±{limit >> FRACTIONAL_BITS} units, outside SPZ's 24-bit range")
    positions = fixed.astype("<i4").view(np.uint8).reshape(n, 3, 4)[:, :, :3]
    quats = cols.quats * np.array([1, 1, -1, -1], np.float32)  # (w, x, y, z) under the RUB flip
    if version == 2:  # x, y, z with w >= 0
        xyz = quats[:, 1:] * np.where(quats[:, :1] < 0, -1.0, 1.0)
        rotations = _u8(xyz * 127.5 + 127.5)
    else:
        rotations = _pack_rotations(quats)
    streams = [
        positions,
        _u8(cols.alpha * 255.0),
        _u8((cols.sh[:, 0] * COLOR_SCALE + 0.5) * 255.0),
        _u8((cols.log_scales + 10.0) * 16.0),
        rotations,
    ]
    if cols.sh_degree:
        streams.append(_quantize_sh(cols.sh[:, 1:] * _SH_FLIP[: cols.sh.shape[1] - 1, None]))
    return [np.ascontiguousarray(x).tobytes() for x in streams]


def spz_bytes(cols: WebColumns, version: int = 4) -> bytes:
    """Serialise columns to SPZ: version 4 (zstd per stream, what splat-transform writes) or
    2 and 3 (one gzip stream, what older viewers read)."""
    raw = _raw_streams(cols, version)
    n, degree = len(cols), cols.sh_degree
    if version in (2, 3):
        head = MAGIC + struct.pack("<IIBBBB", version, n, degree, FRACTIONAL_BITS, 0, 0)
        return gzip.compress(head + b"".join(raw), mtime=0)
    if version != 4:
        raise SplatError(f"SPZ version {version} cannot be written (2, 3 or 4)")
    import zstandard

    compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
    packed = [compressor.compress(r) for r in raw]
    header = MAGIC + struct.pack("<IIBBBBI12x", 4, n, degree, FRACTIONAL_BITS, 0, len(raw), _V4_HEADER)
    toc = b"".join(struct.pack("<QQ", len(p), len(r)) for p, r in zip(packed, raw))
    return header + toc + b"".join(packed)


def save_spz(store: GaussianStore, path: str | os.PathLike, sh_degree: int | None = None) -> Dropped:
    """Write ``store`` as SPZ version 4, atomically. Returns what was left out."""
    cols, dropped = export_columns(store, sh_degree, path)
    write_bytes_atomic(path, spz_bytes(cols))
    return dropped


# -- decoding -----------------------------------------------------------------------------
def _decode_streams(path: Path, n: int, degree: int, version: int, frac: int, streams: list[bytes]) -> WebColumns:
    pos = np.frombuffer(streams[0], np.uint8).reshape(n, 3, 3).astype(np.int32)
    fixed = pos[..., 0] | (pos[..., 1] << 8) | (pos[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    means = (fixed.astype(np.float64) / (1 << frac)).astype(np.float32) * _FLIP3
    alpha = np.frombuffer(streams[1], np.uint8).astype(np.float64) / 255.0
    alpha = np.clip(alpha, 0.5 / 255, 1 - 0.5 / 255)  # 0 and 255 stay just inside (0, 1)
    logits = np.log(alpha / (1 - alpha)).astype(np.float32)
    dc = ((np.frombuffer(streams[2], np.uint8).reshape(n, 3) / 255.0 - 0.5) / COLOR_SCALE).astype(np.float32)
    log_scales = (np.frombuffer(streams[3], np.uint8).reshape(n, 3) / 16.0 - 10.0).astype(np.float32)
    rot = np.frombuffer(streams[4], np.uint8)
    if version == 2:
        xyz = rot.reshape(n, 3).astype(np.float64) / 127.5 - 1.0
        w = np.sqrt(np.clip(1.0 - (xyz**2).sum(1), 0.0, None))
        xyzw = np.concatenate([xyz, w[:, None]], 1)
    else:
        comp = rot.reshape(n, 4).copy().view("<u4")[:, 0].astype(np.uint32)
        small = np.stack([np.sqrt(0.5) * ((comp >> (10 * k)) & 511) / 511 * np.where((comp >> (10 * k + 9)) & 1, -1.0, 1.0)
                          for k in (2, 1, 0)], 1)
        xyzw = from_smallest_three((comp >> 30).astype(np.int64), small)
    quats = xyzw[:, [3, 0, 1, 2]].astype(np.float32) * np.array([1, 1, -1, -1], np.float32)
    norm = np.linalg.norm(quats, axis=1, keepdims=True)
    quats = np.where(norm > 0, quats / np.where(norm > 0, norm, 1), np.array([1, 0, 0, 0], np.float32))
    sh = dc[:, None, :]
    if degree:
        b = (degree + 1) ** 2 - 1
        rest = (np.frombuffer(streams[5], np.uint8).reshape(n, b, 3).astype(np.float32) - 128.0) / 128.0
        sh = np.concatenate([sh, rest * _SH_FLIP[:b, None]], 1)
    return WebColumns(means, log_scales, quats.astype(np.float32), logits, sh.astype(np.float32))


def _parse_header(path: Path, head: bytes) -> tuple[int, int, int, int, int, int]:
    if len(head) < 16:
        raise SplatError(f"{path}: truncated SPZ file ({len(head)} bytes, header is 16)")
    if head[:4] != MAGIC:
        raise SplatError(f"{path}: not an SPZ file (no NGSP magic)")
    version, n, degree, frac, flags, streams = struct.unpack_from("<IIBBBB", head, 4)
    if version not in (2, 3, 4):
        raise SplatError(f"{path}: SPZ version {version} is not supported (2, 3 and 4 are)")
    if degree > 3:
        raise SplatError(f"{path}: SPZ SH degree {degree} is not supported (0-3)")
    if frac > 23:
        raise SplatError(f"{path}: SPZ fractional bits {frac} is out of range (0-23)")
    return version, n, degree, frac, flags, streams


def _read_gzip(path: Path, data: bytes) -> WebColumns:
    """Versions 2-3: one gzip stream; decompressed no further than the header allows."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = inflate.decompress(data, 16)
        version, n, degree, frac, _, _ = _parse_header(path, head)
        per = sum(_stream_sizes(1, degree, version))
        checked_count(path, n, (1 << 34) // per)  # the most a reader would ever hold
        need = sum(_stream_sizes(n, degree, version))
        body = inflate.decompress(inflate.unconsumed_tail, need)
    except zlib.error as e:
        raise SplatError(f"{path}: corrupt SPZ gzip stream ({e})") from None
    if len(body) < need:
        raise SplatError(f"{path}: truncated SPZ data ({len(body)} of {need} bytes for {n} Gaussians)")
    streams, at = [], 0
    for size in _stream_sizes(n, degree, version):
        streams.append(body[at: at + size])
        at += size
    return _decode_streams(path, n, degree, version, frac, streams)


def _read_v4(path: Path, data: bytes) -> WebColumns:
    import zstandard

    version, n, degree, frac, flags, count = _parse_header(path, data)
    if version != 4:
        raise SplatError(f"{path}: an uncompressed SPZ header must be version 4, not {version}")
    if len(data) < _V4_HEADER:
        raise SplatError(f"{path}: truncated SPZ header ({len(data)} of {_V4_HEADER} bytes)")
    (toc_at,) = struct.unpack_from("<I", data, 16)
    sizes = _stream_sizes(n, degree, 4)
    if count != len(sizes):
        raise SplatError(f"{path}: SPZ has {count} streams, SH degree {degree} needs {len(sizes)}")
    if toc_at < _V4_HEADER or toc_at + 16 * count > len(data):
        raise SplatError(f"{path}: SPZ table of contents at byte {toc_at} is outside the file")
    at = toc_at + 16 * count
    streams = []
    decompressor = zstandard.ZstdDecompressor()
    for i, want in enumerate(sizes):
        packed, raw = struct.unpack_from("<QQ", data, toc_at + 16 * i)
        if raw != want:
            raise SplatError(f"{path}: SPZ stream {i} holds {raw} bytes, {n} Gaussians need {want}")
        if at + packed > len(data):
            raise SplatError(f"{path}: truncated SPZ file (stream {i} ends past the end)")
        frame = data[at: at + packed]
        try:
            declared = zstandard.frame_content_size(frame)
            if declared not in (-1, want):  # a forged count never allocates what it claims
                raise SplatError(f"{path}: SPZ stream {i} holds {declared} bytes, {n} Gaussians need {want}")
            out = decompressor.decompressobj().decompress(frame)  # grows with the data, not the claim
        except zstandard.ZstdError as e:
            raise SplatError(f"{path}: corrupt SPZ stream {i} ({e})") from None
        if len(out) != want:
            raise SplatError(f"{path}: SPZ stream {i} decompressed to {len(out)} bytes, expected {want}")
        streams.append(out)
        at += packed
    return _decode_streams(path, n, degree, 4, frac, streams)


def read_spz(path: str | os.PathLike) -> WebColumns:
    """Read an SPZ file (versions 2-4, gzip or zstd) into columns.

    Raises:
        SplatError: wrong magic or version, truncated or corrupt streams, counts the file
            cannot hold.
    """
    path = Path(path)
    with open_input(path, ".spz") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        return _read_gzip(path, data)
    return _read_v4(path, data)


def load_spz(path: str | os.PathLike) -> GaussianStore:
    """Read an SPZ file into a float32 store."""
    return read_spz(path).to_store()
