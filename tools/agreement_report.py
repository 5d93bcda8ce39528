#!/usr/bin/env python3
"""Per-tensor relative errors against the float64 torch reference, for every backend here.

Uses the random scenes of the agreement tests (tests/agreement.py): for each
scene and mode, prints the float32 error of the torch reference, the CPU
backend and (with a GPU) the CUDA backend on every output and gradient. Shows
where float32 rounding, not the math, sets the error.

    python tools/agreement_report.py                     # all scenes, both modes
    python tools/agreement_report.py --scenes few --modes classic
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from agreement import SCENES, rel_err, run  # noqa: E402
from conftest import front_camera, random_store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("--modes", default="classic,antialiased")
    args = ap.parse_args()
    backends = [("torch32", "torch", "cpu"), ("cpu", "cpu", "cpu")]
    if torch.cuda.is_available():
        backends.append(("cuda", "cuda", "cuda"))
    for scene in args.scenes.split(","):
        n, deg, spread, scale, (w, h) = SCENES[scene]
        store = random_store(n, deg, seed=len(scene), spread=spread, scale=scale)
        cams = [front_camera(w, h), front_camera(w, h, distance=2.5)]
        for mode in args.modes.split(","):
            ref = run(store.to(dtype=torch.float64), cams, "torch", mode)
            got = {name: run(store, cams, backend, mode, device=dev) for name, backend, dev in backends}
            print(f"-- {scene} ({n} Gaussians, SH {deg}, {w}x{h}, 2 cameras), {mode}")
            print(f"{'tensor':>22} " + " ".join(f"{name:>10}" for name, _, _ in backends))
            for key, a in ref.items():
                if a.dtype == torch.int32:
                    row = ["equal" if torch.equal(a, got[name][key]) else "DIFFER" for name, _, _ in backends]
                else:
                    row = [f"{rel_err(a, got[name][key].to(a.dtype)):.2e}" for name, _, _ in backends]
                print(f"{key:>22} " + " ".join(f"{v:>10}" for v in row))


if __name__ == "__main__":
    main()
