"""The benchmark tools that need a GPU, checked on the CPU: their dry runs work end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import gaussian_dataset

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def test_bench_train_gpu_dry_run_trains_both_halves_in_one_recipe(tmp_path):
    data = gaussian_dataset(tmp_path / "data", views=12, size=64, n=2000)
    out = subprocess.run([sys.executable, str(TOOLS / "bench_train_gpu.py"), "--dry-run", "--data", str(data)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [r["system"] for r in rows] == ["splat", "gsplat loop (stand-in)"]
    for r in rows:
        assert r["steps"] == 20 and r["gaussians"] > 0 and math.isfinite(r["psnr"]) and r["train_seconds"] > 0
    # the same start, rates and loss through two loops: the stand-in renders with splat's renderer
    # and does no refinement, as splat does not before step 500, so the two agree closely
    assert rows[0]["gaussians"] == rows[1]["gaussians"]
    assert abs(rows[0]["psnr"] - rows[1]["psnr"]) < 0.5, rows


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without a GPU gets")
def test_bench_train_gpu_without_a_gpu_says_so_in_one_line(tmp_path):
    data = gaussian_dataset(tmp_path / "data", views=4, size=32, n=200)
    out = subprocess.run([sys.executable, str(TOOLS / "bench_train_gpu.py"), "--data", str(data)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().startswith("error: no CUDA GPU") and len(out.stderr.strip().splitlines()) == 1


def test_where_blend_time_goes_splits_the_footprint_and_times_both_renders(tmp_path):
    from splat.cli import main

    data = gaussian_dataset(tmp_path / "data", views=12, size=48, n=1000)
    assert main(["train", str(data), "--out", str(tmp_path / "run"), "--steps", "20", "--backend", "cpu",
                 "--checkpoint-every", "1000"]) == 0
    out = subprocess.run([sys.executable, str(TOOLS / "where_blend_time_goes.py"), str(tmp_path / "run"), "--every", "4"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in out.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| Gaussians")}
    pairs = {k: float(v[1]) for k, v in rows.items()}
    # the classes by distance and opacity add up to all
    parts = pairs["far"] + pairs["near, opacity < 0.05"] + pairs["near, 0.05 - 0.2"] + pairs["near, >= 0.2"]
    assert pairs["all"] > 0 and abs(parts - pairs["all"]) < 0.05 * pairs["all"] + 0.2, pairs
    assert "without the far ones: forward" in out.stdout


def test_bench_real_compares_each_of_our_rows_with_the_peer_row():
    sys.path.insert(0, str(TOOLS))
    from bench_real import speed_lines

    def row(s, psnr):
        return {"seconds_per_step": s, "psnr": psnr}

    rows = [("splat mcmc", row(0.05, 25.0)), ("opensplat", row(0.4, 17.5)),
            ("splat mcmc at opensplat's count", row(0.04, 24.0))]
    assert speed_lines(rows) == ["speed: 8.0x at +7.50 dB (splat mcmc against opensplat)",
                                 "speed: 10.0x at +6.50 dB (splat mcmc at opensplat's count against opensplat)"]
    # without a peer, the other rows against the first
    assert speed_lines(rows[:1] + [("splat mcmc v", row(0.1, 24.0))]) == [
        "speed: 0.5x at -1.00 dB (splat mcmc v against splat mcmc)"]
