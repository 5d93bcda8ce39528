"""Which device a backend trains and evaluates on."""

from __future__ import annotations

import torch

from ..errors import SplatError


def pick_device(backend: str) -> torch.device:
    """cuda for the GPU backends (and for auto where a GPU is present), else cpu."""
    if backend in ("cuda", "gsplat") or (backend == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SplatError(f"backend '{backend}' needs a CUDA GPU and none is available")
        return torch.device("cuda")
    return torch.device("cpu")
