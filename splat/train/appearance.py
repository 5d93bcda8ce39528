"""A colour model per training view, for captures whose exposure and white balance wander.

Each training view v gets an affine map of the rendered colour, as its camera would have
recorded it: ``c' = M_v c + b_v`` (``M_v`` 3x3, ``b_v`` 3). While the maps act, a saturated
photo pixel says nothing once the mapped render is at or above it (``unsaturated`` takes it out of the loss);
a clip in the map itself would stop the gradient of every render above 1. The Gaussians and
the maps are learnt in alternation: each time a view is used, its map is solved in closed
form against its photo (weighted least squares of the current render, the pixels the
transient mask leaves out and the saturated ones excluded, with a ridge towards identity),
then the Gaussians take their gradient through it. A map is a handful of numbers fitted to a
whole image, so the solve is exact where a gradient step would need hundreds of visits, and
it cannot drift.

The ambiguity: any invertible colour change G can move from the Gaussians into every map
(``M_v G^-1``) without changing a training image. It is resolved by construction: after
every solve the maps are re-centred so that their mean is the identity. The Gaussians so
hold the capture's mean appearance; held-out views and every export render them as they
are (the identity map), and a held-out photo is scored as taken (the recipe ``wild`` takes
its held-out views at the reference exposure its training exposures centre on).

A clean capture has one exposure, yet the solves still spread a little from view to view:
they soak up what the scene has not learnt, and a Gaussian seen by a few views then takes a
colour those views' maps agree on, not the photos' (bonsai, 3000 steps: the solved gains
spread 0.03 RMS, and maps applied in full cost 0.62 dB held out). So the maps act through a
gate on their spread: with ``s`` the RMS of (gain - 1) over the solved views and channels,
the map applied is ``I + k (map - I)``, ``k = clamp(s / spread - 1, 0, 1)``. At or below
``spread`` (0.04 by default) the capture is taken to have one exposure and every map applies
as the identity; from twice it (a wandering auto exposure: the recipe ``wild`` draws gains in
0.6..1.6) they apply in full. While the gate is shut the trainer takes the plain loss: on
bonsai the saturation rule alone, with every map the identity, cost 0.31 dB.

Before ``start`` every map is the identity, and a map at identity renders the plain image
bit for bit.
"""

from __future__ import annotations

import torch

_IDENTITY = torch.cat([torch.eye(3), torch.zeros(3, 1)], 1)  # [M | b]
GAIN_RIDGE = 0.1  # the gains' ridge, x the others'
SATURATED = 0.999  # photo pixels at or above this in any channel say nothing about the map


class Appearance:
    """The per-view colour maps of ``views`` (dataset indices of the training views).

    Attributes:
        rows: dataset index -> row of ``maps``.
        maps: [V, 3, 4] the maps [M | b] (mean over views: the identity).
    """

    def __init__(self, views: list[int], start: int, reg: float, device: torch.device, spread: float = 0.04):
        self.rows = {int(v): k for k, v in enumerate(views)}
        self.start, self.reg, self.spread = start, reg, spread
        self.maps = _IDENTITY.repeat(len(views), 1, 1).to(device)
        self.solved = torch.zeros(len(views), dtype=torch.bool)  # rows solved at least once
        self.gate = 0.0  # k: how much of each map applies

    def _update_gate(self) -> None:
        solved = self.maps[self.solved.to(self.maps.device)]
        if len(solved) < 2 or self.spread <= 0:
            self.gate = 0.0 if self.spread > 0 else 1.0
            return
        gains = torch.diagonal(solved[:, :, :3], dim1=1, dim2=2)  # [S, 3]
        s = float(((gains - 1) ** 2).mean()) ** 0.5
        self.gate = min(max(s / self.spread - 1.0, 0.0), 1.0)

    def applied(self, view: int) -> torch.Tensor:
        """[3, 4] the map training view ``view`` renders through: I + gate x (its map - I)."""
        eye = _IDENTITY.to(self.maps)
        return eye + self.gate * (self.maps[self.rows[view]] - eye)

    def apply(self, image: torch.Tensor, view: int) -> torch.Tensor:
        """[H, W, 3] render of training view ``view`` as that view's camera saw it (the render
        itself while the gate is shut)."""
        if self.gate == 0.0:
            return image
        a = self.applied(view)
        return image @ a[:, :3].T + a[:, 3]

    @staticmethod
    def unsaturated(image: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        """[H, W] 1 where the photo says something of ``image`` (mapped render), 0 where the
        sensor saturated: the photo at its top and the render at or above it."""
        clipped = (photo >= SATURATED) & (image.detach() >= photo)
        return (~clipped.any(-1)).to(image.dtype)

    @torch.no_grad()
    def fit(self, view: int, render: torch.Tensor, photo: torch.Tensor, weight: torch.Tensor | None,
            step: int) -> None:
        """Solve view ``view``'s map from its [H, W, 3] render and photo (``weight`` [H, W]: the
        pixels that count), then re-centre all maps; nothing before ``start``."""
        if step < self.start:
            return
        x = torch.cat([render.reshape(-1, 3), torch.ones_like(render[..., :1]).reshape(-1, 1)], 1).double()  # [N, 4]
        t = photo.reshape(-1, 3).double()
        w = (photo.max(-1).values < SATURATED).double().reshape(-1)
        if weight is not None:
            w = w * weight.reshape(-1).double()
        # per output channel k, a ridge of reg on the mixing terms and the offset, and of
        # reg x GAIN_RIDGE on the channel's own gain: exposure and white balance move the gains,
        # while the mixing terms are where a map would soak up what the scene has not learnt yet
        n = float(w.sum()) + 1e-9
        xtx, xtt = x.T @ (x * w[:, None]), x.T @ (t * w[:, None])  # [4, 4], [4, 3]
        solved = torch.empty(3, 4, dtype=torch.float64, device=x.device)
        for k in range(3):
            ridge = torch.full((4,), self.reg * n, dtype=torch.float64, device=x.device)
            ridge[k] *= GAIN_RIDGE
            target = torch.zeros(4, dtype=torch.float64, device=x.device)
            target[k] = 1.0
            solved[k] = torch.linalg.solve(xtx + torch.diag(ridge), xtt[:, k] + ridge * target)
        solved = solved.to(self.maps.dtype)
        self.maps[self.rows[view]] = solved
        self.maps -= self.maps.mean(0) - _IDENTITY.to(self.maps)
        self.solved[self.rows[view]] = True
        self._update_gate()

    def named_maps(self, names: list[str]) -> dict:
        """{image name: [M | b] as applied, as nested lists} for the training views (``names``:
        the dataset's image names by index)."""
        return {names[i]: self.applied(i).cpu().tolist() for i in self.rows}

    def state_dict(self) -> dict:
        return {"maps": self.maps.cpu().clone(), "solved": self.solved.clone()}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.maps = state["maps"].to(device)
        # a checkpoint from before the gate: every view it holds a map for was solved
        self.solved = state["solved"].clone() if "solved" in state else \
            (self.maps.cpu() != _IDENTITY).flatten(1).any(1)
        self._update_gate()
