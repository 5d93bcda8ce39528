"""The C++/OpenMP backend against the torch reference: outputs and every gradient.

float64: the CPU backend agrees with the float64 reference to 1e-10 (relative
to each tensor's largest magnitude) on every output and gradient: the math is
the same, only rounding differs.

float32: both float32 implementations are measured against the float64 reference
on the same parameters. The CPU backend must be within the stated tolerance, or
no worse than twice the float32 reference's own error where float32 rounding
alone exceeds it (gradients are long sums with cancellation, and a pixel whose
transmittance lands within a rounding step of the 1e-4 stop may stop one
Gaussian earlier or later). Tolerances: colour, alpha, contributions 1e-5;
depth 2e-5 (it divides by alpha, and 1 - T loses digits where alpha is small);
every gradient 1e-4.
"""

import sys

import pytest
import torch

from splat import Camera, GaussianStore
from splat.render import rasterize
from splat.render.cpu_backend import load_cpu_extension
from conftest import front_camera, random_store

FWD_TOL = {"color": 1e-5, "alpha": 1e-5, "depth": 2e-5, "contributions": 1e-5}
GRAD_TOL = 1e-4


@pytest.fixture(scope="module", autouse=True)
def poisoned():
    """Every native output buffer starts as NaN / INT_MIN: unwritten memory shows."""
    ext = load_cpu_extension()
    ext.set_poison(True)
    yield
    ext.set_poison(False)


def run(store, cams, backend, mode="classic", background=None, labels=None, seed=0):
    s = store.clone().requires_grad_()
    bg = torch.as_tensor(background if background is not None else [0.1, 0.2, 0.3], dtype=store.dtype).clone().requires_grad_()
    r = rasterize(s, cams, backend=backend, background=bg, mode=mode, labels=labels)
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(t.shape, generator=g, dtype=torch.float64).to(store.dtype) for t in (r.color, r.alpha, r.depth)]
    loss = sum((t * w).sum() for t, w in zip((r.color, r.alpha, r.depth), weights))
    loss.backward()
    out = {
        "color": r.color, "alpha": r.alpha, "depth": r.depth, "contributions": r.contributions,
        "radii": r.radii, "means2d.grad": r.means2d.grad, "background.grad": bg.grad,
    }
    for name in ("means", "log_scales", "quats", "opacity_logits", "sh"):
        out[name + ".grad"] = getattr(s, name).grad
    if labels is not None:
        out["label_contributions"] = r.label_contributions
    return {k: v.detach() for k, v in out.items()}


def rel_err(a, b):
    return ((a - b).abs().max() / a.abs().max().clamp(min=1e-12)).item() if a.numel() else 0.0


def assert_agree(ref, cpu, float64=False, ref32=None):
    """ref: float64 reference; cpu: the CPU backend; ref32: float32 reference (float32 runs)."""
    for name, a in ref.items():
        b = cpu[name]
        assert a.shape == b.shape, name
        assert not torch.isnan(b).any(), f"{name}: NaN (unwritten output?)"
        if a.dtype == torch.int32:
            assert torch.equal(a, b), name
            continue
        err = rel_err(a, b.to(a.dtype))
        if float64:
            assert err <= 1e-10, f"{name}: relative error {err:.2e} > 1e-10"
            continue
        tol = FWD_TOL.get(name.replace("label_contributions", "contributions"), GRAD_TOL)
        ref_err = rel_err(a, ref32[name].to(a.dtype))
        assert err <= max(tol, 2 * ref_err), f"{name}: relative error {err:.2e} > {tol:g} (float32 reference: {ref_err:.2e})"


def check_float32(store, cams, mode="classic", **kw):
    ref64 = run(store.to(dtype=torch.float64), cams, "torch", mode, **kw)
    ref32 = run(store, cams, "torch", mode, **kw)
    assert_agree(ref64, run(store, cams, "cpu", mode, **kw), ref32=ref32)


SCENES = {
    # name: (N, sh degree, spread, scale range, image size)
    "few": (5, 0, 0.6, (0.1, 0.4), (45, 37)),
    "many_small": (400, 3, 1.0, (0.01, 0.08), (64, 48)),
    "heavy_overlap": (150, 1, 0.15, (0.2, 0.5), (33, 70)),
    "odd_size": (200, 2, 1.2, (0.03, 0.2), (17, 91)),
}


