"""The interface every densification strategy implements, and the row edits they share.

A strategy is a plain object the trainer calls at fixed points of each step:

    loss = photometric + strategy.regularizer(adam)
    loss.backward(); strategy.after_backward(adam, result, step)
    adam.step();     strategy.after_step(adam, step, means_lr)

It changes the Gaussians only through ``Adam`` row operations (``keep``,
``append``, ``overwrite``), so parameters and optimizer moments stay aligned.
Its random draws come from the trainer's generator, so a resumed run repeats them.
"""

from __future__ import annotations

import torch

from ..render.api import RenderResult


class Strategy:
    """Base class: no regulariser, no densification."""

    name = "none"

    def __init__(self, generator: torch.Generator, scene_scale: float, scene_centre: torch.Tensor | None = None):
        self.generator = generator
        self.scene_scale = scene_scale
        # [3] the mean camera centre (default the origin): what "far" is measured from
        self.scene_centre = torch.zeros(3) if scene_centre is None else scene_centre.float()

    def regularizer(self, adam) -> torch.Tensor | float:
        return 0.0

    def after_backward(self, adam, result: RenderResult, step: int, views: int | None = None) -> None:
        """Called once per render of the step (``views``: the views the step's loss averages,
        default the render's cameras)."""

    def after_step(self, adam, step: int, means_lr: float) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def opacities(adam) -> torch.Tensor:
    """[N] activated opacities of the optimised parameters (no grad)."""
    return torch.sigmoid(adam.params["opacity_logits"].detach())


def logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p / (1 - p))
