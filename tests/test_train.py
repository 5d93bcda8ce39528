"""The trainer: losses, Adam row edits, MCMC relocation, ADC growth, exact resume, end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from splat.errors import SplatError
from splat.render import rasterize
from splat.store import GaussianStore
from splat.train import TrainConfig, Trainer, evaluate
from splat.train.adam import Adam
from splat.train.adc import ADCStrategy
from splat.train.config import ADCConfig, MCMCConfig
from splat.train.checkpoint import list_checkpoints
from splat.train.init import knn_mean_distance
from splat.train.losses import _gaussian_window, psnr, ssim, ssim_map
from splat.train.mcmc import MCMCStrategy, relocation_params
from conftest import front_camera

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    """The default recipe at 64x64, 16 views (every 8th held out)."""
    from splat.scenes import generate

    return generate("default", tmp_path_factory.mktemp("scene") / "default64", size=64, views=16, points=3000)


def _params(n: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"means": torch.randn(n, 3, generator=g), "log_scales": torch.randn(n, 3, generator=g) - 3,
            "quats": torch.randn(n, 4, generator=g), "opacity_logits": torch.randn(n, generator=g),
            "sh_dc": torch.randn(n, 1, 3, generator=g), "sh_rest": torch.zeros(n, 15, 3)}


# -- losses -------------------------------------------------------------------------------------------
def test_ssim_matches_a_direct_2d_window():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(37, 29, 3, generator=g), torch.rand(37, 29, 3, generator=g)
    w1 = _gaussian_window(11, 1.5, torch.float64)
    win = (w1[:, None] * w1[None]).expand(3, 1, 11, 11)
    A, B = (t.double().permute(2, 0, 1)[None] for t in (a, b))
    mu = lambda x: F.conv2d(x, win, padding=5, groups=3)  # noqa: E731
    ma, mb = mu(A), mu(B)
    va, vb, cov = mu(A * A) - ma**2, mu(B * B) - mb**2, mu(A * B) - ma * mb
    ref = ((2 * ma * mb + 1e-4) * (2 * cov + 9e-4)) / ((ma**2 + mb**2 + 1e-4) * (va + vb + 9e-4))
    assert torch.allclose(ssim_map(a, b).double(), ref[0].mean(0), atol=2e-6)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-6)
    assert psnr(a, a) == math.inf and psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-4)


# -- Adam row edits ------------------------------------------------------------------------------------
def test_adam_rows_stay_aligned():
    adam = Adam(_params(6), {k: 0.1 for k in _params(1)})
    for p in adam.params.values():
        p.grad = torch.ones_like(p)
    adam.step()
    assert all(float(m.abs().sum()) > 0 for k, m in adam.exp_avg.items() if k != "sh_rest")
    means_before = adam.params["means"].detach().clone()
    adam.keep(torch.tensor([True, False, True, True, False, True]))
    assert torch.equal(adam.params["means"], means_before[[0, 2, 3, 5]])
    adam.append({k: v[:2] for k, v in _params(2, seed=1).items()})
    assert len(adam) == 6 and all(v.shape[0] == 6 for d in (adam.params, adam.exp_avg, adam.exp_avg_sq) for v in d.values())
    assert float(adam.exp_avg["means"][4:].abs().sum()) == 0 and float(adam.exp_avg["means"][:4].abs().sum()) > 0
    adam.overwrite(torch.tensor([1]), {"opacity_logits": torch.tensor([3.0])})
    assert float(adam.params["opacity_logits"][1].detach()) == 3.0 and float(adam.exp_avg_sq["quats"][1].abs().sum()) == 0
    assert all(p.is_leaf and p.requires_grad for p in adam.params.values())


# -- MCMC -----------------------------------------------------------------------------------------------
def test_relocation_formula_hand_computed():
    o = torch.tensor([0.5, 0.5, 0.9])
    s = torch.ones(3, 3)
    o_new, s_new = relocation_params(o, s, torch.tensor([1, 2, 3]))
    # N = 1: unchanged. N = 2, o = 0.5: o' = 1 - sqrt(0.5) = 0.2928932;
    # denom = o' + (o' - o'^2 / sqrt 2) = 0.5251263, s' = 0.5 / denom = 0.9521520.
    # N = 3, o = 0.9: o' = 1 - 0.1^(1/3) = 0.5358411; denom = (o') + (o' - o'^2 / sqrt 2)
    # + (o' - 2 o'^2 / sqrt 2 + o'^3 / sqrt 3) = 1.0872653, s' = 0.9 / denom = 0.8277649.
    assert o_new.tolist() == pytest.approx([0.5, 0.2928932, 0.5358411], abs=1e-6)
    assert s_new[:, 0].tolist() == pytest.approx([1.0, 0.9521520, 0.8277649], abs=1e-6)


def test_copies_composite_to_the_old_opacity():
    cam = front_camera(33, 33)  # the Gaussians' centre falls on the centre of pixel (16, 16)
    base = GaussianStore.from_activated(torch.zeros(1, 3), torch.full((1, 3), 0.3), torch.tensor([[1.0, 0, 0, 0]]),
                                        torch.tensor([0.6]), torch.tensor([[0.2, 0.5, 0.9]]))
    alpha_one = rasterize(base, cam, backend="torch").alpha[0, 16, 16, 0]
    for n in (2, 4, 7):
        o_new, s_new = relocation_params(torch.tensor([0.6]), torch.full((1, 3), 0.3), torch.tensor([n]))
        copies = GaussianStore.from_activated(torch.zeros(n, 3), s_new.expand(n, 3), torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4),
                                              o_new.expand(n), torch.tensor([[0.2, 0.5, 0.9]]).expand(n, 3))
        alpha_n = rasterize(copies, cam, backend="torch").alpha[0, 16, 16, 0]
        assert float(alpha_n) == pytest.approx(float(alpha_one), abs=1e-5)
    assert float(alpha_one) == pytest.approx(0.6, abs=1e-5)


def test_mcmc_relocates_dead_and_respects_the_cap():
    p = _params(200)
    p["opacity_logits"][:50] = -10.0  # dead
    adam = Adam(p, {k: 0.01 for k in p})
    g = torch.Generator().manual_seed(0)
    strat = MCMCStrategy(g, 1.0, cap=230, config=MCMCConfig(refine_start=0, refine_every=1))
    assert strat.relocate(adam) == 50
    assert float(torch.sigmoid(adam.params["opacity_logits"]).min()) > 0.005
    for _ in range(10):
        strat.add(adam)
        assert len(adam) <= 230
    assert len(adam) == 230
    strat.inject_noise(adam, 1e-3)
    assert torch.isfinite(adam.params["means"]).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_mcmc_noise_is_the_torch_noise(dtype):
    from splat.train.fused import load_train_extension

    p = {k: v.to(dtype) for k, v in _params(300).items()}
    p["opacity_logits"][:100] = -6.0  # near dead: the gate lets their noise through
    moved = []
    for fused in (None, load_train_extension()):
        adam = Adam({k: v.clone() for k, v in p.items()}, {k: 0.01 for k in p}, fused=fused)
        MCMCStrategy(torch.Generator().manual_seed(3), 1.0).inject_noise(adam, 1e-3)
        moved.append(adam.params["means"] - p["means"])
    assert float(moved[0][:100].abs().max()) > 1e-4  # the test sees real moves
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(moved[1], moved[0], rtol=tol, atol=tol * float(moved[0].abs().max()))


# -- ADC ------------------------------------------------------------------------------------------------
def test_adc_grows_where_gradients_are_high():
    p = _params(100)
    p["opacity_logits"][:] = 2.0
    p["log_scales"][:50] = math.log(1e-3)  # small: cloned
    p["log_scales"][50:] = math.log(0.2)  # large: split
    adam = Adam(p, {k: 0.01 for k in p})
    strat = ADCStrategy(torch.Generator().manual_seed(0), 1.0,
                        config=ADCConfig(refine_start=0, refine_every=1, reset_every=10**6))
    strat._reset_stats(100, "cpu")
    strat.grad_sum[[3, 4, 60, 61, 62]] = 1.0  # high
    strat.seen[:] = 1
    before = adam.params["means"].detach().clone()
    strat.densify_and_prune(adam, step=1)
    assert strat.last == {"cloned": 2, "split": 3, "pruned": 0}
    assert len(adam) == 100 + 2 + 3
    means = adam.params["means"].detach()
    # the untouched rows are still there; the split ones moved to samples around their parents
    assert torch.equal(means[:60], before[:60])
    assert not any(torch.equal(m, before[60]) for m in means)
    children = means[-6:]
    assert (children - before[[60, 61, 62, 60, 61, 62]]).norm(dim=1).max() < 2.0


def _pruned_after_reset(means, scale, radius, **config) -> list[int]:
    """Rows the densify-and-prune after the first opacity reset removes (nothing grows: no gradients)."""
    n = len(means)
    p = _params(n)
    p["means"][:] = torch.tensor(means, dtype=torch.float32)
    p["log_scales"][:] = torch.tensor(scale).log()[:, None]
    p["opacity_logits"][:] = 2.0
    p["means"][:, 0] += 10.0  # the scene's centre is not the origin
    adam = Adam(p, {k: 0.01 for k in p})
    strat = ADCStrategy(torch.Generator().manual_seed(0), 1.0, scene_centre=torch.tensor([10.0, 0, 0]),
                        config=ADCConfig(refine_start=0, refine_every=1, reset_every=100, **config))
    strat._reset_stats(n, "cpu")
    strat.max_radius[:] = torch.tensor(radius)
    tags = adam.params["sh_rest"].detach()
    tags[:, 0, 0] = torch.arange(n, dtype=torch.float32)  # follow the rows through the edit
    strat.densify_and_prune(adam, step=101)
    kept = {int(t) for t in adam.params["sh_rest"].detach()[:, 0, 0]}
    return [i for i in range(n) if i not in kept]


def test_adc_prunes_big_gaussians_by_their_angular_size_after_the_first_reset():
    # near the centre the limit is 0.1 x the scene scale; at distance 5 it is 0.1 x 5, so a far
    # background (the sky sphere, a room's walls) keeps Gaussians as large as it needs
    means = [[0, 0, 0], [0.5, 0, 0], [5, 0, 0], [0, 0, -5], [0, 0, 0.3]]
    scale = [0.2, 0.05, 0.3, 0.6, 0.05]
    radius = [5.0, 5.0, 60.0, 5.0, 60.0]
    assert _pruned_after_reset(means, scale, radius) == [0, 3]
    # the reference code's screen limit, when asked for, also prunes the rows seen above 20 px
    assert _pruned_after_reset(means, scale, radius, max_screen_radius=20.0) == [0, 2, 3, 4]


def test_the_sky_sphere_starts_beyond_the_walls_around_the_cameras(tmp_path):
    # cameras near the middle of a room (scene scale 0.55: the sphere would sit at 1.65) whose
    # points lie on its walls at distance 6: the sphere starts beyond them, not in front
    from splat.camera import orbit_cameras
    from splat.data.dataset import Dataset
    from splat.io.images import save_image
    from splat.train.init import scene_scale, starting_store

    cams = orbit_cameras((0, 0, 0), 0.5, 6, elevation_deg=0, fov_deg=60, width=16, height=16)
    paths = []
    for i in range(len(cams)):
        paths.append(tmp_path / f"{i}.png")
        save_image(torch.full((16, 16, 3), 0.5), paths[-1])
    walls = torch.nn.functional.normalize(torch.randn(2000, 3, generator=torch.Generator().manual_seed(0)), dim=-1) * 6
    ds = Dataset(cams, paths, list(range(6)), [], points=walls.numpy(), point_colors=torch.rand(2000, 3).numpy())
    config = TrainConfig.from_dict({"data": "x", "cap": 5000, "init_count": 2000})
    store = starting_store(config, ds, scene_scale(ds), torch.Generator().manual_seed(0))
    sky = store.means[2000:].detach()
    assert len(sky) == 200
    assert float(sky.norm(dim=1).min()) > 6.0
    # where the points stay inside 3 x the scene scale, the sphere stays there
    ds.points = ds.points / 20
    store = starting_store(config, ds, scene_scale(ds), torch.Generator().manual_seed(0))
    assert store.means[2000:].detach().norm(dim=1).sub(1.65).abs().max() < 1e-4


def test_knn_distance_exact_and_approximate():
    pts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3], [10, 10, 10]])
    d = knn_mean_distance(pts, 3)
    assert d[0].item() == pytest.approx(2.0)
    g = torch.Generator().manual_seed(0)
    cloud = torch.rand(3000, 3, generator=g)
    exact, approx = knn_mean_distance(cloud), knn_mean_distance(cloud, exact_below=10)
    assert (approx >= exact - 1e-6).all() and float((approx / exact).mean()) < 1.3


# -- the loop -----------------------------------------------------------------------------------------
def _config(scene, **kw) -> TrainConfig:
    base = dict(data=str(scene), steps=24, backend="cpu", cap=4000, sh_interval=8, refine_start=2, refine_every=5,
                checkpoint_every=12, log_every=4, init_scale=1.0)
    base.update(kw)
    return TrainConfig.from_dict(base)  # the flat names of earlier config.json files, read into the strategy's


@pytest.mark.parametrize("strategy", ["mcmc", "adc"])
def test_resume_is_exact(tiny_scene, tmp_path, strategy):
    extra = {"reset_every": 10} if strategy == "adc" else {}
    one = Trainer.start(_config(tiny_scene, strategy=strategy, **extra), tmp_path / "one")
    one.train()
    two = Trainer.start(_config(tiny_scene, strategy=strategy, **extra), tmp_path / "two")
    two.train(stop_after=12)
    assert [p.name for p in list_checkpoints(tmp_path / "two")] == ["step_0000012.pt"]
    del two
    two = Trainer.resume(tmp_path / "two")
    assert two.step == 12
    two.train()
    for k in one.adam.params:
        assert torch.equal(one.adam.params[k], two.adam.params[k]), k
        assert torch.equal(one.adam.exp_avg_sq[k], two.adam.exp_avg_sq[k]), k
    log = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in log] == list(range(4, 25, 4))
    assert (tmp_path / "two" / "scene.ply").is_file()


def test_a_checkpoint_with_sh_in_two_groups_resumes_exactly(tiny_scene, tmp_path):
    # runs saved before SH became one optimised tensor kept it as sh_dc [N, 1, 3] and sh_rest
    # [N, 15, 3], each with its moments: such a checkpoint continues as the run would have
    one = Trainer.start(_config(tiny_scene), tmp_path / "one")
    one.train()
    two = Trainer.start(_config(tiny_scene), tmp_path / "two")
    two.train(stop_after=12)
    path = list_checkpoints(tmp_path / "two")[-1]
    state = torch.load(path, weights_only=True)
    adam = state["adam"]
    del adam["bands"]
    for key in ("params", "exp_avg", "exp_avg_sq"):
        sh = adam[key].pop("sh")
        adam[key].update(sh_dc=sh[:, :1].clone(), sh_rest=sh[:, 1:].clone())
    torch.save(state, path)
    two = Trainer.resume(tmp_path / "two")
    two.train()
    assert set(two.adam.params) == set(one.adam.params)
    for k in one.adam.params:
        assert torch.equal(one.adam.params[k], two.adam.params[k]), k
        assert torch.equal(one.adam.exp_avg[k], two.adam.exp_avg[k]), k


def test_nan_stops_with_one_line_and_keeps_the_checkpoint(tiny_scene, tmp_path):
    t = Trainer.start(_config(tiny_scene, steps=20), tmp_path / "run")
    t.train(stop_after=12)
    ckpt = list_checkpoints(tmp_path / "run")[-1]
    data = ckpt.read_bytes()
    with torch.no_grad():
        t.adam.params["means"][0, 0] = float("nan")
    with pytest.raises(SplatError, match=r"training stopped at step 1[3-6]: .*not finite|non-finite.* last good checkpoint is .*step_0000012\.pt"):
        t.train()
    assert ckpt.read_bytes() == data


def test_short_training_clears_a_psnr(tiny_scene, tmp_path):
    """300 steps on the 64x64 scene: held-out PSNR above 20 dB (measured 22.6 dB)."""
    cfg = _config(tiny_scene, steps=300, cap=6000, refine_start=50, refine_every=25, sh_interval=100,
                  checkpoint_every=1000)
    t = Trainer.start(cfg, tmp_path / "run")
    t.train()
    result = evaluate(tmp_path / "run")
    assert result["test_views"] == 2
    assert result["psnr"] > 20.0, result["psnr"]
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["psnr"] == pytest.approx(result["psnr"]) and saved["lpips"] is None
    assert (tmp_path / "run" / "eval" / "0008_render.png").is_file() and (tmp_path / "run" / "eval" / "0008_gt.png").is_file()


def test_config_errors(tiny_scene, tmp_path):
    with pytest.raises(SplatError, match="strategy 'foo' is unknown"):
        Trainer.start(_config(tiny_scene, strategy="foo"), tmp_path / "a")
    with pytest.raises(SplatError, match="steps 0 must be a positive integer"):
        Trainer.start(_config(tiny_scene, steps=0), tmp_path / "b")
    Trainer.start(_config(tiny_scene), tmp_path / "c")
    with pytest.raises(SplatError, match="already holds a run"):
        Trainer.start(_config(tiny_scene), tmp_path / "c")


# -- fused CPU ops against the torch reference --------------------------------------------------------
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_fused_ssim_matches_torch(dtype, tol):
    from splat.train.fused import fused_ssim_map

    g = torch.Generator().manual_seed(1)
    a = torch.rand(23, 41, 3, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    b = torch.rand(23, 41, 3, generator=g, dtype=torch.float64).to(dtype)
    w = torch.rand(23, 41, generator=g, dtype=torch.float64).to(dtype)
    ref = (ssim_map(a, b) * w).sum()
    (g_ref,) = torch.autograd.grad(ref, a)
    fused = (fused_ssim_map(a, b).mean(-1) * w).sum()
    (g_fused,) = torch.autograd.grad(fused, a)
    assert float(fused) == pytest.approx(float(ref), rel=tol)
    assert torch.allclose(g_fused, g_ref, rtol=tol * 10, atol=tol)


def test_fused_adam_matches_torch():
    from splat.train.fused import load_train_extension

    p = _params(50)
    lrs = {k: 0.01 for k in p}
    ref, fused = Adam(p, lrs), Adam(p, lrs, fused=load_train_extension())
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        grads = {k: torch.randn(v.shape, generator=g) for k, v in p.items()}
        for opt in (ref, fused):
            for k, v in opt.params.items():
                v.grad = grads[k].clone()
            opt.step()
    for k in p:
        assert torch.allclose(ref.params[k], fused.params[k], rtol=1e-5, atol=1e-6), k
        assert torch.allclose(ref.exp_avg_sq[k], fused.exp_avg_sq[k], rtol=1e-5, atol=1e-9), k


def test_a_banded_group_steps_as_its_two_bands_would_apart():
    from splat.train.fused import load_train_extension

    # SH as one group whose DC values (the first 3 of each row) learn at one rate and the rest
    # at another: the same numbers as two groups, fused and in torch
    p = _params(50)
    lrs = {"sh_dc": 0.01, "sh_rest": 0.0005}
    one = {"sh": torch.cat([p["sh_dc"], torch.randn(50, 15, 3, generator=torch.Generator().manual_seed(3))], 1)}
    two = {"sh_dc": one["sh"][:, :1].clone(), "sh_rest": one["sh"][:, 1:].clone()}
    bands = {"sh": (3, "sh_dc", "sh_rest")}
    g = torch.Generator().manual_seed(2)
    grads = [torch.randn(50, 16, 3, generator=g) for _ in range(5)]
    for fused in (None, load_train_extension()):
        banded, apart = Adam(one, lrs, fused=fused, bands=bands), Adam(two, lrs, fused=fused)
        for grad in grads:
            banded.params["sh"].grad = grad.clone()
            apart.params["sh_dc"].grad, apart.params["sh_rest"].grad = grad[:, :1].clone(), grad[:, 1:].clone()
            banded.step()
            apart.step()
        joined = torch.cat([apart.params["sh_dc"], apart.params["sh_rest"]], 1)
        assert torch.equal(banded.params["sh"], joined), fused
        assert not torch.equal(banded.params["sh"], one["sh"])


def test_the_fused_step_skips_values_not_in_use_with_the_same_numbers():
    from splat.train.fused import load_train_extension

    # SH at degree 1: the first 4 x 3 values of each row have gradients, the rest none yet.
    # Skipping those (used) gives what the full step gives: they stay as they are.
    g = torch.Generator().manual_seed(5)
    sh = torch.randn(40, 16, 3, generator=g)
    grads = [torch.randn(40, 16, 3, generator=g) for _ in range(4)]
    for grad in grads:
        grad[:, 4:] = 0
    lrs = {"sh_dc": 0.01, "sh_rest": 0.0005}
    fused = load_train_extension()
    full, skipping = (Adam({"sh": sh}, lrs, fused=fused, bands={"sh": (3, "sh_dc", "sh_rest")}) for _ in range(2))
    for grad in grads:
        full.params["sh"].grad, skipping.params["sh"].grad = grad.clone(), grad.clone()
        full.step()
        skipping.step(used={"sh": 12})
    assert torch.equal(full.params["sh"], skipping.params["sh"])
    assert torch.equal(full.exp_avg_sq["sh"], skipping.exp_avg_sq["sh"])
    assert torch.equal(skipping.params["sh"][:, 4:], sh[:, 4:]) and not torch.equal(skipping.params["sh"][:, :4], sh[:, :4])
    # a plain group (lead 0) with used short of its row
    p = torch.randn(30, 6, generator=g)
    a, b = Adam({"x": p}, {"x": 0.01}, fused=fused), Adam({"x": p}, {"x": 0.01}, fused=fused)
    grad = torch.cat([torch.randn(30, 2, generator=g), torch.zeros(30, 4)], 1)
    a.params["x"].grad, b.params["x"].grad = grad.clone(), grad.clone()
    a.step()
    b.step(used={"x": 2})
    assert torch.equal(a.params["x"], b.params["x"])


def test_points_alpha_and_masks(tiny_scene, tmp_path):
    """The generator's points3d.ply arrives as the dataset's points; RGBA images and mask files
    train (alpha supervision, loss inside the mask)."""
    import shutil

    import numpy as np

    from splat.data.loaders import load_dataset
    from splat.io.images import load_image, save_image

    d = load_dataset(tiny_scene)
    assert d.points is not None and d.points.shape == (2992, 3) and d.point_colors.shape == (2992, 3)  # 3000 // 16 per view
    rgba = tmp_path / "rgba"
    shutil.copytree(tiny_scene, rgba)
    meta = json.loads((rgba / "transforms.json").read_text())
    for frame in meta["frames"]:
        inst = load_image(rgba / frame["instance_file_path"])
        img = load_image(rgba / frame["file_path"])
        fg = (inst[..., :1] > 0).astype(np.float32)
        save_image(np.concatenate([img, fg], -1), rgba / frame["file_path"])
        save_image(np.repeat(fg, 3, -1), rgba / (frame["file_path"] + ".mask.png"))
        frame["mask_path"] = frame["file_path"] + ".mask.png"
    (rgba / "transforms.json").write_text(json.dumps(meta))
    t = Trainer.start(_config(rgba, steps=6, checkpoint_every=100), tmp_path / "run")
    assert t.dataset.mask(0) is not None and "mask" in t.dataset.extras
    rgb, alpha, mask = t.view_images(t.dataset.train[0])
    assert alpha.shape == (64, 64, 1) and mask.shape == (64, 64) and 0 < float(mask.mean()) < 1
    metrics = t.train()
    assert math.isfinite(metrics["loss"])


def test_adc_absgrad_reads_the_absolute_sums(tiny_scene, tmp_path):
    """With absgrad the statistics come from means2d_absgrad (>= the plain gradient's norm)."""
    t = Trainer.start(_config(tiny_scene, strategy="adc", absgrad=True, steps=12, grow_grad2d=8e-4,
                              refine_start=100), tmp_path / "run")
    plain = ADCStrategy(torch.Generator(), t.scene_scale)
    for _ in range(3):
        t.train_step()
    store = t.store().requires_grad_(True)
    res = rasterize(store, t.dataset.cameras[0], backend="cpu", absgrad=True)
    res.color.sum().backward()
    t.strategy._reset_stats(len(store), "cpu")
    plain._reset_stats(len(store), "cpu")
    t.strategy.after_backward(t.adam, res, 0)
    plain.after_backward(t.adam, res, 0)
    assert float(t.strategy.grad_sum.sum()) > 0
    assert (t.strategy.grad_sum >= plain.grad_sum - 1e-6).all()
    assert float(t.strategy.grad_sum.sum()) > float(plain.grad_sum.sum())


def test_the_cap_is_sized_from_the_initial_gaussians_when_not_given():
    from splat.train.config import TrainConfig

    assert TrainConfig().sized_cap(47_071) == 235_355
    assert TrainConfig().sized_cap(1_000) == 100_000
    assert TrainConfig().sized_cap(900_000) == 1_000_000
    assert TrainConfig(cap=5_000).sized_cap(47_071) == 5_000


def test_tile_pairs_per_pixel_counts_the_footprints_tiles():
    from splat.render.api import RenderResult

    C, H, W = 1, 48, 64
    res = RenderResult(color=torch.zeros(C, H, W, 3), alpha=torch.zeros(C, H, W, 1), depth=torch.zeros(C, H, W, 1),
                       radii=torch.tensor([[10, 0, 3]], dtype=torch.int32),
                       means2d=torch.tensor([[[32.0, 24.0], [5.0, 5.0], [-100.0, 0.0]]]), contributions=None)
    # the first spans tiles x 1..2, y 0..2 (6 tiles); the second is culled; the third is off screen
    assert res.tile_pairs_per_pixel() == pytest.approx(6 * 256 / (H * W))


# -- batches of views ---------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["mcmc", "adc"])
def test_batch_resume_is_exact(tiny_scene, tmp_path, strategy):
    one = Trainer.start(_config(tiny_scene, strategy=strategy, batch=3), tmp_path / "one")
    one.train()
    two = Trainer.start(_config(tiny_scene, strategy=strategy, batch=3), tmp_path / "two")
    two.train(stop_after=12)
    del two
    two = Trainer.resume(tmp_path / "two")
    two.train()
    for k in one.adam.params:
        assert torch.equal(one.adam.params[k], two.adam.params[k]), k
    log = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert all(len(m["view"]) == 3 and len(set(m["view"])) == 3 for m in log)


def test_a_batch_steps_on_the_mean_of_its_views_gradients(tiny_scene, tmp_path):
    """One step with --batch 2: the gradients are the mean of the two views' own gradients, and
    every learning rate is sqrt(2) x the single-view one."""
    from splat.train.losses import photometric_loss
    from splat.train.trainer import store_from_params

    cfg = _config(tiny_scene, strategy="adc", batch=2, background=[0.0, 0.0, 0.0], sh_interval=1000, steps=10)
    t = Trainer.start(cfg, tmp_path / "run")
    start = {k: v.detach().clone() for k, v in t.adam.params.items()}
    got = {}
    step = t.adam.step

    def capture(**kw):
        got.update({k: v.grad.clone() for k, v in t.adam.params.items() if v.grad is not None})
        got["lrs"] = dict(t.adam.lrs)
        step(**kw)

    t.adam.step = capture
    views = t.train_step()["view"]
    single = Trainer.start(_config(tiny_scene, strategy="adc", background=[0.0, 0.0, 0.0], steps=10), tmp_path / "one")
    assert got["lrs"] == pytest.approx({k: v * math.sqrt(2) for k, v in single._learning_rates(0).items()})
    want = {k: torch.zeros_like(v) for k, v in start.items()}
    for i in views:
        params = {k: v.clone().requires_grad_(True) for k, v in start.items()}
        store = store_from_params(params)
        rgb, alpha, mask = t.view_images(i)
        image = rasterize(store, t.dataset.cameras[i], backend="cpu", sh_degree=0, background=torch.zeros(3)).color[0]
        loss = photometric_loss(image, rgb, mask, cfg.ssim_weight, fused=True) / 2
        loss.backward()
        for k in want:
            if params[k].grad is not None:
                want[k] += params[k].grad
    assert {"means", "log_scales", "quats", "opacity_logits", "sh"} <= set(got)
    for k in set(got) - {"lrs"}:
        assert torch.allclose(got[k], want[k], rtol=1e-4, atol=1e-7), k


def test_batch_larger_than_the_views_is_refused(tiny_scene, tmp_path):
    with pytest.raises(SplatError, match="--batch 99: the dataset has"):
        Trainer.start(_config(tiny_scene, batch=99), tmp_path / "run")
    with pytest.raises(SplatError, match="batch 0 must be a positive integer"):
        Trainer.start(_config(tiny_scene, batch=0), tmp_path / "run2")
