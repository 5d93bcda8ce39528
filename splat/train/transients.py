"""Transient masks from the residuals: what the scene cannot explain leaves the loss.

A passer-by seen in one photo is, to the Gaussians, a region of that photo whose colour
no consistent scene reproduces: once the scene has the gist, its residual there stays
high while the rest falls. Every time a training view is used (from ``start`` on):

1. the residual is taken at low frequency: ``r = mean_c |box(clip(render, 0, 1) - photo)|``, the
   signed difference averaged over a box of about 1/40 of the image before its magnitude.
   A passer-by changes the local mean colour; detail the scene has not learnt yet (leaves,
   a texture, an edge a pixel off) leaves errors of both signs that cancel in the box. On the
   real capture bonsai the magnitude-first residual masked the tree itself (5.6 % of the
   clean photos, −1.45 dB held out); this one leaves it;
2. a pixel is transient where the smoothed residual exceeds ``threshold`` x the running
   median residual (an exponential average of the views' medians, so one badly fitted
   view does not move it), and never below the view's own median: at most half a view is
   masked, as above that it is the scene that is wrong;
3. a passer-by is in one photo; what the scene has not learnt (a far window, a shiny
   surface) fails in every photo that sees it. So each flagged cell of the view (CELL x CELL
   pixels) is carried by its rendered depth into the ``OTHERS`` nearest training views that
   have been seen (where their own rendered depth agrees, i.e. the point is not hidden
   there), and it stays transient only where the others show it: at least two of them see
   the point and most of those had a residual below half their threshold there at their
   last visit. A cell no other view can check is given the benefit of the doubt. On the
   clean real capture bonsai the opposite rule (masked unless most others failed there
   too, so that a cell no view could check stayed masked) left 2.1 % of the photos masked
   (a view from above that few others share, windows) and cost 0.57 dB held out; asking
   for the others' evidence left 0.5 %;
4. the mask is closed (dilated, then eroded, by one pixel) to fill the pinholes that
   textures matching the background leave, then opened by the box: a region narrower
   than the box that measured it (a highlight along an edge, a slat's gloss) cannot be told
   from detail the scene has not fitted yet, and a passer-by is wider. On bonsai this took
   the masks from 0.5 % to 0.14 % of the photos;
5. a region that covers less than ``MIN_AREA`` of its view is dropped: what was left on bonsai
   was glints on the glossy pot and its stand, a few hundred pixels each, that the views
   around do not show (a highlight moves with the view, so the rule of step 3 cannot tell
   it from a passer-by). Masked, they were never learnt and cost 0.25 dB held out (on two
   seeds) from 0.14 % of the pixels: the errors there are large. A passer-by covers more: on
   the recipe ``wild`` 97 % of the masked pixels lie in regions above 1 % of their view.
   The mask's pixels get weight 0 in the loss.

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
CELL = 4  # pixels a side of the cells the views compare (and keep their residuals at)
OTHERS = 12  # nearest views (by camera centre) each flagged cell is checked in, where they see it
DEPTH_AGREES = 0.25  # relative depth difference below which a point is visible in another view
MIN_AREA = 0.01  # a transient region covers at least this share of its view
ELEVATED = 0.5  # another view fails there too when its residual is this share of its threshold


def _box_channels(x: torch.Tensor, size: int) -> torch.Tensor:
    """[H, W, C] mean of each channel over a size x size box (the box shrinks at the border)."""
    return F.avg_pool2d(x.permute(2, 0, 1)[None], size, stride=1, padding=size // 2,
                        count_include_pad=False)[0].permute(1, 2, 0)


def _dilate(x: torch.Tensor, size: int = 3) -> torch.Tensor:
    return F.max_pool2d(x[None, None], size, stride=1, padding=size // 2)[0, 0]


def _large_regions(mask: torch.Tensor, share: float) -> torch.Tensor:
    """[H, W] bool: the 8-connected regions of ``mask`` that cover at least ``share`` of the view."""
    if not bool(mask.any()):
        return mask
    from scipy import ndimage

    labels, n = ndimage.label(mask.cpu().numpy(), structure=[[1, 1, 1], [1, 1, 1], [1, 1, 1]])
    sizes = torch.from_numpy(labels.ravel()).bincount(minlength=n + 1)
    big = sizes >= share * mask.numel()
    big[0] = False
    return big[torch.from_numpy(labels)].to(mask.device)


class TransientMasks:
    """The masks of the training views, updated as each is rendered.

    Attributes:
        masks: dataset index -> [H, W] bool (True = transient), the latest for that view.
        median: the running median residual (None before the first mask).
    """

    def __init__(self, start: int, threshold: float, cameras: list | None = None, views: list[int] = ()):
        """``cameras``: the dataset's cameras by index, ``views``: the training views (for the
        check against other views; without them every flagged pixel stays flagged)."""
        self.start, self.threshold = start, threshold
        self.masks: dict[int, torch.Tensor] = {}
        self.median: float | None = None
        self.cameras = cameras
        # per view at its last visit: the flagged ratio residual / threshold and the rendered
        # depth, both per cell ([h, w]); nearest other training views first
        self.ratio: dict[int, torch.Tensor] = {}
        self.depth: dict[int, torch.Tensor] = {}
        self.nearest: dict[int, list[int]] = {}
        if cameras is not None and len(views) > 1:
            centres = torch.stack([cameras[v].center for v in views])
            order = torch.cdist(centres, centres).argsort(dim=1, stable=True)
            self.nearest = {v: [views[int(k)] for k in row if int(k) != a] for a, (v, row) in enumerate(zip(views, order))}

    def _unconfirmed(self, view: int, cells: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """[h, w] bool: of the flagged ``cells`` of ``view``, those no other view shows to be
        transient: fewer than two of the nearest other views see the same point, or at least
        half of those that see it have a raised residual there too. ``depth`` [h, w] per cell;
        cells without a rendered depth (the scene has nothing there) are left out (False)."""
        cam = self.cameras[view]
        ys, xs = torch.nonzero(cells & (depth > 0), as_tuple=True)
        out = torch.zeros_like(cells)
        if not len(ys):
            return out
        others = [o for o in self.nearest.get(view, []) if o in self.ratio][:OTHERS]
        K, V = cam.K.to(depth), cam.viewmat.to(depth)
        z = depth[ys, xs]
        u, v = (xs.to(z) + 0.5) * CELL, (ys.to(z) + 0.5) * CELL
        pc = torch.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], 1)
        world = (pc - V[:3, 3]) @ V[:3, :3]  # camera -> world: R^T (p - t)
        votes, seen = torch.zeros(len(z), device=z.device), torch.zeros(len(z), device=z.device)
        for o in others:
            co, ratio, dz = self.cameras[o], self.ratio[o], self.depth[o]
            Ko, Vo = co.K.to(z), co.viewmat.to(z)
            q = world @ Vo[:3, :3].T + Vo[:3, 3]
            zq = q[:, 2].clamp_min(1e-9)
            cx = ((q[:, 0] / zq * Ko[0, 0] + Ko[0, 2]) / CELL).floor().long()
            cy = ((q[:, 1] / zq * Ko[1, 1] + Ko[1, 2]) / CELL).floor().long()
            inside = (q[:, 2] > 0) & (cx >= 0) & (cy >= 0) & (cx < ratio.shape[1]) & (cy < ratio.shape[0])
            cx, cy = cx.clamp(0, ratio.shape[1] - 1), cy.clamp(0, ratio.shape[0] - 1)
            there = dz[cy, cx]
            visible = inside & (there > 0) & ((there - q[:, 2]).abs() < DEPTH_AGREES * there)
            seen += visible
            votes += visible & (ratio[cy, cx] >= ELEVATED)
        out[ys, xs] = (seen < 2) | (votes * 2 >= seen)
        return out

    @torch.no_grad()
    def weight(self, view: int, render: torch.Tensor, photo: torch.Tensor, step: int,
               depth: torch.Tensor | None = None) -> torch.Tensor | None:
        """[H, W] loss weight of view ``view`` (1 keep, 0 transient) from its [H, W, 3] render and
        photo at ``step`` (and its [H, W] or [H, W, 1] rendered depth, for the check against
        the other views); None before ``start`` (every pixel counts)."""
        if step < self.start:
            return None
        diff = render.clamp(0, 1) - photo  # as a camera records it: saturated is no error
        size = max(3, round(min(diff.shape[:2]) / 40) | 1)
        smooth = _box_channels(diff, size).abs().mean(-1)
        median = float(smooth.median())
        self.median = median if self.median is None else EMA * self.median + (1 - EMA) * median
        # never above the view's own median: at most half of it is masked
        threshold = max(self.threshold * self.median, median, FLOOR)
        flagged = smooth > threshold
        if depth is not None and self.cameras is not None:
            H, W = smooth.shape
            cell_ratio = F.max_pool2d((smooth / threshold)[None, None], CELL, ceil_mode=True)[0, 0]
            d = depth.reshape(H, W)
            has = (d > 0).to(d.dtype)[None, None]
            cell_depth = (F.avg_pool2d((d * has[0, 0])[None, None], CELL, ceil_mode=True) /
                          F.avg_pool2d(has, CELL, ceil_mode=True).clamp_min(1e-9))[0, 0]
            unconfirmed = self._unconfirmed(view, cell_ratio >= 1, cell_depth)
            self.ratio[view], self.depth[view] = cell_ratio, cell_depth
            flagged &= ~unconfirmed.repeat_interleave(CELL, 0).repeat_interleave(CELL, 1)[:H, :W]
        flagged = flagged.to(smooth.dtype)
        mask = 1 - _dilate(1 - _dilate(flagged))  # closing: fill one-pixel holes, keep the outline
        mask = _dilate(1 - _dilate(1 - mask, size), size)  # opening: drop what is narrower than the box
        keep = _large_regions(mask > 0.5, MIN_AREA)
        self.masks[view] = keep
        return 1 - keep.to(smooth.dtype)

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
        keep = lambda d: {int(k): v.cpu().clone() for k, v in d.items()}  # noqa: E731
        return {"masks": keep(self.masks), "median": self.median, "ratio": keep(self.ratio), "depth": keep(self.depth)}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.masks = {int(k): v.to(device) for k, v in state["masks"].items()}
        self.median = state["median"]
        # checkpoints from before the check against other views hold no cells: it starts afresh
        self.ratio = {int(k): v.to(device) for k, v in state.get("ratio", {}).items()}
        self.depth = {int(k): v.to(device) for k, v in state.get("depth", {}).items()}
