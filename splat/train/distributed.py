"""Running ``splat train`` in several processes: the launcher and each worker's start.

``splat train DATA --out RUN --nproc N`` prepares the run folder in the calling process, then
starts N workers through torch's elastic launcher (what ``torchrun`` runs), each resuming the
run as one rank. Under ``torchrun`` (RANK / WORLD_SIZE / MASTER_ADDR from the environment,
machines apart) ``splat train`` is itself the worker. The group's backend is gloo for the CPU
and nccl for GPUs.

A worker that dies makes the launcher stop the others (within about a second here; a rank
blocked in a collective also fails on its own when its peer's socket closes); the launcher
then says which rank failed and how, in one line. Checkpoints are written shard by shard
and the manifest last, so the newest one stays whole.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
import uuid
from pathlib import Path

import torch
import torch.distributed as dist

from ..errors import SplatError

WORKER = "-c", "import sys; from splat.cli import main; sys.exit(main(sys.argv[1:]))"
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)  # a peer that stops answering fails the step


def in_worker() -> bool:
    """Whether this process is one rank of a launched group (torchrun or our launcher)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def group_size() -> int:
    """The launched group's number of ranks (WORLD_SIZE); 1 outside a group."""
    return int(os.environ.get("WORLD_SIZE", 1))


def start_group(backend: str) -> None:
    """Join the group the environment describes: gloo for cpu, nccl for cuda."""
    if dist.is_initialized():
        return
    use_cuda = backend == "cuda" or (backend == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=COLLECTIVE_TIMEOUT)


def launch(nproc: int, argv: list[str], run: Path) -> None:
    """Run ``splat <argv>`` as ``nproc`` ranks on this machine and wait for them.

    Raises:
        SplatError: a rank failed (one line: which rank, its exit code or signal).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # each rank's OpenMP threads: the cores shared out, unless the user chose
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"splat-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.2)
    quiet = logging.getLogger("torch.distributed.elastic")
    level, quiet.level = quiet.level, logging.CRITICAL  # the launcher's own report is replaced by one line
    try:
        elastic_launch(config, sys.executable)(*WORKER, *argv)
    except ChildFailedError as e:
        rank, failure = min(e.failures.items(), key=lambda kv: kv[1].timestamp)
        how = (f"was killed by {failure.signal_name()}" if failure.exitcode < 0
               else f"exited with code {failure.exitcode}")
        raise SplatError(f"rank {rank} of {nproc} {how}; the other ranks were stopped; the newest checkpoint is "
                         f"whole: resume with: splat train --resume {run}") from None
    finally:
        quiet.setLevel(level)


def train_in_ranks(config, out: Path | None, resume: Path | None, steps: int | None) -> dict | None:
    """``splat train`` in several processes: a new run (``config`` and ``out``) or ``resume``.

    Called in the user's process it prepares the run and launches ``config.nproc`` ranks (the
    summary is printed by rank 0; returns None). Called in a rank it trains that rank's shard,
    and rank 0 evaluates and returns the summary.
    """
    from .evaluate import evaluate
    from .progress import run_with_progress
    from .sharded import ShardedTrainer
    from .trainer import plan_resume, prepare_run

    if not in_worker():
        if resume is None:
            prepare_run(config, out)
            run = Path(out)
        else:
            run = Path(resume)
            plan_resume(run, steps)  # nothing to do, or a wrong --steps: said here, before any rank starts
        launch(config.nproc if config is not None else _run_nproc(run), ["train", "--resume", str(run)]
               + ([] if steps is None else ["--steps", str(steps)]), run)
        return None
    start_group(config.backend if config is not None else "auto")
    rank = dist.get_rank()
    try:
        if resume is None:  # under torchrun: rank 0 makes the folder, the others hear how it went
            said = [None]
            if rank == 0:
                try:
                    prepare_run(config, out)
                except SplatError as e:
                    said[0] = str(e)
            dist.broadcast_object_list(said, src=0)
            if said[0] is not None:
                if rank == 0:
                    raise SplatError(said[0])
                raise SystemExit(1)
        run = Path(out if resume is None else resume)
        trainer = ShardedTrainer.resume(run, steps)
        stream = sys.stderr if rank == 0 else open(os.devnull, "w")
        summary = run_with_progress(trainer, evaluate_after=False, stream=stream)
        if rank != 0:
            return None
        result = evaluate(run)
        return {**summary, "psnr": result["psnr"], "ssim": result["ssim"], "test_views": result["test_views"]}
    except RuntimeError as e:
        if _lost_peer(e):  # the launcher names the rank that failed first, in one line
            raise SystemExit(1) from None
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _lost_peer(e: RuntimeError) -> bool:
    """Whether ``e`` is a collective failing because another rank went away."""
    return isinstance(e, dist.DistError) or any(w in str(e) for w in ("gloo", "NCCL", "Connection closed",
                                                                          "Connection reset"))


def _run_nproc(run: Path) -> int:
    from .run import Run

    return Run(run).config().nproc
