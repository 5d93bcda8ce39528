"""Codebooks for the SOG format: an optimal 1-D quantiser and a k-means palette.

``quantize_1d`` pools values (all scale axes, or all colour channels) into one 256-entry
codebook. It bins the sorted values on a blend of uniform and quantile positions, weights
each bin by count^0.5 (so sparse tails still earn entries) and finds the k centroids of least
weighted squared error by dynamic programming over the bins, as splat-transform does; the
DP runs a whole row of bins per step in numpy.

``kmeans`` clusters SH vectors into a palette with Lloyd's iterations from a seeded random
pick of points; distances are one matrix product per block of points.
"""

from __future__ import annotations

import numpy as np
import torch


def quantize_1d(values: np.ndarray, k: int = 256, alpha: float = 0.5, bins: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Quantise ``values`` (any shape) to a sorted codebook.

    Returns:
        (codebook [k] float32 ascending, labels with ``values``' shape as uint8 indices).
    """
    flat = np.asarray(values, np.float64).ravel()
    n = flat.size
    if n == 0:
        return np.zeros(k, np.float32), np.zeros(np.shape(values), np.uint8)
    data = np.sort(flat)
    lo, hi = data[0], data[-1]
    if hi - lo < 1e-20:
        return np.full(k, lo, np.float32), np.zeros(np.shape(values), np.uint8)
    h = min(bins, n)
    iqr = data[int(n * 0.75)] - data[int(n * 0.25)]
    beta = max(0.5, min(0.999, 1 - iqr / (hi - lo)))
    pos = beta * (np.arange(n) / n) + (1 - beta) * (data - lo) / (hi - lo)
    b = np.minimum(h - 1, np.floor(h * pos).astype(np.int64))
    counts = np.bincount(b, minlength=h).astype(np.float64)
    sums = np.bincount(b, weights=data, minlength=h)
    centres = np.where(counts > 0, sums / np.maximum(counts, 1), lo + (np.arange(h) + 0.5) / h * (hi - lo))
    w = np.where(counts > 0, counts**alpha, 0.0)
    pw = np.concatenate([[0.0], np.cumsum(w)])
    pwx = np.concatenate([[0.0], np.cumsum(w * centres)])
    pwxx = np.concatenate([[0.0], np.cumsum(w * centres * centres)])
    # cost[a, j]: weighted SSE of bins a..j around their mean (inf where a > j)
    a_idx, j_idx = np.arange(h)[:, None], np.arange(h)[None, :]
    sw = pw[j_idx + 1] - pw[a_idx]
    swx = pwx[j_idx + 1] - pwx[a_idx]
    swxx = pwxx[j_idx + 1] - pwxx[a_idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = np.where(sw > 0, swxx - swx * swx / sw, 0.0)
    cost = np.where(a_idx <= j_idx, np.maximum(cost, 0.0), np.inf)
    kk = min(k, int((counts > 0).sum()))
    dp = cost[0].copy()  # one centroid for bins 0..j
    # after[j, s] = cost of bins s+1..j (rows contiguous: each step reduces along a row)
    after = np.ascontiguousarray(np.vstack([cost[1:], np.full((1, h), np.inf)]).T)
    splits = []
    rows = np.arange(h)
    for m in range(2, kk + 1):
        # the m-th centroid covers bins s+1..j; s runs over m-2..j-1
        cand = after + dp[None, :]
        cand[:, : m - 2] = np.inf
        s = np.argmin(cand, 1)
        dp = cand[rows, s]
        splits.append(s)
    centroids = np.empty(kk)
    j = h - 1
    for m in range(kk, 0, -1):
        s = splits[m - 2][j] if m > 1 else -1
        wsum = pw[j + 1] - pw[s + 1]
        centroids[m - 1] = (pwx[j + 1] - pwx[s + 1]) / wsum if wsum > 0 else (centres[s + 1] + centres[j]) / 2
        j = s
    centroids = np.sort(centroids)
    book = np.concatenate([centroids, np.full(k - kk, centroids[-1])]).astype(np.float32)
    mids = (book[1:].astype(np.float64) + book[:-1]) / 2
    labels = np.searchsorted(mids, flat, side="right").astype(np.uint8)
    return book, labels.reshape(np.shape(values))


def nearest_centroid(points: torch.Tensor, centroids: torch.Tensor, block: int = 8192) -> torch.Tensor:
    """[N] int64 index of the nearest of [K, D] ``centroids`` for each of [N, D] ``points``."""
    c2 = (centroids * centroids).sum(1)
    out = torch.empty(len(points), dtype=torch.int64)
    for i in range(0, len(points), block):
        p = points[i: i + block]
        out[i: i + block] = (c2[None, :] - 2 * p @ centroids.T).argmin(1)
    return out


def _cluster_sums(x: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cluster sums [k, D] (float64) and counts [k] of the points: a sort and a running
    sum (index_add_ on the CPU was most of the time)."""
    order = torch.argsort(labels)
    counts = torch.bincount(labels, minlength=k)
    run = torch.cat([torch.zeros(1, x.shape[1], dtype=torch.float64), x[order].double().cumsum(0)])
    ends = counts.cumsum(0)
    return run[ends] - run[ends - counts], counts.double()


def _lloyd(x: torch.Tensor, k: int, iterations: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    c = x[torch.randperm(len(x), generator=g)[:k]].clone()
    labels = nearest_centroid(x, c)
    for _ in range(iterations):
        sums, counts = _cluster_sums(x, labels, k)
        filled = counts > 0
        c[filled] = (sums[filled] / counts[filled, None]).to(c.dtype)
        empty = (~filled).nonzero()[:, 0]
        if len(empty):
            err = ((x - c[labels]) ** 2).sum(1)
            c[empty] = x[err.topk(len(empty)).indices]
        labels = nearest_centroid(x, c)
    return c, labels


def _shares(sizes: np.ndarray, k: int) -> np.ndarray:
    """Split ``k`` centroids over groups in proportion to their sizes: each group at least
    one, none more than its size, the total exactly ``k`` (largest remainders first)."""
    want = sizes / sizes.sum() * k
    share = np.clip(np.floor(want).astype(np.int64), 1, sizes)
    order = np.argsort(-(want - np.floor(want)), kind="stable")
    while share.sum() < k:
        room = order[share[order] < sizes[order]]
        share[room[: k - share.sum()]] += 1
    while share.sum() > k:
        big = np.argsort(-share, kind="stable")
        share[big[: share.sum() - k]] -= 1
    return share


# above this many point-centroid pairs the palette is found in two levels
DIRECT_PAIRS = 2e8


def kmeans(points: np.ndarray, k: int, iterations: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cluster [N, D] ``points`` into ``k`` centroids.

    Up to ``DIRECT_PAIRS`` point-centroid pairs this is Lloyd's k-means on all points. Above
    it (a real capture: 200k Gaussians into 64k entries) the points are first cut into about
    sqrt(k) coarse clusters and each is clustered alone with its share of the ``k``
    centroids: the same Lloyd steps at a small fraction of the distance computations.

    Returns:
        (centroids [k, D] float32, labels [N] int64). With N <= k every point is its own
        centroid. An emptied cluster is re-seeded at the point farthest from its centroid.
    """
    x = torch.from_numpy(np.ascontiguousarray(points, np.float32))
    n = len(x)
    if n <= k:
        return x.numpy().copy(), np.arange(n, dtype=np.int64)
    g = torch.Generator().manual_seed(seed)
    if n * k <= DIRECT_PAIRS:
        c, labels = _lloyd(x, k, iterations, g)
        return c.numpy(), labels.numpy()
    coarse_k = max(2, int(round(k**0.5)))
    _, coarse = _lloyd(x, coarse_k, iterations, g)
    coarse = coarse.numpy()
    groups = [np.nonzero(coarse == i)[0] for i in range(coarse_k)]
    groups = [m for m in groups if len(m)]
    share = _shares(np.array([len(m) for m in groups]), k)
    centroids, labels, base = [], np.empty(n, np.int64), 0
    for members, kc in zip(groups, share):
        c, lab = _lloyd(x[members], int(kc), iterations, g)
        centroids.append(c)
        labels[members] = lab.numpy() + base
        base += int(kc)
    return torch.cat(centroids).numpy(), labels
