#!/usr/bin/env python3
"""The web formats on a trained scene: ours beside splat-transform's, in one run.

    python tools/bench_formats.py RUN [--formats spz,compressed.ply,sog] [--backend cpu] [--keep DIR]

For each format it writes RUN/scene.ply with our writer and with splat-transform (the
reference), and prints per row: file size, bytes per Gaussian, write and read time, and two
PSNRs over the run's held-out cameras: against the original scene's renders ("vs original",
what the encoding loses) and against the held-out photos ("held-out"). Rows:

* ``ours``: our writer, our reader;
* ``ours→ref``: our file read by splat-transform and written as PLY, read back by us (the
  reference reader's view of our file);
* ``ref``: splat-transform's own file of the same scene, read by our reader.

The last lines are one JSON object per row.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import splat_transform  # noqa: E402


def renders(store, cameras, backend: str, mode: str, background: torch.Tensor) -> list[torch.Tensor]:
    from splat.render.api import rasterize

    with torch.no_grad():
        return [rasterize(store, cam, backend=backend, mode=mode, background=background,
                          contributions=False).color[0].clamp(0, 1) for cam in cameras]


def mean_psnr(images: list[torch.Tensor], refs: list[torch.Tensor]) -> float:
    from splat.train.losses import psnr

    values = [psnr(a, b) for a, b in zip(images, refs)]
    return math.inf if any(math.isinf(v) for v in values) else sum(values) / len(values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--formats", default="spz,compressed.ply,sog")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--keep", type=Path, help="Keep the files here (default: a temporary folder).")
    ap.add_argument("--ref-timeout", type=float, default=1800,
                    help="Seconds splat-transform may take to write one file (its SOG k-means on the CPU is slow).")
    args = ap.parse_args()

    from splat.io.scene_files import load_scene, save_scene
    from splat.train.run import Run

    run = Run(args.run)
    config, dataset, original = run.load()
    views = dataset.test or list(range(len(dataset.cameras)))[::8]
    cams = [dataset.cameras[i] for i in views]
    bg = torch.tensor(config.eval_background, dtype=torch.float32)
    draw = lambda store: renders(store, cams, args.backend, config.mode, bg)  # noqa: E731
    photos = []
    for i in views:  # as the evaluation scores them: a photo with alpha over the background
        rgba = torch.from_numpy(dataset.image_rgba(i).copy())
        photos.append(rgba[..., :3] if rgba.shape[-1] == 3 else rgba[..., :3] * rgba[..., 3:] + bg * (1 - rgba[..., 3:]))
    base = draw(original)
    ply_bytes = run.scene_path.stat().st_size
    print(f"{args.run}: {len(original)} Gaussians, SH degree {original.sh_degree}, PLY {ply_bytes / 1e6:.2f} MB, "
          f"{len(views)} held-out views, backend {args.backend}; splat-transform {splat_transform.PINNED}")
    print(f"original: held-out PSNR {mean_psnr(base, photos):.2f} dB")
    rows = []
    work = Path(tempfile.mkdtemp(prefix="bench_formats_")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)

    def row(name: str, fmt: str, path: Path, store, write_s: float | None, read_s: float) -> None:
        images = draw(store)
        size = path.stat().st_size
        rows.append({"format": fmt, "row": name, "bytes": size, "bytes_per_gaussian": size / len(store),
                     "gaussians": len(store), "write_s": write_s, "read_s": read_s,
                     "psnr_vs_original": mean_psnr(images, base), "psnr_held_out": mean_psnr(images, photos)})

    for fmt in args.formats.split(","):
        ours = work / f"ours.{fmt}"
        t = time.perf_counter()
        save_scene(original, ours)
        write_s = time.perf_counter() - t
        t = time.perf_counter()
        store = load_scene(ours)
        row("ours", fmt, ours, store, write_s, time.perf_counter() - t)
        back = work / f"ours_{fmt.replace('.', '_')}_via_ref.ply"
        splat_transform.convert(ours, back)
        row("ours→ref", fmt, ours, load_scene(back), None, 0.0)
        ref = work / f"ref.{fmt}"
        t = time.perf_counter()
        try:
            splat_transform.convert(run.scene_path, ref, timeout=args.ref_timeout)
        except subprocess.TimeoutExpired:
            print(f"{fmt}: splat-transform did not finish writing in {args.ref_timeout:.0f} s; no ref row")
            continue
        ref_write = time.perf_counter() - t
        t = time.perf_counter()
        store = load_scene(ref)
        row("ref", fmt, ref, store, ref_write, time.perf_counter() - t)

    print(f"{'format':<15} {'row':<9} {'MB':>7} {'B/Gauss':>8} {'write s':>8} {'read s':>7} {'vs original dB':>15} {'held-out dB':>12}")
    for r in rows:
        w = f"{r['write_s']:.2f}" if r["write_s"] is not None else "-"
        rd = f"{r['read_s']:.3f}" if r["row"] != "ours→ref" else "-"
        print(f"{r['format']:<15} {r['row']:<9} {r['bytes'] / 1e6:>7.3f} {r['bytes_per_gaussian']:>8.2f} {w:>8} {rd:>7} "
              f"{r['psnr_vs_original']:>15.2f} {r['psnr_held_out']:>12.2f}")
    print("(ref write s: the splat-transform process, Node start-up included; SOG with -g cpu)")
    for r in rows:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
