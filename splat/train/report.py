"""Pictures of a run for a user to look at instead of reading JSON.

- ``RUN/curves.png``: loss, training PSNR (and the held-out PSNR of each evaluation),
  Gaussian count, step time and tile pairs per pixel against the step (metrics.jsonl, eval.json).
- ``RUN/eval_sheet.png``: every held-out view, ground truth beside the render, with its PSNR.

Both are written atomically; matplotlib is imported here only (no pyplot: no display needed).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write
from .run import Run

SHEET_WIDTH = 320  # px per image in the contact sheet


def _metrics(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash: the rest still draws
    return rows


def _write_png(out: Path, draw) -> Path:
    """``draw(buffer)`` writes PNG bytes; they go to ``out`` atomically."""
    buf = io.BytesIO()
    draw(buf)
    with atomic_write(out) as f:
        f.write(buf.getvalue())
    return out


def write_curves(run: str | Path) -> Path | None:
    """Draw ``RUN/curves.png`` from the run's metrics; None when the run has logged nothing."""
    from matplotlib.figure import Figure

    layout = Run(run)
    rows = _metrics(layout.metrics_path)
    if not rows:
        return None
    step = np.array([r["step"] for r in rows], dtype=float)
    get = lambda k: np.array([r.get(k, np.nan) for r in rows], dtype=float)  # noqa: E731
    elapsed = get("elapsed")
    step_time = np.full_like(step, np.nan)
    step_time[1:] = np.diff(elapsed) / np.maximum(np.diff(step), 1)
    fig = Figure(figsize=(11, 7), dpi=100)
    axes = fig.subplots(2, 2)
    ax = axes[0, 0]
    ax.plot(step, get("loss"), lw=0.8)
    ax.set_yscale("log")
    ax.set_title("loss")
    ax = axes[0, 1]
    ax.plot(step, get("psnr"), lw=0.6, alpha=0.5, label="training view")
    if layout.eval_path.is_file():
        result = json.loads(layout.eval_path.read_text())
        at = result.get("step", rows[-1]["step"])
        if result.get("psnr") is not None:
            ax.plot([at], [result["psnr"]], "o", color="C3", label=f"held out: {result['psnr']:.2f} dB")
    ax.set_title("PSNR (dB)")
    ax.legend(loc="lower right")
    ax = axes[1, 0]
    ax.plot(step, get("gaussians"), color="C2")
    ax.set_title("Gaussians")
    ax = axes[1, 1]
    ax.plot(step, step_time * 1000, lw=0.6, color="C1", label="ms per step")
    ax.set_title("step time (ms) and tile pairs per pixel")
    pairs = get("tile_pairs_per_pixel")
    if np.isfinite(pairs).any():
        twin = ax.twinx()
        twin.plot(step, pairs, lw=0.8, color="C4", label="tile pairs / px")
        twin.legend(loc="upper right")
    ax.legend(loc="upper left")
    for a in axes.flat:
        a.set_xlabel("step")
        a.grid(alpha=0.3)
    fig.suptitle(f"{Path(run).name}: {int(step[-1])} steps, {rows[-1].get('gaussians')} Gaussians")
    fig.tight_layout()
    return _write_png(Path(run) / "curves.png", lambda buf: fig.savefig(buf, format="png"))


def write_contact_sheet(run: str | Path, views: list[dict]) -> Path | None:
    """``RUN/eval_sheet.png``: one row per held-out view (``views`` as eval.json holds them),
    ground truth left, render right, the view's name and PSNR above; None without renders."""
    from PIL import Image, ImageDraw

    layout = Run(run)
    pairs = []
    for v in views:
        gt, render = (layout.eval_dir / f"{v['index']:04d}_{k}.png" for k in ("gt", "render"))
        if gt.is_file() and render.is_file():
            pairs.append((v, gt, render))
    if not pairs:
        return None
    label_h = 16
    rows = []
    for v, gt, render in pairs:
        with Image.open(gt) as a, Image.open(render) as b:
            h = max(1, round(a.height * SHEET_WIDTH / a.width))
            row = Image.new("RGB", (2 * SHEET_WIDTH, h + label_h), "white")
            row.paste(a.convert("RGB").resize((SHEET_WIDTH, h)), (0, label_h))
            row.paste(b.convert("RGB").resize((SHEET_WIDTH, h)), (SHEET_WIDTH, label_h))
        ImageDraw.Draw(row).text((4, 2), f"{v['name']}: ground truth | render, {v['psnr']:.2f} dB", fill="black")
        rows.append(row)
    sheet = Image.new("RGB", (2 * SHEET_WIDTH, sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    return _write_png(Path(run) / "eval_sheet.png", lambda buf: sheet.save(buf, format="PNG"))
