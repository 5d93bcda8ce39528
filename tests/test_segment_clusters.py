"""Click segmentation by the scene's clusters: preparation, picks at each level, the cache, failure paths."""

import json

import pytest
import torch

from splat import GaussianStore
from splat.camera import Camera
from splat.cli import main
from splat.errors import SplatError
from splat.io.ply import load_ply
from splat.segment import click_select, label_votes, render_labels
from splat.segment.clusters import METHOD, pick_cluster, prepare_clusters, store_fingerprint
from test_segment import box_points, cams, tabletop


def _centre_pixel(mask: torch.Tensor) -> tuple[float, float]:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    j = int(torch.argmin((ys - ys.float().mean()) ** 2 + (xs - xs.float().mean()) ** 2))
    return float(xs[j]) + 0.5, float(ys[j]) + 0.5


def _precision_recall(store, views, sel, want):
    """Weighted by how much each Gaussian shows in the views (hidden ones cannot be judged)."""
    w = label_votes(store, views, [torch.zeros(v.height, v.width, dtype=torch.long) for v in views], backend="cpu")[0]
    return float((w * (sel & want)).sum() / (w * sel).sum()), float((w * (sel & want)).sum() / (w * want).sum())


@pytest.fixture(scope="module")
def prepared():
    store, truth = tabletop()
    views = cams(12)
    return store, truth, views, prepare_clusters(store, views, backend="cpu")


@pytest.mark.parametrize("obj", [0, 1, 2])  # floor, ball, box
def test_a_click_picks_the_clicked_object(prepared, obj):
    store, truth, views, clusters = prepared
    gt = store.clone()
    gt.extras["labels"] = truth
    view = views[0]
    sel = pick_cluster(store, clusters, view, _centre_pixel(render_labels(gt, view, backend="cpu") == obj), backend="cpu")
    precision, recall = _precision_recall(store, views, sel, truth == obj)
    assert precision > 0.95 and recall > 0.9, (precision, recall)


def test_every_gaussian_has_a_cluster_and_preparation_is_deterministic(prepared):
    store, _, views, clusters = prepared
    for level, labels in clusters.labels.items():
        assert labels.shape == (len(store),) and (labels >= 0).all(), level
        assert labels.max() + 1 == clusters.counts()[level]
    again = prepare_clusters(store, views, backend="cpu")
    assert all(torch.equal(clusters.labels[k], again.labels[k]) for k in clusters.labels)
    assert clusters.fingerprint == store_fingerprint(store) == again.fingerprint
    assert clusters.counts()["part"] >= clusters.counts()["object"] >= clusters.counts()["group"]
    # each part lies in one object
    part, obj = clusters.labels["part"], clusters.labels["object"]
    assert all(len(torch.unique(obj[part == k])) == 1 for k in range(int(part.max()) + 1))


def floor_points(g: torch.Generator) -> torch.Tensor:
    """[4000, 3] points on the floor z = 0, x and y in [-2, 2]."""
    return torch.cat([torch.rand(4000, 2, generator=g) * 4 - 2, torch.zeros(4000, 1)], 1)


def on_a_floor(floor: torch.Tensor, points: torch.Tensor, colours: torch.Tensor) -> GaussianStore:
    """A grey floor of flat Gaussians at ``floor`` [4000, 3] (the first rows) and round opaque
    Gaussians at ``points`` [M, 3] of ``colours`` [M, 3]."""
    means = torch.cat([floor, points])
    n = len(means)
    scales = torch.full((n, 3), 0.04)
    scales[:4000, 2] = 0.005
    return GaussianStore.from_activated(means, scales, torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4).clone(),
                                        torch.full((n,), 0.95), torch.cat([torch.full((4000, 3), 0.6), colours]))


def prepared_view(store: GaussianStore, truth: torch.Tensor):
    """(12 views of 128 px, the store's clusters, the first view, its rendered truth labels)."""
    views = cams(12, 128)
    gt = store.clone()
    gt.extras["labels"] = truth
    return views, prepare_clusters(store, views, backend="cpu"), views[0], render_labels(gt, views[0], backend="cpu")


def stacked_boxes() -> tuple[GaussianStore, torch.Tensor]:
    """A floor (label 0), a blue box (1) and an orange box standing on it (2): the two boxes
    touch over a whole face, with no step in depth between them."""
    g = torch.Generator().manual_seed(1)
    floor = floor_points(g)
    lower = box_points(2500, [0.8, 0.8, 0.5], [0.0, 0.0, 0.25], g)
    upper = box_points(2000, [0.8, 0.8, 0.5], [0.0, 0.0, 0.75], g)
    colours = torch.cat([torch.tensor([[0.1, 0.3, 0.9]]).expand(2500, 3), torch.tensor([[0.95, 0.55, 0.1]]).expand(2000, 3)])
    store = on_a_floor(floor, torch.cat([lower, upper]), colours)
    return store, torch.cat([torch.zeros(4000), torch.ones(2500), torch.full((2000,), 2)]).long()


