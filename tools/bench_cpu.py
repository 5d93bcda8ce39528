#!/usr/bin/env python3
"""Rasterizer timings on the CPU: forward and forward+backward, per backend.

Scenes: N random Gaussians in a unit cube seen by one camera (fixed seed).
Prints one line per measurement as it goes and a table last.

The backends of one size are timed interleaved: rounds of one call of the slow
reference and about --min-time / --reps seconds of calls of each fast backend,
medians over all rounds. On a shared machine whose speed moves by tens of per
cent from minute to minute, timing one backend after the other put their
measurements in different minutes, and the speed-up moved with them.

    python tools/bench_cpu.py                       # all available CPU backends, both sizes
    python tools/bench_cpu.py --backends torch --sizes 256:20000
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from splat import Camera, GaussianStore  # noqa: E402
from splat.render import available_backends, rasterize  # noqa: E402


def bench_scene(n: int, seed: int = 0) -> GaussianStore:
    """N Gaussians uniform in [-1, 1]^3, scales 0.005..0.05, opacities 0.1..0.95, SH degree 3."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g) * 2 - 1
    scales = torch.exp(torch.empty(n, 3).uniform_(math.log(0.005), math.log(0.05), generator=g))
    quats = torch.randn(n, 4, generator=g)
    opac = torch.rand(n, generator=g) * 0.85 + 0.1
    store = GaussianStore.from_activated(means, scales, quats, opac, torch.rand(n, 3, generator=g), sh_degree=3)
    store.sh[:, 1:] = torch.randn(n, 15, 3, generator=g) * 0.05
    return store


def bench_camera(size: int) -> Camera:
    return Camera.look_at((0.6, -2.8, 1.2), (0, 0, 0), (0, 0, 1), 50, size, size)


def time_interleaved(fns: dict, reps: int, min_time: float) -> dict:
    """Median seconds per call of each function in ``fns`` (name -> fn), timed in
    ``reps`` rounds or more, until each has spent ``min_time`` seconds. In a round each
    function runs at least once and for at least min_time / reps seconds, so a fast
    backend's calls spread over the same minutes as the slow reference's."""
    for fn in fns.values():
        fn()  # warm-up (and lazy builds)
    times = {name: [] for name in fns}
    rounds = 0
    while rounds < reps or any(sum(t) < min_time for t in times.values()):
        for name, fn in fns.items():
            spent = 0.0
            while spent == 0.0 or spent < min_time / reps:
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
                times[name].append(dt)
                spent += dt
        rounds += 1
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default=",".join(b for b in available_backends() if b != "cuda"))
    ap.add_argument("--sizes", default="256:20000,512:100000", help="SIZE:N pairs")
    ap.add_argument("--reps", type=int, default=3, help="at least this many rounds (each backend called in every round)")
    ap.add_argument("--min-time", type=float, default=1.0, help="and at least this many seconds of calls per backend")
    ap.add_argument("--skip-torch-above", type=int, default=20000, help="skip the torch backend above this N")
    args = ap.parse_args()
    rows = []
    for spec in args.sizes.split(","):
        size, n = (int(v) for v in spec.split(":"))
        store = bench_scene(n)
        cam = bench_camera(size)
        backends = [b for b in args.backends.split(",") if not (b == "torch" and n > args.skip_torch_above)]

        def fwd(backend):
            with torch.no_grad():
                rasterize(store, cam, backend=backend)

        def fwd_bwd(backend):
            s = store.clone().requires_grad_()
            r = rasterize(s, cam, backend=backend)
            (r.color.sum() + r.alpha.sum()).backward()

        tf = time_interleaved({b: (lambda b=b: fwd(b)) for b in backends}, args.reps, args.min_time)
        for b in backends:
            print(f"{b:>6} {size}x{size} N={n}: forward {tf[b] * 1e3:.1f} ms", flush=True)
        tb = time_interleaved({b: (lambda b=b: fwd_bwd(b)) for b in backends}, args.reps, args.min_time)
        for b in backends:
            print(f"{b:>6} {size}x{size} N={n}: forward+backward {tb[b] * 1e3:.1f} ms", flush=True)
            rows.append((b, f"{size}x{size}", n, tf[b], tb[b]))
    print()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    print(f"{'backend':>8} {'image':>9} {'N':>7} {'forward ms':>11} {'fwd+bwd ms':>11} {'speed-up fwd+bwd':>17}")
    base = {(r[1], r[2]): r[4] for r in rows if r[0] == "torch"}
    for b, img, n, tf, tb in rows:
        sp = f"{base[(img, n)] / tb:.1f}x" if (img, n) in base else "-"
        print(f"{b:>8} {img:>9} {n:>7} {tf * 1e3:>11.1f} {tb * 1e3:>11.1f} {sp:>17}")


if __name__ == "__main__":
    main()
