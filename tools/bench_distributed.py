#!/usr/bin/env python3
"""Sharded training against one process, in one run: the same scene, batch and steps.

    python tools/bench_distributed.py [--data SCENE] [--steps 1100] [--batch 2] [--nproc 2]
                                      [--train-arg=--cap=30000 ...]

Without --data it generates the default scene. Prints one row per system: held-out PSNR /
SSIM, seconds per step, Gaussians at the end, the largest share one rank held at any logged
step, and for the sharded run the exchange per step (bytes sent between ranks, forward rows
and backward gradients, its seconds against the rest) and the visible (Gaussian, camera)
pairs per camera that those bytes come from. Last lines: one JSON object per system.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPLAT = [sys.executable, "-P", "-c", "import sys; sys.path.insert(0, sys.argv[1]); from splat.cli import main; "
         "sys.exit(main(sys.argv[2:]))", str(ROOT)]
ROW_BYTES = 13 * 4  # a packed projected Gaussian (splat.render.stages)


def train(data: Path, out: Path, args, nproc: int) -> dict:
    cmd = SPLAT + ["train", str(data), "--out", str(out), "--steps", str(args.steps), "--batch", str(args.batch),
                   "--nproc", str(nproc), "--backend", "cpu", "--checkpoint-every", str(args.steps), *args.train_arg]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"train --nproc {nproc} failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    row = {"system": f"splat nproc {nproc}", "steps": summary["steps"], "psnr": summary["psnr"],
           "ssim": summary["ssim"], "seconds_per_step": summary["train_seconds"] / summary["steps"],
           "gaussians": summary["gaussians"], "max_rank_share": 1.0}
    sharded = [m for m in lines if "gaussians_per_rank" in m]
    if sharded:
        row["max_rank_share"] = max(max(m["gaussians_per_rank"]) / sum(m["gaussians_per_rank"]) for m in sharded)
        exchange = sum(m["exchange_seconds"] for m in sharded) / len(sharded)
        compute = sum(m["compute_seconds"] for m in sharded) / len(sharded)
        sent = sum(m["exchange_bytes"] for m in sharded) / len(sharded)
        remote_rows = sent / 2 / ROW_BYTES  # rows that left their rank, per step
        row.update(exchange_bytes_per_step=round(sent), exchange_seconds=round(exchange, 5),
                   compute_seconds=round(compute, 5),
                   visible_per_camera=round(remote_rows / args.batch * nproc / (nproc - 1)))
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--steps", type=int, default=1100)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--train-arg", action="append", default=[], help="extra argument for both trainings")
    args = ap.parse_args()
    if args.nproc < 2:
        print("error: --nproc must be 2 or more (the other row is one process)", file=sys.stderr)
        return 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = args.data
        if data is None:
            data = tmp / "scene"
            subprocess.run(SPLAT + ["scene", "generate", "default", str(data)], check=True, capture_output=True)
        for nproc in (1, args.nproc):
            rows.append(train(data, tmp / f"run{nproc}", args, nproc))
    print(f"\n{data.name if args.data else 'default scene'}, {args.steps} steps, batch {args.batch}")
    print(f"{'system':<16} {'PSNR':>7} {'SSIM':>7} {'s/step':>8} {'gaussians':>10} {'max rank share':>15} "
          f"{'exchange B/step':>16} {'exchange s':>11} {'compute s':>10}")
    for r in rows:
        print(f"{r['system']:<16} {r['psnr']:>7.2f} {r['ssim']:>7.4f} {r['seconds_per_step']:>8.4f} "
              f"{r['gaussians']:>10} {r['max_rank_share']:>15.3f} {r.get('exchange_bytes_per_step', 0):>16} "
              f"{r.get('exchange_seconds', 0):>11.5f} {r.get('compute_seconds', 0):>10.5f}")
    print(f"PSNR difference (sharded - one process): {rows[1]['psnr'] - rows[0]['psnr']:+.2f} dB")
    for r in rows:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
