#!/usr/bin/env python3
"""Score a run trained on a capture "in the wild" (recipe ``wild``): held-out quality and masks.

    python tools/eval_wild.py RUN [--backend cpu] [--json]

* Held-out PSNR / SSIM: the run's held-out views rendered as they are, with no colour model
  (the identity map), against the held-out photos, which the recipe takes clean and at the
  reference exposure; the same scoring as ``splat eval`` (nothing is written into the run).
* Masks: ``RUN/masks/NNNN.png`` (``--transients``) against the dataset's true transient masks,
  over the training views. ``iou`` pools them (intersection and union summed over every
  training view); ``iou_per_view`` is the mean over the views that have passers-by; ``clean_
  coverage`` the mean fraction masked on the views that have none. A run without masks
  scores its masks as empty.

The last line is one JSON object: {"run", "psnr", "ssim", "iou", "iou_per_view",
"clean_coverage", "views_with_transients", "masked_views"}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def mask_scores(run, dataset) -> dict:
    """IoU of the run's transient masks against the dataset's truth (see the module docstring)."""
    from splat.errors import SplatError
    from splat.io.images import load_image

    truths = dataset.extras.get("transient")
    if not truths:
        raise SplatError(f"{run.folder}: its dataset has no true transient masks (a scene of the recipe wild has)")
    inter = union = 0
    per_view, clean, masked = [], [], 0
    for i in dataset.train:
        if truths[i] is None:
            continue
        truth = dataset.resample_to_view(i, load_image(truths[i]), "mask")
        truth = (truth if truth.ndim == 2 else truth[..., 0]) > 0.5
        path = run.mask_path(i)
        if path.is_file():
            masked += 1
            pred = load_image(path)
            pred = (pred if pred.ndim == 2 else pred[..., 0]) > 0.5
        else:
            pred = np.zeros_like(truth)
        if pred.shape != truth.shape:
            raise SplatError(f"{path}: {pred.shape[1]}x{pred.shape[0]}, its view is {truth.shape[1]}x{truth.shape[0]}")
        i_, u_ = int((pred & truth).sum()), int((pred | truth).sum())
        inter, union = inter + i_, union + u_
        if truth.any():
            per_view.append(i_ / u_)
        else:
            clean.append(float(pred.mean()))
    return {"iou": inter / union if union else 1.0,
            "iou_per_view": sum(per_view) / len(per_view) if per_view else None,
            "clean_coverage": sum(clean) / len(clean) if clean else None,
            "views_with_transients": len(per_view), "masked_views": masked}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--backend", default=None, help="renderer (default: the run's)")
    args = parser.parse_args(argv)

    from splat.errors import SplatError
    from splat.train.device import pick_device
    from splat.train.evaluate import score_views
    from splat.train.run import Run

    try:
        run = Run(args.run)
        config, dataset, store = run.load()
        backend = args.backend or config.backend
        bg = torch.tensor(config.eval_background, dtype=torch.float32)
        views = score_views(store.to(pick_device(backend)), dataset, dataset.test, backend, config.mode, bg)
        result = {"run": str(args.run), "psnr": sum(v["psnr"] for v in views) / len(views),
                  "ssim": sum(v["ssim"] for v in views) / len(views), **mask_scores(run, dataset)}
    except SplatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    flags = [f for f in ("appearance", "transients") if getattr(config, f)]
    print(f"run {args.run} ({' '.join('--' + f for f in flags) or 'plain'}), {len(views)} held-out views, "
          f"{result['views_with_transients']} training views with passers-by")
    print(f"  held-out PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f}")
    per = result["iou_per_view"]
    clean = result["clean_coverage"]
    print(f"  transient masks: IoU {result['iou']:.3f} pooled, {per if per is None else round(per, 3)} per view; "
          f"{'-' if clean is None else f'{100 * clean:.2f} %'} of the clean views masked")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
