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
    app = Appearance([0, 1], start=0, reg=0.0, device=torch.device("cpu"))
    app.fit(0, render, photo, None, step=0)
    # the mean over the two views is the identity: view 0 takes half the exposure, view 1 the rest
    assert torch.allclose(app.maps.mean(0), torch.cat([torch.eye(3), torch.zeros(3, 1)], 1), atol=1e-6)
    assert torch.allclose(app.apply(render, 0) - app.apply(render, 1), photo - render, atol=1e-4)


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
