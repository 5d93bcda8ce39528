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
