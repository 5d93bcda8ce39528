"""Adam over named per-Gaussian tensors, with row operations for densification.

Each parameter group (means, log-scales, ...) is one tensor whose first
dimension is the Gaussian index. Strategies add, remove and overwrite rows;
the moments follow the same rows so the optimizer state stays consistent.
Moments of new or overwritten rows start at zero (as the reference codes do).
"""

from __future__ import annotations

from typing import Dict

import torch


class Adam:
    """Adam (beta1 0.9, beta2 0.999) with a learning rate per group.

    Attributes:
        params: name -> leaf tensor [N, ...] requiring grad.
        lrs: name -> current learning rate (the trainer sets them each step).
        bands: name -> (lead, rate, rest rate): the group's first ``lead`` values of each row
            learn at ``lrs[rate]``, the others at ``lrs[rest rate]`` (SH in one tensor: its DC
            band and the higher ones); a group not named learns at ``lrs[name]``.
        exp_avg, exp_avg_sq: name -> first and second moments, shaped like the parameter.
        steps: number of updates done (bias correction, shared by all rows).
    """

    def __init__(self, params: Dict[str, torch.Tensor], lrs: Dict[str, float], eps: float = 1e-15,
                 betas: tuple[float, float] = (0.9, 0.999), fused=None,
                 bands: Dict[str, tuple[int, str, str]] | None = None):
        self.params = {k: v.detach().clone().contiguous().requires_grad_(True) for k, v in params.items()}
        self.lrs = dict(lrs)
        self.bands = dict(bands or {})
        self.eps, self.betas = eps, betas
        self.exp_avg = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.steps = 0
        self.fused = fused  # the C++ training extension for CPU tensors, or None (torch ops)

    def __len__(self) -> int:
        return next(iter(self.params.values())).shape[0]

    @torch.no_grad()
    def step(self, used: Dict[str, int] | None = None) -> None:
        """One update of every group that received a gradient; grads are then cleared.

        ``used``: name -> how many leading values of each row are in use (SH: the bands of
        the degree reached). The others must have a zero gradient and zero moments, where a
        step leaves them as they are: the fused step skips them (the same numbers, less
        work); the torch step does not need to."""
        self.steps += 1
        b1, b2 = self.betas
        bc1, bc2 = 1 - b1**self.steps, 1 - b2**self.steps
        for k, p in self.params.items():
            g = p.grad
            if g is None:  # a group the step's loss did not reach
                continue
            m, v = self.exp_avg[k], self.exp_avg_sq[k]
            lead, rate, rest = self.bands.get(k, (0, k, k))
            if self.fused is not None and p.device.type == "cpu" and p.numel():
                self.fused.adam_step(p, g.contiguous(), m, v, self.lrs[rate], b1, b2, self.eps, self.steps, lead,
                                     self.lrs[rest], (used or {}).get(k, p[0].numel()))
                p.grad = None
                continue
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / bc2).sqrt_().add_(self.eps)
            if lead:  # the rows' leading values, then the rest, at their rates
                p_rows, m_rows, d_rows = (t.view(len(p), -1) for t in (p, m, denom))
                p_rows[:, :lead].addcdiv_(m_rows[:, :lead], d_rows[:, :lead], value=-self.lrs[rate] / bc1)
                p_rows[:, lead:].addcdiv_(m_rows[:, lead:], d_rows[:, lead:], value=-self.lrs[rest] / bc1)
            else:
                p.addcdiv_(m, denom, value=-self.lrs[k] / bc1)
            p.grad = None

    # -- row operations (all keep params and moments aligned) ----------------------------
    def _replace(self, fn) -> None:
        for store in (self.exp_avg, self.exp_avg_sq):
            for k in store:
                store[k] = fn(k, store[k], True)
        for k in self.params:
            self.params[k] = fn(k, self.params[k].detach(), False).requires_grad_(True)

    def keep(self, mask: torch.Tensor) -> None:
        """Keep only the rows where ``mask`` [N] bool is True."""
        self._replace(lambda k, t, _: t[mask].clone())

    def append(self, rows: Dict[str, torch.Tensor]) -> None:
        """Append new rows (a tensor per group, same count); their moments are zero."""
        self._replace(lambda k, t, is_moment: torch.cat([t, torch.zeros_like(rows[k]) if is_moment else rows[k].to(t)]))

    @torch.no_grad()
    def overwrite(self, index: torch.Tensor, rows: Dict[str, torch.Tensor]) -> None:
        """Set rows ``index`` [M] of the named groups to ``rows``; zero all groups' moments there."""
        for k, v in rows.items():
            self.params[k][index] = v.to(self.params[k])
        self.zero_moments(index)

    @torch.no_grad()
    def zero_moments(self, index: torch.Tensor, names=None) -> None:
        """Zero both moments of rows ``index`` for the named groups (default all)."""
        for k in names or self.params:
            self.exp_avg[k][index] = 0
            self.exp_avg_sq[k][index] = 0

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "params": {k: v.detach().clone() for k, v in self.params.items()},
            "exp_avg": {k: v.clone() for k, v in self.exp_avg.items()},
            "exp_avg_sq": {k: v.clone() for k, v in self.exp_avg_sq.items()},
            "steps": self.steps, "lrs": dict(self.lrs), "eps": self.eps, "betas": tuple(self.betas),
            "bands": dict(self.bands),
        }

    @classmethod
    def from_state_dict(cls, state: dict, fused=None, device: torch.device | str | None = None) -> "Adam":
        """The optimiser ``state_dict`` saved, its tensors moved to ``device`` where given."""
        move = (lambda t: t.to(device)) if device is not None else (lambda t: t)
        opt = cls({k: move(v) for k, v in state["params"].items()}, state["lrs"], state["eps"],
                  tuple(state["betas"]), fused, {k: tuple(v) for k, v in state.get("bands", {}).items()})
        opt.exp_avg = {k: move(v).clone() for k, v in state["exp_avg"].items()}
        opt.exp_avg_sq = {k: move(v).clone() for k, v in state["exp_avg_sq"].items()}
        opt.steps = int(state["steps"])
        return opt
