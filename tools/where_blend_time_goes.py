#!/usr/bin/env python3
"""Where a trained run's blend work comes from: which Gaussians make the (pixel, Gaussian)
pairs, and what rendering costs with and without the far ones.

    python tools/where_blend_time_goes.py RUN [--every 6] [--far 2.5]

For every ``--every``-th training view: each visible Gaussian's footprint, the area of the
ellipse where its alpha reaches 1/255 (the region the CPU binning keeps: sigma <= ln(255 o)),
summed per class and divided by the view's pixels (pairs per pixel before the blend's early
stop), for the far Gaussians (centre beyond ``--far`` x the scene scale from the scene's
centre: the sky sphere and what training moved out there), the near ones by opacity, and
the large ones. Then how many pixels the near Gaussians alone bring to the blend's stop
(T < 1e-4) and how many with all. Last, the time of rasterize forward and backward (CPU
backend, the best of 3 per view, summed over the views) with all Gaussians and without
the far ones, the two taking turns.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from splat.render import rasterize
from splat.render.constants import ALPHA_MIN, T_MIN
from splat.render.stages import project_stage
from splat.train.init import scene_centre, scene_scale
from splat.train.run import Run


def footprints(store, cam) -> tuple[torch.Tensor, torch.Tensor]:
    """([N] ellipse area in pixels where alpha >= 1/255, 0 where culled; [N] opacity in the view)."""
    with torch.no_grad():
        p = project_stage(store, cam, "cpu", store.sh_degree, False)
    a, b, c = p.conics[:, 0], p.conics[:, 1], p.conics[:, 2]
    level = torch.log((p.opacities / ALPHA_MIN).clamp_min(1.0))  # sigma where alpha = ALPHA_MIN
    area = 2 * math.pi * level / (a * c - b * b).clamp_min(1e-12).sqrt()
    area = torch.where(p.radii > 0, area, torch.zeros_like(area)).clamp(max=cam.width * cam.height)
    return area, p.opacities


def render_time(store, cam) -> tuple[float, float]:
    """(forward s, backward s) of one rasterize of ``cam`` and its backward."""
    s = store.clone().requires_grad_(True)
    t0 = time.perf_counter()
    r = rasterize(s, cam, backend="cpu", sh_degree=store.sh_degree, background=torch.rand(3), contributions=False)
    t1 = time.perf_counter()
    r.color.sum().backward()
    return t1 - t0, time.perf_counter() - t1


def timed(stores: list, cams) -> list[tuple[float, float]]:
    """Per store, (forward s, backward s) over the cameras: each camera's best of 3, summed.
    The stores take turns at each camera, so the machine's drift falls on all alike."""
    totals = torch.zeros(len(stores), 2, dtype=torch.float64)
    for cam in cams:
        best = torch.full((len(stores), 2), math.inf, dtype=torch.float64)
        for _ in range(3):
            for k, store in enumerate(stores):
                best[k] = torch.minimum(best[k], torch.tensor(render_time(store, cam), dtype=torch.float64))
        totals += best
    return [tuple(row.tolist()) for row in totals]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--every", type=int, default=6, help="every n-th training view")
    ap.add_argument("--far", type=float, default=2.5, help="far: centre beyond this x the scene scale")
    args = ap.parse_args()
    _, dataset, store = Run(args.run).load()
    cams = [dataset.cameras[i] for i in dataset.train[:: args.every]]
    distance = (store.means - scene_centre(dataset)).norm(dim=1)
    far = distance > args.far * scene_scale(dataset)
    print(f"run {args.run}: {len(store)} Gaussians, {int(far.sum())} far (beyond {args.far} x the scene scale), "
          f"{len(cams)} views of {cams[0].width}x{cams[0].height}")
    rows: dict[str, list[float]] = {}
    ends_near = ends_all = 0.0
    near_store = store.select(~far)
    for cam in cams:
        area, o = footprints(store, cam)
        seen = area > 0
        classes = {"all": seen, "far": seen & far, "near, opacity < 0.05": seen & ~far & (o < 0.05),
                   "near, 0.05 - 0.2": seen & ~far & (o >= 0.05) & (o < 0.2), "near, >= 0.2": seen & ~far & (o >= 0.2),
                   "footprint > 1000 px": seen & (area > 1000)}
        for name, m in classes.items():
            row = rows.setdefault(name, [0.0, 0.0])
            row[0] += float(m.sum()) / len(cams)
            row[1] += float(area[m].sum()) / (cam.width * cam.height) / len(cams)
        with torch.no_grad():  # the blend stops before the Gaussian that would take T under T_MIN,
            t_near = 1 - rasterize(near_store, cam, backend="cpu").alpha.double()  # so a stopped
            t_all = 1 - rasterize(store, cam, backend="cpu").alpha.double()  # pixel ends just above it
        ends_near += float((t_near < 2 * T_MIN).double().mean()) / len(cams)
        ends_all += float((t_all < 2 * T_MIN).double().mean()) / len(cams)
    print("| Gaussians | visible per view | footprint pairs per pixel |")
    print("|---|---|---|")
    for name, (n, pairs) in rows.items():
        print(f"| {name} | {n:,.0f} | {pairs:.1f} |")
    print(f"pixels whose blend stops (T < {T_MIN:g}): {100 * ends_near:.1f} % with the near Gaussians alone, "
          f"{100 * ends_all:.1f} % with all")
    (f_all, b_all), (f_near, b_near) = timed([store, near_store], cams)
    print(f"rasterize over {len(cams)} views, all Gaussians: forward {f_all:.3f} s, backward {b_all:.3f} s")
    print(f"without the far ones: forward {f_near:.3f} s, backward {b_near:.3f} s "
          f"({100 * (1 - (f_near + b_near) / (f_all + b_all)):.0f} % less)")


if __name__ == "__main__":
    main()
