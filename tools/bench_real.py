#!/usr/bin/env python3
"""Train the real capture (../shared/real/bonsai) with one or more checkouts of splat, in one
run, and print one row per checkout: training time, Gaussians, held-out PSNR / SSIM (every 8th
photo held out, scored by each checkout's own ``splat eval``).

    python tools/bench_real.py [--repo OLD_CHECKOUT ...] [--steps 1500] [--downscale 4] [--cap 50000]

This checkout always runs; each ``--repo`` (e.g. a ``git worktree`` of an earlier commit) runs
with the same command line, one after another, so compare quality, not time: this machine's
speed drifts by tens of per cent from minute to minute.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "real" / "bonsai"
MAIN = "import sys; sys.path.insert(0, sys.argv[1]); from splat.cli import main; sys.exit(main(sys.argv[2:]))"


def run(repo: Path, out: Path, args) -> dict:
    cmd = [sys.executable, "-P", "-c", MAIN, str(repo), "train", str(args.data), "--out", str(out), "--steps",
           str(args.steps), "--downscale", str(args.downscale), "--cap", str(args.cap), "--backend", args.backend,
           "--checkpoint-every", str(args.steps)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{repo}: train failed: {proc.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", action="append", default=[], help="another checkout to run (repeatable)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--downscale", type=int, default=4)
    ap.add_argument("--cap", type=int, default=50_000)
    ap.add_argument("--backend", default="cpu")
    args = ap.parse_args()
    if not args.data.is_dir():
        print(f"error: {args.data}: the real capture is not there", file=sys.stderr)
        return 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, repo in enumerate([ROOT] + [Path(r).resolve() for r in args.repo]):
            rows.append((repo, run(repo, Path(tmp) / f"run{i}", args)))
    print(f"bonsai, {args.steps} steps, downscale {args.downscale}, cap {args.cap}, backend {args.backend}")
    print(f"{'checkout':<40} {'train s':>8} {'wall s':>8} {'gaussians':>10} {'PSNR':>7} {'SSIM':>7}")
    for repo, s in rows:
        print(f"{str(repo):<40} {s['train_seconds']:>8} {s['wall_seconds']:>8} {s['gaussians']:>10} "
              f"{s['psnr']:>7.2f} {s['ssim']:>7.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
