#!/usr/bin/env python3
"""Train a real capture (default ../shared/real/bonsai) with this checkout, other checkouts and
a peer trainer, in one run, and print one row per system.

    python tools/bench_real.py [--steps 3000] [--downscale 2] [--strategy mcmc] [--peer opensplat]
                               [--repo OLD_CHECKOUT ...] [--train-arg=--cap=200000 ...]
                               [--variant "flags: --appearance --transients" ...]

Every system trains on the same training views (every 8th photo by name held out) for the
same steps, one after another (a ``--variant`` is this checkout again with more train
arguments); each row gives seconds per step over the whole run (the training loop only),
the Gaussian count at the end, peak RSS of its process and the held-out PSNR / SSIM. All systems are scored by this checkout's renderer and metric: our
runs from their scene.ply, OpenSplat from the PLY it writes (trained with ``--keep-crs``, so
it is in the capture's own frame, rendered with the capture's cameras).

With a peer, this checkout trains once more right after it with ``--cap`` set to the peer's
final Gaussian count: the time per step at its count and at ours, as two rows. The speed
lines compare each of our rows with the peer's.

For this checkout the step time is also printed along the run (from metrics.jsonl) against
the Gaussian count and the tile pairs per pixel, so a slow phase shows where it is.

The last lines are one JSON object per system:
{"system", "steps", "seconds_per_step", "gaussians", "psnr", "ssim", "peak_rss_mb"}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "real" / "bonsai"
PEER_SCRIPT = ROOT.parent / "shared" / "peers" / "opensplat.sh"
MAIN = "import sys; sys.path.insert(0, sys.argv[1]); from splat.cli import main; sys.exit(main(sys.argv[2:]))"


def run_child(cmd: list[str], on_line=None, env=None) -> tuple[int, float, str]:
    """Run ``cmd``; (exit code, peak RSS in MB of that process, the last of its output).
    ``on_line(line)`` sees each stdout line as it comes."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
    tail: list[str] = []
    for line in proc.stdout:
        if on_line:
            on_line(line)
        tail = (tail + [line])[-40:]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024, "".join(tail)


def score(store, dataset, backend: str) -> tuple[float, float]:
    """Held-out PSNR / SSIM of ``store`` on ``dataset``'s test views, black background, one metric for all."""
    from splat.train.evaluate import score_views

    views = score_views(store, dataset, dataset.test, backend, "classic", torch.zeros(3))
    return float(np.mean([v["psnr"] for v in views])), float(np.mean([v["ssim"] for v in views]))


def train_ours(repo: Path, out: Path, args, extra: list[str] = ()) -> dict:
    cmd = [sys.executable, "-P", "-c", MAIN, str(repo), "train", str(args.data), "--out", str(out), "--steps",
           str(args.steps), "--downscale", str(args.downscale), "--strategy", args.strategy,
           "--backend", args.backend, "--checkpoint-every", str(args.steps), *args.train_arg, *extra]
    code, rss, tail = run_child(cmd)
    if code != 0:
        raise SystemExit(f"{repo}: train failed:\n{tail}")
    from splat.io.ply import load_ply
    from splat.train.run import Run

    summary = json.loads(tail.strip().splitlines()[-1])
    _, dataset, _ = Run(out).load()
    psnr, ssim = score(load_ply(out / "scene.ply"), dataset, args.backend)
    return {"steps": summary["steps"], "seconds_per_step": summary["train_seconds"] / summary["steps"],
            "gaussians": summary["gaussians"], "psnr": psnr, "ssim": ssim, "peak_rss_mb": rss}


