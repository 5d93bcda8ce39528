"""The CPU backend stage by stage against the reference, so a failing agreement names its stage:
the projection alone, then the blend alone fed the reference's own projection.
(Binning is checked by ``test_cpu_backend.test_chunk_masks_hold_every_pixel_a_gaussian_reaches``.)"""

import pytest
import torch

from conftest import front_camera, random_store
from splat.render.cpu_backend import camera_args, load_cpu_extension
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
        s.means, s.log_scales, s.quats, s.opacity_logits, s.sh, *camera_args(cam), 2, antialiased)
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


class _BatchedStandIn:
    """The CUDA ops' calling convention (a batch of cameras per call; ranges and ids kept for
    the backward pass) over the CPU kernels, one camera at a time: it runs the batched branch
    of the shared autograd function on a machine without a GPU."""

    def __init__(self, ext):
        self.ext, self.lists = ext, {}

    def rasterize_fwd(self, means2d, conics, opac, colors, depths, extents, radii, W, H, bg, labels, num_labels,
                      with_contributions):
        per = [self.ext.rasterize_fwd(means2d[c], conics[c], opac[c], colors[c], depths[c], extents[c], radii[c], W, H,
                                      bg[c], None, 0) for c in range(len(means2d))]
        for c, outs in enumerate(per):
            self.lists[c] = list(outs[9:])
        stack = [torch.stack([o[k] for o in per]) for k in range(7)]  # color .. contrib
        cams = torch.arange(len(per), dtype=torch.int32)
        return [*stack, torch.zeros(0), cams, cams.clone(), torch.stack([o[8] for o in per])]

    def rasterize_bwd(self, means2d, conics, opac, colors, depths, extents, radii, ranges, ids, bg, trans_final, depth_sum,
                      last, v_color, v_alpha, v_depth, absgrad):
        per = [self.ext.rasterize_bwd(means2d[c], conics[c], opac[c], colors[c], depths[c], extents[c],
                                      self.lists[int(ranges[c])], bg[c], trans_final[c], depth_sum[c], last[c],
                                      v_color[c], v_alpha[c], v_depth[c], absgrad) for c in range(len(means2d))]
        return [torch.stack([o[k] for o in per]) for k in range(6)]


def test_the_shared_blend_function_in_the_batched_layout(ext):
    from splat.render.native_autograd import BlendFunction

    s = scene(3)
    cams = [front_camera(48, 40), front_camera(48, 40, distance=3.0)]
    inputs = []
    for cam in cams:
        out = ext.project_fwd(s.means, s.log_scales, s.quats, s.opacity_logits, s.sh, *camera_args(cam), 2, False)
        inputs.append([t.detach().clone() for t in out])
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.4, 0.3]], requires_grad=True)
    w = torch.randn(2, 40, 48, 3, generator=torch.Generator().manual_seed(0))

    def run(batched):
        leaves = [torch.stack([inputs[c][k] for c in range(2)]).requires_grad_(True) for k in range(5)]
        extents, radii = torch.stack([i[5] for i in inputs]), torch.stack([i[6] for i in inputs])
        absgrad = torch.zeros(2, len(s), 2)
        if batched:
            color, alpha, depth, *_ = BlendFunction.apply(_BatchedStandIn(ext), True, *leaves, extents, radii, bg, 48, 40,
                                                          None, 0, True, absgrad)
        else:
            per = [BlendFunction.apply(ext, False, *[t[c] for t in leaves], extents[c], radii[c], bg[c], 48, 40, None, 0,
                                       True, absgrad[c]) for c in range(2)]
            color, alpha, depth = (torch.stack([p[k] for p in per]) for k in range(3))
        ((color * w).sum() + alpha.sum() + 0.01 * depth.sum()).backward()
        grads = [t.grad for t in leaves] + [bg.grad.clone()]
        bg.grad = None
        return [color.detach(), alpha.detach(), depth.detach(), absgrad] + grads

    for a, b in zip(run(False), run(True)):
        assert torch.equal(a, b)
