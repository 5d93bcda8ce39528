"""2D over-segmentation of one rendered view, without model weights.

Two kinds, one per level of the scene's clusters (``clusters.py``):

* ``geometric_segments``: the connected pixel regions that the click's region growing
  would fill (``click.crossable``): bounded by depth jumps and by the line between the
  scene's dominant plane and what stands on it. Texture never splits them; objects that
  touch with no visible step between them share one.
* ``colour_segments``: Felzenszwalb's graph-based segmentation (scikit-image) of the
  colour, lightly smoothed so that a fine texture does not cut, intersected with the
  geometric segments so that their boundaries stay. It splits touching objects of
  different colours, and also large texture patterns. (Depth as a further channel of
  the segmentation would cut a floor seen at a slant into bands: its depth changes
  steadily from row to row.)

Both return [H, W] int64 ids 1..S, 0 where the view shows no surface (opacity below
``min_alpha`` or no median depth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .click import GrowParams, _Surface, crossable
from .planes import Plane


@dataclass
class ColourParams:
    """Felzenszwalb's segmentation of the colour (see the module docstring)."""

    blur: int = 1  # box-filter radius of the colour, pixels
    scale: float = 300.0  # Felzenszwalb's k: larger gives larger segments
    sigma: float = 0.5
    min_size: int = 10  # pixels


def surface_mask(s: _Surface, p: GrowParams) -> torch.Tensor:
    """[H, W] bool: pixels that show a surface."""
    return (s.alpha > p.min_alpha) & (s.depth > 0)


def _dense(ids: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Renumber ``ids`` to 1..S over ``valid`` pixels (in order of first id), 0 elsewhere."""
    out = np.zeros(ids.shape, np.int64)
    _, out[valid] = np.unique(ids[valid], return_inverse=True)
    out[valid] += 1
    return out


def geometric_segments(s: _Surface, planes: Sequence[Plane], p: GrowParams) -> np.ndarray:
    """[H, W] segment ids of the regions bounded by depth jumps and the outline of the scene's
    planes (``planes.support_planes``)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    H, W = s.alpha.shape
    right, down = crossable(s, p, planes, concave=False)
    idx = np.arange(H * W).reshape(H, W)
    a = np.concatenate([idx[:, :-1][right.numpy()], idx[:-1][down.numpy()]])
    b = np.concatenate([idx[:, 1:][right.numpy()], idx[1:][down.numpy()]])
    _, comp = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(H * W, H * W)), directed=False)
    return _dense(comp.reshape(H, W), surface_mask(s, p).numpy())


def colour_segments(s: _Surface, geometric: np.ndarray, p: GrowParams, c: ColourParams) -> np.ndarray:
    """[H, W] segment ids: Felzenszwalb's segmentation of the colour, inside each of the
    ``geometric`` segments (``geometric_segments`` of the same view)."""
    from skimage.segmentation import felzenszwalb

    valid = surface_mask(s, p)
    colour = s.color.permute(2, 0, 1)[None] * valid[None, None]
    if c.blur > 0:  # the mean over the window's surface pixels
        k, pad = 2 * c.blur + 1, (c.blur,) * 4
        num = F.avg_pool2d(F.pad(colour, pad, mode="replicate"), k, 1)
        den = F.avg_pool2d(F.pad(valid[None, None].float(), pad, mode="replicate"), k, 1)
        colour = num / den.clamp_min(1e-6)
    image = colour[0].permute(1, 2, 0).numpy().astype(np.float64)
    seg = felzenszwalb(image, scale=c.scale, sigma=c.sigma, min_size=c.min_size, channel_axis=-1)
    return _dense(geometric.astype(np.int64) * (int(seg.max()) + 1) + seg, valid.numpy() & (geometric > 0))
