"""Segmentation: lifting label masks, rendering labels, click selection, the CLI."""

import json

import pytest
import torch

from splat import GaussianStore
from splat.camera import orbit_cameras
from splat.cli import main
from splat.io.ply import load_ply
from splat.segment import GrowParams, assign_labels, click_select, label_votes, lift_labels, render_labels
from conftest import random_store


def box_points(n: int, size, centre, g: torch.Generator) -> torch.Tensor:
    """[n, 3] points on the faces of an axis-aligned box of ``size`` around ``centre``."""
    f = torch.rand(n, 3, generator=g) - 0.5
    axis = torch.randint(0, 3, (n,), generator=g)
    f[torch.arange(n), axis] = torch.sign(f[torch.arange(n), axis]) * 0.5
    return f * torch.tensor(size) + torch.tensor(centre)


def tabletop(seed: int = 0) -> tuple[GaussianStore, torch.Tensor]:
    """A floor of flat Gaussians (label 0) with a ball (label 1) and a box (label 2) standing on it."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(4000, 2, generator=g) * 4 - 2
    floor = torch.cat([u, torch.zeros(4000, 1)], 1)
    d = torch.nn.functional.normalize(torch.randn(1500, 3, generator=g), dim=1)
    ball = d * 0.4 + torch.tensor([-0.6, 0.0, 0.4])
    box = box_points(1500, [0.6, 0.6, 0.8], [0.7, 0.1, 0.4], g)
    means = torch.cat([floor, ball, box])
    n = len(means)
    scales = torch.full((n, 3), 0.05)
    scales[:4000, 2] = 0.005
    colours = torch.cat([torch.full((4000, 3), 0.6), torch.tensor([[0.9, 0.2, 0.1]]).expand(1500, 3),
                         torch.tensor([[0.1, 0.3, 0.9]]).expand(1500, 3)])
    store = GaussianStore.from_activated(means, scales, torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4).clone(),
                                         torch.full((n,), 0.95), colours)
    labels = torch.cat([torch.zeros(4000), torch.ones(1500), torch.full((1500,), 2)]).long()
    return store, labels


def cams(n=8, size=64):
    return orbit_cameras((0, 0, 0.3), 4.0, n, elevation_deg=35, fov_deg=50, width=size, height=size)


def test_assign_labels_bias_and_unseen():
    votes = torch.tensor([[1.0, 0.6, 0.0, 0.9], [0.0, 0.8, 0.0, 1.0]], dtype=torch.float64)
    assert assign_labels(votes).tolist() == [0, 1, -1, 1]
    assert assign_labels(votes, background_bias=0.5).tolist() == [0, 0, -1, 0]
    assert assign_labels(votes, background_bias=-0.8).tolist() == [0, 1, -1, 1]  # no object vote: stays 0


def test_lifting_rendered_labels_recovers_them():
    store, truth = tabletop()
    gt = store.clone()
    gt.extras["labels"] = truth
    views = cams()
    images = [render_labels(gt, c, backend="cpu") for c in views]
    assert all(len(torch.unique(m)) == 3 for m in images)
    lifted = lift_labels(store, views, images, backend="cpu").labels
    seen = lifted >= 0
    assert seen.float().mean() > 0.8
    right = (lifted == truth).double()
    weight = label_votes(store, views, images, backend="cpu").sum(0)  # how much each Gaussian shows
    assert right[seen].mean() > 0.95  # misses: barely visible Gaussians (the box's bottom face)
    assert (right * weight).sum() / weight.sum() > 0.995
    # the votes agree between the reference and the native backend
    a = label_votes(store, views[:2], images[:2], backend="torch")
    b = label_votes(store, views[:2], images[:2], backend="cpu")
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_unseen_gaussians_stay_unlabelled():
    store = random_store(200, 0, seed=3)
    store.means[:100, 2] += 100.0  # far outside every view
    views = cams(4)
    lifted = lift_labels(store, views, [torch.ones(64, 64, dtype=torch.long)] * 4, backend="cpu").labels
    assert (lifted[:100] == -1).all() and (lifted[100:] == 1).any()


@pytest.mark.parametrize("obj,pixel_from", [(1, "ball"), (2, "box"), (0, "floor")])
def test_click_selects_the_clicked_object(obj, pixel_from):
    store, truth = tabletop()
    views = cams(12)
    gt = store.clone()
    gt.extras["labels"] = truth
    view = views[0]
    m = render_labels(gt, view, backend="cpu")
    ys, xs = torch.nonzero(m == obj, as_tuple=True)
    j = int(torch.argmin((ys - ys.float().mean()) ** 2 + (xs - xs.float().mean()) ** 2))
    sel = click_select(store, view, [(float(xs[j]) + 0.5, float(ys[j]) + 0.5)], views, GrowParams(), backend="cpu")
    want = truth == obj
    # weighted by how much each Gaussian shows in the views (hidden ones cannot be judged)
    w = label_votes(store, views, [torch.zeros(64, 64, dtype=torch.long)] * len(views), backend="cpu")[0]
    precision = (w * (sel & want)).sum() / (w * sel).sum()
    recall = (w * (sel & want)).sum() / (w * want).sum()
    assert precision > 0.95 and recall > 0.9, (float(precision), float(recall))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from splat.scenes import generate

    d = tmp_path_factory.mktemp("seg")
    data = generate("default", d / "data", size=48, views=12, points=2000)
    assert main(["train", str(data), "--out", str(d / "run"), "--steps", "30", "--backend", "cpu",
                 "--checkpoint-every", "1000"]) == 0
    return d


def test_segment_cli_masks_click_and_edit(capsys, tiny_run, tmp_path):
    run, data = tiny_run / "run", tiny_run / "data"
    code = main(["segment", "masks", str(run), "--masks", str(data / "instances"), "--out", str(tmp_path / "l.ply")])
    out, err = capsys.readouterr()
    assert code == 0, err
    info = json.loads(out)
    assert info["views"] == 10 and len(info["labels"]) >= 4
    labels = load_ply(tmp_path / "l.ply").labels
    assert labels is not None and (labels >= 1).sum() > 0
    code = main(["segment", "click", str(run), "--view", "0", "--pixel", "24,30", "--label", "7"])
    out, err = capsys.readouterr()
    assert code == 0, err
    selected = json.loads(out)["selected"]
    assert json.loads(out)["label"] == 7 and selected > 0
    assert int((load_ply(run / "scene.ply").labels == 7).sum()) == selected
    code = main(["edit", "crop", str(run), "--label", "7", "--out", str(tmp_path / "obj.ply")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(load_ply(tmp_path / "obj.ply")) == selected


@pytest.mark.parametrize("args,message", [
    (["masks", "{run}", "--masks", "{tmp}"], "no label image matches"),
    (["masks", "{run}", "--masks", "{tmp}/nope"], "not a folder"),
    (["masks", "{run}", "--masks", "{data}/instances", "--views", "some"], "use train or all"),
    (["click", "{run}", "--view", "99", "--pixel", "1,1"], "out of range"),
    (["click", "{run}", "--view", "0", "--pixel", "100,1"], "outside"),
    (["click", "{run}", "--view", "0", "--pixel", "a"], "expected X,Y"),
    (["click", "{tmp}", "--view", "0", "--pixel", "1,1"], "not a training run"),
])
def test_segment_errors_are_one_line(capsys, tiny_run, tmp_path, args, message):
    args = [a.format(run=tiny_run / "run", data=tiny_run / "data", tmp=tmp_path) for a in args]
    code = main(["segment", *args])
    _, err = capsys.readouterr()
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1, err


def test_colour_label_image_is_refused(tmp_path):
    import numpy as np
    import imageio.v3 as iio

    from splat.errors import SplatError
    from splat.segment.runs import read_label_image

    img = np.zeros((4, 4, 3), np.uint8)
    img[0, 0] = (10, 20, 30)
    iio.imwrite(tmp_path / "c.png", img)
    with pytest.raises(SplatError, match="colour image"):
        read_label_image(tmp_path / "c.png")
    grey = np.array([[0, 3], [2, 1]], np.uint8)
    iio.imwrite(tmp_path / "g.png", grey)
    assert read_label_image(tmp_path / "g.png").tolist() == grey.tolist()
