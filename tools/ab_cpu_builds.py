#!/usr/bin/env python3
"""Two builds of the CPU extension side by side in one process.

The four kernel stages (projection, blend forward with its binning, blend
backward, projection backward) are called directly, alternating between the
builds, and the minimum and median over the repetitions are printed per stage. On
a shared, noisy machine interleaved calls compare two builds where separate
runs of tools/bench_cpu.py cannot (they moved by ±20 % between runs here).

    python tools/ab_cpu_builds.py OLD_BUILD_DIR NEW_BUILD_DIR [--size 256] [--n 20000] [--reps 30]
    python tools/ab_cpu_builds.py OLD_BUILD_DIR NEW_BUILD_DIR --run RUN [--views 6] [--reps 5]

With --run, a trained run's Gaussians and every n-th of its training views (6 of them)
instead of the synthetic scene; the stage times are summed over the views. Either way the
last line says whether the two builds gave the same image and gradients bit for bit.

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


def run_stages(ext, params, cam, background: torch.Tensor):
    """Seconds per stage (and the total) of one forward+backward, and the outputs (the
    image, then the gradients of the Gaussians' parameters)."""
    cam_args = camera_args(cam)
    t0 = time.perf_counter()
    means2d, conics, opac, colors, depths, extents, radii = ext.project_fwd(*params, *cam_args, 3, False)
    t1 = time.perf_counter()
    out = ext.rasterize_fwd(means2d, conics, opac, colors, depths, extents, radii, cam.width, cam.height, background,
                            None, 0)
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
    param_grads = ext.project_bwd(*params, *cam_args, 3, False, radii, *grads[:5])
    t4 = time.perf_counter()
    return [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0], [color, *param_grads]


def run_scene(folder: str, views: int):
    """(store, cameras) of a trained run: its Gaussians and ``views`` of its training views, evenly spread."""
    from splat.train.run import Run

    _, dataset, store = Run(folder).load()
    train = dataset.train
    return store, [dataset.cameras[i] for i in train[:: max(1, len(train) // views)][:views]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", help="build folder A")
    ap.add_argument("new", help="build folder B")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--run", help="a trained run: its Gaussians and training views instead of the synthetic scene")
    ap.add_argument("--views", type=int, default=6, help="with --run: how many of its training views")
    args = ap.parse_args()
    builds = {"A": load_build(args.old), "B": load_build(args.new)}
    if args.run:
        store, cams = run_scene(args.run, args.views)
        scene = f"{args.run}: {len(store)} Gaussians, {len(cams)} views of {cams[0].width}x{cams[0].height}"
    else:
        store, cams = bench_scene(args.n), [bench_camera(args.size)]
        scene = f"{args.size}x{args.size}, N={args.n}"
    params = [t.contiguous() for t in (store.means, store.log_scales, store.quats, store.opacity_logits, store.sh)]
    background = torch.zeros(3)
    times = {k: [] for k in builds}
    outputs = {k: [] for k in builds}
    for _ in range(args.reps):
        for key, ext in builds.items():
            per_view = []
            outputs[key] = []
            for cam in cams:
                stage_times, outs = run_stages(ext, params, cam, background)
                per_view.append(stage_times)
                outputs[key] += outs
            times[key].append([sum(t) for t in zip(*per_view)])
    print(f"{scene}, threads {torch.get_num_threads()}: ms over {args.reps} interleaved calls, minimum and median")
    print("          " + "".join(f"{s:>11}" for s in STAGES))
    for stat, pick in (("min", min), ("median", statistics.median)):
        for key in builds:
            per_stage = zip(*times[key])
            print(f"{key} {stat:>7}" + "".join(f"{pick(t) * 1e3:11.2f}" for t in per_stage))
    same = all(torch.equal(a, b) for a, b in zip(outputs["A"], outputs["B"]))
    largest = max((a - b).abs().max().item() for a, b in zip(outputs["A"], outputs["B"]))
    print(f"image and gradients bit for bit the same: {'yes' if same else 'no'} (largest difference {largest:.2e})")


if __name__ == "__main__":
    main()
