"""The torch reference rasterizer: analytic values, autograd, oracles, invariances."""

import math

import numpy as np
import pytest
import torch

from splat import Camera, GaussianStore, SplatError
from splat.render import rasterize
from splat.geometry import covariance_3d
from splat.render.reference import Projected, blend_tile, project
from conftest import front_camera, random_store


def axis_camera(w, h, f, dtype=torch.float64):
    """Camera at the origin looking down +z."""
    K = torch.tensor([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], dtype=torch.float64)
    return Camera(K, torch.eye(4, dtype=torch.float64), w, h)


@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_one_gaussian_matches_analytic_image(mode):
    w, h, f, z0, s, o = 37, 29, 30.0, 2.0, 0.15, 0.8
    rgb = torch.tensor([[0.2, 0.5, 0.9]], dtype=torch.float64)
    store = GaussianStore.from_activated(
        torch.tensor([[0.0, 0.0, z0]], dtype=torch.float64), torch.full((1, 3), s, dtype=torch.float64),
        torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64), torch.tensor([o], dtype=torch.float64), rgb,
    )
    bg = torch.tensor([0.1, 0.1, 0.1], dtype=torch.float64)
    res = rasterize(store, axis_camera(w, h, f), backend="torch", background=bg, mode=mode)

    var0 = (f * s / z0) ** 2
    var = var0 + 0.3
    o_eff = o * (var0 / var if mode == "antialiased" else 1.0)  # sqrt(det0/det) for isotropic
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    r2 = (xs - w / 2) ** 2 + (ys - h / 2) ** 2
    alpha = np.minimum(0.99, o_eff * np.exp(-0.5 * r2 / var))
    alpha[alpha < 1 / 255] = 0
    expect = alpha[..., None] * rgb.numpy() + (1 - alpha[..., None]) * bg.numpy()
    assert np.allclose(res.color[0].numpy(), expect, atol=1e-12)
    assert np.allclose(res.alpha[0, ..., 0].numpy(), alpha, atol=1e-12)
    assert np.allclose(res.depth[0, ..., 0].numpy(), np.where(alpha > 0, z0, 0), atol=1e-12)
    assert np.isclose(res.contributions[0, 0].item(), alpha.sum())
    # radius: where o * exp(-r^2 / 2 var) reaches 1/255
    assert res.radii[0, 0] == math.ceil(math.sqrt(2 * math.log(255 * o_eff) * var))


