"""SOG (PlayCanvas's texture-packed splats), version 2: lossless WebP images plus ``meta.json``.

A ``.sog`` file is a ZIP (entries stored) of ``meta.json`` and these images, one texel per
Gaussian in Morton order, ``width = 4·ceil(√N / 4)``, ``height = 4·ceil(N / width / 4)``:

* ``means_l.webp``, ``means_u.webp``: low and high bytes of 16-bit positions, each axis a
  fraction of [mins, maxs] of ``sign(x)·ln(|x| + 1)`` (fine near the centre, coarse far out);
* ``quats.webp``: the three smaller components of the (w, x, y, z) quaternion (largest made
  positive), ``(q·√2 · 0.5 + 0.5)·255``, and ``252 + index of the largest`` in alpha;
* ``scales.webp``: per axis, an index into ``scales.codebook`` (256 log-scales);
* ``sh0.webp``: per channel an index into ``sh0.codebook`` (256 DC coefficients), alpha the
  opacity ``sigmoid(logit)·255``;
* ``shN_labels.webp`` (16-bit palette index in R, G) and ``shN_centroids.webp`` (64 palette
  entries per row, one texel per coefficient, each channel an index into ``shN.codebook``),
  for SH degrees 1-3. The palette holds ``min(64, 2^floor(log2(N/1024)))·1024`` entries.

A ``meta.json`` path reads the same layout from loose files beside it.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import SplatError
from ..store import GaussianStore
from .atomic import atomic_write, open_input
from .codebook import kmeans, quantize_1d
from .web_columns import Dropped, WebColumns, export_columns, from_smallest_three, morton_order, smallest_three

_MAX_META = 64 << 20  # a meta.json holds three codebooks: a few tens of KB


# -- encoding -----------------------------------------------------------------------------
WEBP_METHOD = 4  # libwebp's effort: 5 and 6 took 6-25x longer and gave no smaller files here


def _webp(rgba: np.ndarray) -> bytes:
    """[H, W, 4] uint8 -> lossless WebP bytes (exact: colours under low alpha are kept)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(buf, "WEBP", lossless=True, quality=100,
                                                             method=WEBP_METHOD, exact=True)
    return buf.getvalue()


