"""Fuzz targets: every parser a user feeds, each given raw bytes in a scratch folder.

A target returns normally (the input parsed) or raises ``SplatError`` (one line for the
user); anything else is a bug. Shared by the hypothesis tests (tests/test_fuzz.py) and the
atheris runs (tools/fuzz/run_atheris.py). ``seeds(folder)`` writes one valid input per target.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch

from splat.camera import load_cameras_json, orbit_cameras, save_cameras_json
from splat.data.colmap import ColmapCamera, ColmapImage, ColmapModel, write_model
from splat.data.loaders import load_colmap, load_transforms
from splat.io.ply import load_ply, load_point_cloud, save_point_cloud, save_ply
from splat.io.compressed_ply import load_compressed_ply, save_compressed_ply
from splat.io.ksplat import load_ksplat
from splat.io.sog import load_sog, save_sog
from splat.io.splat_format import load_splat, save_splat
from splat.io.spz import load_spz, save_spz, spz_bytes
from splat.io.web_columns import export_columns
from splat.store import GaussianStore


def _store() -> GaussianStore:
    g = torch.Generator().manual_seed(0)
    n = 6
    s = GaussianStore(torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g) * 0.1 - 2,
                      torch.randn(n, 4, generator=g), torch.randn(n, generator=g), torch.randn(n, 4, 3, generator=g))
    s.extras["labels"] = torch.arange(n) % 3
    return s


def _foreign_ply() -> bytes:
    """A 3DGS PLY as other tools write it: big-endian doubles, comments, property order of
    their own, an extra per-vertex field and a trailing face element."""
    names = ["x", "y", "z", "opacity"] + [f"f_dc_{i}" for i in range(3)] + [f"scale_{i}" for i in range(3)] + \
            [f"rot_{i}" for i in range(4)] + ["confidence"]
    rng = np.random.default_rng(2)
    v = np.zeros(4, dtype=[(n, ">f8") for n in names])
    for n in names:
        v[n] = rng.normal(size=4)
    faces = np.zeros(1, dtype=[("a", ">i4"), ("b", ">i4")])
    header = ["ply", "format binary_big_endian 1.0", "comment written by another tool", "element vertex 4"]
    header += [f"property double {n}" for n in names]
    header += ["element face 1", "property int a", "property int b", "end_header"]
    return ("\n".join(header) + "\n").encode() + v.tobytes() + faces.tobytes()


def _model() -> ColmapModel:
    cams = {1: ColmapCamera("PINHOLE", 8, 6, np.array([5.0, 5.0, 4.0, 3.0])),
            2: ColmapCamera("OPENCV", 8, 6, np.array([5.0, 5.0, 4.0, 3.0, 0.01, 0.0, 0.0, 0.0]))}
    imgs = {i: ColmapImage(f"{i:04d}.png", 1 + i % 2, np.array([1.0, 0, 0, 0]), np.array([0.0, 0, 4 + i]))
            for i in range(1, 4)}
    return ColmapModel(cams, imgs, np.random.default_rng(0).normal(size=(5, 3)), np.full((5, 3), 128, np.uint8))


def _images(folder: Path, names) -> None:
    import imageio.v3 as iio

    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        iio.imwrite(folder / "images" / name, np.full((6, 8, 3), 40 * i, np.uint8))


def seeds(folder: Path) -> dict[str, bytes]:
    """One valid input per target (bytes), written through our own writers."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    save_ply(_store(), folder / "s.ply")
    out["ply"] = (folder / "s.ply").read_bytes()
    out["ply_foreign"] = _foreign_ply()
    save_point_cloud(folder / "p.ply", np.random.default_rng(1).normal(size=(5, 3)), np.full((5, 3), 0.5))
    out["ply_points"] = (folder / "p.ply").read_bytes()
    save_splat(_store(), folder / "s.splat")
    out["splat"] = (folder / "s.splat").read_bytes()
    save_spz(_store(), folder / "s.spz")
    out["spz"] = (folder / "s.spz").read_bytes()
    out["spz_gzip"] = spz_bytes(export_columns(_store())[0], 3)
    save_compressed_ply(_store(), folder / "s.compressed.ply")
    out["compressed_ply"] = (folder / "s.compressed.ply").read_bytes()
    save_sog(_store(), folder / "s.sog")
    out["sog"] = (folder / "s.sog").read_bytes()
    with zipfile.ZipFile(folder / "s.sog") as z:
        out["sog_meta"] = z.read("meta.json")
    out["ksplat"] = ksplat_bytes(_store())
    save_cameras_json(orbit_cameras((0, 0, 0), 3, 2, width=8, height=6), folder / "c.json")
    out["cameras_json"] = (folder / "c.json").read_bytes()
    cams = orbit_cameras((0, 0, 0), 3, 3, width=8, height=6)
    out["transforms_json"] = json.dumps({
        "fl_x": 5.0, "fl_y": 5.0, "cx": 4.0, "cy": 3.0, "w": 8, "h": 6, "k1": 0.01,
        "frames": [{"file_path": f"images/{i:04d}.png", "transform_matrix": c.opengl_c2w().tolist()}
                   for i, c in enumerate(cams)]}).encode()
    for binary, tag in ((True, "bin"), (False, "txt")):
        write_model(_model(), folder / tag, binary=binary)
        for name in ("cameras", "images", "points3D"):
            out[f"colmap_{tag}_{name}"] = (folder / tag / f"{name}.{tag}").read_bytes()
    return out


