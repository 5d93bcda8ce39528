"""The CUDA backend against the torch reference and the CPU backend (tolerances: tests/agreement.py).

Marked ``cuda``; skipped where torch sees no CUDA GPU.
"""

import pytest
import torch

from splat import GaussianStore
from splat.render import rasterize
from agreement import SCENES, assert_agree, check_float32, rel_err, run
from conftest import front_camera, random_store

# The GPU sums each gradient with float atomics in an order that changes from run
# to run, and contracts a * b + c into fused multiply-adds: its float32 rounding
# strays further from torch's than the CPU backend's does. Measured on an H200
# (tools/agreement_report.py, scene "few", classic): quats.grad is off by 3.3e-4
# with FMA, 1.5e-4 without (SPLAT_CUDA_NO_FMA=1), against 8.0e-5 for the float32
# reference itself: a gradient with heavy cancellation, where FMA rounding alone
# costs a factor of about four. Float32 agreement is therefore held to five times
# the float32 reference's own error (or the tolerance); float64 agreement to
# 1e-10 checks that the math is the same.
GPU_FACTOR = 5.0

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]


@pytest.fixture(scope="module", autouse=True)
def poisoned():
    """Every output buffer the kernels write starts as NaN / INT_MIN: unwritten memory shows."""
    from splat.render.cuda_backend import load_cuda_extension

    ops = load_cuda_extension()
    ops.set_poison(True)
    yield
    ops.set_poison(False)


@pytest.mark.parametrize("scene", list(SCENES))
@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_agrees_with_reference_float32(scene, mode):
    n, deg, spread, scale, (w, h) = SCENES[scene]
    store = random_store(n, deg, seed=len(scene), spread=spread, scale=scale)
    cams = [front_camera(w, h), front_camera(w, h, distance=2.5)]  # a batch of two cameras
    check_float32(store, cams, mode, backend="cuda", device="cuda", factor=GPU_FACTOR)


@pytest.mark.parametrize("scene", list(SCENES))
def test_no_worse_than_cpu_backend(scene):
    """Measured against the float64 reference, the CUDA backend's error is within
    the tolerances or at most GPU_FACTOR times the CPU backend's."""
    n, deg, spread, scale, (w, h) = SCENES[scene]
    store = random_store(n, deg, seed=len(scene) + 1, spread=spread, scale=scale)
    cams = [front_camera(w, h)]
    ref64 = run(store.to(dtype=torch.float64), cams, "torch")
    cpu = run(store, cams, "cpu")
    cuda = run(store, cams, "cuda", device="cuda")
    assert_agree(ref64, cuda, ref32=cpu, factor=GPU_FACTOR)
    assert torch.equal(cpu["radii"], cuda["radii"])


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_agrees_with_reference_float64(degree):
    store = random_store(120, degree, dtype=torch.float64, seed=degree, spread=0.8)
    cams = [front_camera(40, 29), front_camera(40, 29, distance=3.0)]
    for mode in ("classic", "antialiased"):
        assert_agree(run(store, cams, "torch", mode), run(store, cams, "cuda", mode, device="cuda"), float64=True)


def test_border_and_behind_camera_gaussians():
    store = random_store(60, 1, seed=4, spread=1.0, scale=(0.05, 0.3))
    with torch.no_grad():
        store.means[:10, 0] = torch.linspace(-2.5, 2.5, 10)
        store.means[10:20] = store.means[10:20] + torch.tensor([0.0, -8.0, 0.0])
        store.means[20] = torch.tensor([0.3, -3.99, 0.8])
    check_float32(store, [front_camera(48, 40)], backend="cuda", device="cuda", factor=GPU_FACTOR)


