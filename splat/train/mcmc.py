"""3DGS-MCMC: Gaussians as MCMC samples; dead ones are relocated, new ones sampled,
positions get SGLD noise. As the reference code runs it (see docs in NOTES):

- every ``refine_every`` steps in (refine_start, refine_stop): relocate dead Gaussians
  (opacity <= min_opacity) onto alive ones sampled by opacity, then add
  min(cap, int(growth N)) - N new ones the same way;
- a source drawn k times becomes N = k + 1 Gaussians (N <= 50) with
  o' = 1 - (1 - o)^(1/N) and s' = o / denom(o', N) * s, so that together they
  render like the source did;
- after every optimizer step: mu += Sigma eps * sigmoid(-100 (o - min_opacity)) * noise_lr * means_lr;
- loss regularisers opacity_reg * mean(o) + scale_reg * mean(s).
"""

from __future__ import annotations

import math

import torch

from .strategy import Strategy, logit, opacities
from ..geometry import quat_to_rotmat
from .config import MCMCConfig

MAX_COPIES = 50


def _binomial_table(n: int) -> torch.Tensor:
    """[n, n] float64 table C(i, k)."""
    t = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for k in range(i + 1):
            t[i, k] = math.comb(i, k)
    return t


_BINOMS = _binomial_table(MAX_COPIES)


def relocation_params(o: torch.Tensor, s: torch.Tensor, copies: torch.Tensor, min_opacity: float = 0.005):
    """Opacity and scales of each of N copies replacing one Gaussian.

    Args:
        o: [M] opacities; s: [M, 3] scales; copies: [M] integer N >= 1 (clamped to 50).
    Returns:
        (o_new [M], s_new [M, 3]):
        o_new = 1 - (1 - o)^(1/N) (clamped to [min_opacity, 1 - eps]),
        s_new = o / denom * s with
        denom = sum_{i=1..N} sum_{k=0..i-1} C(i-1, k) (-1)^k / sqrt(k+1) * o_new^(k+1).
    """
    n = copies.clamp(1, MAX_COPIES).double()
    od = o.double()
    eps = torch.finfo(o.dtype).eps
    o_new = (1 - (1 - od) ** (1 / n)).clamp(min_opacity, 1 - eps)
    i = torch.arange(1, MAX_COPIES + 1, dtype=torch.float64)  # [I]
    k = torch.arange(MAX_COPIES, dtype=torch.float64)  # [K]
    coeff = _BINOMS[(i - 1).long()][:, : MAX_COPIES] * (-1.0) ** k / torch.sqrt(k + 1)  # [I, K], C(i-1,k)=0 for k>i-1
    powers = o_new[:, None] ** (k + 1)  # [M, K]
    inner = powers @ coeff.T  # [M, I]: sum over k for each i
    inner = inner * (i[None] <= n[:, None])  # only i = 1..N
    denom = inner.sum(1)
    s_new = (od / denom)[:, None] * s.double()
    return o_new.to(o.dtype), s_new.to(s.dtype)


class MCMCStrategy(Strategy):
    name = "mcmc"

    def __init__(self, generator: torch.Generator, scene_scale: float, cap: int = 100_000,
                 config: MCMCConfig | None = None, scene_centre: torch.Tensor | None = None):
        super().__init__(generator, scene_scale, scene_centre)
        c = config or MCMCConfig()
        self.cap, self.refine_start, self.refine_stop, self.refine_every = cap, c.refine_start, c.refine_stop, c.refine_every
        self.growth, self.min_opacity, self.noise_lr = c.growth, c.min_opacity, c.noise_lr
        self.opacity_reg, self.scale_reg = c.opacity_reg, c.scale_reg
        self.last = {"relocated": 0, "added": 0}

    def regularizer(self, adam) -> torch.Tensor:
        p = adam.params
        return (self.opacity_reg * torch.sigmoid(p["opacity_logits"]).mean()
                + self.scale_reg * torch.exp(p["log_scales"]).mean())

    def after_step(self, adam, step: int, means_lr: float) -> None:
        if self.refine_start < step < self.refine_stop and step % self.refine_every == 0:
            self.last = {"relocated": self.relocate(adam), "added": self.add(adam)}
        self.inject_noise(adam, means_lr)

    # -- the moves --------------------------------------------------------------------------
    def _split_sources(self, adam, sources: torch.Tensor) -> dict:
        """Give each drawn source its share of opacity and scale (its count + 1 copies);
        returns the rows the copies take (same values as their source)."""
        counts = torch.bincount(sources, minlength=len(adam))[sources] + 1
        o_new, s_new = relocation_params(opacities(adam)[sources], torch.exp(adam.params["log_scales"].detach()[sources]),
                                         counts, self.min_opacity)
        adam.overwrite(sources, {"opacity_logits": logit(o_new), "log_scales": torch.log(s_new)})
        return {k: v.detach()[sources].clone() for k, v in adam.params.items()}

    @torch.no_grad()
    def relocate(self, adam) -> int:
        """Move dead Gaussians onto alive ones drawn by opacity. Returns how many moved."""
        o = opacities(adam)
        dead = (o <= self.min_opacity).nonzero().flatten()
        alive = (o > self.min_opacity).nonzero().flatten()
        if len(dead) == 0 or len(alive) == 0:
            return 0
        draw = torch.multinomial(o[alive].cpu(), len(dead), replacement=True, generator=self.generator)
        rows = self._split_sources(adam, alive[draw.to(alive.device)])
        adam.overwrite(dead, rows)
        return len(dead)

    @torch.no_grad()
    def add(self, adam) -> int:
        """Grow towards the cap by the growth factor, copying Gaussians drawn by opacity."""
        n = len(adam)
        n_new = max(0, min(self.cap, int(self.growth * n)) - n)
        if n_new == 0:
            return 0
        draw = torch.multinomial(opacities(adam).cpu(), n_new, replacement=True, generator=self.generator)
        adam.append(self._split_sources(adam, draw.to(adam.params['means'].device)))
        return n_new

    @torch.no_grad()
    def inject_noise(self, adam, means_lr: float) -> None:
        """SGLD: move each mean by its covariance times N(0, I), gated towards low opacity."""
        p = adam.params
        # drawn on the CPU (the trainer's generator lives there), so every device draws the same noise
        eps = torch.randn(p["means"].shape, generator=self.generator, dtype=p["means"].dtype).to(p["means"].device)
        if adam.fused is not None and p["means"].device.type == "cpu":  # the same math in one pass (splat/sgld.h)
            adam.fused.sgld_add(p["means"].data, p["log_scales"].detach(), p["quats"].detach(),
                                p["opacity_logits"].detach(), eps, self.min_opacity, self.noise_lr * means_lr)
            return
        s = torch.exp(p["log_scales"].detach())
        R = quat_to_rotmat(torch.nn.functional.normalize(p["quats"].detach(), dim=-1))
        gate = torch.sigmoid(-100 * (opacities(adam) - self.min_opacity))
        # Sigma eps = R S^2 R^T eps
        local = torch.einsum("nji,nj->ni", R, eps) * s * s
        noise = torch.einsum("nij,nj->ni", R, local)
        p["means"].add_(noise * (gate * self.noise_lr * means_lr)[:, None])

    def state_dict(self) -> dict:
        return {"last": dict(self.last)}

    def load_state_dict(self, state: dict) -> None:
        self.last = dict(state.get("last", self.last))
