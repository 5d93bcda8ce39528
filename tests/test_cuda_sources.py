"""The CUDA sources: compile with plain nvcc (no GPU needed), no torch headers."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CUDA = Path(__file__).resolve().parents[1] / "cuda"


def test_no_torch_header_in_shared_math_or_kernels():
    files = list((CUDA / "include").rglob("*.h")) + list(CUDA.glob("*.cu")) + list(CUDA.glob("*.cuh"))
    assert files
    for f in files:
        text = f.read_text()
        assert not re.search(r"#include\s*[<\"](torch|ATen|c10|pybind11)", text), f"{f} includes a torch header"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
@pytest.mark.parametrize("source", sorted(p.name for p in CUDA.glob("*.cu")))
def test_cu_file_compiles_with_plain_nvcc(tmp_path, source):
    proc = subprocess.run(
        ["nvcc", "-c", f"-I{CUDA / 'include'}", str(CUDA / source), "-o", str(tmp_path / "out.o")],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_rasterizer_constants_agree_with_the_python_ones():
    """splat/render/constants.py and cuda/include/splat/common.h name the same numbers."""
    from splat.render import constants

    text = (CUDA / "include" / "splat" / "common.h").read_text()
    for name in ("ALPHA_MAX", "ALPHA_MIN", "T_MIN", "EPS2D", "TILE"):
        m = re.search(rf"constexpr \w+ {name} = ([^;]+);", text)
        assert m, f"{name} missing from common.h"
        assert eval(m.group(1)) == getattr(constants, name), name  # simple literals such as 1.0 / 255.0