def along_the_run(run: Path, every: int) -> list[str]:
    """Rows of step time (mean over the last ``every`` steps), Gaussians and tile pairs per pixel."""
    rows, last = [], (0, 0.0)
    for line in (run / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        if m["step"] % every == 0 and m["step"] > last[0]:
            dt = (m["elapsed"] - last[1]) / (m["step"] - last[0])
            pairs = f"{m['tile_pairs_per_pixel']:>9.1f}" if "tile_pairs_per_pixel" in m else f"{'-':>9}"
            rows.append(f"  step {m['step']:>6}  {dt:.4f} s/step  {1 / dt:6.1f} steps/s  gaussians {m['gaussians']:>8}  "
                        f"tile pairs/px {pairs}")
            last = (m["step"], m["elapsed"])
    return rows


def opensplat_input(dataset, folder: Path) -> Path:
    """A nerfstudio transforms.json of the training views only (capture frame, OpenGL axes) and its points."""
    from splat.io.ply import save_point_cloud

    folder.mkdir(parents=True)
    frames = []
    for i in dataset.train:
        cam = dataset.cameras[i]
        K = cam.K.tolist()
        frames.append({"file_path": str(dataset.image_paths[i].resolve()), "w": cam.width, "h": cam.height,
                       "fl_x": K[0][0], "fl_y": K[1][1], "cx": K[0][2], "cy": K[1][2],
                       "transform_matrix": cam.opengl_c2w().tolist()})
    save_point_cloud(folder / "points.ply", np.asarray(dataset.points), np.asarray(dataset.point_colors))
    (folder / "transforms.json").write_text(json.dumps({"camera_model": "PINHOLE", "frames": frames,
                                                        "ply_file_path": "points.ply"}))
    return folder


def train_opensplat(binary: str, out: Path, args) -> dict:
    from splat.data.loaders import load_colmap
    from splat.io.ply import load_ply

    dataset = load_colmap(args.data, normalize=False)  # full-size cameras: OpenSplat downscales itself
    folder = opensplat_input(dataset, out / "input")
    stamps: list[float] = []

    def on_line(line: str) -> None:
        if line.startswith("Step "):
            stamps.append(time.perf_counter())

    cmd = [binary, str(folder), "--cpu", "-n", str(args.steps), "-d", str(args.downscale), "--num-downscales", "0",
           "--keep-crs", "-o", str(out / "opensplat.ply")]
    code, rss, tail = run_child(cmd, on_line)
    if code != 0 or len(stamps) < 2:
        raise SystemExit(f"opensplat failed (exit {code}):\n{tail}")
    store = load_ply(out / "opensplat.ply")
    psnr, ssim = score(store, load_colmap(args.data, downscale=args.downscale, normalize=False), args.backend)
    return {"steps": len(stamps), "seconds_per_step": (stamps[-1] - stamps[0]) / (len(stamps) - 1),
            "gaussians": len(store), "psnr": psnr, "ssim": ssim, "peak_rss_mb": rss}


def speed_lines(rows: list[tuple[str, dict]]) -> list[str]:
    """How many times faster per step each of our rows is than the peer's (or, without a peer,
    than the first row), with the held-out PSNR difference."""
    peers = [(name, r) for name, r in rows if not name.startswith("splat")]
    ref_name, ref = peers[0] if peers else rows[0]
    return [f"speed: {ref['seconds_per_step'] / r['seconds_per_step']:.1f}x at {r['psnr'] - ref['psnr']:+.2f} dB "
            f"({name} against {ref_name})" for name, r in rows if name.startswith("splat") and r is not ref]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--downscale", type=int, default=2)
    ap.add_argument("--strategy", default="mcmc")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--peer", action="append", default=[], choices=["opensplat"], help="a peer trainer to run too")
    ap.add_argument("--repo", action="append", default=[], help="another checkout of splat to run (repeatable)")
    ap.add_argument("--train-arg", action="append", default=[], help="extra argument for our splat train (repeatable)")
    ap.add_argument("--variant", action="append", default=[],
                    help='"NAME: ARGS": this checkout again with these extra train arguments (repeatable)')
    ap.add_argument("--keep", type=Path, help="keep the runs in this folder")
    args = ap.parse_args()
    if not args.data.is_dir():
        print(f"error: {args.data}: the real capture is not there", file=sys.stderr)
        return 1
    variants = []
    for variant in args.variant:
        name, sep, extra = variant.partition(":")
        if not sep or not name.strip():
            print(f'error: --variant {variant!r}: write it as "NAME: ARGS"', file=sys.stderr)
            return 1
        variants.append((name.strip(), extra.split()))
    binary = None
    if "opensplat" in args.peer:
        found = subprocess.run(["bash", str(PEER_SCRIPT), sys.executable], capture_output=True, text=True)
        if found.returncode != 0:
            print(f"error: OpenSplat could not be built: {found.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            return 1
        binary = found.stdout.strip().splitlines()[-1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        for i, repo in enumerate([ROOT] + [Path(r).resolve() for r in args.repo]):
            out = base / f"splat{i}"
            rows.append((f"splat {args.strategy}" + (f" ({repo.name})" if i else ""), train_ours(repo, out, args)))
            if i == 0:
                print(f"this checkout along the run ({args.strategy}):")
                print("\n".join(along_the_run(out, max(args.steps // 10, 1))))
        for k, (name, extra) in enumerate(variants):
            rows.append((f"splat {args.strategy} {name}", train_ours(ROOT, base / f"variant{k}", args, extra)))
        if binary:
            peer = train_opensplat(binary, base / "opensplat", args)
            rows.append(("opensplat", peer))
            rows.append((f"splat {args.strategy} at opensplat's count",
                         train_ours(ROOT, base / "at_peer_count", args, ["--cap", str(peer["gaussians"])])))
    print(f"\n{args.data.name}, {args.steps} steps, downscale {args.downscale}, backend {args.backend}, "
          f"{os.cpu_count()} cores")
    width = max(len(name) for name, _ in rows)
    print(f"{'system':<{width}} {'s/step':>8} {'gaussians':>10} {'PSNR':>7} {'SSIM':>7} {'peak RSS MB':>12}")
    for name, r in rows:
        print(f"{name:<{width}} {r['seconds_per_step']:>8.4f} {r['gaussians']:>10} {r['psnr']:>7.2f} {r['ssim']:>7.4f} "
              f"{r['peak_rss_mb']:>12.0f}")
    for line in speed_lines(rows):
        print(line)
    for name, r in rows:
        print(json.dumps({"system": name, "steps": r["steps"], "seconds_per_step": round(r["seconds_per_step"], 4),
                          "gaussians": r["gaussians"], "psnr": round(r["psnr"], 3), "ssim": round(r["ssim"], 4),
                          "peak_rss_mb": round(r["peak_rss_mb"], 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
