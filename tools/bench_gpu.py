#!/usr/bin/env python3
"""Our CUDA backend against gsplat's ``rasterization``, in one process, on the same Gaussians and cameras.

For each image size and Gaussian count: forward, and forward+backward (loss =
sum of the image), median of CUDA-event timings after warm-up, peak GPU memory
of one forward+backward, and the largest pixel difference from gsplat's image
in the same mode. Prints one line per measurement and a table last.

Scene: N Gaussians in a ball of radius 1.5 seen from 4 units away (50 degree
field of view): log-uniform scales 0.002..0.03 (a few to tens of pixels at
1080p), SH degree 3. Opacities are drawn in 0.05..0.99: above 0.99 gsplat
clamps alpha at 0.999 where we (as the Inria code) clamp at 0.99, so images
could differ there by design.

    python tools/bench_gpu.py                          # 270x480 and 1080x1920, 300k and 1M
    python tools/bench_gpu.py --configs 1080x1920:300000 --reps 20
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from splat import Camera, GaussianStore  # noqa: E402
from splat.render import rasterize  # noqa: E402


def bench_scene(n: int, seed: int = 0) -> GaussianStore:
    g = torch.Generator(device="cuda").manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, device="cuda"), dim=-1)
    radius = 1.5 * torch.rand(n, 1, generator=g, device="cuda") ** (1 / 3)
    log_scales = torch.empty(n, 3, device="cuda").uniform_(math.log(0.002), math.log(0.03), generator=g)
    opac = torch.rand(n, generator=g, device="cuda") * 0.94 + 0.05
    return GaussianStore(
        means=dirs * radius,
        log_scales=log_scales,
        quats=torch.randn(n, 4, generator=g, device="cuda"),
        opacity_logits=torch.log(opac / (1 - opac)),
        sh=torch.cat([torch.rand(n, 1, 3, generator=g, device="cuda") * 2 - 1,
                      torch.randn(n, 15, 3, generator=g, device="cuda") * 0.1], 1),
    )


def bench_camera(height: int, width: int) -> Camera:
    return Camera.look_at((0.8, -3.8, 1.0), (0, 0, 0), (0, 0, 1), 50, width, height)


def cuda_time(fn, reps: int, warmup: int = 3) -> float:
    """Median milliseconds of fn() by CUDA events, after warm-up."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def peak_mib(fn) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


class Ours:
    name = "splat"

    def __init__(self, store: GaussianStore, cam: Camera, mode: str):
        self.store, self.cam, self.mode = store, cam, mode

    def forward(self):
        with torch.no_grad():
            return rasterize(self.store, self.cam, backend="cuda", mode=self.mode, contributions=False).color

    def forward_backward(self):
        s = self.store.clone().requires_grad_()  # clone: gradients start at None each time (not timed apart)
        r = rasterize(s, self.cam, backend="cuda", mode=self.mode, contributions=False)
        r.color.sum().backward()


class Gsplat:
    def __init__(self, store: GaussianStore, cam: Camera, mode: str, packed: bool):
        self.name = f"gsplat{' packed' if packed else ''}"
        self.mode, self.packed = mode, packed
        self.params = [store.means, store.quats, store.log_scales, store.opacity_logits, store.sh]
        self.viewmats = cam.viewmat.to("cuda", torch.float32)[None]
        self.Ks = cam.K.to("cuda", torch.float32)[None]
        self.W, self.H, self.near, self.far = cam.width, cam.height, cam.near, cam.far

    def _render(self, means, quats, log_scales, logits, sh):
        from gsplat import rasterization

        colors, _, _ = rasterization(
            means, quats, torch.exp(log_scales), torch.sigmoid(logits), sh, self.viewmats, self.Ks, self.W, self.H,
            near_plane=self.near, far_plane=self.far, eps2d=0.3, sh_degree=3, packed=self.packed,
            rasterize_mode=self.mode,
        )
        return colors

    def forward(self):
        with torch.no_grad():
            return self._render(*self.params)

    def forward_backward(self):
        params = [p.detach().clone().requires_grad_() for p in self.params]
        self._render(*params).sum().backward()


