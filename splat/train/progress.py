"""Training with a progress bar on stderr: step, loss, PSNR, Gaussians, it/s, ETA."""

from __future__ import annotations

import sys
import time

from ..progress import Progress, format_duration
from ..interrupts import Interrupted, signal_name
from .run import Run
from .evaluate import evaluate
from .trainer import Trainer


def _format(metrics: dict, steps: int, rate: float) -> str:
    eta = format_duration((steps - metrics["step"]) / rate if rate > 0 else float("nan"))
    width = 24
    done = int(width * metrics["step"] / steps)
    return (f"[{'#' * done}{'.' * (width - done)}] step {metrics['step']}/{steps}  loss {metrics['loss']:.4f}  "
            f"psnr {metrics['psnr']:.2f}  gaussians {metrics['gaussians']}  {rate:.1f} it/s  eta {eta}")


def run_with_progress(trainer: Trainer, evaluate_after: bool = True, stream=None, on_step=None) -> dict:
    """Train to the end with a one-line progress bar (on ``stream``, default stderr), then evaluate.
    ``on_step(trainer, metrics)`` runs after every step (the live viewer's hook).
    Returns a summary dict."""
    stream = stream or sys.stderr
    print(trainer.describe(), file=stream, flush=True)
    loading = Progress("train: reading images", len(trainer.dataset.train), stream=stream)
    if trainer.preload(loading.update):
        loading.close()
    steps, start = trainer.config.steps, trainer.step
    t0 = time.perf_counter()
    last = [0.0]
    tty = stream.isatty()

    def progress(m: dict) -> None:
        if on_step is not None:
            on_step(trainer, m)
        now = time.perf_counter()
        if now - last[0] < (0.2 if tty else 10.0) and m["step"] != steps:
            return
        last[0] = now
        rate = (m["step"] - start) / max(now - t0, 1e-9)
        line = _format(m, steps, rate)
        print(("\r" + line) if tty else line, end="" if tty and m["step"] != steps else "\n", file=stream, flush=True)

    metrics = trainer.train(progress=progress)
    summary = {"run": str(trainer.run), "steps": trainer.step, "gaussians": trainer.gaussians(),
               "train_seconds": round(trainer.elapsed, 1), "final_loss": metrics.get("loss")}
    if evaluate_after:
        try:
            result = evaluate(trainer.run, held=(trainer.config, trainer.dataset, trainer.store()))
        except Interrupted as e:
            raise Interrupted(f"interrupted ({signal_name(e.signum)}) while evaluating; training is finished "
                              f"({Run(trainer.run).scene_path}); evaluate with: splat eval {trainer.run}", e.signum) from None
        summary.update(psnr=result["psnr"], ssim=result["ssim"], test_views=result["test_views"])
    return summary