def test_the_object_level_splits_touching_objects_of_different_colours():
    store, truth = stacked_boxes()
    views, clusters, view, labels = prepared_view(store, truth)
    for obj in (1, 2):
        sel = pick_cluster(store, clusters, view, _centre_pixel(labels == obj), "object", backend="cpu")
        precision, recall = _precision_recall(store, views, sel, truth == obj)
        assert precision > 0.95 and recall > 0.75, (obj, precision, recall)
    # no depth step separates the two boxes: the group level holds both
    sel = pick_cluster(store, clusters, view, _centre_pixel(labels == 2), "group", backend="cpu")
    precision, recall = _precision_recall(store, views, sel, truth > 0)
    assert precision > 0.95 and recall > 0.75, (precision, recall)


def two_colour_box() -> tuple[GaussianStore, torch.Tensor]:
    """A floor (label 0) with a blue box standing on it whose top face is red: box
    Gaussians 1, its top face's 2."""
    g = torch.Generator().manual_seed(2)
    floor = floor_points(g)
    box = box_points(3000, [1.0, 1.0, 0.6], [0.0, 0.0, 0.3], g)
    top = box[:, 2] > 0.6 - 1e-6
    colours = torch.tensor([[0.1, 0.3, 0.9]]).expand(3000, 3).clone()
    colours[top] = torch.tensor([0.9, 0.1, 0.1])
    return on_a_floor(floor, box, colours), torch.cat([torch.zeros(4000), torch.ones(3000) + top.float()]).long()


def test_a_plain_click_picks_the_whole_box_and_a_part_click_its_face():
    store, truth = two_colour_box()
    views, clusters, view, labels = prepared_view(store, truth)
    pixel = _centre_pixel(labels == 2)  # on the red top
    sel = pick_cluster(store, clusters, view, pixel, "object", backend="cpu")
    precision, recall = _precision_recall(store, views, sel, truth > 0)
    # the top and the sides (the box's bottom rim, seen at a graze, goes with the floor)
    assert precision > 0.95 and recall > 0.6 and int((sel & (truth == 1)).sum()) > 1500, (precision, recall)
    # the face alone (where it meets the sides, some of its rim goes with them)
    sel = pick_cluster(store, clusters, view, pixel, "part", backend="cpu")
    precision, recall = _precision_recall(store, views, sel, truth == 2)
    assert precision > 0.95 and recall > 0.6, (precision, recall)


def test_the_neighbour_graph_bridges_clumps_whose_nearest_neighbours_are_each_other():
    from splat.segment.linkage import neighbour_edges

    # two clumps of 20 near-copies (as 3DGS-MCMC leaves them) 5 cm apart, and a spread of
    # points further away: every k-nearest neighbour of a clump lies in it, yet the clumps
    # are neighbours and must be able to join
    g = torch.Generator().manual_seed(0)
    clumps = [torch.tensor([x, 0.0, 0.0]) + 1e-4 * torch.rand(20, 3, generator=g) for x in (0.0, 0.05)]
    spread = torch.rand(500, 3, generator=g) + torch.tensor([0.5, 0.0, 0.0])
    edges = neighbour_edges(torch.cat([*clumps, spread]), torch.ones(540, dtype=torch.bool), 8)
    clump = torch.cat([torch.zeros(20), torch.ones(20), torch.full((500,), 2)]).long().numpy()
    across = clump[edges[:, 0]] != clump[edges[:, 1]]
    pairs = {tuple(sorted(p)) for p in zip(clump[edges[across, 0]], clump[edges[across, 1]])}
    assert (0, 1) in pairs
    assert all(int((clump[edges[:, 0]] == c).sum()) >= 20 * 8 for c in (0, 1))  # the k-nearest edges stay


