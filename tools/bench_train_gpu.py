#!/usr/bin/env python3
"""Whole training runs on a GPU: splat (mcmc, CUDA backend) against gsplat's ``rasterization`` +
``MCMCStrategy`` in the same recipe, in one process, one table.

    python tools/bench_train_gpu.py                      # bonsai at 400x266, 7000 steps, cap 300k
    python tools/bench_train_gpu.py --steps 3000 --cap 200000 --profile 20
    python tools/bench_train_gpu.py --dry-run            # the CPU check CI runs (no GPU, no gsplat)

The recipe, the same for both (splat's defaults, which are the 3DGS-MCMC reference's):
the same starting Gaussians (splat's ``starting_store``: the capture's points, the far sphere,
0.5 x the 3-NN distance, opacity 0.5), the same training views (each epoch in a random order), loss
0.8 L1 + 0.2 D-SSIM (splat's torch SSIM for gsplat's half: gsplat's own trainer uses the
``fused_ssim`` package, which is not on the GPU machine), opacity and scale regularisers 0.01,
the same learning rates (the means' x the scene scale, decaying to 0.01 x), Adam eps 1e-15,
SH degree up every 1000 steps, relocation and growth every 100 steps from step 500, noise lr
5e5, a black background (random background off for both). Each step ends with a host sync in
both: splat's trainer reads its loss each step, and gsplat's own ``simple_trainer`` does too.

Rows: wall time of the training loop (images already on the device), ms per step over the
last 500 steps, peak GPU memory (torch's allocator, images included), Gaussians at the end,
held-out PSNR / SSIM (every 8th photo), both scored by splat's ``score_views`` with the CUDA
renderer. The last lines are one JSON object per system.

``--dry-run`` runs splat's half on the CPU backend for 20 steps, and the gsplat half's loop with
a stand-in: splat's torch renderer behind gsplat's call and a strategy that does nothing. It
checks the recipe's code, not gsplat; its times mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "real" / "bonsai"
LAST = 500  # steps the per-step time is taken over

from splat import Camera, GaussianStore  # noqa: E402
from splat.train.config import TrainConfig  # noqa: E402
from splat.train.evaluate import score_views  # noqa: E402
from splat.train.init import scene_scale, starting_store  # noqa: E402
from splat.train.losses import photometric_loss  # noqa: E402


def recipe(args) -> TrainConfig:
    """The settings both systems train with."""
    config = TrainConfig(data=str(args.data), downscale=args.downscale, steps=args.steps, strategy="mcmc",
                         cap=args.cap, backend=args.backend, background=[0.0, 0.0, 0.0],
                         checkpoint_every=args.steps, log_every=max(args.steps // 20, 1))
    return config.validate()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_mb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")


def timings(stamps: list[float], start: float) -> tuple[float, float]:
    """(seconds from ``start`` to the last step, ms per step over the last ``LAST`` steps)."""
    last = min(LAST, len(stamps) - 1)
    return stamps[-1] - start, 1000 * (stamps[-1] - stamps[-1 - last]) / max(last, 1)


def train_splat(config: TrainConfig, out: Path) -> dict:
    """splat's own trainer, as ``splat train`` runs it."""
    from splat.train.trainer import Trainer

    trainer = Trainer.start(config, out)
    trainer.preload()  # images on the device, as gsplat's half holds them
    device = trainer.device
    stamps: list[float] = []
    reset_peak(device)
    sync(device)
    start = time.perf_counter()
    trainer.train(progress=lambda _metrics: stamps.append(time.perf_counter()))  # the loss read syncs each step
    wall, ms = timings(stamps, start)
    return {"wall_s": wall, "ms_per_step": ms, "peak_gpu_mb": peak_mb(device), "store": trainer.store(),
            "device": device}


def gsplat_parts():
    """(gsplat's rasterization, its MCMCStrategy class)."""
    from gsplat import rasterization
    from gsplat.strategy import MCMCStrategy

    return rasterization, MCMCStrategy


def standin_parts(backend: str):
    """A stand-in for gsplat on a machine without a GPU: splat's renderer behind gsplat's call
    (same arguments, same outputs) and a strategy that does nothing (gsplat's needs CUDA)."""
    from splat.render import rasterize

    def rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane=0.01,
                      far_plane=1e10, sh_degree=None, rasterize_mode="classic", **_):
        store = GaussianStore(means, scales.log(), quats, torch.logit(opacities), colors)
        cam = Camera(Ks[0].detach(), viewmats[0].detach(), width, height, near_plane, far_plane)
        r = rasterize(store, cam, backend=backend, sh_degree=sh_degree, mode=rasterize_mode, contributions=False,
                      background=torch.zeros(3))
        return r.color, r.alpha, {}

    class NoStrategy:
        def __init__(self, **_):
            pass

        def check_sanity(self, params, optimizers):
            assert set(params) == set(optimizers)

        def initialize_state(self):
            return {}

        def step_post_backward(self, params, optimizers, state, step, info, lr):
            pass

    return rasterization, NoStrategy


