"""Training benchmark: strategies side by side on a generated scene at equal steps.

    python tools/bench_train.py [--recipe default] [--steps 1500] [--strategies mcmc,adc] [--out DIR]

Generates the scene once (or reuses DIR/scene), trains each strategy with the demo's
schedule on the CPU backend (unless --backend), evaluates the held-out views and prints a
markdown table: PSNR, SSIM, Gaussians, training time, steps per second.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    from splat.demo import DEMO_CONFIG
    from splat.scenes import generate
    from splat.train import TrainConfig, Trainer, evaluate

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="default")
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--steps", type=int, default=DEMO_CONFIG["steps"])  # the table in docs used 1500
    ap.add_argument("--cap", type=int, default=DEMO_CONFIG["cap"])
    ap.add_argument("--strategies", default="mcmc,adc")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--out", type=Path, default=None, help="Work folder (default: a temporary one).")
    args = ap.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="splat_bench_train_"))
    scene = work / f"scene_{args.recipe}_{args.size}"
    if not (scene / "transforms.json").exists():
        generate(args.recipe, scene, size=args.size)
    rows = []
    for strategy in args.strategies.split(","):
        run = work / f"run_{strategy}"
        shutil.rmtree(run, ignore_errors=True)
        cfg = dict(DEMO_CONFIG, strategy=strategy, steps=args.steps, cap=args.cap)
        trainer = Trainer.start(TrainConfig(data=str(scene), backend=args.backend, **cfg), run)
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
        result = evaluate(run)
        rows.append((strategy, result["psnr"], result["ssim"], result["gaussians"], seconds, args.steps / seconds))
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{args.recipe} scene {args.size}x{args.size}, {args.steps} steps, cap {args.cap}, backend {args.backend}")
    print("| strategy | held-out PSNR (dB) | SSIM | Gaussians | train time (s) | steps/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, p, s, n, sec, rate in rows:
        print(f"| {name} | {p:.2f} | {s:.4f} | {n} | {sec:.1f} | {rate:.1f} |")
    print(json.dumps([dict(zip(("strategy", "psnr", "ssim", "gaussians", "seconds", "steps_per_s"), r)) for r in rows]))


if __name__ == "__main__":
    main()
