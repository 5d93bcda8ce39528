"""Training with the Gaussians sharded over the ranks of a torch.distributed group.

Each rank holds a contiguous slice of the Gaussians (about 1/world of them, the cap split the
same way) and their Adam moments. All ranks draw the same views from the run's generator;
per step each projects its shard into every camera of the batch, ``exchange`` sends the
visible ones to the rank that renders that camera (camera k -> rank k mod world), each rank
blends its cameras and takes their loss / batch, and the backward pass returns the gradients
the same way. The sum over ranks of these losses is the one-process batch loss, so each
Gaussian gets the gradient it would get in one process.

The strategies run per shard: mcmc relocates and grows within the shard towards its share of
the cap, with a generator of its own per rank (seeded from the seed and the rank, so a run is
reproducible for a given world size); adc reads the screen gradients its shard received. The
regularizer is the shard's mean times its share of all Gaussians, which sums to the global mean.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ..errors import SplatError
from ..io.ply import save_ply
from ..render.api import RenderResult
from ..render.stages import blend_stage, project_stage
from ..store import GaussianStore
from .checkpoint import load_shard, save_manifest, save_shard
from .exchange import ExchangeStats, camera_owner, exchange
from .run import Run
from .trainer import Trainer, store_from_params

SHARED_STATE = ("generator", "order", "order_pos", "elapsed", "config")  # the same on every rank


def shard_rows(n: int, rank: int, world: int) -> slice:
    """The contiguous rows of ``n`` that ``rank`` holds (the first ranks take the remainder)."""
    size, extra = divmod(n, world)
    start = rank * size + min(rank, extra)
    return slice(start, start + size + (rank < extra))


class ShardedTrainer(Trainer):
    """A Trainer for one rank of an initialised process group (``dist.is_initialized()``)."""

    def __init__(self, config, run, dataset):
        if not dist.is_initialized():
            raise SplatError("sharded training needs a torch.distributed process group")
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        if config.nproc != self.world:
            raise SplatError(f"the run is set for {config.nproc} processes, this group has {self.world}")
        super().__init__(config, run, dataset)
        self.backend = self.device.type  # cpu or cuda: the stages run on the native kernels
        self.stats = ExchangeStats()

    # -- shards -------------------------------------------------------------------------------------
    def _strategy_generator(self) -> torch.Generator:
        if not hasattr(self, "shard_generator"):
            self.shard_generator = torch.Generator().manual_seed((self.config.seed * 1_000_003 + self.rank + 1) % 2**63)
        return self.shard_generator

    def _local_cap(self) -> int:
        part = shard_rows(self.config.cap, self.rank, self.world)
        return max(part.stop - part.start, 1)

    def _own_part(self, params: dict) -> dict:
        rows = shard_rows(len(params["means"]), self.rank, self.world)
        return {k: v[rows].contiguous() for k, v in params.items()}

    def counts(self) -> list[int]:
        """Gaussians per rank."""
        n = torch.tensor([len(self.adam)], dtype=torch.int64, device=self.device)
        out = [torch.empty_like(n) for _ in range(self.world)]
        dist.all_gather(out, n)
        return [int(t) for t in out]

    def gaussians(self) -> int:
        self.last_counts = self.counts()  # the step's metrics report them per rank too
        return sum(self.last_counts)

    # -- one step -----------------------------------------------------------------------------------
    def _render(self, store: GaussianStore, views: list[int], bg: torch.Tensor, sh_degree: int):
        c = self.config
        t0 = time.perf_counter()
        cams = [self.dataset.cameras[i] for i in views]
        projections = [project_stage(store, cam, self.backend, sh_degree, c.mode == "antialiased") for cam in cams]
        for p in projections:
            if p.means2d.requires_grad:
                p.means2d.retain_grad()  # adc's statistics read it
        mine, received, self.stats = exchange(projections, self.rank, self.world)
        rendered = []
        for k, p in mine.items():
            color, alpha = blend_stage(p, cams[k], bg, self.backend)
            rendered.append((views[k], color, alpha, None))
        self._compute_seconds = time.perf_counter() - t0
        self._step_shapes = [(cam.height, cam.width) for cam in cams]
        # every rank must reach the backward exchange, with or without a camera of its own
        return rendered, projections, 0 * received.sum()

    def _regularizer(self):
        counts = self.counts()
        return self.strategy.regularizer(self.adam) * (len(self.adam) / sum(counts))

    def _step_summary(self, loss: torch.Tensor, psnrs: list[float]) -> tuple[float, float]:
        both = torch.tensor([float(loss), sum(psnrs), len(psnrs)], dtype=torch.float64, device=self.device)
        dist.all_reduce(both)
        return float(both[0]), float(both[1] / both[2])

    def _strategy_results(self, projections: list) -> list:
        """One RenderResult per camera of this shard's Gaussians: what adc's statistics read."""
        results = []
        for p, (h, w) in zip(projections, self._step_shapes):
            means2d = p.means2d.detach()[None]
            if p.means2d.grad is not None:
                means2d.grad = p.means2d.grad[None]
            results.append(RenderResult(color=torch.zeros(()).expand(1, h, w, 3), alpha=None, depth=None,
                                        radii=p.radii[None], means2d=means2d, contributions=None))
        return results

    def _tile_pairs(self, projections: list) -> float:
        local = torch.tensor([sum(r.tile_pairs_per_pixel() for r in self._strategy_results(projections))
                              / len(projections)], dtype=torch.float64, device=self.device)
        dist.all_reduce(local)
        return round(float(local), 2)

    def train_step(self) -> dict:
        t0 = time.perf_counter()
        metrics = super().train_step()
        total = time.perf_counter() - t0
        metrics["gaussians_per_rank"] = self.last_counts
        metrics["exchange_seconds"] = round(self.stats.seconds, 6)
        metrics["compute_seconds"] = round(total - self.stats.seconds, 6)
        metrics["exchange_bytes"] = self.stats.bytes_sent
        return metrics

    # -- the loop -------------------------------------------------------------------------------------
    def _open_log(self):
        return super()._open_log() if self.rank == 0 else open(os.devnull, "w")

    def _agree(self, stop: bool) -> bool:
        flag = torch.tensor([int(stop)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag)

    def _truncate_log(self) -> None:
        if self.rank == 0:
            super()._truncate_log()
        dist.barrier()

    def store(self) -> GaussianStore | None:
        """The whole scene, gathered (on the CPU) on rank 0; None on the other ranks. Every rank
        must call it."""
        parts = [None] * self.world if self.rank == 0 else None
        mine = {k: v.detach().cpu() for k, v in self.adam.params.items()}
        dist.gather_object(mine, parts, dst=0)
        if self.rank != 0:
            return None
        return store_from_params({k: torch.cat([p[k] for p in parts]) for k in mine})

    def _write_scene(self) -> None:
        store = self.store()
        if self.rank == 0:
            save_ply(store, Run(self.run).scene_path)
        dist.barrier()

    # -- checkpoints ------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {**super().state(), "shard_generator": self.shard_generator.get_state(),
                "rank": self.rank, "world_size": self.world}

    def save_checkpoint(self) -> Path:
        state = self.state()
        save_shard(self.run, self.step, self.rank, {k: v for k, v in state.items() if k not in SHARED_STATE})
        dist.barrier()  # every shard is on disk before the manifest names them
        if self.rank == 0:
            save_manifest(self.run, self.step, self.world, {k: state[k] for k in SHARED_STATE},
                          self.config.keep_checkpoints)
        dist.barrier()
        self.checkpointed_step = self.step
        return Run(self.run).checkpoints()[-1]

    def load_state(self, state: dict) -> None:
        if state.get("world_size") != self.world:
            held = f"{state['world_size']} processes" if "world_size" in state else "one process"
            raise SplatError(f"{self.run}: its checkpoint was trained in {held}; resume it with the same --nproc")
        manifest = Run(self.run).checkpoints()[-1]
        shard = load_shard(manifest, state, self.rank)
        try:
            super().load_state({**shard, **{k: state[k] for k in SHARED_STATE}, "step": state["step"]})
            self.shard_generator.set_state(shard["shard_generator"])
        except KeyError as e:
            raise SplatError(f"{manifest}: shard {self.rank} is incomplete ({e})") from None


def device_for_rank(backend: str) -> None:
    """Pin this process's GPU (LOCAL_RANK) before a cuda run's group starts."""
    if backend in ("cuda", "auto") and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))

