"""Render what a click selects: the clicked view, and the same view with the selection
highlighted, side by side in one image (a cross marks the click).

    python tools/show_selection.py RUN --view V --pixel X,Y [--group] [--method clusters|grow] --out IMG

The clusters come from RUN/segments.pt (prepared first when missing or stale), as in
``splat segment click``. Prints the selected count and the click's time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from splat.errors import SplatError
from splat.io.images import save_image
from splat.render import rasterize
from splat.segment import click_select
from splat.segment.clusters import pick_cluster
from splat.segment.runs import click_level, parse_pixel, run_clusters
from splat.train.run import Run
from splat.viewer.select import highlighted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--view", type=int, required=True, help="index in RUN/cameras.json")
    ap.add_argument("--pixel", action="append", required=True, help="X,Y in the view's pixels (repeatable)")
    ap.add_argument("--group", action="store_true", help="the group level instead of the object")
    ap.add_argument("--part", action="store_true", help="the part level instead of the object")
    ap.add_argument("--method", default="clusters", choices=("clusters", "grow"))
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    try:
        level = click_level(args.group, args.part)
    except SplatError as e:
        raise SystemExit(f"error: {e}") from None

    _, dataset, store = Run(args.run).load()
    cam = dataset.cameras[args.view]
    pixels = [parse_pixel(p) for p in args.pixel]
    if args.method == "grow":
        t0 = time.perf_counter()
        sel = click_select(store, cam, pixels, [dataset.cameras[i] for i in dataset.train], backend=args.backend)
    else:
        clusters = run_clusters(args.run, store, dataset, args.backend, print)
        t0 = time.perf_counter()
        sel = torch.zeros(len(store), dtype=torch.bool)
        for p in pixels:
            sel |= pick_cluster(store, clusters, cam, p, level, backend=args.backend)
    seconds = time.perf_counter() - t0
    plain = rasterize(store, cam, backend=args.backend, contributions=False).color[0].clamp(0, 1)
    lit = rasterize(highlighted(store, sel), cam, backend=args.backend, contributions=False).color[0].clamp(0, 1)
    for x, y in pixels:  # a red cross at each click
        xi, yi = int(x), int(y)
        for img in (plain, lit):
            img[max(yi - 4, 0):yi + 5, xi] = torch.tensor([1.0, 0, 0])
            img[yi, max(xi - 4, 0):xi + 5] = torch.tensor([1.0, 0, 0])
    save_image(torch.cat([plain, lit], 1), args.out)
    print(f"selected {int(sel.sum())} of {len(store)} Gaussians in {1000 * seconds:.1f} ms; wrote {args.out}")


if __name__ == "__main__":
    main()
