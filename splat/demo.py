"""``splat demo``: the main job on the built-in scene, end to end.

Generates the default synthetic scene, trains it on the fastest backend here,
evaluates the held-out views, writes the PLY, ``eval.json`` and an orbit video,
then says where they are and what to try next.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .errors import SplatError
from .train.run import Run

# a schedule for a few minutes on a laptop CPU: the field's settings, compressed
DEMO_CONFIG = dict(
    strategy="mcmc", steps=1100, cap=30_000, sh_degree=3, sh_interval=500, checkpoint_every=500,
    # the small synthetic scene keeps 1 x the neighbour distance (the default is 0.5 x, for real
    # captures): 30.76 dB held out against 30.41 at 0.5 x, 1100 steps on this 2-core VM
    mcmc=dict(refine_start=100, refine_every=50, init_scale=1.0),
    adc=dict(refine_start=100, refine_every=50),  # tools/bench_train.py runs both strategies on this schedule
)


def _build_in_background(backend: str):
    """Start building the CPU extension (a first run compiles it) while the scene renders:
    the compiler leaves a core idle part of the time. Returns the thread, or None."""
    import threading

    import torch

    if backend not in ("auto", "cpu") or (backend == "auto" and torch.cuda.is_available()):
        return None

    def build() -> None:
        from .render.cpu_backend import load_cpu_extension

        try:
            load_cpu_extension()
        except SplatError:
            pass  # training reports it (or falls back to torch) when it asks for the backend

    thread = threading.Thread(target=build, daemon=True)
    thread.start()
    return thread


def run_demo(out_dir: str | Path, backend: str = "auto", steps: int | None = None, size: int = 200,
             views: int = 56, log=print) -> dict:
    """Run the demo into ``out_dir`` (``scene/`` dataset, ``run/`` training run). Returns a summary."""
    from .render.paths import camera_path
    from .render.video import render_video
    from .scenes import generate
    from .train import TrainConfig, Trainer
    from .train.progress import run_with_progress

    from .render.api import check_backend_name
    from .train.device import pick_device

    out = Path(out_dir)
    scene, run = out / "scene", out / "run"
    if out.exists() and not out.is_dir():
        raise SplatError(f"{out}: is a file; --out names the demo's folder")
    layout = Run(run)
    interrupted = layout.started and not layout.finished
    if run.exists() and any(run.iterdir()) and not interrupted:
        raise SplatError(f"{run} already holds a run: remove it or choose another --out")
    check_backend_name(backend)  # before anything is written
    pick_device(backend)
    t0 = time.perf_counter()
    builder = _build_in_background(backend)
    if not (scene / "transforms.json").is_file():
        log(f"generating the default scene ({views} views of {size}x{size}) in {scene} ...")
        generate("default", scene, size=size, views=views)
    t_scene = time.perf_counter() - t0
    if builder is not None:
        builder.join()
    if interrupted:  # a demo stopped by Ctrl-C or SIGTERM goes on where it stopped
        trainer = Trainer.resume(run, steps)
        config = trainer.config
        log(f"resuming the interrupted demo run at step {trainer.step} of {config.steps} ...")
    else:
        config = TrainConfig(data=str(scene.resolve()), backend=backend, **DEMO_CONFIG)
        if steps is not None:
            config.steps = steps
        trainer = Trainer.start(config, run)  # run_with_progress says what it trains
    summary = run_with_progress(trainer)
    video = render_video(trainer.store(), camera_path("orbit", trainer.dataset.cameras, frames=60), run / "orbit.mp4",
                         backend=backend, background=config.eval_background)
    summary.update(scene_seconds=round(t_scene, 1), total_seconds=round(time.perf_counter() - t0, 1),
                   ply=str(layout.scene_path), eval=str(layout.eval_path), video=str(video))
    log(json.dumps(summary, indent=1))
    log("next:\n"
        f"  splat eval {run}                                  # held-out metrics again\n"
        f"  splat render {run} --path spiral --out spiral.mp4  # another video\n"
        f"  splat info {layout.scene_path}                     # what the PLY holds\n"
        f"  splat train {scene} --out {out / 'run_adc'} --strategy adc --steps 3000  # the classic strategy")
    return summary