def train_gsplat(config: TrainConfig, dataset, device: torch.device, parts) -> dict:
    """gsplat's rasterization and MCMCStrategy in splat's recipe, written as gsplat's own
    ``simple_trainer`` runs them (one Adam per parameter, the strategy after the optimiser)."""
    rasterization, MCMCStrategy = parts
    scale = scene_scale(dataset)
    generator = torch.Generator().manual_seed(config.seed)
    store = starting_store(config, dataset, scale, generator)  # the same draws as splat's start
    params = torch.nn.ParameterDict({
        "means": store.means, "scales": store.log_scales, "quats": store.quats,
        "opacities": store.opacity_logits, "sh0": store.sh[:, :1], "shN": store.sh[:, 1:],
    }).to(device)
    lr = config.lr
    rates = {"means": lr["means"] * scale, "scales": lr["log_scales"], "quats": lr["quats"],
             "opacities": lr["opacity_logits"], "sh0": lr["sh_dc"], "shN": lr["sh_rest"]}
    optimizers = {k: torch.optim.Adam([{"params": params[k], "lr": rates[k], "name": k}], eps=1e-15)
                  for k in params}
    decay = torch.optim.lr_scheduler.ExponentialLR(optimizers["means"], config.means_lr_final ** (1 / config.steps))
    s = config.mcmc
    strategy = MCMCStrategy(cap_max=config.cap, noise_lr=s.noise_lr, refine_start_iter=s.refine_start,
                            refine_stop_iter=s.refine_stop, refine_every=s.refine_every, min_opacity=s.min_opacity)
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state()
    images = {i: torch.from_numpy(dataset.image_rgba(i)[..., :3].copy()).to(device) for i in dataset.train}
    cams = {i: (dataset.cameras[i].viewmat.to(device, torch.float32)[None],
                dataset.cameras[i].K.to(device, torch.float32)[None], dataset.cameras[i]) for i in dataset.train}
    stamps: list[float] = []
    order: list[int] = []
    reset_peak(device)
    sync(device)
    start = time.perf_counter()
    for step in range(config.steps):
        if not order:
            order = [dataset.train[int(k)] for k in torch.randperm(len(dataset.train), generator=generator)]
        i = order.pop(0)
        viewmats, Ks, cam = cams[i]
        sh_degree = min(step // config.sh_interval, config.sh_degree)
        colors, _, info = rasterization(
            params["means"], params["quats"], torch.exp(params["scales"]), torch.sigmoid(params["opacities"]),
            torch.cat([params["sh0"], params["shN"]], 1), viewmats, Ks, cam.width, cam.height,
            near_plane=cam.near, far_plane=cam.far, sh_degree=sh_degree, packed=False,
            rasterize_mode=config.mode)
        loss = photometric_loss(colors[0], images[i], None, config.ssim_weight)
        loss = loss + s.opacity_reg * torch.sigmoid(params["opacities"]).mean() \
            + s.scale_reg * torch.exp(params["scales"]).mean()
        loss.backward()
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        strategy.step_post_backward(params, optimizers, state, step, info, lr=decay.get_last_lr()[0])
        decay.step()
        if not math.isfinite(float(loss.detach())):  # the per-step read gsplat's simple_trainer makes too
            raise SystemExit(f"gsplat half: the loss is not finite at step {step + 1}")
        stamps.append(time.perf_counter())
    wall, ms = timings(stamps, start)
    trained = GaussianStore(*(params[k].detach() for k in ("means", "scales", "quats", "opacities")),
                            torch.cat([params["sh0"], params["shN"]], 1).detach())
    return {"wall_s": wall, "ms_per_step": ms, "peak_gpu_mb": peak_mb(device), "store": trained.to("cpu"),
            "device": device}


def scored(row: dict, dataset, config: TrainConfig) -> dict:
    """The row with Gaussians and held-out PSNR / SSIM, by splat's renderer and metric."""
    store = row.pop("store")
    views = score_views(store.to(row.pop("device")), dataset, dataset.test, config.backend, config.mode,
                        torch.zeros(3))
    return {**row, "gaussians": len(store), "psnr": sum(v["psnr"] for v in views) / len(views),
            "ssim": sum(v["ssim"] for v in views) / len(views)}


def profile_steps(config: TrainConfig, out: Path, steps: int) -> None:
    """Where a splat step's time goes: torch.profiler over ``steps`` steps from a run's middle."""
    from torch.profiler import ProfilerActivity, profile

    from splat.train.trainer import Trainer

    short = TrainConfig(**{**config.to_dict(), "steps": 1000 + steps, "checkpoint_every": 1000 + steps})
    trainer = Trainer.start(short, out)
    trainer.preload()
    trainer.train(stop_after=1000)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        trainer.train(stop_after=1000 + steps)
    print(f"-- splat, {steps} steps from step 1000, {trainer.gaussians()} Gaussians: by device time")
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=25))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--steps", type=int, default=7000)
    ap.add_argument("--cap", type=int, default=300_000)
    ap.add_argument("--downscale", type=int, default=2)
    ap.add_argument("--systems", default="splat,gsplat", help="comma list of splat, gsplat")
    ap.add_argument("--profile", type=int, default=0, metavar="STEPS", help="also profile this many splat steps")
    ap.add_argument("--dry-run", action="store_true", help="CPU backend, 20 steps, gsplat's half with a stand-in")
    args = ap.parse_args()
    if not args.data.is_dir():
        print(f"error: {args.data}: the capture is not there", file=sys.stderr)
        return 1
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not systems or set(systems) - {"splat", "gsplat"}:
        print(f"error: --systems {args.systems!r}: choose from splat, gsplat", file=sys.stderr)
        return 1
    if args.dry_run:
        args.backend, args.steps, args.cap = "cpu", 20, min(args.cap, 60_000)
        parts = standin_parts("cpu")
    else:
        if not torch.cuda.is_available():
            print("error: no CUDA GPU visible to torch (--dry-run checks the tool on the CPU)", file=sys.stderr)
            return 1
        args.backend = "cuda"
        parts = None
        if "gsplat" in systems:
            try:
                parts = gsplat_parts()
            except ImportError as e:
                print(f"error: gsplat cannot be imported ({e}); give --systems splat to time splat alone",
                      file=sys.stderr)
                return 1
    config = recipe(args)
    dataset = config.load_dataset()
    device = torch.device(args.backend if args.backend == "cuda" else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (dry run)"
    print(f"{args.data.name}: {len(dataset.train)} training views, {len(dataset.test)} held out, downscale "
          f"{args.downscale}; {args.steps} steps, cap {args.cap}; {name}, torch {torch.__version__}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for system in systems:
            t = time.perf_counter()
            if system == "splat":
                row = train_splat(recipe(args), Path(tmp) / "splat")
            else:
                row = train_gsplat(recipe(args), dataset, device, parts)
            label = system if not args.dry_run or system == "splat" else "gsplat loop (stand-in)"
            rows.append((label, scored(row, dataset, config)))
            print(f"{label}: done in {time.perf_counter() - t:.1f} s", flush=True)
        if args.profile and not args.dry_run:
            profile_steps(recipe(args), Path(tmp) / "profile", args.profile)
    print(f"\n{'system':<24} {'train s':>8} {'ms/step':>8} {'peak GPU MB':>12} {'gaussians':>10} {'PSNR':>7} "
          f"{'SSIM':>7}")
    for label, r in rows:
        print(f"{label:<24} {r['wall_s']:>8.1f} {r['ms_per_step']:>8.2f} {r['peak_gpu_mb']:>12.0f} "
              f"{r['gaussians']:>10} {r['psnr']:>7.2f} {r['ssim']:>7.4f}")
    if len(rows) == 2:
        print(f"training time, {rows[0][0]} / {rows[1][0]}: {rows[0][1]['wall_s'] / rows[1][1]['wall_s']:.2f}x; "
              f"PSNR difference {rows[0][1]['psnr'] - rows[1][1]['psnr']:+.2f} dB")
    for label, r in rows:
        print(json.dumps({"system": label, "steps": args.steps, "train_seconds": round(r["wall_s"], 2),
                          "ms_per_step_last": round(r["ms_per_step"], 3),
                          "peak_gpu_mb": None if math.isnan(r["peak_gpu_mb"]) else round(r["peak_gpu_mb"], 1),
                          "gaussians": r["gaussians"], "psnr": round(r["psnr"], 3), "ssim": round(r["ssim"], 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
