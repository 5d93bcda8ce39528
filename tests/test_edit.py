"""Editing: transforms render like moved cameras, selections compose, files stay intact."""

import math
import os

import pytest
import torch

import splat
from splat import edit
from splat.camera import Camera
from splat.io.ply import load_ply, save_ply
from splat.io.splat_format import load_splat, save_splat
from splat.render import rasterize
from splat.render.sh import eval_sh
from conftest import run_cli as run, front_camera, random_store

XFS = {
    "rotation": edit.Similarity(rotation=(0.8, 0.3, -0.4, 0.34)),
    "scale": edit.Similarity(scale=1.7),
    "translation": edit.Similarity(translation=(0.4, -0.3, 0.25)),
    "all": edit.Similarity((0.2, 0.1, -0.3), edit.euler_to_quat((30, -50, 120)), 0.6, (0.1, 0.2, 0.3)),
}


def _band_only(store, band):
    """A copy whose SH keeps band ``band`` only (plus a grey DC, so colours stay positive)."""
    s = store.clone()
    keep = torch.zeros(s.sh.shape[1], dtype=torch.bool)
    keep[band * band:(band + 1) ** 2] = True
    s.sh = torch.where(keep[None, :, None], s.sh, torch.zeros_like(s.sh))
    if band:
        s.sh[:, 0] = 1.0
    return s


@pytest.mark.parametrize("kind", list(XFS))
@pytest.mark.parametrize("band", [0, 1, 2, 3])
def test_moved_scene_renders_like_moved_camera(kind, band):
    xf = XFS[kind]
    store = _band_only(random_store(300, 3, dtype=torch.float64, seed=band, scale=(0.05, 0.25)), band)
    cam = front_camera(48, 40)
    moved_cam = Camera(cam.K, edit.transform_camera_viewmat(cam.viewmat, xf), cam.width, cam.height)
    a = rasterize(edit.transform(store, xf), cam, backend="torch", background=(0.1, 0.2, 0.3))
    b = rasterize(store, moved_cam, backend="torch", background=(0.1, 0.2, 0.3))
    assert a.alpha.max() > 0.5  # the scene is in view
    assert torch.allclose(a.color, b.color, atol=1e-4, rtol=0)
    assert torch.allclose(a.alpha, b.alpha, atol=1e-4, rtol=0)
    assert torch.allclose(a.depth, b.depth * xf.scale, atol=1e-4 * xf.scale, rtol=1e-6)


def test_sh_rotation_matches_direction_rotation_exactly():
    g = torch.Generator().manual_seed(3)
    sh = torch.randn(20, 16, 3, generator=g, dtype=torch.float64)
    R = edit.Similarity(rotation=(0.3, -0.5, 0.7, 0.2)).rotation_matrix
    d = torch.nn.functional.normalize(torch.randn(20, 3, generator=g, dtype=torch.float64), dim=-1)
    from splat.edit.sh_rotation import rotate_sh

    assert torch.allclose(eval_sh(3, rotate_sh(sh, R), d @ R.T), eval_sh(3, sh, d), atol=1e-12)
    # band 1 in the (-y, z, -x) order is P R P^T
    P = torch.tensor([[0, -1.0, 0], [0, 0, 1], [-1, 0, 0]], dtype=torch.float64)
    assert torch.allclose(rotate_sh(sh, R)[:, 1:4], torch.einsum("ij,njc->nic", P @ R @ P.T, sh[:, 1:4]), atol=1e-12)


def test_transform_of_a_selection_moves_only_it_and_keeps_labels():
    s = random_store(200, 2, seed=4)
    s.extras["labels"] = torch.arange(200) % 3
    sel = edit.Label(1)
    out = edit.transform(s, XFS["all"], sel)
    moved = s.labels == 1
    assert torch.equal(out.means[~moved], s.means[~moved]) and not torch.allclose(out.means[moved], s.means[moved])
    assert torch.equal(out.labels, s.labels) and torch.equal(out.sh[~moved], s.sh[~moved])


