"""Moving projected Gaussians between ranks (sharded training), over torch.distributed.

Per step every rank projects its shard into every camera of the batch, keeps the Gaussians
each camera sees, and one all-to-all sends them to the rank that renders that camera (camera k
of the batch belongs to rank k mod world). The backward pass runs the same all-to-all in
reverse with the gradients. One collective each way per step, whatever the batch: every rank
reaches it at the same point of its autograd graph, so no two ranks can wait on different ones.

A row is a packed ``Projection`` (13 floats, ``splat.render.stages``): a step sends
13 x 4 bytes per visible (Gaussian, camera) pair that lives on another rank, and as much back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from ..render.stages import PACKED_WIDTH, Projection


@dataclass
class ExchangeStats:
    """What one step moved: rows and bytes sent to other ranks (both directions), seconds in
    the collectives (forward and backward)."""

    rows_out: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    per_camera_rows: list = field(default_factory=list)


class _AllToAll(torch.autograd.Function):
    """all_to_all_single of [R, D] rows with split sizes; the backward sends gradients back."""

    @staticmethod
    def forward(ctx, rows, send_counts, recv_counts, stats):
        ctx.counts, ctx.stats = (send_counts, recv_counts), stats
        out = rows.new_empty(sum(recv_counts), rows.shape[1])
        t0 = time.perf_counter()
        dist.all_to_all_single(out, rows.contiguous(), recv_counts, send_counts)
        stats.seconds += time.perf_counter() - t0
        return out

    @staticmethod
    def backward(ctx, grad):
        send_counts, recv_counts = ctx.counts
        back = grad.new_empty(sum(send_counts), grad.shape[1])
        t0 = time.perf_counter()
        dist.all_to_all_single(back, grad.contiguous(), send_counts, recv_counts)
        ctx.stats.seconds += time.perf_counter() - t0
        return back, None, None, None


def camera_owner(k: int, world: int) -> int:
    """The rank that renders camera ``k`` of a batch."""
    return k % world


def exchange(projections: list[Projection], rank: int, world: int) -> tuple[dict[int, Projection], torch.Tensor,
                                                                              ExchangeStats]:
    """Send each camera's visible Gaussians of this shard to the camera's rank.

    Args:
        projections: this shard projected into each camera of the batch, [N_local, ...] each.
    Returns:
        (batch position -> the Projection of every rank's visible Gaussians for each camera this
         rank renders, in rank order; the received [R, 13] rows, which the loss must touch
         (``0 * rows.sum()``) so that every rank runs the backward exchange; the step's stats).
    """
    B, stats = len(projections), ExchangeStats()
    rows = [p.select((p.radii > 0).nonzero()[:, 0]).packed() for p in projections]
    device = rows[0].device if rows else torch.device("cpu")
    counts = torch.tensor([len(r) for r in rows], dtype=torch.int64, device=device)
    all_counts = [torch.empty_like(counts) for _ in range(world)]
    t0 = time.perf_counter()
    dist.all_gather(all_counts, counts)
    stats.seconds += time.perf_counter() - t0
    table = torch.stack(all_counts).cpu().tolist()  # [world][B] rows each rank sends for each camera
    mine = [k for k in range(B) if camera_owner(k, world) == rank]
    order = [k for d in range(world) for k in range(B) if camera_owner(k, world) == d]  # grouped by destination
    send = torch.cat([rows[k] for k in order]) if order else rows[0].new_empty(0, PACKED_WIDTH)
    send_counts = [sum(table[rank][k] for k in range(B) if camera_owner(k, world) == d) for d in range(world)]
    recv_counts = [sum(table[s][k] for k in mine) for s in range(world)]
    received = _AllToAll.apply(send, send_counts, recv_counts, stats)
    pieces: dict[int, list[torch.Tensor]] = {k: [] for k in mine}
    at = 0
    for s in range(world):  # each source's block holds this rank's cameras in batch order
        for k in mine:
            pieces[k].append(received[at:at + table[s][k]])
            at += table[s][k]
    out = {k: Projection.unpacked(torch.cat(pieces[k])) for k in mine}
    stats.rows_out = sum(c for d, c in enumerate(send_counts) if d != rank)
    stats.bytes_sent = 2 * stats.rows_out * PACKED_WIDTH * send.element_size()  # rows out, gradients back
    stats.per_camera_rows = [sum(table[s][k] for s in range(world)) for k in range(B)]
    return out, received, stats