def test_a_small_piece_in_the_wrong_group_joins_the_object_whose_colour_it_shares():
    import numpy as np

    from splat.segment.clusters import ClusterParams, object_level

    # A (100 Gaussians, group 0) and B (100, group 1) differ in colour in every view; a piece
    # of A (10, colour of A) was put in B's group by the geometric table and touches both
    chain = lambda lo, hi: np.stack([np.arange(lo, hi - 1), np.arange(lo + 1, hi)], 1)  # noqa: E731
    edges = np.concatenate([chain(0, 100), chain(100, 200), chain(200, 210),
                            np.stack([np.arange(200, 210), np.arange(90, 100)], 1),
                            np.stack([np.arange(200, 210), np.arange(100, 110)], 1)])
    colour = np.zeros((4, 210), np.int64)
    colour[:, 100:200] = 1
    group = np.r_[np.zeros(100), np.ones(110)].astype(np.int64)
    flat = np.zeros(210, bool)
    obj = object_level(colour, edges, group, flat, flat, ClusterParams())[1]
    assert len(set(obj[:100])) == 1 and len(set(obj[100:200])) == 1 and obj[0] != obj[100]
    assert (obj[200:] == obj[0]).all()


def test_two_colour_pieces_of_one_group_join_across_a_convex_fold_not_across_a_flat_seam():
    import numpy as np

    from splat.segment.clusters import ClusterParams, object_level

    # two faces of one box (one group), each its own colour segment in every view, side by side
    # along 30 edges: across a convex edge they are one object, across a flat seam two
    chain = lambda lo, hi: np.stack([np.arange(lo, hi - 1), np.arange(lo + 1, hi)], 1)  # noqa: E731
    edges = np.concatenate([chain(0, 100), chain(100, 200), np.stack([np.arange(30), np.arange(100, 130)], 1)])
    colour = np.zeros((4, 200), np.int64)
    colour[:, 100:] = 1
    group, flat = np.zeros(200, np.int64), np.zeros(200, bool)
    rim = flat.copy()
    rim[:30] = rim[100:130] = True
    parts, obj = object_level(colour, edges, group, flat, rim, ClusterParams())
    assert len(set(obj)) == 1 and len(set(parts)) == 2  # one object, its faces two parts
    assert len(set(object_level(colour, edges, group, flat, flat, ClusterParams())[1])) == 2
    assert len(set(object_level(colour, edges, group, rim, rim, ClusterParams())[1])) == 2  # a crease there too


def test_a_small_piece_whose_colour_agrees_with_none_around_it_stays_an_object():
    import numpy as np

    from splat.segment.clusters import ClusterParams, object_level

    # foliage (0-99, segment 1 in every view) and a wall (100-199, segment 2); a stem of 10
    # (200-209) in the wall's group, of the foliage's segment, touching the foliage by one
    # edge and the wall by ten: its boundary agrees at 1/11, so it stays apart, as an object
    # and a part, though its histogram matches the foliage's
    chain = lambda lo, hi: np.stack([np.arange(lo, hi - 1), np.arange(lo + 1, hi)], 1)  # noqa: E731
    edges = np.concatenate([chain(0, 100), chain(100, 200), chain(200, 210),
                            np.stack([np.arange(200, 210), np.arange(100, 110)], 1), [[200, 0]]])
    colour = np.ones((4, 210), np.int64)
    colour[:, 100:200] = 2
    group = np.r_[np.zeros(100), np.ones(110)].astype(np.int64)
    flat = np.zeros(210, bool)
    parts, obj = object_level(colour, edges, group, flat, flat, ClusterParams())
    for labels in (parts, obj):
        assert len(set(labels)) == 3 and len(set(labels[200:])) == 1 and labels[200] not in (labels[0], labels[100])
    small = ClusterParams(distinct_part=0.05)  # below the stem's agreement: it joins the foliage
    assert len(set(object_level(colour, edges, group, flat, flat, small)[1])) == 2


def test_pieces_of_one_colour_join_across_creases_once_a_strip_between_them_is_absorbed():
    import numpy as np

    from splat.segment.clusters import ClusterParams, object_level

    # two faces of one box (0..59, 70..129) parted by its rim (60..69), which the colour cut out
    # as a segment of its own and the rendered depth creased. The rim is too small to stay a
    # cluster and joins a face; then the two faces touch across a crease, and their segments
    # agree in every view: one object. Faces of two colours stay two.
    chain = lambda lo, hi: np.stack([np.arange(lo, hi - 1), np.arange(lo + 1, hi)], 1)  # noqa: E731
    edges = np.concatenate([chain(0, 60), chain(60, 70), chain(70, 130),
                            np.stack([np.arange(50, 60), np.arange(60, 70)], 1),
                            np.stack([np.arange(60, 70), np.arange(70, 80)], 1)])
    group, creased, flat = np.zeros(130, np.int64), np.zeros(130, bool), np.zeros(130, bool)
    creased[60:70] = True
    colour = np.ones((4, 130), np.int64)
    colour[:, 60:70] = 2
    assert len(set(object_level(colour, edges, group, creased, flat, ClusterParams())[1])) == 1
    colour[:, 70:] = 3
    assert len(set(object_level(colour, edges, group, creased, flat, ClusterParams())[1])) == 2


