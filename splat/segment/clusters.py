"""Scene clusters at two levels, from 2D over-segmentation without model weights: what a
click picks from.

1. Views: up to ``max_views`` of the given cameras, rendered at most ``max_side`` pixels a
   side (colour, opacity, median depth).
2. Per view, two 2D over-segmentations (``segments2d``): geometric segments (depth jumps,
   the scene's plane) and colour segments (Felzenszwalb's, inside the geometric bounds).
3. Lifting: each segment image goes through the label solve (``lift.label_votes``); each
   Gaussian takes, per view, the segment that holds most of its blend weight. A view counts
   for a Gaussian only where its weight there is at least ``visible`` × its largest weight
   over the views: a Gaussian hidden behind an object still projects into that object's
   segment with a tiny weight, and must not vote there. This gives a [V, N] table per kind.
4. Grouping (``linkage``) over the k-nearest-neighbour graph of the Gaussians' centres, with
   bridges between the pieces it falls into (``neighbour_edges``: a real capture's clumps):
   * group: average linkage of the geometric table's agreement. Segments that split an
     object in one view (a self-occlusion) and not in others join across the views;
     what views keep apart (a gap, a step, the floor's outline) stays apart.
   * object: inside each group, average linkage of the colour table's agreement, then
     merging of whole clusters whose segment histograms agree across the views (cosine),
     and of clusters whose boundary is a convex fold (a box's edge; ``object_level``); last,
     clusters whose histograms agree closely (``alike``) join whatever lies between them.
     Edges that touch a crease do not count: a Gaussian lies on one where a share of its
     weight over the views falls on concave pixels of the rendered depth (``crease``), the
     fold where one object meets another (a ball on a box, two cylinders side by side) that
     colour segments run across in some views.
     It splits touching objects of different colours (a box on a box, two intersecting
     objects) and, on large texture patterns, parts of a surface. A click picks an object;
     the part level is the finer choice (the colour pieces before the last joins: a box's
     face, a ball's stripe), the group level the coarser one (a stack, a plant with its pot).
5. Clusters of fewer than ``min_cluster`` Gaussians join their strongest neighbour (at the
   object level the one whose colour agrees most, in any group; a part, and so an object,
   may be smaller where its colour agrees with none around it: a thin stem), and
   Gaussians no view saw take the cluster of the nearest Gaussian that a view saw, so a
   selection also holds an object's hidden inside.

A click then costs one render of a small window around the pixel (``pick_cluster``).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..camera import Camera
from ..errors import SplatError
from ..render import rasterize
from ..store import GaussianStore
from .click import GrowParams, _scaled, _surface, check_pixel, concave_pixels, convex_pixels, scene_planes
from .planes import near_planes
from .lift import label_votes
from .linkage import (absorb_small, average_linkage, cluster_linkage, edge_agreement, join_isolated, join_planar,
                      neighbour_edges)
from .segments2d import ColourParams, colour_segments, geometric_segments

# What a click can pick: the object (a plain click), one of its parts (its colour pieces
# before the joins across folds and alike colours: a box's face, a thin stem) or the group
# of touching objects (a stack). Each part lies in one object.
LEVELS = ("object", "part", "group")
# The method's version, kept with the cache: clusters made by another version are made again
# (2: the neighbour graph's bridges and the alike join; 3: the part level; 4: objects made
# of the parts).
METHOD = 4


@dataclass
class ClusterParams:
    """Settings of the precomputation (see the module docstring)."""

    max_side: int = 128
    max_views: int = 32
    grow: GrowParams = field(default_factory=GrowParams)  # what bounds a geometric segment
    colour: ColourParams = field(default_factory=ColourParams)
    visible: float = 0.2
    neighbours: int = 8
    group: float = 0.7  # mean agreement of the geometric table to join at the group level
    object_edges: float = 0.85  # the same for the colour table, inside a group
    object_clusters: float = 0.3  # mean histogram cosine to join clusters at the object level
    min_cluster: int = 50  # smaller clusters join their strongest neighbour
    # ... parts and objects may be smaller, down to ``min_part``, where their colour agrees
    # with none around them (``part_level``): furnished's stem is 7 Gaussians, its piece of
    # 11 agrees at 0.05 (a click on it: 0.140 -> 0.615); the rims where a box's faces meet
    # agree at 0.4-0.8 and join a face
    min_part: int = 5
    distinct_part: float = 0.2
    keep_plane: bool = True  # a group lying on the scene's planes (a floor, a table top, a room's shell) is not split by colour
    plane_share: float = 0.6  # ... an object cluster is a plane's piece when this share of it lies on them
    # a Gaussian lies on a crease when this share of its visible weight falls on concave pixels
    # (``click.concave_pixels``: where one object meets another); at 0.2-0.3 the same clicks on
    # the built-in scenes, at 0.35 two touching cylinders stay one cluster, at 0.15 noise on a
    # room's walls cuts its shell
    crease: float = 0.25
    # ... and on a convex fold (``click.convex_pixels``: a box's edge, a ball's curve) when this
    # share falls on convex pixels. Object clusters of one group whose boundary (at least
    # ``convex_edges`` edges) is convex more than creased, by at least ``convex_join`` of its
    # edges, join: a box's faces, a striped ball's stripes (default's 0.733 -> 0.967); a flat
    # boundary (two boxes stacked flush) stays. The same object-level means for a share of
    # 0.15-0.3 and a join of 0.3-0.7 on the scenes tried (docs/BENCHMARKS.md).
    convex: float = 0.25
    convex_join: float = 0.5
    convex_edges: int = 20
    # Last, neighbouring object clusters whose colour-segment histograms agree at this mean
    # cosine over the views join, even across a crease or a group: the faces of a box that
    # the noisy depth of a room creases everywhere (furnished's lower box 0.401 -> 0.734),
    # a stem and the ball it carries (stacked's stem 0.516 -> 0.909). A narrow
    # margin: two touching balls of one colour (test_segment_clusters) agree at 0.74 through
    # the cluster where they meet, and join at 0.7; at 0.85 the box stays in pieces.
    alike: float = 0.8


@dataclass
class SceneClusters:
    """Per-Gaussian cluster ids at each level, and what they were made from."""

    labels: dict  # level -> [N] int64 (-1 only in a scene no view saw at all)
    fingerprint: str  # of the store they belong to (``store_fingerprint``)
    seconds: float
    views: int
    params: dict
    method: int = METHOD  # the version of the method that made them

    def to_dict(self) -> dict:
        return {"labels": self.labels, "fingerprint": self.fingerprint, "seconds": self.seconds,
                "views": self.views, "params": self.params, "method": self.method}

    @classmethod
    def from_dict(cls, d: dict) -> "SceneClusters":
        return cls(dict(d["labels"]), str(d["fingerprint"]), float(d["seconds"]), int(d["views"]), dict(d["params"]),
                   int(d.get("method", 1)))  # caches written before the version was kept: 1

    def counts(self) -> dict:
        return {k: int(v.max()) + 1 if len(v) else 0 for k, v in self.labels.items()}

    def fits(self, fingerprint: str) -> bool:
        """Whether these clusters serve the store of ``fingerprint`` (``store_fingerprint``):
        made for its geometry by this method."""
        return self.fingerprint == fingerprint and self.method == METHOD


def store_fingerprint(store: GaussianStore) -> str:
    """A hash of the geometry (centres, scales, rotations, opacities): labels and colours may change."""
    h = hashlib.sha1(str(len(store)).encode())
    for t in (store.means, store.log_scales, store.quats, store.opacity_logits):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _visible_only(table: torch.Tensor, weight: torch.Tensor, share: float) -> torch.Tensor:
    """The [V, N] table with -1 where a Gaussian's weight is below ``share`` × its largest."""
    top = weight.max(0).values
    return torch.where((weight >= share * top) & (top > 0), table, torch.full_like(table, -1))