def _log_transform(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def palette_size(n: int) -> int:
    """The SH palette size the reference picks for ``n`` Gaussians."""
    return int(min(64, 2 ** math.floor(math.log2(n / 1024))) * 1024) if n else 0


def _texture(n: int) -> tuple[int, int]:
    width = int(math.ceil(math.sqrt(n) / 4)) * 4
    return width, int(math.ceil(n / width / 4)) * 4


def _image(texels: np.ndarray, width: int, height: int) -> np.ndarray:
    """[N, 4] uint8 texels -> [height, width, 4], padded with zeros (alpha 255)."""
    out = np.zeros((width * height, 4), np.uint8)
    out[:, 3] = 255
    out[: len(texels)] = texels
    return out.reshape(height, width, 4)


def sog_files(cols: WebColumns, iterations: int = 10) -> dict[str, bytes]:
    """The files of a SOG bundle for ``cols``: name -> bytes (``meta.json`` included)."""
    cols = cols.select(morton_order(cols.means))
    n = len(cols)
    w, h = _texture(n)
    files: dict[str, bytes] = {}
    full = lambda t: np.full((n, 1), t, np.uint8)  # noqa: E731

    lt = _log_transform(cols.means.astype(np.float64))
    mins, maxs = lt.min(0), lt.max(0)
    q = np.round(65535 * (lt - mins) / np.where(maxs > mins, maxs - mins, 1.0)).clip(0, 65535).astype(np.uint16)
    files["means_l.webp"] = _webp(_image(np.concatenate([(q & 0xFF).astype(np.uint8), full(255)], 1), w, h))
    files["means_u.webp"] = _webp(_image(np.concatenate([(q >> 8).astype(np.uint8), full(255)], 1), w, h))

    largest, small = smallest_three(cols.quats.astype(np.float64))
    small = small * math.sqrt(2)
    qbytes = np.round(255 * (small * 0.5 + 0.5)).clip(0, 255).astype(np.uint8)
    files["quats.webp"] = _webp(_image(np.concatenate([qbytes, (252 + largest).astype(np.uint8)[:, None]], 1), w, h))

    scale_book, scale_idx = quantize_1d(cols.log_scales)
    files["scales.webp"] = _webp(_image(np.concatenate([scale_idx, full(255)], 1), w, h))

    dc_book, dc_idx = quantize_1d(cols.sh[:, 0])
    alpha = np.round(cols.alpha.astype(np.float64) * 255).clip(0, 255).astype(np.uint8)[:, None]
    files["sh0.webp"] = _webp(_image(np.concatenate([dc_idx, alpha], 1), w, h))

    meta = {
        "version": 2, "asset": {"generator": "splat"}, "count": n,
        "means": {"mins": mins.tolist(), "maxs": maxs.tolist(), "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": scale_book.tolist(), "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": dc_book.tolist(), "files": ["sh0.webp"]},
    }
    degree = cols.sh_degree
    if degree:
        coeffs = (degree + 1) ** 2 - 1
        rest = cols.sh[:, 1:]  # [N, coeffs, 3]
        # k-means in the PLY's channel-major order, as the reference clusters
        points = rest.transpose(0, 2, 1).reshape(n, -1)
        count = max(1, min(palette_size(n), n))
        centroids, labels = kmeans(points, count, iterations)
        count = len(centroids)
        sh_book, sh_idx = quantize_1d(centroids.reshape(count, 3, coeffs).transpose(0, 2, 1))
        rows = -(-count // 64)
        cimg = np.zeros((rows * 64, coeffs, 4), np.uint8)
        cimg[..., 3] = 255
        cimg[:count, :, :3] = sh_idx
        files["shN_centroids.webp"] = _webp(cimg.reshape(rows, 64 * coeffs, 4))
        lab = np.stack([labels & 0xFF, labels >> 8, np.zeros(n, np.int64), np.full(n, 255)], 1).astype(np.uint8)
        files["shN_labels.webp"] = _webp(_image(lab, w, h))
        meta["shN"] = {"count": count, "bands": degree, "codebook": sh_book.tolist(),
                       "files": ["shN_centroids.webp", "shN_labels.webp"]}
    files["meta.json"] = json.dumps(meta).encode()
    return files


def save_sog(store: GaussianStore, path: str | os.PathLike, sh_degree: int | None = None, iterations: int = 10) -> Dropped:
    """Write ``store`` as a ``.sog`` bundle, atomically. Returns what was left out."""
    cols, dropped = export_columns(store, sh_degree, path)
    files = sog_files(cols, iterations)
    with atomic_write(path) as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
            for name, data in files.items():
                z.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
    return dropped


# -- decoding -----------------------------------------------------------------------------
class _Source:
    """The bundle's files, from a ZIP or from the folder of a ``meta.json``."""

    def __init__(self, path: Path):
        self.path = path
        self.zip = None
        if path.name.lower() == "meta.json":
            open_input(path, "meta.json").close()  # a missing or unreadable file: one line
            self.folder = path.parent
            return
        with open_input(path, ".sog") as f:
            data = f.read()
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, OSError, EOFError) as e:
            raise SplatError(f"{path}: not a SOG bundle (bad zip: {e})") from None

    def read(self, name: str, limit: int = 1 << 31) -> bytes:
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise SplatError(f"{self.path}: meta.json names a bad file {name!r}")
        if self.zip is None:
            file = self.folder / name
            if not file.is_file():
                raise SplatError(f"{self.path}: missing {name} beside meta.json")
            if file.stat().st_size > limit:
                raise SplatError(f"{self.path}: {name} is larger than {limit} bytes")
            return file.read_bytes()
        try:
            info = self.zip.getinfo(name)
        except KeyError:
            raise SplatError(f"{self.path}: the bundle has no {name}") from None
        if info.file_size > limit:
            raise SplatError(f"{self.path}: {name} is larger than {limit} bytes")
        try:
            return self.zip.read(info)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError, ValueError,
                RuntimeError, zlib.error) as e:  # RuntimeError: an encrypted entry
            raise SplatError(f"{self.path}: cannot read {name} from the bundle ({e})") from None


def _decode_webp(src: _Source, name: str, min_texels: int, width: int | None = None) -> np.ndarray:
    """The image ``name`` as [H*W, 4] uint8, checked to hold ``min_texels`` texels."""
    from PIL import Image

    raw = src.read(name)
    try:
        img = Image.open(io.BytesIO(raw))
        if img.format != "WEBP":
            raise SplatError(f"{src.path}: {name} is not a WebP image")
        if img.width * img.height > 1 << 28:
            raise SplatError(f"{src.path}: {name} is {img.width}x{img.height}, too large")
        rgba = np.asarray(img.convert("RGBA"))
    except SplatError:
        raise
    except Exception as e:  # Pillow raises many kinds for a damaged image
        raise SplatError(f"{src.path}: {name} is not a readable WebP image ({e})") from None
    if width is not None and rgba.shape[1] != width:
        raise SplatError(f"{src.path}: {name} is {rgba.shape[1]} texels wide, expected {width}")
    if rgba.shape[0] * rgba.shape[1] < min_texels:
        raise SplatError(f"{src.path}: {name} is {rgba.shape[1]}x{rgba.shape[0]}, too small for {min_texels} entries")
    return rgba.reshape(-1, 4)


def _meta_field(path: Path, meta: dict, *keys, kind=None, length=None):
    v = meta
    for k in keys:
        if not isinstance(v, dict) or k not in v:
            raise SplatError(f"{path}: meta.json lacks {'.'.join(keys)}")
        v = v[k]
    if kind is not None:
        ok = isinstance(v, kind) and not isinstance(v, bool)
        if ok and isinstance(v, list):
            ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v) and \
                (length is None or len(v) == length)
        if not ok:
            want = f"a list of {length} numbers" if kind is list else kind.__name__
            raise SplatError(f"{path}: meta.json {'.'.join(keys)} must be {want}")
    return v


