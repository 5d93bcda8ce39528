"""The store as viser Gaussian splats for client-side rendering (DC colour, covariance)."""

from __future__ import annotations

import numpy as np
import torch

from ..geometry import covariance_3d
from ..store import GaussianStore

CLIENT_LIMIT = 500_000  # 32 bytes each in the browser: 16 MB a send


def client_splats(store: GaussianStore, limit: int = CLIENT_LIMIT) -> tuple[dict, str]:
    """Arrays for ``scene.add_gaussian_splats`` and a note.

    Above ``limit`` Gaussians, keeps the ``limit`` with the largest opacity × size
    (size = geometric mean of the axis scales) and says so in the note.

    Returns:
        ({centers [M,3], covariances [M,3,3], rgbs [M,3], opacities [M,1]} float32 numpy, note)
    """
    s = store.detach().to("cpu", torch.float32)
    note = f"{len(s)} splats sent to the browser"
    if len(s) > limit:
        score = s.opacities * s.log_scales.mean(-1).exp()
        keep = torch.topk(score, limit).indices.sort().values
        s = s.select(keep)
        note = f"{limit} of {len(store)} splats sent to the browser (largest opacity × size first)"
    arrays = {
        "centers": s.means.numpy(),
        "covariances": covariance_3d(s.quats, s.scales).numpy(),
        "rgbs": s.rgb.clamp(0, 1).numpy(),
        "opacities": s.opacities[:, None].numpy(),
    }
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}, note
