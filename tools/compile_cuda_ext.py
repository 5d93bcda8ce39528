#!/usr/bin/env python3
"""Compile the CUDA extension (kernels and torch glue) on a machine without a GPU.

The suite compiles every .cu with plain nvcc; the glue (cuda/glue/*.cpp) needs a CUDA build
of torch. Run this with one (a second virtual environment: `pip install torch==2.14.1` takes
the CUDA 13.0 build on this project's machines), and it builds the whole extension for one
architecture and registers its ops (they cannot run without a GPU), printing their schemas:

    python tools/compile_cuda_ext.py [--arch 9.0] [--build DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="9.0", help="TORCH_CUDA_ARCH_LIST to build for")
    ap.add_argument("--build", default=None, help="build folder (default: a temporary one)")
    args = ap.parse_args()
    os.environ["TORCH_CUDA_ARCH_LIST"] = args.arch
    os.environ.setdefault("CUDA_HOME", "/usr/local/cuda")
    import torch
    from torch.utils.cpp_extension import load

    if torch.version.cuda is None:
        print("error: this torch is a CPU build; use one built for CUDA", file=sys.stderr)
        return 1
    sys.path.insert(0, str(ROOT))
    from splat.render.cuda_backend import SOURCES

    build = Path(args.build or tempfile.mkdtemp(prefix="splat_cuda_"))
    build.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    load(name="splat_cuda_compile_check", sources=[str(ROOT / "cuda" / s) for s in SOURCES],
         extra_include_paths=[str(ROOT / "cuda" / "include"), str(ROOT / "cuda")], extra_cflags=["-O2"],
         extra_cuda_cflags=["-O3"], build_directory=str(build), is_python_module=False, verbose=False)
    print(f"built {len(SOURCES)} sources for sm_{args.arch.replace('.', '')} in {time.perf_counter() - t0:.0f} s ({build})")
    for name in ("project_fwd", "project_bwd", "rasterize_fwd", "rasterize_bwd"):
        print(getattr(torch.ops.splat_cuda, name).default._schema)
    return 0


if __name__ == "__main__":
    sys.exit(main())
