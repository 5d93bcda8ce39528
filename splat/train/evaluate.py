"""Held-out evaluation of a run: PSNR and SSIM per test view and their means.

Writes ``RUN/eval.json`` (``{"psnr", "ssim", "lpips", "views": [...]}``) and, in
``RUN/eval/``, each held-out render beside its ground truth. LPIPS is computed only
when the ``lpips`` package and its backbone weights are already on disk (nothing
is downloaded); otherwise ``lpips`` is null and ``lpips_note`` says why.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ..io.atomic import write_text_atomic
from ..progress import Progress
from ..io.images import save_image
from ..render import rasterize
from .run import Run
from .device import pick_device
from .losses import psnr, ssim

ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"  # what lpips(net="alex") loads through torchvision


def lpips_model():
    """(callable or None, note): LPIPS (AlexNet) if everything it needs is on disk."""
    try:
        import lpips
    except ImportError:
        return None, "the lpips package is not installed"
    weights = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS
    if not weights.is_file():
        return None, f"AlexNet weights are not on disk ({weights}); they are never downloaded"
    model = lpips.LPIPS(net="alex", verbose=False).eval()

    def score(a: torch.Tensor, b: torch.Tensor) -> float:  # [H, W, 3] in [0, 1]
        with torch.no_grad():
            return float(model(a.permute(2, 0, 1)[None] * 2 - 1, b.permute(2, 0, 1)[None] * 2 - 1))

    return score, "AlexNet"


def score_views(store, dataset, views, backend: str, mode: str, background: torch.Tensor, score_lpips=None,
                out_dir: Path | None = None, progress=None) -> list[dict]:
    """Render ``store`` from ``dataset``'s views (indices) and score each against its image:
    one dict per view (index, name, psnr, ssim[, lpips]). With ``out_dir``, each render and its
    ground truth are saved there. ``progress(done)`` is called after each view."""
    bg = background.to(torch.float32)
    scored = []
    if out_dir is not None:
        out_dir.mkdir(exist_ok=True)
    for done, i in enumerate(views, 1):
        rgba = torch.from_numpy(dataset.image_rgba(i).copy())
        gt = rgba[..., :3] if rgba.shape[-1] == 3 else rgba[..., :3] * rgba[..., 3:] + bg * (1 - rgba[..., 3:])
        with torch.no_grad():
            res = rasterize(store, dataset.cameras[i], backend=backend, background=bg.to(store.device),
                            mode=mode, contributions=False)
        img = res.color[0].clamp(0, 1).cpu()
        entry = {"index": i, "name": dataset.image_paths[i].name, "psnr": psnr(img, gt), "ssim": float(ssim(img, gt))}
        if score_lpips:
            entry["lpips"] = score_lpips(img, gt)
        scored.append(entry)
        if out_dir is not None:
            save_image(img, out_dir / f"{i:04d}_render.png")
            save_image(gt, out_dir / f"{i:04d}_gt.png")
        if progress:
            progress(done)
    return scored


def evaluate(run: str | Path, backend: str | None = None, save_images: bool = True, held=None) -> dict:
    """Evaluate a run on its held-out views; writes eval.json and the renders. Returns the dict.

    ``held``: (config, dataset, store) the caller already holds (the trainer at its end), so
    they are not read again; by default they are read from the finished run.
    """
    layout = Run(run)
    config, dataset, store = held if held is not None else layout.load()
    backend = backend or config.backend
    store = store.to(pick_device(backend))  # where the trainer would put it
    score_lpips, lpips_note = lpips_model()
    bg = torch.tensor(config.eval_background, dtype=torch.float32)
    out_dir = layout.eval_dir if save_images else None
    bar = Progress("eval: held-out views", len(dataset.test)) if dataset.test else None
    views = score_views(store, dataset, dataset.test, backend, config.mode, bg, score_lpips, out_dir,
                        bar.update if bar else None)
    if bar:
        bar.close()
    mean = lambda k: (sum(v[k] for v in views) / len(views)) if views else None  # noqa: E731
    result = {
        "psnr": mean("psnr"), "ssim": mean("ssim"),
        "lpips": mean("lpips") if score_lpips else None,
        "lpips_note": lpips_note,
        "gaussians": len(store), "test_views": len(views), "views": views,
    }
    if any(math.isinf(v["psnr"]) for v in views):
        result["psnr"] = float("inf")
    write_text_atomic(layout.eval_path, json.dumps(result, indent=1))
    from .report import write_contact_sheet, write_curves

    if save_images:
        write_contact_sheet(run, views)
    write_curves(run)
    return result