def read_sog(path: str | os.PathLike) -> WebColumns:
    """Read a ``.sog`` bundle (or a ``meta.json`` with its images) into columns.

    Raises:
        SplatError: bad zip, missing or unreadable images, images too small for the count,
            a meta.json that is not version 2 or lacks fields.
    """
    path = Path(path)
    src = _Source(path)
    try:
        meta = json.loads(src.read("meta.json", _MAX_META))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SplatError(f"{path}: meta.json is not JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("version") != 2:
        got = meta.get("version") if isinstance(meta, dict) else None
        raise SplatError(f"{path}: SOG meta version {got!r} is not supported (2 is)")
    n = _meta_field(path, meta, "count", kind=int)
    if not 0 <= n <= 1 << 28:
        raise SplatError(f"{path}: meta.json count {n} is out of range")
    for key, k in (("means", 2), ("scales", 1), ("quats", 1), ("sh0", 1)):
        names = _meta_field(path, meta, key, "files")
        if not isinstance(names, list) or len(names) < k:
            raise SplatError(f"{path}: meta.json {key}.files must name {k} image(s)")

    mins = np.array(_meta_field(path, meta, "means", "mins", kind=list, length=3), np.float64)
    maxs = np.array(_meta_field(path, meta, "means", "maxs", kind=list, length=3), np.float64)
    lo = _decode_webp(src, meta["means"]["files"][0], n)[:n, :3].astype(np.float64)
    hi = _decode_webp(src, meta["means"]["files"][1], n)[:n, :3].astype(np.float64)
    span = np.where(maxs - mins != 0, maxs - mins, 1.0)
    v = mins + span * ((lo + hi * 256) / 65535)
    with np.errstate(over="ignore"):  # absurd ranges become Inf, refused below
        means = np.sign(v) * np.expm1(np.abs(v))

    qt = _decode_webp(src, meta["quats"]["files"][0], n)[:n]
    tag = qt[:, 3].astype(np.int64) - 252
    small = (qt[:, :3].astype(np.float64) / 255 * 2 - 1) / math.sqrt(2)
    bad = (tag < 0) | (tag > 3)
    quats = from_smallest_three(np.where(bad, 0, tag), small)
    quats[bad] = [1, 0, 0, 0]  # an invalid tag reads as no rotation, as the reference does

    scale_book = np.array(_meta_field(path, meta, "scales", "codebook", kind=list, length=256), np.float32)
    log_scales = scale_book[_decode_webp(src, meta["scales"]["files"][0], n)[:n, :3]]
    dc_book = np.array(_meta_field(path, meta, "sh0", "codebook", kind=list, length=256), np.float32)
    c0 = _decode_webp(src, meta["sh0"]["files"][0], n)[:n]
    dc = dc_book[c0[:, :3]]
    alpha = np.clip(c0[:, 3].astype(np.float64) / 255, 1e-6, 1 - 1e-6)
    sh = dc[:, None, :]
    if "shN" in meta:
        bands = _meta_field(path, meta, "shN", "bands", kind=int)
        count = _meta_field(path, meta, "shN", "count", kind=int)
        if bands not in (1, 2, 3) or not 0 < count <= 1 << 16:
            raise SplatError(f"{path}: meta.json shN bands {bands} / count {count} out of range")
        coeffs = (bands + 1) ** 2 - 1
        sh_book = np.array(_meta_field(path, meta, "shN", "codebook", kind=list, length=256), np.float32)
        shn_files = _meta_field(path, meta, "shN", "files")
        if not isinstance(shn_files, list) or len(shn_files) < 2:
            raise SplatError(f"{path}: meta.json shN.files must name 2 images")
        cen = _decode_webp(src, shn_files[0], 64 * coeffs * -(-count // 64), width=64 * coeffs)
        labels_img = _decode_webp(src, shn_files[1], n)[:n]
        labels = labels_img[:, 0].astype(np.int64) | (labels_img[:, 1].astype(np.int64) << 8)
        if n and labels.max() >= count:
            raise SplatError(f"{path}: an SH label ({int(labels.max())}) is beyond the palette ({count} entries)")
        palette = sh_book[cen.reshape(-1, coeffs, 4)[:count, :, :3]]  # [count, coeffs, 3]
        sh = np.concatenate([sh, palette[labels]], 1)
    cols = WebColumns(means.astype(np.float32), log_scales.astype(np.float32), quats.astype(np.float32),
                      np.log(alpha / (1 - alpha)).astype(np.float32), sh.astype(np.float32))
    if not (np.isfinite(cols.means).all() and np.isfinite(cols.log_scales).all() and np.isfinite(cols.sh).all()):
        raise SplatError(f"{path}: SOG ranges or codebooks give NaN or Inf")
    return cols


def load_sog(path: str | os.PathLike) -> GaussianStore:
    """Read a SOG bundle into a float32 store."""
    return read_sog(path).to_store()
