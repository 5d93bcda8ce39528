"""The user's failure paths: wrong inputs, interrupts, dead ends and commands that could lose work.

Each case names what a user did and what must happen: one line and a non-zero exit, nothing
half-created, nothing of theirs overwritten, and after an interrupt a run that resumes.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import gaussian_dataset, random_store, run_cli
from splat import save_ply
from splat.io.ply import load_ply, ply_bytes

UNWRITABLE = Path("/sys")  # not writable even by root


def splat_cmd(*args) -> list[str]:
    """``splat ARGS`` in a child process (the installed entry point's code)."""
    return [sys.executable, "-P", "-c", "import sys; from splat.cli import main; sys.exit(main(sys.argv[1:]))",
            *map(str, args)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return gaussian_dataset(tmp_path_factory.mktemp("fp") / "data", views=10, size=32, n=600)


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("fp_run") / "run"
    code = subprocess.run(splat_cmd("train", data, "--out", run, "--steps", 10, "--checkpoint-every", 5,
                                    "--cap", 2000, "--backend", "cpu"), capture_output=True).returncode
    assert code == 0
    return run


@pytest.fixture
def files(tmp_path):
    """a.ply (200 Gaussians), empty.ply, empty.splat, nan.ply (2 bad rows), note.txt (not an image)."""
    save_ply(random_store(200, 1, seed=3), tmp_path / "a.ply")
    save_ply(random_store(0, 0), tmp_path / "empty.ply")
    (tmp_path / "empty.splat").write_bytes(b"")
    bad = random_store(200, 1, seed=4)
    bad.means[3, 0] = float("nan")
    bad.opacity_logits[7] = float("inf")
    (tmp_path / "nan.ply").write_bytes(ply_bytes(bad))
    (tmp_path / "note.txt").write_text("not a scene")
    return tmp_path


# -- one line, not a traceback ----------------------------------------------------------------

ONE_LINE = [
    (["edit", "clean", "{t}/empty.ply", "--out", "{t}/o.ply"], "no Gaussians"),
    (["edit", "export", "{t}/empty.ply", "{t}/o.splat"], "no Gaussians to export"),
    (["edit", "export", "{t}/empty.splat", "{t}/o.ply"], "no Gaussians to export"),
    (["edit", "crop", "{t}/a.ply", "--sphere", "100,100,100,0.1", "--out", "{t}/o.ply"], "0 of 200 Gaussians selected"),
    (["train", "{data}", "--out", "{t}/note.txt"], "is a file"),
    (["train", "{data}", "--out", "{t}/r", "--seed", "99999999999999999999"], "seed 99999999999999999999"),
    (["train", "{data}", "--out", "{t}/r", "--steps", "0"], "steps 0 must be a positive"),
    (["train", "{data}", "--out", "{t}/r", "--backend", "foo"], "backend 'foo' is unknown"),
    (["train", "{data}", "--out", "{t}/r", "--view", "--host", "no.such.host.invalid"], "host 'no.such.host.invalid'"),
    (["demo", "--out", "{t}/r", "--backend", "foo"], "backend 'foo' is unknown"),
    (["view", "{t}/a.ply", "--backend", "foo", "--seconds", "0"], "backend 'foo' is unknown"),
    (["render", "{t}/nan.ply", "--out", "{t}/o.png"], "2 of 200 Gaussians hold NaN or Inf"),
    (["view", "{t}/nan.ply", "--seconds", "0"], "2 of 200 Gaussians hold NaN or Inf"),
    (["edit", "merge", "{t}/a.ply", "{t}/a.ply", "--out", "{t}/a.ply"], "is an input of this command"),
    (["render", "{t}/a.ply", "--out", f"{UNWRITABLE}/x.png"], "cannot write"),
    (["render", "{t}/a.ply", "--out", f"{UNWRITABLE}/x.mp4", "--frames", "2"], "cannot write"),
    (["train", "{data}", "--out", f"{UNWRITABLE}/run", "--steps", "2"], "cannot create the run folder"),
    (["scene", "generate", "object", f"{UNWRITABLE}/scene", "--size", "16", "--views", "2"], "cannot create"),
    (["demo", "--out", f"{UNWRITABLE}/demo", "--steps", "2"], "cannot create"),
]


@pytest.mark.parametrize("args, message", ONE_LINE, ids=[" ".join(a[:2]) + f" {i}" for i, (a, _) in enumerate(ONE_LINE)])
def test_wrong_inputs_are_one_line_and_create_nothing(capsys, files, data, args, message):
    before = sorted(p.name for p in files.iterdir())
    code, out, err = run_cli(capsys, *[a.format(t=files, data=data) for a in args])
    assert code == 1 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in files.iterdir()) == before  # no half-made run, scene or output


def test_mesh_does_not_write_over_the_run(capsys, finished_run):
    before = (finished_run / "scene.ply").read_bytes()
    code, _, err = run_cli(capsys, "mesh", finished_run, "--out", finished_run / "scene.ply")
    assert code == 1 and "is an input of this command" in err and err.count("\n") == 1
    assert (finished_run / "scene.ply").read_bytes() == before


def test_segment_masks_refuse_wrong_sizes_and_non_images(capsys, finished_run, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    name = json.loads((finished_run / "config.json").read_text())["data"]
    stem = sorted((Path(name) / "images").iterdir())[1].stem
    (masks / f"{stem}.png").write_text("not an image")
    code, _, err = run_cli(capsys, "segment", "masks", finished_run, "--masks", masks, "--out", tmp_path / "l.ply")
    assert code == 1 and "cannot read label image" in err and err.count("\n") == 1, err
    import numpy as np

    np.save(masks / f"{stem}.npy", np.ones((20, 30), dtype=np.int64))
    (masks / f"{stem}.png").unlink()
    code, _, err = run_cli(capsys, "segment", "masks", finished_run, "--masks", masks, "--out", tmp_path / "l.ply")
    assert code == 1 and "is 30x20, the view is 32x32" in err, err
    assert not (tmp_path / "l.ply").exists()


# -- messages that name the right thing ---------------------------------------------------------

def test_info_counts_bad_rows_and_writes_standard_json(capsys, files):
    code, out, err = run_cli(capsys, "info", files / "nan.ply", "--json")
    assert code == 0, err
    d = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert d["count"] == 200 and d["non_finite"] == 2
    assert all(v == v for v in d["bounds_min"] + d["bounds_max"])
    code, out, _ = run_cli(capsys, "info", files / "nan.ply")
    assert "non-finite  2 Gaussians" in out


def test_info_reads_splat_files(capsys, files):
    from splat.io.splat_format import save_splat

    save_splat(random_store(50, 0, seed=1), files / "s.splat")
    code, out, err = run_cli(capsys, "info", files / "s.splat")
    assert code == 0 and "Gaussians   50" in out, err


def test_render_with_a_camera_keeps_its_aspect(capsys, files, tmp_path):
    from splat import save_cameras_json
    from splat.camera import orbit_cameras
    from splat.io.images import load_image

    save_cameras_json(orbit_cameras((0, 0, 0), 4.0, 2, width=64, height=32), tmp_path / "c.json")
    code, _, err = run_cli(capsys, "render", files / "a.ply", "--out", tmp_path / "w.png", "--camera",
                           tmp_path / "c.json", "--width", 400)
    assert code == 0, err
    assert load_image(tmp_path / "w.png").shape[:2] == (200, 400)


def test_default_view_frames_the_dense_part_not_the_sky():
    from splat.render.views import scene_center_radius

    s = random_store(1000, 0, seed=2, spread=1.0)
    sky = torch.nn.functional.normalize(torch.randn(100, 3, generator=torch.Generator().manual_seed(0)), dim=-1) * 30
    s.means[:100] = sky  # a trained scene keeps about a tenth of its Gaussians on a far sphere
    _, radius = scene_center_radius(s)
    assert radius < 3.0, radius


def test_missing_images_are_listed_together_and_can_be_skipped(capsys, data, tmp_path):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    for i in (2, 5, 7):
        (copy / "images" / f"{i:04d}.png").unlink()
    code, _, err = run_cli(capsys, "train", copy, "--out", tmp_path / "r", "--steps", 2)
    assert code == 1 and "3 of 10 images are missing" in err and "0002.png" in err and "0007.png" in err
    assert "--skip-missing" in err and not (tmp_path / "r").exists()
    code, out, err = run_cli(capsys, "train", copy, "--out", tmp_path / "r", "--steps", 2, "--skip-missing",
                             "--backend", "cpu")
    assert code == 0, err
    assert "left out 3 of 10 frames" in err
    assert len(json.loads((tmp_path / "r" / "cameras.json").read_text())["cameras"]) == 7


def test_a_damaged_image_stops_the_start_before_the_run_folder(capsys, data, tmp_path):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    img = copy / "images" / "0003.png"
    img.write_bytes(img.read_bytes()[:60])  # truncated
    code, _, err = run_cli(capsys, "train", copy, "--out", tmp_path / "r", "--steps", 2)
    assert code == 1 and "0003.png" in err and "cannot be read" in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_eta_keeps_the_hours():
    from splat.progress import format_duration

    assert format_duration(72 * 60 + 37) == "1:12:37"
    assert format_duration(12 * 60 + 37) == "12:37"
    assert format_duration(float("nan")) == "--:--"


# -- interrupts -------------------------------------------------------------------------------------

def test_keyboard_interrupt_exits_130_with_a_line(capsys, files, monkeypatch):
    import splat.inspect

    def interrupted(_store):
        raise KeyboardInterrupt

    monkeypatch.setattr(splat.inspect, "describe", interrupted)
    code, _, err = run_cli(capsys, "info", files / "a.ply")
    assert code == 130 and err.startswith("interrupted; ") and "half-written" in err and err.count("\n") == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_signal_checkpoints_the_step_and_the_run_resumes(data, tmp_path, sig):
    run = tmp_path / "run"
    proc = subprocess.Popen(splat_cmd("train", data, "--out", run, "--steps", 100000, "--checkpoint-every", 100000,
                                      "--cap", 2000, "--backend", "cpu"), stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 240
    while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text().strip():
        assert proc.poll() is None and time.monotonic() < deadline, "training did not start"
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 130, err[-2000:]
    assert last.startswith("interrupted (") and "checkpoint" in last and f"splat train --resume {run}" in last, last
    from splat.train.checkpoint import list_checkpoints, load_checkpoint

    found = list_checkpoints(run)
    assert len(found) == 1
    step = load_checkpoint(found[-1])["step"]
    assert f"at step {step} of 100000" in last and step >= 10
    # the interrupted run continues from that step
    code = subprocess.run(splat_cmd("train", "--resume", run, "--steps", step + 3), capture_output=True, text=True)
    assert code.returncode == 0, code.stderr[-2000:]
    assert json.loads(code.stdout)["steps"] == step + 3


def test_ctrl_c_while_rendering_a_video_writes_nothing(files):
    proc = subprocess.Popen(splat_cmd("render", files / "a.ply", "--out", files / "v.mp4", "--frames", 5000,
                                      "--width", 64, "--height", 64, "--backend", "torch"),
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = ""
    while "rendering frames" not in seen:
        seen += proc.stderr.read(1)
        assert proc.poll() is None, seen
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("interrupted (Ctrl-C); every file is written whole")
    assert not (files / "v.mp4").exists() and not [p for p in files.iterdir() if p.name.startswith(".v.")]


def test_a_start_stopped_before_its_first_checkpoint_resumes_from_step_zero(capsys, data, tmp_path):
    from splat.train import TrainConfig, Trainer

    config = TrainConfig(data=str(data), steps=6, cap=2000, backend="cpu", checkpoint_every=100)
    Trainer.start(config, tmp_path / "run")  # as if Ctrl-C came before the first step
    code, out, err = run_cli(capsys, "train", "--resume", tmp_path / "run")
    assert code == 0, err
    assert json.loads(out)["steps"] == 6
    one = Trainer.start(config, tmp_path / "one")
    one.train()
    again = load_ply(tmp_path / "run" / "scene.ply")
    assert torch.equal(again.means, one.store().means)  # the same run as one that was never stopped


# -- commands that lose work ----------------------------------------------------------------------

def test_resuming_a_finished_run_leaves_it_alone(capsys, finished_run):
    scene = finished_run / "scene.ply"
    before, mtime = scene.read_bytes(), scene.stat().st_mtime_ns
    code, out, err = run_cli(capsys, "train", "--resume", finished_run)
    assert code == 0 and "nothing to do" in err and "--steps" in err and out == "", err
    assert scene.read_bytes() == before and scene.stat().st_mtime_ns == mtime
    code, _, err = run_cli(capsys, "train", "--resume", finished_run, "--steps", 3)
    assert code == 1 and "below the run's step 10" in err
    assert scene.stat().st_mtime_ns == mtime


def test_in_place_keeps_mode_and_writes_through_links(capsys, files):
    real = files / "a.ply"
    os.chmod(real, 0o640)
    link = files / "link.ply"
    link.symlink_to(real)
    code, _, err = run_cli(capsys, "edit", "transform", link, "--translate", "1,0,0", "--in-place")
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert oct(real.stat().st_mode & 0o777) == oct(0o640)
    old = os.umask(0o022)
    try:
        code, _, err = run_cli(capsys, "edit", "transform", real, "--translate", "1,0,0", "--out", files / "new.ply")
    finally:
        os.umask(old)
    assert code == 0, err
    assert oct((files / "new.ply").stat().st_mode & 0o777) == oct(0o644)


CONCURRENT_EDIT = r"""
import sys, time
from pathlib import Path
from splat.cli import main
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.005)
sys.exit(main(["edit", "transform", sys.argv[2], "--translate", "1,0,0", "--in-place"]))
"""


def test_concurrent_in_place_edits_all_land(tmp_path):
    """Four in-place edits of one file at once: each must see the others' results."""
    store = random_store(150_000, 3, seed=5)  # big enough that the read-modify-writes overlap
    save_ply(store, tmp_path / "s.ply")
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-P", "-c", CONCURRENT_EDIT, str(go), str(tmp_path / "s.ply")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    time.sleep(3.0)  # all four imported and waiting
    go.touch()
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    moved = load_ply(tmp_path / "s.ply").means[:, 0] - store.means[:, 0]
    assert torch.allclose(moved, torch.full_like(moved, 4.0), atol=1e-4), float(moved.mean())


# -- determinism ----------------------------------------------------------------------------------

def test_training_draws_nothing_from_torchs_global_generator(data, tmp_path):
    """Checkpoints hold the trainer's own generator; a draw from torch's global one (seeded
    afresh in each process) would make a resumed run differ from an uninterrupted one."""
    from splat.train import TrainConfig, Trainer

    config = TrainConfig(data=str(data), steps=40, cap=1200, backend="cpu", mcmc=dict(refine_start=5, refine_every=5),
                         sh_interval=10, checkpoint_every=20)
    trainer = Trainer.start(config, tmp_path / "run")
    state = torch.get_rng_state()
    trainer.train()
    assert torch.equal(torch.get_rng_state(), state)
    assert "torch_rng" not in torch.load(sorted((tmp_path / "run" / "checkpoints").iterdir())[-1], weights_only=True)


@pytest.mark.slow
def test_sfm_keeps_colmaps_log_in_a_file_and_leaves_no_half_made_dataset(tmp_path):
    pytest.importorskip("pycolmap")
    from splat.scenes import generate

    scene = generate("default", tmp_path / "scene", size=240, views=14)
    out = tmp_path / "sfm"
    proc = subprocess.run(splat_cmd("sfm", scene / "images", out), capture_output=True, text=True, timeout=600)
    lines = proc.stderr.strip().splitlines()
    # our stage and progress lines only (a pipe gets a progress line every 10 s), not COLMAP's ~200
    assert len(lines) <= 40 and all(ln.startswith(("sfm: ", "error: ")) for ln in lines), proc.stderr[-3000:]
    if proc.returncode == 0:  # the mapper registered enough of these few views
        assert (out / "colmap" / "sfm.log").stat().st_size > 1000 and (out / "sparse" / "0").is_dir()
    else:  # a failed run leaves no dataset folder that the next run would refuse, and keeps the log
        assert proc.returncode == 1 and lines[-1].startswith("error: sfm:") and "COLMAP's log" in lines[-1]
        assert not out.exists() and (tmp_path / "sfm.sfm.log").stat().st_size > 1000
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sfm.")]  # no work folder left


def test_an_interrupted_demo_goes_on_when_run_again(tmp_path):
    out = tmp_path / "d"
    args = ("demo", "--out", out, "--size", 48, "--views", 10, "--backend", "cpu")
    proc = subprocess.Popen(splat_cmd(*args, "--steps", 100000), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True)
    log = out / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not log.is_file() or not log.read_text().strip():
        assert proc.poll() is None and time.monotonic() < deadline, "the demo did not start training"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "resume with" in err.strip().splitlines()[-1], err[-2000:]
    from splat.train.checkpoint import latest_checkpoint, load_checkpoint

    step = load_checkpoint(latest_checkpoint(out / "run"))["step"]
    again = subprocess.run(splat_cmd(*args, "--steps", step + 5), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming the interrupted demo run at step {step}" in again.stdout
    assert (out / "run" / "scene.ply").is_file() and (out / "run" / "orbit.mp4").is_file()


def test_mesh_and_sfm_into_an_unwritable_folder_are_one_line(capsys, finished_run, data):
    code, _, err = run_cli(capsys, "mesh", finished_run, "--out", f"{UNWRITABLE}/m.ply")
    assert code == 1 and "cannot write" in err and err.count("\n") == 1, err
    pytest.importorskip("pycolmap")
    code, _, err = run_cli(capsys, "sfm", data / "images", f"{UNWRITABLE}/sfm")
    assert code == 1 and "cannot create the dataset folder" in err and err.count("\n") == 1, err