def test_selections_compose():
    s = random_store(500, 0, seed=5)
    x = s.means.double()
    box = edit.Box((0, 0, 0), (1, 1, 1))
    sph = edit.Sphere((0.5, 0, 0), 0.6)
    in_box = (x.abs() <= 0.5).all(1)
    in_sph = (x - torch.tensor([0.5, 0, 0], dtype=torch.float64)).norm(dim=1) <= 0.6
    assert torch.equal(box.mask(s), in_box) and torch.equal(sph.mask(s), in_sph)
    assert torch.equal((box | sph).mask(s), in_box | in_sph)
    assert torch.equal((box & sph).mask(s), in_box & in_sph)
    assert torch.equal((box - sph).mask(s), in_box & ~in_sph)
    assert torch.equal((~box).mask(s), ~in_box)
    assert torch.equal(edit.combine([box, sph], "difference").mask(s), in_box & ~in_sph)
    # a box turned 45 degrees about z: its corner direction becomes the x axis
    turned = edit.Box((0, 0, 0), (1, 1, 2), edit.euler_to_quat((0, 0, 45)))
    probe = random_store(4, 0)
    probe.means = torch.tensor([[0.7, 0, 0], [0.45, 0.45, 0], [0, 0.69, 0.9], [0, 0, 1.1]])
    assert turned.mask(probe).tolist() == [True, False, True, False]
    assert torch.equal(edit.OpacityBelow(0.3).mask(s), s.opacities < 0.3)
    assert torch.equal(edit.ScaleAbove(0.1).mask(s), s.scales.amax(1) > 0.1)
    near = edit.ColorNear(s.rgb[0].clamp(0, 1).tolist(), 0.05).mask(s)
    assert near[0] and near.sum() < len(s)


def test_frustum_selects_what_the_camera_sees():
    s = random_store(400, 0, seed=6, spread=3.0)
    cam = front_camera(64, 48)
    m = edit.Frustum(cam).mask(s)
    r = rasterize(s.select(m), cam, backend="torch")
    assert 0 < m.sum() < len(s)
    # Gaussians outside the frustum add little: their centres are off-image
    full = rasterize(s, cam, backend="torch")
    assert (full.alpha - r.alpha).abs().mean() < 0.1


def test_crop_and_complement_merge_back_to_the_original():
    s = random_store(300, 1, seed=7)
    s.extras["labels"] = torch.arange(300) % 4
    sel = edit.Sphere((0, 0, 0), 0.7) | edit.Label(2)
    a, b = edit.crop(s, sel), edit.delete(s, sel)
    assert 0 < len(a) < len(s) and len(a) + len(b) == len(s)
    merged = edit.merge([a, b])

    def rows(st):
        t = torch.cat([f.reshape(len(st), -1).double() for f in st.fields().values()], 1)
        return t[torch.argsort(t[:, 0])]

    assert torch.equal(rows(merged), rows(s))


def test_color_grade_is_affine_on_the_view_dependent_colour():
    s = random_store(50, 3, seed=8)
    grade = edit.ColorGrade(brightness=0.1, contrast=1.3, saturation=0.5, temperature=0.4, tint=-0.3)
    A, b = grade.affine()
    out = edit.color(s, grade)
    d = torch.nn.functional.normalize(torch.randn(50, 3), dim=-1)
    before = eval_sh(3, s.sh.double(), d.double()) + 0.5
    after = eval_sh(3, out.sh.double(), d.double()) + 0.5
    assert torch.allclose(after, before @ A.T + b, atol=1e-5)
    grey = edit.color(s, edit.ColorGrade(saturation=0.0)).rgb
    assert torch.allclose(grey, grey.mean(1, keepdim=True).expand_as(grey), atol=1e-5)


def test_clean_drops_each_kind_once():
    s = random_store(300, 0, seed=9, scale=(0.01, 0.05))
    s.means[0, 0] = float("nan")
    s.opacity_logits[1] = -12.0  # opacity 6e-6
    s.log_scales[2] = math.log(100.0)
    s.means[3] = torch.tensor([50.0, 50.0, 50.0])  # far from everything
    masks = edit.clean_masks(s)
    assert [int(m.sum()) for m in masks.values()] == [1, 1, 1, 1]
    assert masks["non_finite"][0] and masks["transparent"][1] and masks["huge"][2] and masks["outlier"][3]
    assert len(edit.clean(s)) == 296


def test_duplicate_merge_and_sh_truncation():
    s = random_store(100, 3, seed=10)
    dup = edit.duplicate(s, edit.Sphere((0, 0, 0), 0.5), edit.Similarity(translation=(2, 0, 0)))
    n = int(edit.Sphere((0, 0, 0), 0.5).mask(s).sum())
    assert len(dup) == 100 + n and torch.allclose(dup.means[100:, 0].min(), dup.means[100:, 0].min())
    assert (dup.means[100:, 0] > 1.0).all()
    low = edit.truncate_sh(s, 1)
    assert low.sh_degree == 1 and torch.equal(low.sh, s.sh[:, :4])
    m = edit.merge([low, s], [None, edit.Similarity(scale=2.0)])
    assert m.sh_degree == 3 and len(m) == 200 and torch.equal(m.sh[:100, 4:], torch.zeros(100, 12, 3))
    with pytest.raises(splat.SplatError):
        edit.truncate_sh(low, 2)


