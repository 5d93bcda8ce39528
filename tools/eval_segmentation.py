"""Segmentation on a generated scene with ground-truth instance maps.

Mask lifting: the training views' instance maps are lifted to Gaussian labels, label
images are rendered at the held-out views, IoU per object (intersection and union summed
over the held-out views). Click: for each object, one click well inside its largest mask
among the training views (the pixel farthest from the mask's edge); the selection is
rendered at the held-out views and compared with that object's mask. Click methods: ``object``,
``part`` and ``group`` (the levels of the clusters ``splat segment prepare`` computes, timed
apart; a plain click, ``--part`` and ``--group`` of ``splat segment click``), ``best`` (per
object the best of the levels asked for: what a user gets who tries each) and ``grow`` (region growing over the
rendered surface, ``--method grow`` of ``splat segment click``). A click that raises
counts as IoU 0 and its one-line reason is printed.

    python tools/eval_segmentation.py RUN [--backend cpu] [--bias 0.0] [--method object,part,group,grow]

RUN is a training run on a generated dataset (e.g. `splat demo --out D` makes D/run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from splat.errors import SplatError
from splat.segment import GrowParams, click_select, lift_labels, render_labels
from splat.segment.clusters import LEVELS, ClusterParams, pick_cluster, prepare_clusters
from splat.segment.runs import fit_labels, read_label_image
from splat.train.run import Run


def instance_map(dataset, i: int) -> torch.Tensor:
    paths = dataset.extras.get("instance")
    if not paths:
        raise SystemExit("the dataset has no instance maps (use a generated scene)")
    return fit_labels(read_label_image(paths[i]), dataset, i, paths[i])  # in the view's frame


def iou_table(pred: list[torch.Tensor], gt: list[torch.Tensor], objects: list[int], pred_ids=None) -> dict:
    out = {}
    for k in objects:
        pk = pred_ids[k] if pred_ids else k
        inter = sum(int(((p == pk) & (g == k)).sum()) for p, g in zip(pred, gt))
        union = sum(int(((p == pk) | (g == k)).sum()) for p, g in zip(pred, gt))
        out[k] = inter / union if union else float("nan")
    return out


def click_pixel(gt_train: list[torch.Tensor], k: int) -> tuple[int, tuple[float, float]]:
    """(training view, pixel): in object k's largest mask, the pixel farthest from the mask's
    edge (a user clicks well inside what they mean; the pixel nearest the mask's centre lies
    on an edge for a ring), of those the one nearest the centre."""
    from scipy.ndimage import distance_transform_edt

    v = int(np.argmax([int((g == k).sum()) for g in gt_train]))
    mask = (gt_train[v] == k).numpy()
    inside = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]  # the image border is an edge too
    ys, xs = np.nonzero(inside >= inside.max() - 0.5)
    j = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    return v, (float(xs[j]) + 0.5, float(ys[j]) + 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--bias", type=float, default=0.0)
    ap.add_argument("--method", default="object,part,group,grow", help="comma-separated: object, part, group, grow")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="a ClusterParams field for the preparation (repeatable; colour.scale for a nested one)")
    args = ap.parse_args()
    params = ClusterParams()
    for item in args.param:
        name, _, value = item.partition("=")
        owner, field = (getattr(params, name.split(".")[0]), name.split(".")[1]) if "." in name else (params, name)
        if not hasattr(owner, field):
            raise SystemExit(f"--param {item}: no such field")
        setattr(owner, field, type(getattr(owner, field))(value))
    methods = [m for m in args.method.split(",") if m]
    if not methods or set(methods) - {*LEVELS, "grow"}:
        raise SystemExit(f"--method: a comma-separated list of {', '.join(LEVELS)} and grow")

    _, dataset, store = Run(args.run).load()
    train_cams = [dataset.cameras[i] for i in dataset.train]
    gt_train = [instance_map(dataset, i) for i in dataset.train]
    gt_test = [instance_map(dataset, i) for i in dataset.test]
    in_train = set(torch.cat([g.flatten() for g in gt_train]).tolist()) - {0}
    in_test = set(torch.cat([g.flatten() for g in gt_test]).tolist()) - {0}
    objects = sorted(in_train & in_test)  # an object no held-out view shows cannot be scored
    unscored = sorted(in_train - in_test)

    t0 = time.perf_counter()
    lifted = lift_labels(store, train_cams, gt_train, background_bias=args.bias, backend=args.backend)
    t_lift = time.perf_counter() - t0
    pred = [render_labels(lifted, dataset.cameras[i], backend=args.backend) for i in dataset.test]
    lift_iou = iou_table(pred, gt_test, objects)

    clusters = None
    levels = [m for m in methods if m in LEVELS]
    if levels:
        clusters = prepare_clusters(store, train_cams, params, backend=args.backend)
    select = {level: (lambda cam, px, level=level: pick_cluster(store, clusters, cam, px, level, backend=args.backend))
              for level in levels}
    select["grow"] = lambda cam, px: click_select(store, cam, [px], train_cams, GrowParams(), backend=args.backend)
    iou = {m: {} for m in methods}
    ms = {m: {} for m in methods}
    failures = []
    for k in objects:
        v, pixel = click_pixel(gt_train, k)
        for m in methods:
            t0 = time.perf_counter()
            try:
                sel = select[m](train_cams[v], pixel)
            except SplatError as e:
                ms[m][k] = 1000 * (time.perf_counter() - t0)
                iou[m][k] = 0.0
                failures.append(f"object {k}, {m}: {e}")
                continue
            ms[m][k] = 1000 * (time.perf_counter() - t0)
            picked = store.detach().clone()
            picked.extras["labels"] = sel.long()
            pred_k = [render_labels(picked, dataset.cameras[i], backend=args.backend) for i in dataset.test]
            iou[m][k] = iou_table(pred_k, gt_test, [k], {k: 1})[k]

    if len(levels) > 1:  # the best of the levels' clicks
        iou["best"] = {k: max(iou[m][k] for m in levels) for k in objects}
        ms["best"] = {k: max(ms[m][k] for m in levels) for k in objects}
        methods = methods + ["best"]
    print(f"run {args.run}: {len(store)} Gaussians, {len(dataset.train)} training / {len(dataset.test)} held-out views, "
          f"backend {args.backend}, {torch.get_num_threads()} threads; lifting took {t_lift:.2f} s")
    if clusters is not None:
        counts = clusters.counts()
        print(f"prepare: {clusters.seconds:.2f} s over {clusters.views} views; clusters "
              + ", ".join(f"{k} {v}" for k, v in counts.items()))
    head = "| object | mask lifting IoU | " + " | ".join(f"click IoU ({m}) | click ms ({m})" for m in methods) + " |"
    print(head)
    print("|" + "---|" * (2 + 2 * len(methods)))
    for k in objects:
        print(f"| {k} | {lift_iou[k]:.3f} | " + " | ".join(f"{iou[m][k]:.3f} | {ms[m][k]:.0f}" for m in methods) + " |")
    mean = lambda d: float(np.nanmean(list(d.values())))  # noqa: E731
    print(f"| mean | {mean(lift_iou):.3f} | " + " | ".join(f"{mean(iou[m]):.3f} | {mean(ms[m]):.0f}" for m in methods) + " |")
    if unscored:
        print(f"not scored (no held-out view shows them): objects {', '.join(map(str, unscored))}")
    for line in failures:
        print(f"click raised (counted as 0): {line}")


if __name__ == "__main__":
    main()
