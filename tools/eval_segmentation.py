"""Segmentation on a generated scene with ground-truth instance maps.

Mask lifting: the training views' instance maps are lifted to Gaussian labels, label
images are rendered at the held-out views, IoU per object (intersection and union summed
over the held-out views). Click: for each object, one click at the pixel nearest the
centre of its largest mask among the training views; the selection is rendered at the
held-out views and compared with that object's mask; the time of each click is reported.

    python tools/eval_segmentation.py RUN [--backend cpu] [--bias 0.0]

RUN is a training run on a generated dataset (e.g. `splat demo --out D` makes D/run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from splat.segment import GrowParams, click_select, lift_labels, render_labels
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--bias", type=float, default=0.0)
    args = ap.parse_args()

    _, dataset, store = Run(args.run).load()
    train_cams = [dataset.cameras[i] for i in dataset.train]
    gt_train = [instance_map(dataset, i) for i in dataset.train]
    gt_test = [instance_map(dataset, i) for i in dataset.test]
    objects = sorted(set(torch.cat([g.flatten() for g in gt_train]).tolist()) - {0})

    t0 = time.perf_counter()
    lifted = lift_labels(store, train_cams, gt_train, background_bias=args.bias, backend=args.backend)
    t_lift = time.perf_counter() - t0
    pred = [render_labels(lifted, dataset.cameras[i], backend=args.backend) for i in dataset.test]
    lift_iou = iou_table(pred, gt_test, objects)

    click_iou, click_time = {}, {}
    for k in objects:
        areas = [int((g == k).sum()) for g in gt_train]
        v = int(np.argmax(areas))
        ys, xs = torch.nonzero(gt_train[v] == k, as_tuple=True)
        cy, cx = ys.float().mean(), xs.float().mean()
        j = int(torch.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
        pixel = (float(xs[j]) + 0.5, float(ys[j]) + 0.5)
        t0 = time.perf_counter()
        sel = click_select(store, train_cams[v], [pixel], train_cams, GrowParams(), backend=args.backend)
        click_time[k] = time.perf_counter() - t0
        picked = store.detach().clone()
        picked.extras["labels"] = sel.long()
        pred_k = [render_labels(picked, dataset.cameras[i], backend=args.backend) for i in dataset.test]
        click_iou[k] = iou_table(pred_k, gt_test, [k], {k: 1})[k]

    print(f"run {args.run}: {len(store)} Gaussians, {len(dataset.train)} training / {len(dataset.test)} held-out views, "
          f"backend {args.backend}, {torch.get_num_threads()} threads; lifting took {t_lift:.2f} s")
    print("| object | mask lifting IoU | click IoU | click seconds |")
    print("|---|---|---|---|")
    for k in objects:
        print(f"| {k} | {lift_iou[k]:.3f} | {click_iou[k]:.3f} | {click_time[k]:.2f} |")
    mean = lambda d: float(np.nanmean(list(d.values())))  # noqa: E731
    print(f"| mean | {mean(lift_iou):.3f} | {mean(click_iou):.3f} | {mean(click_time):.2f} |")


if __name__ == "__main__":
    main()