def _colmap(kind: str, name: str):
    def target(data: bytes, scratch: Path) -> None:
        good = seeds_cached(scratch)
        folder = scratch / f"colmap_{kind}"
        sparse = folder / "sparse" / "0"
        if not sparse.is_dir():
            sparse.mkdir(parents=True)
            _images(folder, [f"{i:04d}.png" for i in range(1, 4)])
        for other in ("cameras", "images", "points3D"):
            (sparse / f"{other}.{kind}").write_bytes(data if other == name else good[f"colmap_{kind}_{other}"])
        load_colmap(folder)
    return target


_SEEDS: dict[str, dict[str, bytes]] = {}


def seeds_cached(scratch: Path) -> dict[str, bytes]:
    key = str(scratch)
    if key not in _SEEDS:
        _SEEDS[key] = seeds(scratch / "seeds")
    return _SEEDS[key]


def _file_target(suffix: str, parse):
    def target(data: bytes, scratch: Path) -> None:
        p = scratch / f"input{suffix}"
        p.write_bytes(data)
        parse(p)
    return target


def ksplat_bytes(store: GaussianStore, mode: int = 1) -> bytes:
    """A .ksplat file of ``store`` in one section (positions in one bucket for modes 1-2), laid
    out as the GaussianSplats3D viewer writes it: the test and fuzz seed of the reader."""
    n, sh_count = len(store), 3 * (store.sh.shape[1] - 1)
    means = store.means.detach().double().numpy()
    centre = (means.max(0) + means.min(0)) / 2
    block = float(2 * np.abs(means - centre).max() + 1e-3) * 1.0001
    head = bytearray(4096)
    head[0], head[1] = 0, 1
    struct.pack_into("<I", head, 4, 1)
    struct.pack_into("<I", head, 16, n)
    struct.pack_into("<H", head, 20, mode)
    struct.pack_into("<ff", head, 36, -1.5, 1.5)
    sec = bytearray(1024)
    buckets = 1 if mode else 0
    struct.pack_into("<IIIIfHxxI", sec, 0, n, n, n if mode else 0, buckets, block, 12 if mode else 0, 32767)
    struct.pack_into("<IIH", sec, 32, buckets, 0, store.sh_degree)
    f = "<f2" if mode else "<f4"
    cols = []
    if mode:
        cols.append(np.round((means - centre) / (block / 2 / 32767) + 32767).clip(0, 65535).astype("<u2"))
    else:
        cols.append(means.astype("<f4"))
    cols.append(store.scales.detach().numpy().astype(f))
    cols.append(store.unit_quats.detach().numpy().astype(f))
    rgba = torch.cat([store.rgb.clamp(0, 1), store.opacities[:, None]], 1).detach().numpy()
    cols.append(np.round(rgba * 255).astype(np.uint8))
    rest = store.sh[:, 1:].detach().numpy()  # [N, B-1, 3] -> per band, channel-major inside
    stored = []
    for lo, width in ((0, 3), (3, 5), (8, 7)):
        if lo < rest.shape[1]:
            stored.append(rest[:, lo: lo + width].transpose(0, 2, 1).reshape(n, -1))
    if sh_count:
        vals = np.concatenate(stored, 1)
        cols.append(np.round((vals + 1.5) / 3 * 255).clip(0, 255).astype(np.uint8) if mode == 2 else vals.astype(f))
    rec = np.concatenate([c.view(np.uint8).reshape(n, -1) for c in cols], 1)
    bucket_data = centre.astype("<f4").tobytes() if mode else b""
    return bytes(head) + bytes(sec) + bucket_data + rec.tobytes()


def _sog_meta(data: bytes, scratch: Path) -> None:
    """A bundle with the given meta.json beside the seed's images."""
    good = scratch / "seeds" / "s.sog"
    seeds_cached(scratch)
    p = scratch / "meta_input.sog"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(p, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, data if info.filename == "meta.json" else src.read(info))
    load_sog(p)


def _transforms(data: bytes, scratch: Path) -> None:
    folder = scratch / "transforms"
    if not (folder / "images").is_dir():
        _images(folder, [f"{i:04d}.png" for i in range(3)])
    (folder / "transforms.json").write_bytes(data)
    load_transforms(folder / "transforms.json")


TARGETS = {
    "ply": _file_target(".ply", load_ply),
    "ply_foreign": _file_target(".ply", load_ply),
    "ply_points": _file_target(".ply", load_point_cloud),
    "splat": _file_target(".splat", load_splat),
    "spz": _file_target(".spz", load_spz),
    "spz_gzip": _file_target(".spz", load_spz),
    "compressed_ply": _file_target(".compressed.ply", load_compressed_ply),
    "sog": _file_target(".sog", load_sog),
    "sog_meta": _sog_meta,
    "ksplat": _file_target(".ksplat", load_ksplat),
    "cameras_json": _file_target(".json", load_cameras_json),
    "transforms_json": _transforms,
    **{f"colmap_{k}_{n}": _colmap(k, n) for k in ("bin", "txt") for n in ("cameras", "images", "points3D")},
}
