"""Checkpoints of a run: everything needed to continue exactly where it stopped.

``RUN/checkpoints/step_0001000.pt`` holds the Adam state (parameters and moments),
the strategy state, the random generators, the view order and the step. Each is
written to a temporary file and renamed, so a crash leaves the previous one intact.

A run trained in N processes (``--nproc``) writes one shard per rank,
``RUN/checkpoints/shards/step_0001000.rank_000.pt`` (that rank's Gaussians, Adam and strategy
state), and then, once every shard is on disk, the manifest ``step_0001000.pt`` (the step,
the world size, the shards' names and the state all ranks share). Only manifests count as
checkpoints, so a crash between the two leaves the previous checkpoint the newest.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from ..errors import SplatError
from ..io.atomic import write_bytes_atomic


def checkpoint_dir(run: Path) -> Path:
    return Path(run) / "checkpoints"


def checkpoint_path(run: Path, step: int) -> Path:
    return checkpoint_dir(run) / f"step_{step:07d}.pt"


def list_checkpoints(run: Path) -> list[Path]:
    """Checkpoint files of a run, oldest first."""
    d = checkpoint_dir(run)
    return sorted(d.glob("step_*.pt")) if d.is_dir() else []


def save_checkpoint(run: Path, step: int, state: dict, keep: int = 2) -> Path:
    """Write ``state`` as the checkpoint of ``step``; keep only the newest ``keep`` files."""
    path = checkpoint_path(run, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes_atomic(path, buf.getvalue())
    for old in list_checkpoints(run)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint (tensors and plain values only: nothing is executed)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged or foreign file
        raise SplatError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None


def latest_checkpoint(run: Path) -> Path:
    found = list_checkpoints(run)
    if not found:
        raise SplatError(f"{run}: no checkpoint to resume from (looked in {checkpoint_dir(run)})")
    return found[-1]


def shard_path(run: Path, step: int, rank: int) -> Path:
    return checkpoint_dir(run) / "shards" / f"step_{step:07d}.rank_{rank:03d}.pt"


def save_shard(run: Path, step: int, rank: int, state: dict) -> Path:
    """Write one rank's part of the checkpoint of ``step``."""
    path = shard_path(run, step, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes_atomic(path, buf.getvalue())
    return path


def save_manifest(run: Path, step: int, world: int, shared: dict, keep: int = 2) -> Path:
    """Write the manifest of ``step`` (after every shard is written) and drop the shards of the
    checkpoints no longer kept, and any left by a step that never got its manifest."""
    names = [shard_path(run, step, r).name for r in range(world)]
    path = save_checkpoint(run, step, {**shared, "step": step, "world_size": world, "shards": names}, keep)
    kept = {f"step_{p.stem.split('_')[1]}" for p in list_checkpoints(run)}
    for shard in (checkpoint_dir(run) / "shards").glob("step_*.pt"):
        if shard.name.split(".")[0] not in kept:
            shard.unlink(missing_ok=True)
    return path


def load_shard(manifest_path: Path, manifest: dict, rank: int) -> dict:
    """This rank's shard of the checkpoint whose manifest is ``manifest``."""
    return load_checkpoint(manifest_path.parent / "shards" / manifest["shards"][rank])
