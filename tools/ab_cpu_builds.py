#!/usr/bin/env python3
"""Two builds of the CPU extension side by side in one process.

The four kernel stages (projection, blend forward with its binning, blend
backward, projection backward) are called directly, alternating between the
builds, and the minimum and median over the repetitions are printed per stage. On
a shared, noisy machine interleaved calls compare two builds where separate
runs of tools/bench_cpu.py cannot (they moved by ±20 % between runs here).

    python tools/ab_cpu_builds.py OLD_BUILD_DIR NEW_BUILD_DIR [--size 256] [--n 20000] [--reps 30]

A build directory is one of $SPLAT_CACHE/splat_cpu_* (every source change builds a new one).
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench_cpu import bench_camera, bench_scene  # noqa: E402
from splat.render.cpu_backend import camera_args  # noqa: E402

STAGES = ("proj_fwd", "blend_fwd", "blend_bwd", "proj_bwd", "total")


def load_build(folder: str):
    """The extension module built in ``folder`` (its one .so file)."""
    libs = sorted(Path(folder).glob("*.so"))
    if not libs:
        sys.exit(f"error: no built extension (.so) in {folder}")
    name = libs[0].name.split(".")[0]
    loader = importlib.machinery.ExtensionFileLoader(name, str(libs[0]))
    spec = importlib.util.spec_from_file_location(name, str(libs[0]), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def run_stages(ext, params, cam, size: int, background: torch.Tensor):
    """Seconds per stage (and the total) of one forward+backward, and the image."""
    cam_args = camera_args(cam)
    t0 = time.perf_counter()
    means2d, conics, opac, colors, depths, extents, radii = ext.project_fwd(*params, *cam_args, 3, False)
    t1 = time.perf_counter()
    out = ext.rasterize_fwd(means2d, conics, opac, colors, depths, extents, radii, size, size, background, None, 0)
    # colour, alpha, depth, depth_sum, trans_final, last, contributions, label contributions, median, lists
    color, depth_sum, trans_final, last, lists = out[0], out[3], out[4], out[5], out[9:]
    t2 = time.perf_counter()
    ones, zeros = torch.ones_like(color), torch.zeros_like(trans_final)
    args = (means2d, conics, opac, colors, depths, extents, lists, background, trans_final, depth_sum, last, ones,
            zeros, zeros)
    if "arg14" in (ext.rasterize_bwd.__doc__ or ""):  # builds with the absgrad switch: off, as in training
        args += (False,)
    grads = ext.rasterize_bwd(*args)
    t3 = time.perf_counter()
    ext.project_bwd(*params, *cam_args, 3, False, radii, *grads[:5])
    t4 = time.perf_counter()
    return [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0], color


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", help="build folder A")
    ap.add_argument("new", help="build folder B")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    builds = {"A": load_build(args.old), "B": load_build(args.new)}
    store, cam = bench_scene(args.n), bench_camera(args.size)
    params = [t.contiguous() for t in (store.means, store.log_scales, store.quats, store.opacity_logits, store.sh)]
    background = torch.zeros(3)
    times = {k: [] for k in builds}
    images = {}
    for _ in range(args.reps):
        for key, ext in builds.items():
            stage_times, images[key] = run_stages(ext, params, cam, args.size, background)
            times[key].append(stage_times)
    print(f"{args.size}x{args.size}, N={args.n}, threads {torch.get_num_threads()}: ms over {args.reps} "
          f"interleaved calls, minimum and median")
    print("          " + "".join(f"{s:>11}" for s in STAGES))
    for stat, pick in (("min", min), ("median", statistics.median)):
        for key in builds:
            per_stage = zip(*times[key])
            print(f"{key} {stat:>7}" + "".join(f"{pick(t) * 1e3:11.2f}" for t in per_stage))
    print(f"largest image difference A - B: {(images['A'] - images['B']).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