def touching_balls() -> tuple[GaussianStore, torch.Tensor]:
    """A floor (label 0) and two balls of one colour side by side (1, 2), touching: from some
    views no depth step and no colour edge parts them, only the fold between them."""
    g = torch.Generator().manual_seed(2)
    floor = floor_points(g)
    r = 0.35
    balls = [torch.nn.functional.normalize(torch.randn(1500, 3, generator=g), dim=1) * r + torch.tensor([x, 0.0, r])
             for x in (-r, r)]
    store = on_a_floor(floor, torch.cat(balls), torch.tensor([[0.9, 0.2, 0.1]]).expand(3000, 3))
    return store, torch.cat([torch.zeros(4000), torch.ones(1500), torch.full((1500,), 2)]).long()


def test_the_object_level_splits_touching_objects_of_one_colour_at_their_crease():
    store, truth = touching_balls()
    views, clusters, view, labels = prepared_view(store, truth)
    for obj in (1, 2):
        sel = pick_cluster(store, clusters, view, _centre_pixel(labels == obj), "object", backend="cpu")
        precision, recall = _precision_recall(store, views, sel, truth == obj)
        assert precision > 0.95 and recall > 0.9, (obj, precision, recall)


def room() -> tuple[GaussianStore, torch.Tensor, list[Camera]]:
    """The inside of a 4 x 4 x 2.4 room (label 0: floor, walls and ceiling, each wall striped in
    its own colours) with a ball standing on the floor (label 1), and cameras inside looking out."""
    g = torch.Generator().manual_seed(5)
    n = 14000
    shell = box_points(n, [4.0, 4.0, 2.4], [0.0, 0.0, 1.2], g)
    axis = ((shell - torch.tensor([0.0, 0.0, 1.2])).abs() / torch.tensor([2.0, 2.0, 1.2])).argmax(1)
    scales = torch.full((n, 3), 0.08)
    scales[torch.arange(n), axis] = 0.004  # flat along each face
    stripe = ((shell[:, 0] + shell[:, 1] + shell[:, 2]) * 3).floor().remainder(2)
    face = axis * 2 + (shell[torch.arange(n), axis] > torch.tensor([0.0, 0.0, 1.2])[axis]).long()
    palette = torch.rand(6, 2, 3, generator=g) * 0.6 + 0.2
    colours = palette[face, stripe.long()]
    d = torch.nn.functional.normalize(torch.randn(1500, 3, generator=g), dim=1)
    ball = d * 0.35 + torch.tensor([0.8, 0.9, 0.35])
    means = torch.cat([shell, ball])
    scales = torch.cat([scales, torch.full((1500, 3), 0.04)])
    colours = torch.cat([colours, torch.tensor([[0.9, 0.2, 0.1]]).expand(1500, 3)])
    m = len(means)
    store = GaussianStore.from_activated(means, scales, torch.tensor([[1.0, 0, 0, 0]]).expand(m, 4).clone(),
                                         torch.full((m,), 0.95), colours)
    labels = torch.cat([torch.zeros(n), torch.ones(1500)]).long()
    views = [Camera.look_at((0.3 * torch.cos(a), 0.3 * torch.sin(a), 1.1), (3 * torch.cos(a), 3 * torch.sin(a), 0.7),
                            (0, 0, 1), 80, 96, 96) for a in torch.arange(12) * (2 * torch.pi / 12)]
    return store, labels, views


def test_in_a_room_floor_walls_and_ceiling_are_one_object_and_the_ball_another():
    from splat.segment.click import GrowParams, scene_planes

    store, truth, views = room()
    assert len(scene_planes(store, GrowParams())) >= 5  # the floor, four walls (and the ceiling where seen)
    clusters = prepare_clusters(store, views, backend="cpu")
    gt = store.clone()
    gt.extras["labels"] = truth
    for obj in (0, 1):
        view = next(v for v in views if (render_labels(gt, v, backend="cpu") == obj).sum() > 200)
        sel = pick_cluster(store, clusters, view, _centre_pixel(render_labels(gt, view, backend="cpu") == obj),
                           backend="cpu")
        precision, recall = _precision_recall(store, views, sel, truth == obj)
        assert precision > 0.9 and recall > 0.8, (obj, precision, recall)


