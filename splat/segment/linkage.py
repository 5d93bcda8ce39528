"""Grouping Gaussians by what views agree on: neighbour graph and two average linkages.

Input: a [V, N] table of per-view 2D segment ids of each Gaussian (-1 = not seen in that
view), from ``clusters.py``. Neighbouring Gaussians are joined by an edge each.

* ``edge_agreement``: per edge, the share of the views seeing both ends that put them in
  the same segment.
* ``average_linkage``: clusters by the mean of that weight over all edges between two
  clusters, so one strong edge across a boundary of weak ones does not join them.
* ``cluster_linkage``: clusters by the cosine similarity of the two clusters' segment
  histograms per view, averaged over the views: a comparison of whole clusters, which the
  Gaussians straddling a boundary in 2D cannot sway.

Both merge in rounds: every pair of clusters that are each other's best link, with a score
of at least the threshold, merges (ties broken by a fixed pseudo-random order, so the
result is deterministic).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch


def neighbour_edges(means: torch.Tensor, keep: torch.Tensor, k: int, reach: int = 64) -> np.ndarray:
    """[E, 2] int64 index pairs: each kept Gaussian and its k nearest kept centres, and bridges
    between the pieces that graph falls into.

    A trained scene holds tight clumps (3DGS-MCMC places a Gaussian's copies on it), whose k
    nearest neighbours are one another: on a real capture (bonsai, 152k Gaussians) the graph of
    k = 8 fell into 2,046 pieces, 60k Gaussians in pieces under 500, and no grouping can join
    what has no edge between it (a tree's leaves stayed clusters of 50-150). So each Gaussian
    outside the largest piece also links to the nearest centre of another piece among its
    ``reach`` nearest, where there is one; whether the pieces join is still for the views to say."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    idx = torch.nonzero(keep).flatten().numpy()
    if len(idx) < 2:
        return np.zeros((0, 2), np.int64)
    X = means.detach().cpu().double().numpy()[idx]
    tree = cKDTree(X)
    k = min(k + 1, len(idx))
    _, nn = tree.query(X, k=k)
    a, b = np.repeat(np.arange(len(idx)), k - 1), nn[:, 1:].reshape(-1)
    pairs = [np.stack([a, b], 1)]
    n = len(idx)
    _, piece = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    sizes = np.bincount(piece)
    outside_largest = np.nonzero(sizes[piece] < sizes.max())[0]
    if len(outside_largest):
        _, near = tree.query(X[outside_largest], k=min(reach, n))
        other = piece[near] != piece[outside_largest][:, None]
        has = other.any(1)
        first = other.argmax(1)[has]
        pairs.append(np.stack([outside_largest[has], near[has, first]], 1))
    pairs = np.concatenate(pairs)
    return np.stack([idx[pairs[:, 0]], idx[pairs[:, 1]]], 1)


def edge_agreement(table: torch.Tensor, edges: np.ndarray) -> np.ndarray:
    """[E] float64: the share of the views seeing both ends of an edge in which the two fall
    in the same segment of ``table`` [V, N]; 0 where no view sees both."""
    out = []
    for chunk in np.array_split(edges, max(1, math.ceil(len(edges) / 200_000))):
        a, b = table[:, chunk[:, 0]], table[:, chunk[:, 1]]
        both = (a >= 0) & (b >= 0)
        same = (both & (a == b)).sum(0).double()
        out.append((same / both.sum(0).double().clamp_min(1)).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _merge_rounds(n: int, edges: np.ndarray, score: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
                  threshold: float, label: np.ndarray | None = None) -> np.ndarray:
    """[n] dense cluster ids after merging mutual best pairs of linked clusters in rounds.

    ``score(label, lo, hi)`` gives the link score of cluster pairs (lo < hi) under ``label``."""
    label = np.arange(n) if label is None else np.unique(label, return_inverse=True)[1]
    rng = np.random.default_rng(0)
    while True:
        a, b = label[edges[:, 0]], label[edges[:, 1]]
        cross = a != b
        if not cross.any():
            break
        m = int(label.max()) + 1
        pair = np.unique(np.minimum(a[cross], b[cross]) * m + np.maximum(a[cross], b[cross]))
        lo, hi = pair // m, pair % m
        s = score(label, lo, hi)
        ok = s >= threshold
        if not ok.any():
            break
        lo, hi, s = lo[ok], hi[ok], s[ok]
        order = np.lexsort((rng.random(len(s)), -s))  # best first, ties in a fixed random order
        ends = np.concatenate([lo[order], hi[order]])
        other = np.concatenate([hi[order], lo[order]])
        rank = np.concatenate([np.arange(len(order))] * 2)
        by_end = np.lexsort((rank, ends))
        first = np.ones(len(by_end), bool)
        first[1:] = ends[by_end][1:] != ends[by_end][:-1]
        best = np.full(m, -1)
        best[ends[by_end][first]] = other[by_end][first]
        mutual = (best[lo] == hi) & (best[hi] == lo)
        if not mutual.any():
            break
        target = np.arange(m)
        target[hi[mutual]] = lo[mutual]
        label = np.unique(target[label], return_inverse=True)[1]
    return label


def average_linkage(n: int, edges: np.ndarray, weight: np.ndarray, threshold: float,
                    label: np.ndarray | None = None, min_edges: int = 1) -> np.ndarray:
    """[n] cluster ids: merges while the mean ``weight`` of the edges between two clusters is
    at least ``threshold``, from singletons or from the clusters ``label``; two clusters joined
    by fewer than ``min_edges`` edges do not merge."""
    def mean_weight(label, lo, hi):
        a, b = label[edges[:, 0]], label[edges[:, 1]]
        cross = a != b
        m = int(label.max()) + 1
        key = np.minimum(a[cross], b[cross]) * m + np.maximum(a[cross], b[cross])
        pair, inverse = np.unique(key, return_inverse=True)
        count = np.bincount(inverse)
        mean = np.where(count >= min_edges, np.bincount(inverse, weight[cross]) / count, -np.inf)
        return mean[np.searchsorted(pair, lo * m + hi)]

    return _merge_rounds(n, edges, mean_weight, threshold, label)


def cluster_cosine(label: np.ndarray, table: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   min_members: int = 3) -> np.ndarray:
    """[P] the mean over views of the cosine between the segment histograms of clusters lo
    and hi (members seen in the view); views where either has fewer than ``min_members``
    seen members do not count; -1 where no view counts."""
    import scipy.sparse as sp

    C = int(label.max()) + 1
    total, count = np.zeros(len(lo)), np.zeros(len(lo))
    for t in table:
        seen = t >= 0
        if not seen.any():
            continue
        H = sp.coo_matrix((np.ones(int(seen.sum())), (label[seen], t[seen])), shape=(C, int(t.max()) + 1)).tocsr()
        members = np.asarray(H.sum(1)).ravel()
        good = (members[lo] >= min_members) & (members[hi] >= min_members)
        if not good.any():
            continue
        norm = np.sqrt(np.asarray(H.multiply(H).sum(1)).ravel())
        Hn = sp.diags(1 / np.maximum(norm, 1e-12)) @ H
        total[good] += np.asarray(Hn[lo[good]].multiply(Hn[hi[good]]).sum(1)).ravel()
        count[good] += 1
    return np.where(count > 0, total / np.maximum(count, 1), -1.0)


def cluster_linkage(label: np.ndarray, edges: np.ndarray, table: np.ndarray, threshold: float) -> np.ndarray:
    """Clusters ``label`` merged further while linked clusters' ``cluster_cosine`` is at least
    ``threshold``."""
    return _merge_rounds(len(label), edges, lambda lab, lo, hi: cluster_cosine(lab, table, lo, hi), threshold, label)


def _join_pointers(label: np.ndarray, m: int, src: np.ndarray, dst: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Dense ids after each cluster in ``src`` points at its ``dst`` of smallest ``key`` and
    the components of those pointers (out of m clusters) merge."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    order = np.lexsort((key, src))
    first = np.ones(len(order), bool)
    first[1:] = src[order][1:] != src[order][:-1]
    src, dst = src[order][first], dst[order][first]
    _, comp = connected_components(coo_matrix((np.ones(len(src)), (src, dst)), shape=(m, m)), directed=False)
    return np.unique(comp[label], return_inverse=True)[1]


def absorb_small(label: np.ndarray, edges: np.ndarray, weight: np.ndarray, min_size: int, rounds: int = 10,
                 keep: np.ndarray | None = None) -> np.ndarray:
    """Clusters of fewer than ``min_size`` members join the linked cluster with the largest
    summed edge ``weight`` to them (a Gaussian no neighbour agreed with would otherwise stay a
    cluster of its own, and win a click where it is large); a cluster holding a Gaussian
    that ``keep`` [N] bool marks stays whatever its size. Dense ids.

    Each small cluster points at one cluster; the components of those pointers merge. A
    component holds at most one cluster that is not small (those point nowhere), so two
    large clusters never merge through small ones."""
    label = np.unique(label, return_inverse=True)[1]
    for _ in range(rounds):
        sizes = np.bincount(label)
        if keep is not None:
            sizes[label[keep]] = min_size
        a, b = label[edges[:, 0]], label[edges[:, 1]]
        out = (sizes[a] < min_size) & (a != b)
        if not out.any():
            break
        a, b, w = a[out], b[out], weight[out] + 1e-6  # a link of weight 0 still counts
        m = len(sizes)
        pair, inverse = np.unique(a * m + b, return_inverse=True)
        total = np.bincount(inverse, w)
        label = _join_pointers(label, m, pair // m, pair % m, -total)  # per small cluster, its strongest link
    return label


def join_isolated(label: np.ndarray, means: torch.Tensor, keep: np.ndarray, min_size: int,
                  within: np.ndarray | None = None) -> np.ndarray:
    """Clusters still smaller than ``min_size`` (a clump of Gaussians that are each other's
    nearest neighbours has no edge out of it) join the cluster of the nearest kept centre
    outside them, in the same ``within`` cluster when given. Dense ids."""
    from scipy.spatial import cKDTree

    label = np.unique(label, return_inverse=True)[1]
    sizes = np.bincount(label)
    pool = np.nonzero(keep)[0]
    members = pool[sizes[label[pool]] < min_size]
    if not len(members) or len(pool) <= min_size:
        return label
    X = means.detach().cpu().double().numpy()
    _, nn = cKDTree(X[pool]).query(X[members], k=min_size + 1)
    cand = pool[nn]  # [M, k] by distance
    ok = label[cand] != label[members][:, None]
    if within is not None:
        ok &= within[cand] == within[members][:, None]
    has = ok.any(1)
    first = ok.argmax(1)
    src = label[members[has]]
    dst = label[cand[has, first[has]]]
    dist = np.linalg.norm(X[members[has]] - X[cand[has, first[has]]], axis=1)
    return _join_pointers(label, len(sizes), src, dst, dist)  # per small cluster, its nearest outside centre


def join_planar(label: np.ndarray, edges: np.ndarray, planar: np.ndarray) -> np.ndarray:
    """Clusters flagged ``planar`` (per cluster id) that neighbour each other (an edge between
    their members) become one cluster: a floor, or a room's floor, walls and ceiling, that
    texture or view coverage cut into pieces. Other clusters stay as they are. Dense ids."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    label = np.unique(label, return_inverse=True)[1]
    m = int(label.max()) + 1
    a, b = label[edges[:, 0]], label[edges[:, 1]]
    keep = planar[a] & planar[b] & (a != b)
    _, comp = connected_components(coo_matrix((np.ones(int(keep.sum())), (a[keep], b[keep])), shape=(m, m)),
                                   directed=False)
    return np.unique(comp[label], return_inverse=True)[1]