def profile(runner, label: str, reps: int = 5) -> None:
    """Kernel times of one forward+backward (mean of ``reps``), by torch.profiler."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for _ in range(3):
        runner.forward_backward()
    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            runner.forward_backward()
        torch.cuda.synchronize()
    kernels = sorted(
        ((getattr(e, "self_device_time_total", 0) / reps / 1000, e.count // reps, e.key) for e in prof.key_averages()),
        reverse=True,
    )
    total = sum(k[0] for k in kernels)
    print(f"-- {runner.name} {label}: device time per forward+backward {total:.3f} ms (kernels and copies)")
    for ms, count, key in kernels[:20]:
        if ms >= 0.001:
            print(f"   {ms:7.3f} ms  x{count:<3} {key[:90]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="270x480:300000,270x480:1000000,1080x1920:300000,1080x1920:1000000",
                    help="HxW:N triples")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--mode", default="classic", choices=["classic", "antialiased"])
    ap.add_argument("--no-gsplat", action="store_true", help="time our backend only")
    ap.add_argument("--profile", metavar="HxW:N", help="also print the CUDA kernel times of one forward+backward")
    ap.add_argument("--nudge", metavar="HxW:N",
                    help="also render each backend with every mean moved by one float32 ulp: how far an image "
                         "moves under the smallest change of its input (alpha's 1/255 cut-off is a step)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("error: no CUDA GPU visible to torch")
    gsplat_ok = not args.no_gsplat
    if gsplat_ok:
        try:
            import gsplat  # noqa: F401
        except ImportError:
            print("gsplat is not installed: timing our backend only", file=sys.stderr)
            gsplat_ok = False
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, mode {args.mode}", flush=True)
    rows = []
    for cfg in args.configs.split(","):
        size, n = cfg.split(":")
        h, w = (int(v) for v in size.split("x"))
        store, cam = bench_scene(int(n)), bench_camera(h, w)
        runners = [Ours(store, cam, args.mode)]
        if gsplat_ok:
            runners += [Gsplat(store, cam, args.mode, packed=False), Gsplat(store, cam, args.mode, packed=True)]
        ours_img = runners[0].forward()
        for r in runners:
            fwd = cuda_time(r.forward, args.reps)
            fb = cuda_time(r.forward_backward, args.reps)
            mem = peak_mib(r.forward_backward)
            err = (r.forward() - ours_img).abs().amax(-1) if r is not runners[0] else torch.zeros(1)
            diff, over = err.max().item(), int((err > 1e-3).sum())  # largest, and pixels above 1e-3
            rows.append((f"{h}x{w}", int(n), r.name, fwd, fb, mem, diff, over))
            print(f"{h}x{w} N={n} {r.name}: forward {fwd:.2f} ms, fwd+bwd {fb:.2f} ms, peak {mem:.0f} MiB, "
                  f"max |diff| vs ours {diff:.2e}, pixels above 1e-3: {over}, 99.99th percentile "
                  f"{err.flatten().float().quantile(0.9999).item() if err.numel() < 2**24 else float('nan'):.1e}",
                  flush=True)
        del store, runners, ours_img
        torch.cuda.empty_cache()
    if args.profile:
        size, n = args.profile.split(":")
        h, w = (int(v) for v in size.split("x"))
        store, cam = bench_scene(int(n)), bench_camera(h, w)
        runners = [Ours(store, cam, args.mode)] + ([Gsplat(store, cam, args.mode, packed=False)] if gsplat_ok else [])
        for r in runners:
            profile(r, f"{size} N={n}")
    if args.nudge:
        size, n = args.nudge.split(":")
        h, w = (int(v) for v in size.split("x"))
        store, cam = bench_scene(int(n)), bench_camera(h, w)
        nudged = store.clone()
        nudged.means = torch.nextafter(store.means, torch.full_like(store.means, float("inf")))
        makers = [lambda s: Ours(s, cam, args.mode)] + ([lambda s: Gsplat(s, cam, args.mode, False)] if gsplat_ok else [])
        for make in makers:
            before, after = make(store), make(nudged)
            err = (after.forward() - before.forward()).abs().amax(-1)
            print(f"-- {before.name} {size} N={n}, means moved by one ulp: max |change| {err.max().item():.2e}, "
                  f"pixels above 1e-3: {int((err > 1e-3).sum())}", flush=True)
    print()
    print(f"{'size':>10} {'N':>8} {'backend':>14} {'fwd ms':>8} {'fwd+bwd ms':>10} {'peak MiB':>9} {'max|diff|':>9} {'px>1e-3':>7} {'fwd ratio':>9} {'f+b ratio':>9}")
    for size, n, name, fwd, fb, mem, diff, over in rows:
        best = [r for r in rows if r[0] == size and r[1] == n and r[2].startswith("gsplat")]
        ref_f = min((r[3] for r in best), default=float("nan"))
        ref_fb = min((r[4] for r in best), default=float("nan"))
        ratio = f"{fwd / ref_f:9.2f} {fb / ref_fb:9.2f}" if name == "splat" and best else f"{'':9} {'':9}"
        print(f"{size:>10} {n:>8} {name:>14} {fwd:8.2f} {fb:10.2f} {mem:9.0f} {diff:9.1e} {over:7d} {ratio}")
    print("ratios: ours / the faster gsplat variant (below 1 = faster than gsplat)")


if __name__ == "__main__":
    main()
