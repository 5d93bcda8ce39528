"""The command line: outputs and one-line errors."""

import json

import pytest

from splat import save_ply, save_cameras_json
from splat.camera import orbit_cameras
from splat.io.images import load_image
from conftest import run_cli as run, random_store



@pytest.fixture
def scene(tmp_path):
    s = random_store(300, 1, seed=1)
    s.extras["labels"] = (s.means[:, 0] > 0).long()
    p = tmp_path / "s.ply"
    save_ply(s, p)
    return p


def test_info_text_and_json(capsys, scene):
    code, out, _ = run(capsys, "info", scene)
    assert code == 0 and "Gaussians   300" in out and "SH degree   1" in out and "labels" in out
    code, out, _ = run(capsys, "info", scene, "--json")
    d = json.loads(out)
    assert d["count"] == 300 and d["extras"]["labels"]["dtype"] == "int64"
    assert set(d["opacity"]) == {"min", "median", "mean", "max"}


def test_render_default_orbit_camera(capsys, scene, tmp_path):
    out_png = tmp_path / "r.png"
    code, out, err = run(capsys, "render", scene, "--out", out_png, "--width", 40, "--height", 30, "--background", "1,1,1")
    assert code == 0, err
    img = load_image(out_png)
    assert img.shape == (30, 40, 3)
    assert (img < 0.99).any(axis=-1).mean() > 0.2  # the scene covers a good part of the frame
    assert (img > 0.99).all(axis=-1).any()  # and the white background shows somewhere


def test_render_with_one_size_is_square(capsys, scene, tmp_path):
    """Without a camera, --width alone gives a square image (it once gave W x 512)."""
    code, out, err = run(capsys, "render", scene, "--out", tmp_path / "s.png", "--width", 40)
    assert code == 0, err
    assert load_image(tmp_path / "s.png").shape == (40, 40, 3)


def test_render_with_camera_file_and_depth(capsys, scene, tmp_path):
    cams = orbit_cameras((0, 0, 0), 4.0, 3, width=32, height=24)
    save_cameras_json(cams, tmp_path / "c.json")
    code, _, err = run(capsys, "render", scene, "--out", tmp_path / "d.png", "--camera", tmp_path / "c.json", "--index", 2, "--output", "depth")
    assert code == 0, err
    assert load_image(tmp_path / "d.png").shape[:2] == (24, 32)


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "missing.ply"], "missing.ply: no such file"),
        (["render", "{scene}", "--out", "{tmp}/x.png", "--background", "1,1"], "--background: expected 3"),
        (["render", "{scene}", "--out", "{tmp}/x.bmpx"], "unsupported image extension"),
        (["render", "{scene}", "--out", "{tmp}/nofolder/x.png"], "does not exist"),
        (["render", "{scene}", "--out", "{tmp}/x.png", "--backend", "quantum"], "backend 'quantum'"),
        (["render", "{scene}", "--out", "{tmp}/x.png", "--width", "0"], "--width 0"),
        (["render", "{scene}", "--out", "{tmp}/x.png", "--camera", "{tmp}/none.json"], "none.json: no such file"),
        (["render", "{scene}", "--out", "{tmp}/x.png", "--sh-degree", "3"], "sh_degree 3"),
        (["render", "{scene}"], "Missing option"),
        (["frobnicate"], "No such command"),
        (["render", "{scene}", "--out", "{tmp}/x.png", "--width", "abc"], "--width"),
    ],
)
def test_user_errors_are_one_line(capsys, scene, tmp_path, args, message):
    args = [a.format(scene=scene, tmp=tmp_path) for a in args]
    code, out, err = run(capsys, *args)
    assert code != 0
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.png").exists()


def test_demo_runs_small(capsys, tmp_path):
    code, out, err = run(capsys, "demo", "--out", tmp_path / "d", "--size", 48, "--views", 10, "--steps", 40,
                         "--backend", "cpu")
    assert code == 0, err
    run_dir = tmp_path / "d" / "run"
    for name in ("scene.ply", "eval.json", "orbit.mp4", "metrics.jsonl", "cameras.json", "config.json"):
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "eval.json").read_text())["test_views"] == 2
    assert "splat render" in out  # the next commands to try
    code, out, err = run(capsys, "demo", "--out", tmp_path / "d")
    assert code == 1 and "already holds a run" in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from splat.scenes import generate

    return generate("object", tmp_path_factory.mktemp("data") / "obj", size=48, views=10, points=800)


def test_train_eval_render(capsys, tmp_path, tiny_dataset):
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", tiny_dataset, "--out", run_dir, "--steps", 20, "--backend", "cpu",
                         "--checkpoint-every", 10)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["steps"] == 20 and summary["test_views"] == 2 and "psnr" in summary
    assert "step 20/20" in err  # the progress line
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert {"step", "loss", "psnr", "gaussians"} <= set(json.loads(lines[-1]))
    code, out, err = run(capsys, "eval", run_dir)
    assert code == 0 and json.loads(out)["test_views"] == 2
    code, out, err = run(capsys, "train", "--resume", run_dir, "--steps", 30)
    assert code == 0, err
    assert json.loads(out)["steps"] == 30
    for path, name in (("orbit", "o.mp4"), ("spiral", "s.gif"), ("dataset", "d.mp4")):
        code, out, err = run(capsys, "render", run_dir, "--path", path, "--frames", 4, "--out", tmp_path / name)
        assert code == 0, err
        assert (tmp_path / name).stat().st_size > 0
    code, out, err = run(capsys, "render", run_dir, "--out", tmp_path / "one.png", "--index", 3)
    assert code == 0 and load_image(tmp_path / "one.png").shape == (48, 48, 3)


@pytest.mark.parametrize("args,message", [
    (("train",), "train needs DATA and --out"),
    (("train", "nowhere", "--out", "r"), "nowhere does not exist"),
    (("train", "--resume", "nowhere"), "not a training run"),
    (("eval", "nowhere"), "not a training run"),
    (("render", "nowhere", "--out", "v.mp4"), "no such file or folder"),
])
def test_train_errors(capsys, tmp_path, args, message):
    code, out, err = run(capsys, *args)
    assert code != 0 and err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_train_bad_strategy(capsys, tmp_path, tiny_dataset):
    code, out, err = run(capsys, "train", tiny_dataset, "--out", tmp_path / "r", "--strategy", "foo")
    assert code == 1 and "strategy 'foo' is unknown" in err and err.count("\n") == 1


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message without a GPU")
def test_gsplat_backend_without_gpu_is_one_line(capsys, scene, tmp_path):
    code, out, err = run(capsys, "render", scene, "--out", tmp_path / "x.png", "--backend", "gsplat")
    assert code == 1 and "gsplat backend needs a CUDA GPU" in err and err.count("\n") == 1