def test_gradcheck_float64_all_inputs():
    cam = front_camera(20, 18, distance=3.0)
    base = random_store(4, sh_degree=3, dtype=torch.float64, seed=11, spread=0.4, scale=(0.15, 0.4))
    base.opacity_logits = base.opacity_logits.clamp(-1, 1)
    inputs = [t.clone().requires_grad_() for t in (base.means, base.log_scales, base.quats, base.opacity_logits, base.sh)]
    bg = torch.tensor([0.3, 0.6, 0.2], dtype=torch.float64, requires_grad=True)

    for mode in ("classic", "antialiased"):
        def f(means, log_scales, quats, logits, sh, bg):
            r = rasterize(GaussianStore(means, log_scales, quats, logits, sh), cam, backend="torch", background=bg, mode=mode)
            return torch.cat([r.color.reshape(-1), r.alpha.reshape(-1), r.depth.reshape(-1)])

        assert f(*inputs, bg)[-20 * 18:].abs().sum() > 0  # Gaussians are visible
        assert torch.autograd.gradcheck(f, (*inputs, bg), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


def test_gradcheck_full_jacobian_small_image():
    cam = front_camera(9, 7, distance=3.0, fov=30)
    base = random_store(3, sh_degree=1, dtype=torch.float64, seed=2, spread=0.3, scale=(0.2, 0.4))
    base.opacity_logits = base.opacity_logits.clamp(-1, 1)
    inputs = [t.clone().requires_grad_() for t in (base.means, base.log_scales, base.quats, base.opacity_logits, base.sh)]

    def f(*p):
        return rasterize(GaussianStore(*p), cam, backend="torch").color

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_means2d_gradient_is_retained():
    store = random_store(40, 1, seed=3, spread=0.8).requires_grad_()
    store.means.data[0] = torch.tensor([0.0, -10.0, 0.0])  # behind the camera
    res = rasterize(store, [front_camera(), front_camera()], backend="torch")
    res.color.sum().backward()
    g = res.means2d.grad
    assert g is not None and g.shape == (2, 40, 2)
    assert torch.equal(g[:, 0], torch.zeros(2, 2))
    visible = res.radii[0] > 0
    assert (g[0, visible].abs().sum(-1) > 0).float().mean() > 0.8


# -- oracle: gsplat's pure-torch functions ---------------------------------------------

def test_covariance_matches_gsplat():
    from gsplat.cuda._torch_impl import _quat_scale_to_covar_preci

    s = random_store(100, dtype=torch.float64, seed=4)
    theirs, _ = _quat_scale_to_covar_preci(s.quats, s.scales, compute_preci=False)
    assert torch.allclose(covariance_3d(s.quats, s.scales), theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("antialiased", [False, True])
def test_projection_matches_gsplat(antialiased):
    from gsplat.cuda._torch_impl import _fully_fused_projection

    s = random_store(300, dtype=torch.float64, seed=5, spread=2.0)
    cam = Camera.look_at((0.5, -3.0, 1.0), (0, 0, 0), (0, 0, 1), 60, 80, 60)
    g, means2d_all, radii = project(s, cam, 0, antialiased)
    covars = covariance_3d(s.quats, s.scales)
    _, m2d, depths, conics, comp = _fully_fused_projection(
        s.means, covars, cam.viewmat[None], cam.K[None], cam.width, cam.height, eps2d=0.3, calc_compensations=True
    )
    ids = g.ids
    assert len(ids) > 50
    assert torch.allclose(g.means2d, m2d[0, ids], rtol=1e-10, atol=1e-9)
    assert torch.allclose(g.depths, depths[0, ids], rtol=1e-12)
    assert torch.allclose(g.conics, conics[0, ids], rtol=1e-9, atol=1e-12)
    expected_opacity = s.opacities[ids] * (comp[0, ids] if antialiased else 1)
    assert torch.allclose(g.opacities, expected_opacity, rtol=1e-10)
    assert torch.allclose(means2d_all[ids], m2d[0, ids], rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_matches_gsplat(degree):
    from gsplat.cuda._torch_impl import _spherical_harmonics

    from splat.render.sh import eval_sh

    g = torch.Generator().manual_seed(degree)
    dirs = torch.nn.functional.normalize(torch.randn(200, 3, generator=g, dtype=torch.float64), dim=-1)
    coeffs = torch.randn(200, 16, 3, generator=g, dtype=torch.float64)
    ours = eval_sh(degree, coeffs, dirs)
    theirs = _spherical_harmonics(degree, dirs, coeffs)
    assert torch.allclose(ours, theirs, rtol=1e-12, atol=1e-12)


# -- invariances -------------------------------------------------------------------------

def test_permutation_changes_nothing():
    s = random_store(200, 2, seed=6, spread=1.0)
    cam = front_camera(50, 35)
    a = rasterize(s, cam, backend="torch")
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    b = rasterize(s.select(perm), cam, backend="torch")
    assert torch.allclose(a.color, b.color, atol=1e-6)
    assert torch.allclose(a.alpha, b.alpha, atol=1e-6)
    assert torch.allclose(a.depth, b.depth, atol=1e-5)
    assert torch.equal(a.radii[:, perm], b.radii)
    assert torch.allclose(a.contributions[:, perm], b.contributions, atol=1e-5)


def test_hidden_gaussians_change_nothing():
    s = random_store(60, 1, seed=7)
    cam = front_camera(40, 30)
    a = rasterize(s, cam, backend="torch", background=(0.2, 0.3, 0.4))
    hidden = random_store(3, 1, seed=8)
    hidden.means = torch.tensor([[0.0, -6.0, 0.0], [0.3, -4.0, 0.8], [0.0, 0.0, 0.0]])  # behind, at the camera, visible
    hidden.opacity_logits = torch.tensor([5.0, 5.0, -40.0])  # the visible one has zero opacity
    b = rasterize(GaussianStore.concat(s, hidden), cam, backend="torch", background=(0.2, 0.3, 0.4))
    assert torch.equal(a.color, b.color) and torch.equal(a.alpha, b.alpha) and torch.equal(a.depth, b.depth)
    assert torch.equal(b.radii[0, 60:], torch.zeros(3, dtype=torch.int32))
    assert torch.equal(b.contributions[0, 60:], torch.zeros(3))


def test_tiles_do_not_change_the_image():
    """Tiled rendering equals blending every visible Gaussian over every pixel at once."""
    s = random_store(150, 1, seed=9, spread=1.0, scale=(0.05, 0.5))
    cam = front_camera(45, 37)  # not multiples of 16
    res = rasterize(s, cam, backend="torch", background=(1.0, 0.5, 0.0))
    g, _, _ = project(s, cam, 1, False)
    ys, xs = torch.meshgrid(torch.arange(37), torch.arange(45), indexing="ij")
    pixels = torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5
    color, acc, _, _, _ = blend_tile(pixels, g, torch.tensor([1.0, 0.5, 0.0]))
    assert torch.allclose(res.color[0].reshape(-1, 3), color, atol=1e-6)
    assert torch.allclose(res.alpha[0].reshape(-1), acc, atol=1e-6)


def test_batch_equals_single_renders_and_background_per_camera():
    s = random_store(80, 1, seed=10)
    cams = [front_camera(33, 20, distance=d) for d in (3.0, 4.0, 5.0)]
    bgs = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    batch = rasterize(s, cams, backend="torch", background=bgs)
    assert batch.color.shape == (3, 20, 33, 3) and batch.radii.shape == (3, 80) and batch.means2d.shape == (3, 80, 2)
    for i, cam in enumerate(cams):
        one = rasterize(s, cam, backend="torch", background=bgs[i])
        assert torch.equal(batch.color[i], one.color[0])
        assert torch.equal(batch.depth[i], one.depth[0])


def test_contributions_sum_to_alpha_and_split_by_label():
    s = random_store(100, 0, seed=12)
    cam = front_camera(40, 30)
    labels = (torch.arange(30)[:, None] // 10 + torch.zeros(40, dtype=torch.long)).reshape(1, 30, 40)  # 3 bands
    res = rasterize(s, cam, backend="torch", labels=labels, num_labels=4)
    assert res.label_contributions.shape == (1, 4, 100)
    assert torch.allclose(res.contributions.sum(), res.alpha.sum(), rtol=1e-5)
    assert torch.allclose(res.label_contributions.sum(1), res.contributions, atol=1e-5)
    assert torch.equal(res.label_contributions[0, 3], torch.zeros(100))
    band0 = res.alpha[0, :10].sum()
    assert torch.allclose(res.label_contributions[0, 0].sum(), band0, rtol=1e-5)


def test_empty_store_and_everything_culled():
    cam = front_camera(20, 10)
    e = rasterize(GaussianStore.empty(), cam, backend="torch", background=(0.5, 0.5, 0.5))
    assert torch.equal(e.color, torch.full((1, 10, 20, 3), 0.5)) and e.radii.shape == (1, 0)
    s = random_store(10)
    s.means = s.means + torch.tensor([0.0, -50.0, 0.0])  # all behind the camera
    r = rasterize(s, cam, backend="torch")
    assert torch.equal(r.alpha, torch.zeros(1, 10, 20, 1)) and not r.radii.any()


def test_bad_arguments():
    s = random_store(5, 1)
    cam = front_camera()
    with pytest.raises(SplatError, match="backend .nope. is unknown"):
        rasterize(s, cam, backend="nope")
    with pytest.raises(SplatError, match="sh_degree 2"):
        rasterize(s, cam, sh_degree=2)
    with pytest.raises(SplatError, match="mode"):
        rasterize(s, cam, mode="fancy")
    with pytest.raises(SplatError, match="same image size"):
        rasterize(s, [front_camera(10, 10), front_camera(12, 10)])
    with pytest.raises(SplatError, match="background"):
        rasterize(s, cam, background=(1, 2))
    with pytest.raises(SplatError, match="labels"):
        rasterize(s, cam, labels=torch.zeros(2, 2, dtype=torch.long))