@pytest.mark.parametrize("scene", list(SCENES))
@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_agrees_with_reference_float32(scene, mode):
    n, deg, spread, scale, (w, h) = SCENES[scene]
    store = random_store(n, deg, seed=len(scene), spread=spread, scale=scale)
    cams = [front_camera(w, h), front_camera(w, h, distance=2.5)]
    check_float32(store, cams, mode)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_agrees_with_reference_float64(degree):
    store = random_store(120, degree, dtype=torch.float64, seed=degree, spread=0.8)
    cams = [front_camera(40, 29)]
    for mode in ("classic", "antialiased"):
        assert_agree(run(store, cams, "torch", mode), run(store, cams, "cpu", mode), float64=True)


def test_sh_degree_below_stored_and_white_background():
    store = random_store(100, 3, seed=3)
    cam = [front_camera(32, 32)]
    for deg in (0, 2):
        ref = rasterize(store, cam, backend="torch", sh_degree=deg, background=(1, 1, 1))
        cpu = rasterize(store, cam, backend="cpu", sh_degree=deg, background=(1, 1, 1))
        assert rel_err(ref.color, cpu.color) < 1e-5


def test_border_and_behind_camera_gaussians():
    cam = front_camera(48, 40)
    store = random_store(60, 1, seed=4, spread=1.0, scale=(0.05, 0.3))
    # push some to the image border, some behind the camera, one straddling the near plane
    with torch.no_grad():
        store.means[:10, 0] = torch.linspace(-2.5, 2.5, 10)
        store.means[10:20] = store.means[10:20] + torch.tensor([0.0, -8.0, 0.0])
        store.means[20] = torch.tensor([0.3, -3.99, 0.8])
    check_float32(store, [cam])


def test_label_contributions_agree():
    store = random_store(200, 0, seed=5)
    cam = front_camera(40, 30)
    labels = (torch.arange(40)[None, :] // 8 + torch.zeros(30, 1, dtype=torch.long))[None]
    ref = rasterize(store, cam, backend="torch", labels=labels)
    cpu = rasterize(store, cam, backend="cpu", labels=labels)
    assert rel_err(ref.label_contributions, cpu.label_contributions) < 1e-5
    assert rel_err(ref.contributions, cpu.contributions) < 1e-5


def test_deterministic_bitwise():
    store = random_store(500, 3, seed=6, spread=1.0)
    cams = [front_camera(64, 48)]
    a = run(store, cams, "cpu")
    for _ in range(2):
        b = run(store, cams, "cpu")
        for k in a:
            assert torch.equal(a[k], b[k]), k


def test_empty_and_all_culled():
    cam = front_camera(20, 12)
    e = rasterize(GaussianStore.empty(), cam, backend="cpu", background=(0.5, 0.5, 0.5))
    assert torch.equal(e.color, torch.full((1, 12, 20, 3), 0.5))
    s = random_store(10)
    s.means = s.means + torch.tensor([0.0, -50.0, 0.0])
    r = rasterize(s.requires_grad_(), cam, backend="cpu")
    r.color.sum().backward()
    assert torch.equal(r.alpha, torch.zeros(1, 12, 20, 1)) and not r.radii.any()
    assert torch.equal(s.means.grad, torch.zeros(10, 3))


def test_auto_falls_back_to_torch_with_one_line_warning(monkeypatch, capsys):
    from splat import SplatError
    from splat.render import api

    def broken():
        raise SplatError("the cpu backend could not be built (no compiler)")

    monkeypatch.setattr(api, "BACKENDS", {**api.BACKENDS, "cpu": broken})
    # a fresh once-only memory, so an earlier warning in this process does not hide this one
    monkeypatch.setattr(api, "warn_once", lambda m: print(f"warning: {m}", file=sys.stderr))
    store = random_store(20)
    r = rasterize(store, front_camera(16, 16), backend="auto")
    ref = rasterize(store, front_camera(16, 16), backend="torch")
    assert torch.equal(r.color, ref.color)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not be built" in err and "falling back" in err
    with pytest.raises(SplatError, match="could not be built"):
        rasterize(store, front_camera(16, 16), backend="cpu")
