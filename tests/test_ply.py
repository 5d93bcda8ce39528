import os

import numpy as np
import pytest
import torch

import splat
from splat import GaussianStore, SplatError, load_ply, save_ply
from conftest import random_store


def assert_same_store(a: GaussianStore, b: GaussianStore):
    fa, fb = a.fields(), b.fields()
    assert fa.keys() == fb.keys()
    for name in fa:
        assert fa[name].dtype == fb[name].dtype, name
        assert torch.equal(fa[name], fb[name]), name


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_roundtrip_bit_exact(tmp_ply, degree):
    s = random_store(50, degree, seed=degree)
    s.extras["labels"] = torch.randint(-1, 5, (50,))
    s.extras["feature"] = torch.randn(50, 4)
    s.extras["weight"] = torch.rand(50, dtype=torch.float64)
    save_ply(s, tmp_ply)
    back = load_ply(tmp_ply)
    assert back.sh_degree == degree
    assert_same_store(s, back)


def test_roundtrip_float64_and_empty(tmp_path):
    s = random_store(7, 1, dtype=torch.float64)
    save_ply(s, tmp_path / "a.ply")
    assert_same_store(s, load_ply(tmp_path / "a.ply"))
    e = GaussianStore.empty(sh_degree=3)
    save_ply(e, tmp_path / "e.ply")
    back = load_ply(tmp_path / "e.ply")
    assert len(back) == 0 and back.sh_degree == 3


def test_layout_is_standard_3dgs(tmp_ply):
    save_ply(random_store(3, 3), tmp_ply)
    header = tmp_ply.read_bytes().split(b"end_header\n")[0].decode().splitlines()
    props = [line.split()[-1] for line in header if line.startswith("property")]
    expect = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)]
    expect += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert props == expect
    assert header[1] == "format binary_little_endian 1.0"


def test_f_rest_is_channel_major(tmp_ply):
    s = random_store(2, 1)
    save_ply(s, tmp_ply)
    raw = tmp_ply.read_bytes()
    data = np.frombuffer(raw[raw.index(b"end_header\n") + 11:], dtype="<f4").reshape(2, -1)
    rest = data[:, 9:18]  # after x y z nx ny nz f_dc_0..2
    # f_rest_0..2 are the red channel's three band-1 coefficients
    assert np.array_equal(rest[:, 0:3], s.sh[:, 1:, 0].numpy())
    assert np.array_equal(rest[:, 3:6], s.sh[:, 1:, 1].numpy())


def test_reads_gsplat_exporter_file(tmp_ply):
    from gsplat.exporter import export_splats

    s = random_store(20, 3, seed=5)
    export_splats(s.means, s.log_scales, s.quats, s.opacity_logits, s.sh[:, :1], s.sh[:, 1:], format="ply", save_to=str(tmp_ply))
    back = load_ply(tmp_ply)
    assert back.sh_degree == 3 and back.extras == {}
    for name in ("means", "log_scales", "quats", "opacity_logits", "sh"):
        assert torch.equal(getattr(back, name), getattr(s, name)), name


def test_reads_inria_layout_with_normals_and_comments(tmp_ply):
    n = 4
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(9)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    vals = np.arange(n * len(names), dtype="<f4").reshape(n, len(names))
    header = "ply\nformat binary_little_endian 1.0\ncomment made by hand\nelement vertex 4\n"
    header += "".join(f"property float {p}\n" for p in names) + "end_header\n"
    tmp_ply.write_bytes(header.encode() + vals.tobytes())
    s = load_ply(tmp_ply)
    assert s.sh_degree == 1
    assert s.means[1].tolist() == vals[1, :3].tolist()
    assert s.sh[0, 1, 0] == vals[0, 9] and s.sh[0, 1, 1] == vals[0, 12]


def test_reads_big_endian(tmp_ply):
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    vals = np.random.default_rng(0).normal(size=(3, len(names))).astype(">f4")
    header = "ply\nformat binary_big_endian 1.0\nelement vertex 3\n" + "".join(f"property float {p}\n" for p in names) + "end_header\n"
    tmp_ply.write_bytes(header.encode() + vals.tobytes())
    s = load_ply(tmp_ply)
    assert np.array_equal(s.means.numpy(), vals[:, :3].astype("<f4"))