def test_splat_file_round_trip_within_its_quantisation(tmp_path):
    s = random_store(500, 0, seed=11)
    s.sh[:, 0] = splat.store.rgb_to_sh_dc(torch.rand(500, 3))
    p = tmp_path / "s.splat"
    save_splat(s, p)
    assert p.stat().st_size == 32 * 500
    r = load_splat(p)
    order = torch.argsort(-(s.scales.prod(-1) * s.opacities), stable=True)
    s = s.select(order)
    assert torch.equal(r.means, s.means) and torch.allclose(r.scales, s.scales, rtol=1e-6)
    assert (r.rgb - s.rgb).abs().max() <= 0.5 / 255 + 1e-6
    assert (r.opacities - s.opacities.clamp(0.5 / 255, 1 - 0.5 / 255)).abs().max() <= 0.5 / 255 + 1e-6
    dot = (r.unit_quats * s.unit_quats).sum(1).abs()
    assert (dot > 1 - 2e-4).all()  # 8-bit components: within ~2 degrees
    (tmp_path / "bad.splat").write_bytes(b"x" * 33)
    with pytest.raises(splat.SplatError, match="32-byte"):
        load_splat(tmp_path / "bad.splat")



@pytest.fixture
def scene(tmp_path):
    s = random_store(400, 3, seed=12)
    s.extras["labels"] = (s.means[:, 0] > 0).long()
    p = tmp_path / "in.ply"
    save_ply(s, p)
    splat.save_cameras_json([front_camera(64, 48)], tmp_path / "cams.json")
    return p


def examples(d):
    """Every edit command with one example line (the closing documentation quotes them)."""
    return [
        f"edit crop {d}/in.ply --box 0,0,0,1,1,1 --out {d}/crop.ply",
        f"edit crop {d}/in.ply --sphere 0,0,0,0.8 --label 1 --combine intersection --out {d}/crop2.ply",
        f"edit delete {d}/in.ply --frustum {d}/cams.json:0 --invert --out {d}/del.ply",
        f"edit delete {d}/in.ply --opacity-below 0.2 --scale-above 0.15 --out {d}/del2.ply",
        f"edit transform {d}/in.ply --rotate 0,0,90 --translate 1,0,0 --scale 2 --pivot center --out {d}/xf.ply",
        f"edit transform {d}/in.ply --quat 0.7071,0,0.7071,0 --box 0,0,0,1,1,1 --out {d}/xf2.ply",
        f"edit color {d}/in.ply --brightness 0.1 --saturation 1.5 --temperature 0.3 --label 0 --out {d}/col.ply",
        f"edit color {d}/in.ply --color #808080 --tol 0.3 --contrast 1.2 --tint -0.2 --out {d}/col2.ply",
        f"edit clean {d}/in.ply --min-opacity 0.01 --out {d}/clean.ply",
        f"edit merge {d}/in.ply {d}/crop.ply@t=3,0,0;r=0,0,45 --out {d}/merged.ply",
        f"edit duplicate {d}/in.ply --sphere 0,0,0,0.5 --translate 0,2,0 --out {d}/dup.ply",
        f"edit sh-degree {d}/in.ply 1 --out {d}/sh1.ply",
        f"edit export {d}/in.ply {d}/in.splat",
        f"edit export {d}/in.splat {d}/from_splat.ply",
        f"edit crop {d}/in.ply --color 1,0,0 --tol 0.5 --dry-run",
    ]


def test_every_edit_command_runs(capsys, scene, tmp_path):
    before = scene.read_bytes()
    for line in examples(tmp_path):
        code, out, err = run(capsys, *line.split(" "))
        assert code == 0, (line, err)
        assert "Gaussians" in out
    assert scene.read_bytes() == before  # never modified without --in-place
    assert len(load_ply(tmp_path / "merged.ply")) == 400 + len(load_ply(tmp_path / "crop.ply"))
    assert load_ply(tmp_path / "from_splat.ply").sh_degree == 0
    assert not (tmp_path / "crop3.ply").exists()


