"""--appearance and --transients: identity maps change nothing, clean scenes stay unmasked,
resume is bitwise with both flags, and the masks and maps land in the run."""

from __future__ import annotations

import torch
import pytest

from splat.train import TrainConfig, Trainer
from splat.train.appearance import Appearance
from splat.train.run import Run
from splat.train.transients import TransientMasks

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    from splat.scenes import generate

    return generate("default", tmp_path_factory.mktemp("scene") / "default64", size=64, views=16, points=3000)


def _config(scene, **kw) -> TrainConfig:
    base = dict(data=str(scene), steps=24, backend="cpu", cap=4000, sh_interval=8, checkpoint_every=12, log_every=4,
                appearance=True, transients=True, appearance_start=4, transients_start=4,
                mcmc={"refine_start": 2, "refine_every": 5, "init_scale": 1.0})
    base.update(kw)
    return TrainConfig.from_dict(base)


def test_identity_map_reproduces_the_render_exactly():
    image = torch.rand(20, 30, 3) * 1.4 - 0.2  # out of [0, 1] too: the map itself never clips
    app = Appearance([3, 5], start=0, reg=0.1, device=torch.device("cpu"))
    assert torch.equal(app.apply(image, 5), image)


def test_a_map_recovers_an_exposure_and_stays_centred():
    g = torch.Generator().manual_seed(0)
    render = torch.rand(40, 40, 3, generator=g) * 0.6
    photo = render * torch.tensor([1.3, 1.2, 1.25]) + 0.02
    app = Appearance([0, 1], start=0, reg=0.0, device=torch.device("cpu"), spread=0.0)  # the gate open
    app.fit(0, render, photo, None, step=0)
    # the mean over the two views is the identity: view 0 takes half the exposure, view 1 the rest
    assert torch.allclose(app.maps.mean(0), torch.cat([torch.eye(3), torch.zeros(3, 1)], 1), atol=1e-6)
    assert torch.allclose(app.apply(render, 0) - app.apply(render, 1), photo - render, atol=1e-4)


def test_maps_apply_only_when_their_gains_spread_beyond_one_exposure():
    g = torch.Generator().manual_seed(2)
    render = torch.rand(40, 40, 3, generator=g) * 0.6
    views = list(range(6))

    def fitted(gains):
        app = Appearance(views, start=0, reg=0.0, device=torch.device("cpu"), spread=0.04)
        for v, gain in zip(views, gains):
            app.fit(v, render, render * gain, None, step=0)
        return app

    one_exposure = fitted([1.0, 1.02, 0.98, 1.01, 0.99, 1.0])  # the spread a clean capture's solves show
    assert one_exposure.gate == 0.0
    assert torch.equal(one_exposure.apply(render, 1), render)
    wandering = fitted([0.7, 1.3, 1.0, 0.8, 1.2, 1.0])  # an auto exposure: spread about 0.2
    assert wandering.gate == 1.0
    a = wandering.maps[1]  # applied in full
    assert torch.equal(wandering.apply(render, 1), render @ a[:, :3].T + a[:, 3])
    assert float(a[0, 0]) > 1.2  # and it holds that view's brighter exposure
    # between one and two times the spread, part of each map applies
    assert 0.0 < fitted([0.94, 1.06, 1.0, 0.94, 1.06, 1.0]).gate < 1.0


def test_masks_catch_a_blob_and_leave_a_clean_view_empty():
    g = torch.Generator().manual_seed(1)
    photo = torch.rand(80, 80, 3, generator=g)
    render = photo + 0.02 * torch.randn(80, 80, 3, generator=g)
    masks = TransientMasks(start=0, threshold=3.0)
    keep = masks.weight(0, render, photo, step=0)
    assert float((1 - keep).mean()) == 0.0  # a clean view: nothing masked
    occluded = photo.clone()
    occluded[20:40, 30:50] = torch.tensor([0.9, 0.1, 0.8])
    keep = masks.weight(1, render, occluded, step=0)
    truth = torch.zeros(80, 80, dtype=torch.bool)
    truth[20:40, 30:50] = True
    pred = masks.masks[1]
    assert (pred & truth).sum() / (pred | truth).sum() > 0.8
    assert torch.equal(keep == 0, pred)


def test_resume_is_exact_with_both_flags(tiny_scene, tmp_path):
    one = Trainer.start(_config(tiny_scene), tmp_path / "one")
    one.train()
    two = Trainer.start(_config(tiny_scene), tmp_path / "two")
    two.train(stop_after=12)
    del two
    two = Trainer.resume(tmp_path / "two")
    two.train()
    for k in one.adam.params:
        assert torch.equal(one.adam.params[k], two.adam.params[k]), k
    assert torch.equal(one.appearance.maps, two.appearance.maps)
    assert one.transients.masks.keys() == two.transients.masks.keys()
    assert all(torch.equal(one.transients.masks[i], two.transients.masks[i]) for i in one.transients.masks)
    run = Run(tmp_path / "two")
    assert run.appearance_path.is_file()
    assert sorted(p.name for p in run.masks_dir.glob("*.png")) == [f"{i:04d}.png" for i in sorted(two.transients.masks)]
    # a clean scene: the masks stay near empty
    assert two.transients.coverage() < 0.05


def test_flags_off_is_plain_training(tiny_scene, tmp_path):
    plain = Trainer.start(_config(tiny_scene, appearance=False, transients=False, steps=8), tmp_path / "plain")
    plain.train()
    assert plain.appearance is None and plain.transients is None
    assert not Run(tmp_path / "plain").masks_dir.exists()


