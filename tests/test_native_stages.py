"""The CPU backend stage by stage against the reference, so a failing agreement names its stage:
the projection alone, then the blend alone fed the reference's own projection.
(Binning is checked by ``test_cpu_backend.test_chunk_masks_hold_every_pixel_a_gaussian_reaches``.)"""

import pytest
import torch

from conftest import front_camera, random_store
from splat.render.cpu_backend import _camera_args, load_cpu_extension
from splat.render.reference import project


@pytest.fixture(scope="module")
def ext():
    return load_cpu_extension()


def scene(seed: int):
    s = random_store(400, 2, seed=seed, spread=1.5)
    s.means[:20, 1] = -6.0  # behind the camera: culled
    s.means[20:40, 0] = 40.0  # far off screen: culled
    return s


@pytest.mark.parametrize("antialiased", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_projection_alone(ext, seed, antialiased):
    s, cam = scene(seed), front_camera(96, 72)
    means2d, conics, opac, colors, depths, extents, radii = ext.project_fwd(
        s.means, s.log_scales, s.quats, s.opacity_logits, s.sh, *_camera_args(cam), 2, antialiased)
    ref, ref_means2d, ref_radii = project(s, cam, 2, antialiased)
    assert torch.equal(radii > 0, ref_radii > 0)  # the same Gaussians survive culling
    assert torch.equal(radii, ref_radii)
    ids = ref.ids
    for name, got, want, tol in (("means2d", means2d[ids], ref.means2d, 1e-5), ("conics", conics[ids], ref.conics, 1e-4),
                                 ("opacities", opac[ids], ref.opacities, 1e-6), ("colors", colors[ids], ref.colors, 1e-6),
                                 ("depths", depths[ids], ref.depths, 1e-6), ("extents", extents[ids], ref.extent, 1e-4)):
        assert torch.allclose(got, want, rtol=1e-5, atol=tol), (name, float((got - want).abs().max()))
    assert torch.allclose(means2d, ref_means2d, rtol=1e-5, atol=1e-4)  # every Gaussian's, as the reference gives it
    culled = radii == 0
    for t in (conics, opac, colors, depths, extents):  # zeroed where culled
        assert not t[culled].any()


@pytest.mark.parametrize("seed", [0, 1])
def test_blend_alone_on_the_references_projection(ext, seed):
    from splat.render import rasterize

    s, cam = scene(seed), front_camera(96, 72)
    ref, ref_means2d, ref_radii = project(s, cam, 2, False)
    n, ids = len(s), ref.ids

    def full(values, *shape):
        out = torch.zeros(n, *shape, dtype=values.dtype)
        out[ids] = values.detach()
        return out.contiguous()

    bg = torch.tensor([0.1, 0.2, 0.3])
    color, alpha, depth, *_ = ext.rasterize_fwd(
        full(ref.means2d, 2), full(ref.conics, 3), full(ref.opacities), full(ref.colors, 3), full(ref.depths),
        full(ref.extent, 2), ref_radii.contiguous(), cam.width, cam.height, bg, None, 0)
    want = rasterize(s, cam, backend="torch", sh_degree=2, background=bg)
    assert torch.allclose(color, want.color[0], atol=2e-6), float((color - want.color[0]).abs().max())
    assert torch.allclose(alpha, want.alpha[0], atol=2e-6)
    assert torch.allclose(depth, want.depth[0], rtol=1e-5, atol=1e-5)