def _segment_table(store: GaussianStore, cams: Sequence[Camera], images: Sequence[np.ndarray], backend: str
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """([V, N] each Gaussian's dominant segment per view, -1 where that is no surface;
    [V, N] float64 its blend weight in the view)."""
    table = torch.full((len(cams), len(store)), -1, dtype=torch.int64)
    weight = torch.zeros(len(cams), len(store), dtype=torch.float64)
    for v, (cam, seg) in enumerate(zip(cams, images)):
        seg = torch.from_numpy(seg)
        votes = label_votes(store, [cam], [seg], num_labels=int(seg.max()) + 1, backend=backend)
        best = votes.argmax(0)
        table[v] = torch.where(best > 0, best, torch.full_like(best, -1))
        weight[v] = votes.sum(0)
    return table, weight


def _fold_shares(store: GaussianStore, cams: Sequence[Camera], images: Sequence[np.ndarray], backend: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """([N], [N]) each Gaussian's share of its blend weight over the views that falls on
    concave and on convex pixels (``images``: [H, W] 0 no surface, 1 surface, 2 concave,
    3 convex); 0 where no view sees it."""
    votes = label_votes(store, cams, [torch.from_numpy(m) for m in images], num_labels=4, backend=backend)
    total = votes[1:].sum(0).clamp_min(1e-300)
    return (votes[2] / total).numpy(), (votes[3] / total).numpy()


def _fill_unseen(labels: np.ndarray, means: torch.Tensor) -> np.ndarray:
    """Gaussians labelled -1 take the label of the nearest labelled centre."""
    from scipy.spatial import cKDTree

    seen = labels >= 0
    if seen.all() or not seen.any():
        return labels
    X = means.detach().cpu().double().numpy()
    _, nearest = cKDTree(X[seen]).query(X[~seen])
    out = labels.copy()
    out[~seen] = labels[seen][nearest]
    return out


def _majority(group: np.ndarray, obj: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """[N] group ids where each object's ``seen`` members all take the group most of them
    have, so every object lies in one group. Dense ids."""
    m = int(group.max()) + 1
    pair, count = np.unique(obj[seen] * m + group[seen], return_counts=True)
    order = np.lexsort((-count, pair // m))  # per object, its most common group first
    first = np.ones(len(order), bool)
    first[1:] = (pair // m)[order][1:] != (pair // m)[order][:-1]
    best = np.zeros(int(obj.max()) + 1, np.int64)
    best[(pair // m)[order][first]] = (pair % m)[order][first]
    out = np.where(seen, best[obj], group)
    return np.unique(out, return_inverse=True)[1]


def part_level(pieces: np.ndarray, edges: np.ndarray, agree: np.ndarray, p: ClusterParams) -> np.ndarray:
    """[N] part ids from the colour linkage's ``pieces`` [N]: pieces under ``min_part`` join
    their strongest neighbour (``absorb_small``), and so do those under ``min_cluster`` but
    for the ones whose colour agrees with none around them (mean ``agree`` over the ``edges``
    across their boundary under ``distinct_part``): a thin stem in front of a wall stays a
    part, a rim where two faces meet joins one of them."""
    parts = absorb_small(pieces, edges, agree, p.min_part)
    a, b = parts[edges[:, 0]], parts[edges[:, 1]]
    cross = a != b
    m = int(parts.max()) + 1
    across = np.bincount(a[cross], minlength=m) + np.bincount(b[cross], minlength=m)
    agreeing = np.bincount(a[cross], agree[cross], minlength=m) + np.bincount(b[cross], agree[cross], minlength=m)
    distinct = agreeing < p.distinct_part * np.maximum(across, 1)
    return absorb_small(parts, edges, agree, p.min_cluster, keep=distinct[parts])


def object_level(colour: np.ndarray, edges: np.ndarray, group: np.ndarray, creased: np.ndarray,
                 convex: np.ndarray, p: ClusterParams) -> tuple[np.ndarray, np.ndarray]:
    """([N] part ids, [N] object cluster ids) from the colour table ``colour`` [V, N] (segment per view, -1
    unseen), the neighbour ``edges`` [E, 2], the ``group`` ids [N] and the ``creased`` and
    ``convex`` flags [N] (on a concave, on a convex fold).

    Inside each group: average linkage of the colour agreement, where an edge touching a
    crease counts as disagreeing (a ball on a box, two cylinders side by side, whose colour
    segments run together in some views), then the histogram merge. Then clusters under
    ``min_cluster`` join the neighbour whose colour they agree with most, in any group: a
    piece that the geometric table put in the wrong group (a box's lower face joined to the
    floor it stands on) goes back to its object (furnished: the cabinet 0.848 -> 0.942);
    those whose colour agrees with none around them stay (``part_level``: the parts), and
    take no part in the last join (furnished's stem 0.140 -> 0.615).
    Then clusters of one group join across a boundary that is convex more than creased
    (``convex_join``): the faces of a box, the stripes of a ball, which the colour cut apart.
    Last, neighbouring clusters whose segment histograms agree closely (``alike``) join,
    whatever their boundary and group: where the rendered depth is noisy, creases run
    everywhere (a box's faces in a room), and a thin stem's geometric segments part it from
    what it carries (stacked's stem 0.516 -> 0.909). The objects are built from the parts,
    so each part lies in one object."""
    agree = edge_agreement(torch.from_numpy(colour), edges)
    same = group[edges[:, 0]] == group[edges[:, 1]]
    inside, agree_inside = edges[same], agree[same]
    on_crease = creased[inside[:, 0]] | creased[inside[:, 1]]
    obj = average_linkage(len(group), inside, np.where(on_crease, 0.0, agree_inside), p.object_edges)
    obj = cluster_linkage(obj, inside, colour, p.object_clusters)
    parts = part_level(obj, edges, agree, p)
    fold = (convex[inside[:, 0]] | convex[inside[:, 1]]).astype(np.float64) - on_crease
    obj = average_linkage(len(group), inside, fold, p.convex_join, label=parts, min_edges=p.convex_edges)
    # the small parts that stayed (their colour agrees with none around them) stay out of
    # the alike join too: a stem's few Gaussians would join what they touch on the
    # histograms of so few
    small = np.bincount(obj)[obj] < p.min_cluster
    return parts, cluster_linkage(obj, edges[~(small[edges[:, 0]] | small[edges[:, 1]])], colour, p.alike)


def prepare_clusters(store: GaussianStore, cameras: Sequence[Camera], params: ClusterParams | None = None,
                     backend: str = "auto", progress: Callable[[int, int], None] | None = None) -> SceneClusters:
    """The scene's clusters at each level (module docstring), from the views of ``cameras``."""
    p = params or ClusterParams()
    if not cameras:
        raise SplatError("no views to segment")
    if len(store) == 0:
        raise SplatError("the scene has no Gaussians")
    t0 = time.perf_counter()
    step = max(1, math.ceil(len(cameras) / p.max_views))
    views = [_scaled(c, p.max_side) for c in list(cameras)[::step]]
    planes = scene_planes(store, p.grow)
    geometric, colour, folds = [], [], []
    for v, cam in enumerate(views):
        s = _surface(store, cam, backend)
        geometric.append(geometric_segments(s, planes, p.grow))
        colour.append(colour_segments(s, geometric[-1], p.grow, p.colour))
        cave = concave_pixels(s.depth, p.grow.radius, p.grow.concave).numpy()
        vex = convex_pixels(s.depth, p.grow.radius, p.grow.concave).numpy()
        folds.append(np.where(geometric[-1] > 0, 1 + cave + 2 * vex, 0))
        if progress:
            progress(v + 1, 2 * len(views))
    tg, weight = _segment_table(store, views, geometric, backend)
    if progress:
        progress(int(1.5 * len(views)), 2 * len(views))
    tc, _ = _segment_table(store, views, colour, backend)
    tg, tc = _visible_only(tg, weight, p.visible), _visible_only(tc, weight, p.visible)
    seen = (tg >= 0).any(0)
    if not seen.any():
        raise SplatError("no Gaussian is visible in the views")
    edges = neighbour_edges(store.means, seen, p.neighbours)
    agree = edge_agreement(tg, edges)
    group = absorb_small(average_linkage(len(store), edges, agree, p.group), edges, agree, p.min_cluster)
    group = join_isolated(group, store.means, seen.numpy(), p.min_cluster)
    concave, convex = _fold_shares(store, views, folds, backend)
    parts, obj = object_level(tc.numpy(), edges, group, concave >= p.crease, convex >= p.convex, p)
    # pieces with no edge out (clumps) join the nearest object; the small parts that stayed apart stay
    obj = join_isolated(obj, store.means, seen.numpy(), p.min_part, within=group)
    group = _majority(group, obj, seen.numpy())  # a piece that moved to another group's object moves with it
    if planes and p.keep_plane:  # the planes' pieces are one object, whatever their colours
        # centres lie in a slab a few tolerances thick: within 2 of a plane, 84 % of the room
        # scene's shell, and at most 27 % of any object of the built-in scenes
        on = near_planes(planes, store.means.detach().cpu(), widen=2.0).numpy()
        obj = join_planar(obj, edges, np.bincount(obj, on) / np.bincount(obj) >= p.plane_share)
    labels = {}
    for level, lab in (("object", obj), ("part", parts), ("group", group)):
        lab = np.where(seen.numpy(), lab, -1)
        lab = np.unique(_fill_unseen(lab, store.means), return_inverse=True)[1]
        labels[level] = torch.from_numpy(lab.astype(np.int64))
    if progress:
        progress(2 * len(views), 2 * len(views))
    return SceneClusters(labels, store_fingerprint(store), time.perf_counter() - t0, len(views), asdict(p))


def pick_cluster(store: GaussianStore, clusters: SceneClusters, camera: Camera, pixel: tuple[float, float],
                 level: str = "object", radius: int = 0, backend: str = "auto") -> torch.Tensor:
    """[N] bool: the cluster under ``pixel`` (x, y) of ``camera`` at ``level``.

    A (2·radius+1)² window around the pixel is rendered; the cluster that holds most of the
    window's blend weight wins. A pixel that shows no surface is "nothing there"."""
    if level not in clusters.labels:
        raise SplatError(f"level '{level}': use {' or '.join(LEVELS)}")
    labels = clusters.labels[level]
    if len(labels) != len(store):
        raise SplatError(f"the clusters are of {len(labels)} Gaussians, the scene has {len(store)}: prepare them again")
    x, y = pixel
    check_pixel(camera, x, y)
    side = 2 * radius + 1
    window = camera.cropped(int(x) - radius, int(y) - radius, side, side)
    with torch.no_grad():
        r = rasterize(store, window, backend=backend, sh_degree=0)
    if r.contributions is None:
        raise SplatError(f"the {backend} backend gives no contributions; use cpu, cuda or torch")
    if float(r.alpha[0, radius, radius, 0]) < 0.5:
        raise SplatError(f"nothing there: pixel {x:g},{y:g} shows no surface")
    weight = r.contributions[0].double().cpu()
    ok = (labels >= 0) & (weight > 0)
    if not ok.any():
        raise SplatError(f"nothing there: pixel {x:g},{y:g} shows only Gaussians that no prepared view saw")
    score = torch.zeros(int(labels.max()) + 1, dtype=torch.float64).index_add_(0, labels[ok], weight[ok])
    return labels == int(score.argmax())