def _valid_bytes(tmp_path) -> bytes:
    p = tmp_path / "valid.ply"
    save_ply(random_store(10, 1), p)
    return p.read_bytes()


def _replace_header(data: bytes, old: str, new: str) -> bytes:
    head, body = data.split(b"end_header\n", 1)
    assert old.encode() in head
    return head.replace(old.encode(), new.encode(), 1) + b"end_header\n" + body


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda d: d[: len(d) - 7], "truncated: header promises"),
        (lambda d: d[:40], "truncated PLY header"),
        (lambda d: b"PLZ" + d[3:], "not a PLY file"),
        (lambda d: b"", "not a PLY file"),
        (lambda d: _replace_header(d, "binary_little_endian", "ascii"), "ASCII PLY is not supported"),
        (lambda d: _replace_header(d, "binary_little_endian", "binary_middle_endian"), "unknown PLY format"),
        (lambda d: _replace_header(d, "property float rot_3\n", ""), "missing property 'rot_3'"),
        (lambda d: _replace_header(d, "property float f_rest_8\n", ""), "8 f_rest properties"),
        (lambda d: _replace_header(d, "element vertex 10", "element vertex 99999999999"), "truncated"),
        (lambda d: _replace_header(d, "element vertex 10", "element vertex ten"), "malformed element line"),
        (lambda d: _replace_header(d, "property float x", "property float32x x"), "malformed property line"),
        (lambda d: _replace_header(d, "property float x", "property list uchar int x"), "list property"),
        (lambda d: _replace_header(d, "element vertex", "element face"), "no 'vertex' element"),
        (lambda d: _replace_header(d, "format binary_little_endian 1.0\n", ""), "no format line"),
        (lambda d: _replace_header(d, "property float y", "property float x"), "duplicate property"),
        (lambda d: _replace_header(d, "property float y", "frobnicate"), "unknown PLY header keyword"),
    ],
)
def test_malformed_files_give_one_line_error_naming_file(tmp_path, corrupt, message):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(corrupt(_valid_bytes(tmp_path)))
    with pytest.raises(SplatError, match=message) as e:
        load_ply(bad)
    text = str(e.value)
    assert "\n" not in text and str(bad) in text


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(SplatError, match="no such file"):
        load_ply(tmp_path / "nope.ply")
    with pytest.raises(SplatError, match="is a folder"):
        load_ply(tmp_path)


def test_write_is_atomic_when_serialisation_fails(tmp_ply, monkeypatch):
    good = random_store(5)
    save_ply(good, tmp_ply)
    before = tmp_ply.read_bytes()

    import splat.io.atomic as atomic_module

    class Boom(RuntimeError):
        pass

    def fsync_fails(fd):  # the data is half on its way to disk when this fails
        raise Boom()

    monkeypatch.setattr(atomic_module.os, "fsync", fsync_fails)
    with pytest.raises(Boom):
        save_ply(random_store(9, seed=3), tmp_ply)
    assert tmp_ply.read_bytes() == before
    assert os.listdir(tmp_ply.parent) == [tmp_ply.name]


def test_invalid_store_is_not_written(tmp_ply):
    s = random_store(5)
    s.means[0, 0] = float("nan")
    with pytest.raises(SplatError, match="field means"):
        save_ply(s, tmp_ply)
    assert not tmp_ply.exists()


def test_missing_output_folder(tmp_path):
    with pytest.raises(SplatError, match="does not exist"):
        save_ply(random_store(2), tmp_path / "no" / "x.ply")


def test_extra_name_that_cannot_be_stored(tmp_ply):
    s = random_store(2)
    s.extras["bad name"] = torch.zeros(2)
    with pytest.raises(SplatError, match="cannot be stored"):
        save_ply(s, tmp_ply)


def test_big_endian_doubles_keep_double_precision(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "fuzz"))
    from targets import _foreign_ply

    p = tmp_path / "foreign.ply"
    p.write_bytes(_foreign_ply())
    s = load_ply(p)
    assert s.dtype == torch.float64 and len(s) == 4 and "confidence" in s.extras