def test_label_contributions_agree():
    store = random_store(200, 0, seed=5)
    cam = front_camera(40, 30)
    labels = (torch.arange(40)[None, :] // 8 + torch.zeros(30, 1, dtype=torch.long))[None]
    ref = rasterize(store, cam, backend="torch", labels=labels)
    gpu = rasterize(store.to(device="cuda"), cam, backend="cuda", labels=labels.cuda())
    assert rel_err(ref.label_contributions, gpu.label_contributions.cpu()) < 1e-5
    assert rel_err(ref.contributions, gpu.contributions.cpu()) < 1e-5


def test_forward_deterministic_bitwise():
    store = random_store(3000, 3, seed=6, spread=1.0).to(device="cuda")
    cams = [front_camera(96, 64), front_camera(96, 64, distance=3.0)]
    a = rasterize(store, cams, backend="cuda")
    for _ in range(3):
        b = rasterize(store, cams, backend="cuda")
        for name in ("color", "alpha", "depth", "contributions", "radii", "means2d"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_without_contributions_same_image():
    store = random_store(500, 2, seed=7).to(device="cuda")
    a = rasterize(store, front_camera(50, 40), backend="cuda")
    b = rasterize(store, front_camera(50, 40), backend="cuda", contributions=False)
    assert b.contributions is None
    assert torch.equal(a.color, b.color) and torch.equal(a.depth, b.depth)


def test_empty_and_all_culled():
    cam = front_camera(20, 12)
    e = rasterize(GaussianStore.empty().to(device="cuda"), cam, backend="cuda", background=(0.5, 0.5, 0.5))
    assert torch.equal(e.color.cpu(), torch.full((1, 12, 20, 3), 0.5))
    s = random_store(10)
    s.means = s.means + torch.tensor([0.0, -50.0, 0.0])
    s = s.to(device="cuda").requires_grad_()
    r = rasterize(s, cam, backend="cuda")
    r.color.sum().backward()
    assert torch.equal(r.alpha.cpu(), torch.zeros(1, 12, 20, 1)) and not r.radii.any()
    assert torch.equal(s.means.grad.cpu(), torch.zeros(10, 3))


@pytest.mark.slow
def test_one_million_gaussians_full_hd():
    g = torch.Generator(device="cuda").manual_seed(0)
    n = 1_000_000
    store = GaussianStore(
        means=(torch.rand(n, 3, generator=g, device="cuda") * 2 - 1) * 1.5,
        log_scales=torch.empty(n, 3, device="cuda").uniform_(-6.0, -3.0, generator=g),
        quats=torch.randn(n, 4, generator=g, device="cuda"),
        opacity_logits=torch.randn(n, generator=g, device="cuda"),
        sh=torch.randn(n, 16, 3, generator=g, device="cuda") * 0.3,
    ).requires_grad_()
    r = rasterize(store, front_camera(1920, 1080), backend="cuda", contributions=False)
    (r.color.sum() + r.depth.sum()).backward()
    torch.cuda.synchronize()
    assert torch.isfinite(r.color).all() and r.alpha.max() > 0.5
    assert torch.isfinite(store.means.grad).all() and store.means.grad.abs().sum() > 0


def test_train_end_to_end_on_cuda(tmp_path):
    """`splat train --backend cuda` on a small scene: runs, improves, evaluates."""
    import json

    from conftest import gaussian_dataset
    from splat.cli import main

    data = gaussian_dataset(tmp_path / "scene")
    assert main(["train", str(data), "--out", str(tmp_path / "run"), "--backend", "cuda", "--steps", "300",
                 "--cap", "6000", "--checkpoint-every", "150"]) == 0
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert result["test_views"] == 2 and result["psnr"] > 20.0, result["psnr"]  # CPU backend: 29.5 dB
    log = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"]


def test_absgrad_matches_cpu():
    """Sum over pixels of |d loss / d mean2d| (warp sums of per-pixel absolute values) against the CPU kernel."""
    store = random_store(2000, 1, seed=7)
    cam = front_camera(97, 61)
    weights = torch.rand(1, 61, 97, 3, generator=torch.Generator().manual_seed(2))
    out = {}
    for backend, dev in (("cpu", "cpu"), ("cuda", "cuda")):
        s = store.to(dev).requires_grad_(True)
        res = rasterize(s, cam, backend=backend, absgrad=True)
        (res.color * weights.to(dev)).sum().backward()
        out[backend] = res.means2d_absgrad.cpu()
    scale = float(out["cpu"].abs().max())
    assert scale > 0 and float((out["cuda"] - out["cpu"]).abs().max()) <= 1e-4 * scale


def test_gsplat_backend_agrees_with_ours():
    """`backend="gsplat"` (gsplat's kernels behind our interface) renders what the cuda backend renders."""
    pytest.importorskip("gsplat")
    store = random_store(3000, 2, seed=3).to("cuda")
    cams = [front_camera(128, 96), front_camera(128, 96, distance=5.0)]
    ours = rasterize(store, cams, backend="cuda", background=(0.1, 0.2, 0.3))
    theirs = rasterize(store, cams, backend="gsplat", background=(0.1, 0.2, 0.3))
    assert theirs.contributions is None
    assert float((ours.color - theirs.color).abs().max()) < 1e-3
    assert float((ours.alpha - theirs.alpha).abs().max()) < 1e-3
    s = store.clone().requires_grad_(True)
    res = rasterize(s, cams[0], backend="gsplat", absgrad=True)
    res.color.sum().backward()
    assert res.means2d.grad is not None and float(res.means2d_absgrad.abs().sum()) > 0


def test_median_depth_matches_cpu():
    store = random_store(3000, 0, seed=9)
    cam = front_camera(97, 61)
    cpu = rasterize(store, cam, backend="cpu").median_depth
    gpu = rasterize(store.to("cuda"), cam, backend="cuda").median_depth.cpu()
    same = (gpu - cpu).abs() <= 1e-5 * cpu.abs().max()
    assert float(same.float().mean()) > 0.995  # a crossing within rounding of 0.5 may pick a neighbour
