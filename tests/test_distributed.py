"""Sharded training over torch.distributed (gloo, processes on this machine)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import gaussian_dataset

SPLAT = [sys.executable, "-c", "import sys; from splat.cli import main; sys.exit(main(sys.argv[1:]))"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(data, **extra):
    from splat.train import TrainConfig

    return TrainConfig(data=str(data), steps=5, batch=3, backend="cpu", cap=2000, sh_degree=1, seed=3,
                       checkpoint_every=10_000, background=[0.2, 0.3, 0.4], **extra)


def _one_step_gradients(trainer) -> dict:
    """The gradients of the trainer's next step (no update, no strategy move; the SH bands
    above degree 0 get zeros at step 0)."""
    trainer.adam.step = lambda **kw: None
    trainer.strategy.after_step = lambda *a: None
    trainer.train_step()
    return {k: p.grad.clone() for k, p in trainer.adam.params.items() if p.grad is not None}


def _anisotropic(trainer, n: int, rows=slice(None)) -> None:
    """Give the first ``n`` initial Gaussians (all ranks' together) unequal axes, the same in
    every process, so that rotations get a gradient too."""
    noise = torch.randn(n, 3, generator=torch.Generator().manual_seed(1))[rows]
    trainer.adam.params["log_scales"].data += 0.5 * noise


def _rank_main(rank: int, world: int, port: int, data: str, out: str, n_all: int) -> None:
    import torch.distributed as dist

    from splat.train.sharded import ShardedTrainer, shard_rows

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        trainer = ShardedTrainer(_config(data, nproc=world), Path(out) / "run", _dataset(data))
        trainer._init_gaussians()
        _anisotropic(trainer, n_all, shard_rows(n_all, rank, world))
        torch.save(_one_step_gradients(trainer), Path(out) / f"grads_{rank}.pt")
    finally:
        dist.destroy_process_group()


def _dataset(data):
    return _config(data).load_dataset()


def test_two_ranks_give_the_one_process_gradients_of_a_batch(tmp_path):
    import torch.multiprocessing as mp

    from splat.train import Trainer
    from splat.train.sharded import shard_rows

    data = tmp_path / "data"
    gaussian_dataset(data, views=8, size=32, n=500)
    single = Trainer(_config(data), tmp_path / "single", _dataset(data))
    single._init_gaussians()
    n = len(single.adam)
    _anisotropic(single, n)
    expected = _one_step_gradients(single)
    mp.spawn(_rank_main, args=(2, _free_port(), str(data), str(tmp_path), n), nprocs=2, join=True)
    parts = [torch.load(tmp_path / f"grads_{r}.pt") for r in range(2)]
    assert set(expected) == {"means", "log_scales", "quats", "opacity_logits", "sh"}
    assert [len(p["means"]) for p in parts] == [shard_rows(n, r, 2).stop - shard_rows(n, r, 2).start for r in range(2)]
    for name, grad in expected.items():
        gathered = torch.cat([p[name] for p in parts])
        scale = grad.abs().max()
        assert scale > 0, name
        err = (gathered - grad).abs().max() / scale
        assert err < 1e-5, (name, float(err))


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def test_train_in_two_processes_then_a_killed_rank_stops_all_and_resumes(tmp_path):
    data = tmp_path / "data"
    gaussian_dataset(data, views=8, size=32, n=500)
    run = tmp_path / "run"
    args = ["train", str(data), "--out", str(run), "--backend", "cpu", "--cap", "4000", "--sh-degree", "1",
            "--batch", "2", "--nproc", "2", "--steps", "40", "--checkpoint-every", "20", "--log-every", "5",
            "--mcmc-refine-start", "5", "--mcmc-refine-every", "5"]
    done = subprocess.run(SPLAT + args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 40 and (run / "scene.ply").is_file() and summary["psnr"] > 10
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(5, 41, 5))  # one writer: rank 0
    for m in lines:  # growth within each shard keeps the two halves even
        per_rank = m["gaussians_per_rank"]
        assert len(per_rank) == 2 and sum(per_rank) == m["gaussians"] and max(per_rank) <= 0.6 * m["gaussians"]
        assert m["exchange_bytes"] > 0 and m["exchange_seconds"] >= 0 and m["compute_seconds"] > 0
    assert lines[-1]["gaussians"] > lines[0]["gaussians"]
    from splat.io.ply import load_ply

    assert len(load_ply(run / "scene.ply")) == summary["gaussians"]

    # longer, killed at a checkpoint: the other rank stops, one line names the rank
    proc = subprocess.Popen(SPLAT + ["train", "--resume", str(run), "--steps", "4000"], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run / "checkpoints" / "step_0000060.pt").exists():
            time.sleep(0.2)
        assert (run / "checkpoints" / "step_0000060.pt").exists()
        victims = [p for p in _children(proc.pid) if _rank_of(p) == 1]
        assert victims, "rank 1 not found"
        os.kill(victims[0], signal.SIGKILL)
        killed_at = time.time()
        _, err = proc.communicate(timeout=60)
        assert time.time() - killed_at < 30
    finally:
        proc.kill()
    assert proc.returncode == 1
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "rank 1 of 2 was killed by SIGKILL" in lines[0], err[-2000:]
    assert "Traceback" not in err
    # the newest checkpoint is whole: the run continues from it (the kill may land after step 60's
    # checkpoint or a later one, on a loaded machine)
    from splat.train.run import Run

    newest = int(Run(run).checkpoints()[-1].stem.split("_")[1])
    assert newest >= 60
    again = subprocess.run(SPLAT + ["train", "--resume", str(run), "--steps", str(newest + 10)], capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["steps"] == newest + 10


def test_wrong_nproc_is_one_line(tmp_path):
    data = tmp_path / "data"
    gaussian_dataset(data, views=4, size=16, n=100)
    for nproc, words in (("0", "nproc 0 must be a positive integer"), ("9", "more processes than the")):
        done = subprocess.run(SPLAT + ["train", str(data), "--out", str(tmp_path / f"r{nproc}"), "--nproc", nproc,
                                       "--backend", "cpu"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not (tmp_path / f"r{nproc}").exists()


def test_under_torchrun_the_group_size_comes_from_the_environment(tmp_path):
    """`torchrun ... -m splat.cli train DATA --out RUN` (no --nproc: torchrun would take it for
    its own --nproc-per-node) trains in the group torchrun made, and the run keeps its size."""
    data = tmp_path / "data"
    gaussian_dataset(data, views=6, size=32, n=300)
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "splat.cli", "train", str(data), "--out", str(run), "--backend", "cpu",
                           "--batch", "2", "--steps", "10", "--cap", "1000", "--sh-degree", "0",
                           "--checkpoint-every", "1000"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((run / "config.json").read_text())["nproc"] == 2
    assert (run / "scene.ply").is_file()
    last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert len(last["gaussians_per_rank"]) == 2