def _plane_view(camera):
    """([H, W] camera depth, [H, W, 2] world x, y) of the ground plane z = 0 seen by ``camera``."""
    K, V = camera.K.float(), camera.viewmat.float()
    v, u = torch.meshgrid(torch.arange(camera.height) + 0.5, torch.arange(camera.width) + 0.5, indexing="ij")
    rays = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)  # z = 1
    R, t = V[:3, :3], V[:3, 3]
    origin, dirs = -R.T @ t, rays @ R  # world
    depth = -origin[2] / dirs[..., 2]
    return depth, (origin + depth[..., None] * dirs)[..., :2]


def _four_views_and_a_blob():
    """(4 cameras looking at the ground from nearby, [64, 64] bool: a passer-by's pixels in view 0)."""
    from splat import Camera

    cams = [Camera.look_at(pos, (0, 0, 0), (0, 0, 1), 50, 64, 64) for pos in
            [(0.3, -3.0, 2.0), (-0.3, -3.0, 2.0), (0.0, -3.3, 2.3), (0.4, -2.8, 1.8)]]
    blob = torch.zeros(64, 64, dtype=torch.bool)
    blob[6:22, 40:58] = True
    return cams, blob


def test_what_every_view_fails_on_is_not_transient_and_a_blob_in_one_view_is():
    cams, blob = _four_views_and_a_blob()
    g = torch.Generator().manual_seed(3)
    masks = TransientMasks(start=0, threshold=3.0, cameras=cams, views=[0, 1, 2, 3])
    for view in (1, 2, 3, 0):
        depth, xy = _plane_view(cams[view])
        render = torch.rand(64, 64, 3, generator=g) * 0.5 + 0.25
        photo = render.clone()
        unlearnt = (xy - torch.tensor([-0.2, 0.1])).norm(dim=-1) < 0.35  # a patch of the ground, in every view
        photo[unlearnt] += 0.3
        if view == 0:
            photo[blob] = torch.tensor([0.95, 0.05, 0.9])  # a passer-by, in view 0 only
        masks.weight(view, render, photo.clamp(0, 1), step=0, depth=depth[..., None])
    got = masks.masks[0]
    assert (got & blob).sum() / (got | blob).sum() > 0.6
    depth, xy = _plane_view(cams[0])
    unlearnt = (xy - torch.tensor([-0.2, 0.1])).norm(dim=-1) < 0.25  # its inside, away from the blur of the box
    assert float(got[unlearnt].float().mean()) < 0.1
    # without the other views, the same patch is masked
    alone = TransientMasks(start=0, threshold=3.0)
    render = torch.rand(64, 64, 3, generator=g) * 0.5 + 0.25
    photo = render.clone()
    photo[(xy - torch.tensor([-0.2, 0.1])).norm(dim=-1) < 0.35] += 0.3
    alone.weight(0, render, photo, step=0)
    assert float(alone.masks[0][unlearnt].float().mean()) > 0.5


def test_a_blob_no_other_view_can_check_is_not_masked():
    """The same blob as above, but the other views' depths put a wall in front of the ground:
    none of them sees the point, so nothing shows the blob to be transient."""
    cams, blob = _four_views_and_a_blob()
    g = torch.Generator().manual_seed(3)
    checked, unchecked = (TransientMasks(start=0, threshold=3.0, cameras=cams, views=[0, 1, 2, 3]) for _ in range(2))
    for view in (1, 2, 3, 0):
        depth, _ = _plane_view(cams[view])
        render = torch.rand(64, 64, 3, generator=g) * 0.5 + 0.25
        photo = render.clone()
        if view == 0:
            photo[blob] = torch.tensor([0.95, 0.05, 0.9])
        checked.weight(view, render, photo, step=0, depth=depth[..., None])
        wall = depth if view == 0 else torch.full_like(depth, 0.5)  # the others see something near them
        unchecked.weight(view, render, photo, step=0, depth=wall[..., None])
    assert (checked.masks[0] & blob).sum() / (checked.masks[0] | blob).sum() > 0.6
    assert not unchecked.masks[0].any()


def test_a_strip_narrower_than_the_box_is_not_masked_and_a_blob_is():
    g = torch.Generator().manual_seed(2)
    photo = torch.rand(160, 160, 3, generator=g) * 0.5 + 0.25
    render = photo.clone()
    occluded = photo.clone()
    # the same error (+0.3) along a 2 px highlight, flagged narrower than the 5 px box, and over a passer-by
    occluded[100:102, 10:150] += 0.3
    occluded[20:60, 40:80] += 0.3
    masks = TransientMasks(start=0, threshold=3.0)
    masks.weight(0, render, occluded, step=0)
    got = masks.masks[0]
    assert not got[95:110].any()
    truth = torch.zeros(160, 160, dtype=torch.bool)
    truth[20:60, 40:80] = True
    assert (got & truth).sum() / (got | truth).sum() > 0.8


def test_a_region_under_one_percent_of_the_view_is_not_masked():
    g = torch.Generator().manual_seed(5)
    photo = torch.rand(100, 100, 3, generator=g) * 0.5 + 0.25
    occluded = photo.clone()
    occluded[10:18, 10:18] += 0.4  # 64 px: 0.64 % of the view, a glint
    occluded[50:62, 50:62] += 0.4  # 144 px: 1.44 %
    masks = TransientMasks(start=0, threshold=3.0)
    masks.weight(0, photo, occluded, step=0)
    got = masks.masks[0]
    assert not got[:30, :30].any()
    assert got[52:60, 52:60].all()
