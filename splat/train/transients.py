"""Transient masks from the residuals: what the scene cannot explain leaves the loss.

A passer-by seen in one photo is, to the Gaussians, a region of that photo whose colour
no consistent scene reproduces: once the scene has the gist, its residual there stays
high while the rest falls. Every time a training view is used (from ``start`` on):

1. the per-pixel residual ``r = mean_c |clip(render, 0, 1) - photo|`` is smoothed with a box of about
   1/40 of the image (a passer-by is a blob; an edge the scene has not sharpened yet is
   thin and averages away);
2. a pixel is transient where the smoothed residual exceeds ``threshold`` x the running
   median residual (an exponential average of the views' medians, so one badly fitted
   view does not move it), and never below the view's own median: at most half a view is
   masked, as above that it is the scene that is wrong;
3. the mask is closed (dilated, then eroded, by one pixel) to fill the pinholes that
   textures matching the background leave, and its pixels get weight 0 in the loss.

This is the residual-mask half of splatfacto-w and RobustSplat without a feature network
(none can be downloaded); RobustSplat's other half, delayed growth, is the trainer's:
growth begins no earlier than ``2 x start``. Everything is deterministic on the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EMA = 0.9  # weight of the past in the running median
# residuals below this (mean absolute error over the box, colours in 0..1) are never transient:
# relative to the median alone, a scene fitted well would lose its edges and textures to the mask
FLOOR = 0.1


def _box(x: torch.Tensor, size: int) -> torch.Tensor:
    """[H, W] mean over a size x size box (the box shrinks at the border)."""
    return F.avg_pool2d(x[None, None], size, stride=1, padding=size // 2, count_include_pad=False)[0, 0]


def _dilate(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x[None, None], 3, stride=1, padding=1)[0, 0]


class TransientMasks:
    """The masks of the training views, updated as each is rendered.

    Attributes:
        masks: dataset index -> [H, W] bool (True = transient), the latest for that view.
        median: the running median residual (None before the first mask).
    """

    def __init__(self, start: int, threshold: float):
        self.start, self.threshold = start, threshold
        self.masks: dict[int, torch.Tensor] = {}
        self.median: float | None = None

    @torch.no_grad()
    def weight(self, view: int, render: torch.Tensor, photo: torch.Tensor, step: int) -> torch.Tensor | None:
        """[H, W] loss weight of view ``view`` (1 keep, 0 transient) from its [H, W, 3] render and
        photo at ``step``; None before ``start`` (every pixel counts)."""
        if step < self.start:
            return None
        residual = (render.clamp(0, 1) - photo).abs().mean(-1)  # as a camera records it: saturated is no error
        size = max(3, round(min(residual.shape) / 40) | 1)
        smooth = _box(residual, size)
        median = float(smooth.median())
        self.median = median if self.median is None else EMA * self.median + (1 - EMA) * median
        # never above the view's own median: at most half of it is masked
        flagged = (smooth > max(self.threshold * self.median, median, FLOOR)).to(smooth.dtype)
        mask = 1 - _dilate(1 - _dilate(flagged))  # closing: fill one-pixel holes, keep the outline
        self.masks[view] = mask > 0.5
        return 1 - mask

    def last_weight(self, view: int, dtype: torch.dtype) -> torch.Tensor | None:
        """[H, W] the loss weight of ``view``'s latest mask (None before it has one)."""
        mask = self.masks.get(view)
        return None if mask is None else 1 - mask.to(dtype)

    def coverage(self) -> float:
        """Mean fraction of a view masked (over the views with a mask; 0 with none)."""
        if not self.masks:
            return 0.0
        return sum(float(m.float().mean()) for m in self.masks.values()) / len(self.masks)

    def state_dict(self) -> dict:
        return {"masks": {int(k): v.cpu().clone() for k, v in self.masks.items()}, "median": self.median}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.masks = {int(k): v.to(device) for k, v in state["masks"].items()}
        self.median = state["median"]
