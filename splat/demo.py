"""``splat demo``: the main job on the built-in scene.

Builds the procedural scene, saves it as PLY, reloads it, renders an orbit of
views and writes them as PNGs. (Training on the generated scene replaces this
when the trainer lands.)
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .builtin_scene import builtin_scene
from .camera import save_cameras_json
from .io.images import save_image
from .io.ply import load_ply, save_ply
from .render import rasterize
from .render.views import default_cameras


def run_demo(out_dir: str | Path, views: int = 8, size: int = 256, backend: str = "auto", log=print) -> dict:
    """Run the demo into ``out_dir``; returns a summary dict (paths, timings)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    store = builtin_scene()
    ply = out / "scene.ply"
    save_ply(store, ply)
    store = load_ply(ply)
    log(f"built-in scene: {len(store)} Gaussians, SH degree {store.sh_degree} -> {ply}")
    cams = default_cameras(store, n=views, width=size, height=size)
    save_cameras_json(cams, out / "cameras.json")
    frames = []
    t_render = time.perf_counter()
    for i, cam in enumerate(cams):
        res = rasterize(store, cam, backend=backend, background=(1.0, 1.0, 1.0))
        img = res.color[0].clamp(0, 1)
        save_image(img, out / f"view_{i:02d}.png")
        frames.append(img.numpy())
    render_s = time.perf_counter() - t_render
    grid = np.concatenate([np.concatenate(frames[r::2], axis=1) for r in range(2)], axis=0) if views % 2 == 0 else frames[0]
    save_image(grid, out / "orbit.png")
    summary = {
        "gaussians": len(store),
        "views": views,
        "size": size,
        "render_seconds_per_view": render_s / views,
        "total_seconds": time.perf_counter() - t0,
        "out": str(out),
    }
    log(f"rendered {views} views at {size}x{size}: {summary['render_seconds_per_view']:.2f} s/view -> {out / 'orbit.png'}")
    return summary