def test_dry_run_counts_and_writes_nothing(capsys, scene, tmp_path):
    s = load_ply(scene)
    expect = int(edit.Sphere((0, 0, 0), 0.8).mask(s).sum())
    code, out, _ = run(capsys, "edit", "delete", scene, "--sphere", "0,0,0,0.8", "--out", tmp_path / "o.ply", "--dry-run")
    assert code == 0 and f"{expect} of 400 Gaussians selected" in out and f"400 -> {400 - expect}" in out
    assert not (tmp_path / "o.ply").exists()


def test_in_place_overwrites_atomically(capsys, scene):
    code, _, err = run(capsys, "edit", "sh-degree", scene, "0", "--in-place")
    assert code == 0, err
    assert load_ply(scene).sh_degree == 0


def test_failed_write_leaves_input_intact_and_no_output(capsys, scene, tmp_path, monkeypatch):
    before = sorted(os.listdir(tmp_path))
    data = scene.read_bytes()

    def crash(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", crash)
    code, _, err = run(capsys, "edit", "transform", scene, "--translate", "1,0,0", "--out", tmp_path / "o.ply")
    assert code != 0 and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "edit", "transform", scene, "--translate", "1,0,0", "--in-place")
    assert code != 0
    assert scene.read_bytes() == data and sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("args,message", [
    (["crop", "{s}", "--out", "{d}/o.ply"], "give a selection"),
    (["crop", "{s}", "--box", "1,2,3", "--out", "{d}/o.ply"], "expected 6 or 10"),
    (["crop", "{s}", "--sphere", "a,b,c,d", "--out", "{d}/o.ply"], "not comma-separated numbers"),
    (["crop", "{s}", "--frustum", "{d}/cams.json:7", "--out", "{d}/o.ply"], "out of range"),
    (["crop", "{s}", "--frustum", "{d}/cams.json", "--out", "{d}/o.ply"], "CAMERAS.json:INDEX"),
    (["crop", "{s}", "--color", "2,0,0", "--out", "{d}/o.ply"], "0..1"),
    (["crop", "{s}", "--color", "#12", "--out", "{d}/o.ply"], "#rrggbb"),
    (["crop", "{s}", "--label", "1", "--combine", "xor", "--out", "{d}/o.ply"], "union, intersection or difference"),
    (["crop", "{s}", "--label", "1"], "no output"),
    (["crop", "{s}", "--label", "1", "--out", "{s}"], "is an input of this command"),
    (["crop", "{s}", "--label", "1", "--out", "{d}/o.obj"], "unknown scene format"),
    (["crop", "{d}/missing.ply", "--label", "1", "--out", "{d}/o.ply"], "no such file"),
    (["transform", "{s}", "--rotate", "1,2", "--out", "{d}/o.ply"], "expected 3"),
    (["transform", "{s}", "--rotate", "1,2,3", "--quat", "1,0,0,0", "--out", "{d}/o.ply"], "not both"),
    (["transform", "{s}", "--scale", "0", "--out", "{d}/o.ply"], "scale must be > 0"),
    (["transform", "{s}", "--quat", "0,0,0,0", "--out", "{d}/o.ply"], "zero length"),
    (["color", "{s}", "--saturation", "-1", "--out", "{d}/o.ply"], "outside"),
    (["sh-degree", "{s}", "5", "--out", "{d}/o.ply"], "outside 0..3"),
    (["merge", "{s}", "{s}@t=1,2", "--out", "{d}/o.ply"], "needs 3 numbers"),
    (["merge", "{s}", "{s}@x=1", "--out", "{d}/o.ply"], "not one of"),
    (["merge", "{s}", "--in-place"], "single input"),
    (["export", "{s}", "{d}/o.xyz"], "unknown scene format"),
    (["clean", "{s}", "--min-opacity", "2", "--out", "{d}/o.ply"], "outside 0..1"),
])
def test_bad_arguments_are_one_line(capsys, scene, tmp_path, args, message):
    args = [a.format(s=scene, d=tmp_path) for a in args]
    code, out, err = run(capsys, "edit", *args)
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o.ply").exists()


def test_label_selection_without_labels_is_one_line(capsys, tmp_path):
    p = tmp_path / "plain.ply"
    save_ply(random_store(20, 0), p)
    code, _, err = run(capsys, "edit", "crop", p, "--label", "0", "--out", tmp_path / "o.ply")
    assert code == 1 and "no labels" in err
