"""The whole user path on real photos: a subset of the bonsai capture -> sfm -> train -> eval
-> view -> export, with the inputs real photo folders hold: an EXIF-rotated photo, a photo
of another size, a duplicate and a photo that matches nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import run_cli
from real_capture import photo_subset

pytestmark = pytest.mark.slow


def _hostile_subset(folder):
    """12 bonsai photos at 400 px, then: one stored sideways with EXIF orientation 6, one at 320 px,
    an exact copy of one under another name and a photo of noise. Returns (names, rotated, resized)."""
    from PIL import Image

    names = photo_subset(folder)
    rotated, resized = names[4], names[7]
    with Image.open(folder / rotated) as im:
        sideways = im.transpose(Image.Transpose.ROTATE_90)  # EXIF 6 says: turn 90 degrees clockwise to view
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(folder / rotated, quality=92, exif=exif)
    with Image.open(folder / resized) as im:
        im.resize((320, round(im.height * 320 / im.width)), Image.LANCZOS).save(folder / resized, quality=92)
    shutil.copyfile(folder / names[2], folder / "zz_copy.jpg")
    noise = np.random.default_rng(0).integers(0, 256, (266, 400, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "zz_noise.jpg", quality=92)
    return names, rotated, resized


def test_photos_to_a_trained_scene(capsys, tmp_path):
    photos, data, run = tmp_path / "photos", tmp_path / "data", tmp_path / "run"
    names, rotated, resized = _hostile_subset(photos)
    code, _, err = run_cli(capsys, "sfm", photos, data)
    assert code == 0, err
    summary = json.loads((data / "colmap" / "summary.json").read_text())
    assert summary["photos"] == 14
    assert summary["left_out"]["zz_copy.jpg"] == f"same picture as {names[2]}"
    assert summary["left_out"]["zz_noise.jpg"] == "matched no other photo"
    assert "zz_noise.jpg" in err and "zz_copy.jpg" in err  # said, not only written
    assert summary["rotated"] == [rotated]
    assert summary["registered"] >= 11, summary
    assert summary["median_point_error_px"] <= 1.0
    for stage in ("SIFT features", "matching", "mapping", "undistorting"):
        assert f"sfm: {stage}" in err

    from splat.data.loaders import load_colmap

    dataset = load_colmap(data)
    by_name = {p.name: c for p, c in zip(dataset.image_paths, dataset.cameras)}
    shape = lambda n: (by_name[n].width, by_name[n].height)  # noqa: E731
    if rotated in by_name:  # upright again: the same shape as its neighbours (undistortion trims a few px)
        assert shape(rotated) == shape(names[3])
    if resized in by_name:
        assert shape(resized)[0] < shape(names[3])[0]

    code, out, err = run_cli(capsys, "train", data, "--out", run, "--steps", 200, "--checkpoint-every", 200)
    assert code == 0, err
    trained = json.loads(out.strip().splitlines()[-1])
    assert (run / "scene.ply").is_file() and trained["steps"] == 200
    assert trained["psnr"] > 12.0, trained  # a real picture, not noise (about 17 dB at 200 steps)
    first = next(ln for ln in err.splitlines() if ln.startswith("train: "))  # a first build may speak before
    assert first.startswith(f"train: {len(dataset.train)} views of ") and f"{len(dataset.test)} held out" in first
    assert f"run: {run}" in first and "Gaussians at the start, cap " in first
    assert "train: reading images" in err and "eval: held-out views" in err
    assert (run / "curves.png").stat().st_size > 0 and (run / "eval_sheet.png").stat().st_size > 0
    code, out, err = run_cli(capsys, "eval", run)
    assert code == 0, err
    assert json.loads(out)["test_views"] == len(dataset.test)
    code, _, err = run_cli(capsys, "view", run, "--port", 8471, "--seconds", 1)
    assert code == 0, err
    code, _, err = run_cli(capsys, "edit", "export", run / "scene.ply", tmp_path / "scene.splat")
    assert code == 0, err
    assert (tmp_path / "scene.splat").stat().st_size > 0


def test_too_few_photos_placed_is_one_line(capsys, tmp_path):
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(photos / f"n{i}.png")
    code, _, err = run_cli(capsys, "sfm", photos, tmp_path / "out")
    assert code != 0
    last = err.strip().splitlines()[-1]
    assert last.startswith("error:") and ("could be placed" in last or "no model could be built" in last), err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_many_photos_are_matched_with_their_neighbours(capsys, tmp_path, monkeypatch):
    """Above the threshold (100 photos; 6 here) every pair is no longer matched: each photo is
    matched with its neighbours in name order, and the user is told."""
    import splat.data.sfm as sfm

    monkeypatch.setattr(sfm, "EXHAUSTIVE_UP_TO", 6)
    monkeypatch.setattr(sfm, "SEQUENTIAL_OVERLAP", 4)
    photo_subset(tmp_path / "photos")
    code, _, err = run_cli(capsys, "sfm", tmp_path / "photos", tmp_path / "data")
    assert code == 0, err
    assert "12 photos, more than 6: matching each with its 4 neighbours in name order" in err
    assert "sfm: matching neighbours" in err
    assert json.loads((tmp_path / "data" / "colmap" / "summary.json").read_text())["registered"] >= 10