def test_a_click_on_empty_background_is_nothing_there(prepared):
    store, _, views, clusters = prepared
    up = Camera.look_at((0.0, -4.0, 0.5), (0.0, 0.0, 10.0), (0, 1, 0), 40, 32, 32)  # looking at the sky
    with pytest.raises(SplatError, match="nothing there"):
        pick_cluster(store, clusters, up, (16, 16), backend="cpu")
    with pytest.raises(SplatError, match="nothing there"):
        click_select(store, up, [(16, 16)], views, backend="cpu")
    with pytest.raises(SplatError, match="outside"):
        pick_cluster(store, clusters, views[0], (64, 3), backend="cpu")
    with pytest.raises(SplatError, match="level"):
        pick_cluster(store, clusters, views[0], (3, 3), "medium", backend="cpu")


def test_a_grown_click_no_other_view_sees_falls_back_to_the_clicked_view():
    store, truth = tabletop()
    view = cams(12)[0]
    gt = store.clone()
    gt.extras["labels"] = truth
    pixel = _centre_pixel(render_labels(gt, view, backend="cpu") == 1)
    away = [Camera.look_at((0.0, 6.0, 1.0), (0.0, 12.0, 1.0), (0, 0, 1), 40, 64, 64)]  # sees none of the scene
    sel = click_select(store, view, [pixel], away, backend="cpu")
    precision, recall = _precision_recall(store, [view], sel, truth == 1)
    assert precision > 0.9 and recall > 0.5, (precision, recall)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from splat.scenes import generate

    d = tmp_path_factory.mktemp("segclusters")
    data = generate("stacked", d / "data", size=48, views=12, points=2000)
    assert main(["train", str(data), "--out", str(d / "run"), "--steps", "30", "--backend", "cpu",
                 "--checkpoint-every", "1000"]) == 0
    return d / "run"


def test_prepare_caches_clusters_and_clicks_use_them(capsys, tiny_run, tmp_path):
    code = main(["segment", "prepare", str(tiny_run)])
    out, err = capsys.readouterr()
    assert code == 0, err
    info = json.loads(out.strip().splitlines()[-1])
    assert (tiny_run / "segments.pt").is_file() and info["wrote"] == str(tiny_run / "segments.pt")
    assert info["clusters"]["object"] >= info["clusters"]["group"] >= 1 and info["views"] > 0
    for extra in ([], ["--group"], ["--part"]):
        code = main(["segment", "click", str(tiny_run), "--view", "0", "--pixel", "24,30", *extra,
                     "--out", str(tmp_path / "l.ply")])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "preparing" not in err  # the cache fits the scene
        selected = json.loads(out)["selected"]
        assert selected > 0 and int((load_ply(tmp_path / "l.ply").labels == json.loads(out)["label"]).sum()) == selected


def test_a_stale_or_broken_cache_is_prepared_again(capsys, tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "segments.pt").write_bytes(b"not a cache")
    code = main(["segment", "click", str(run), "--view", "0", "--pixel", "24,30", "--out", str(tmp_path / "a.ply")])
    _, err = capsys.readouterr()
    assert code == 0 and "preparing" in err, err
    # the scene's geometry changes: the clusters are made again for it
    store = load_ply(run / "scene.ply")
    store.means[0] += 0.01
    from splat.io.ply import save_ply

    save_ply(store, run / "scene.ply")
    code = main(["segment", "click", str(run), "--view", "0", "--pixel", "24,30", "--out", str(tmp_path / "b.ply")])
    _, err = capsys.readouterr()
    assert code == 0 and "the scene changed" in err, err
    # clusters an older version of the method made are made again (a cache written before the
    # version was kept reads as version 1)
    from splat.segment.runs import load_clusters, save_clusters

    old = load_clusters(run / "segments.pt")
    old.method = 1
    save_clusters(old, run / "segments.pt")
    code = main(["segment", "click", str(run), "--view", "0", "--pixel", "24,30", "--out", str(tmp_path / "c.ply")])
    _, err = capsys.readouterr()
    assert code == 0 and "older method" in err, err
    assert load_clusters(run / "segments.pt").method == METHOD


@pytest.mark.parametrize("args,message", [
    (["click", "{run}", "--view", "0", "--pixel", "1,1", "--method", "magic"], "use clusters or grow"),
    (["click", "{run}", "--view", "0", "--pixel", "100,1"], "outside"),
    (["click", "{run}", "--view", "0", "--pixel", "1,1", "--group", "--part"], "pick one level"),
    (["prepare", "{tmp}"], "not a training run"),
])
def test_cluster_click_errors_are_one_line(capsys, tiny_run, tmp_path, args, message):
    args = [a.format(run=tiny_run, tmp=tmp_path) for a in args]
    code = main(["segment", *args])
    _, err = capsys.readouterr()
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1, err
