"""Image files: PNG writing (atomic) and reading."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import SplatError
from .atomic import write_bytes_atomic


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """[H, W, C] float image in [0, 1] -> uint8 array (clamped, rounded); uint8 passes unchanged."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        image = image.numpy() if image.dtype == torch.uint8 else image.float().numpy()
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_image(image: torch.Tensor | np.ndarray, path: str | os.PathLike) -> None:
    """Write an [H, W, 1|3|4] float image in [0, 1] (or uint8 [H, W(, C)]: label maps) to PNG/JPEG, atomically."""
    import imageio.v3 as iio

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".png", ".jpg", ".jpeg"):
        raise SplatError(f"{path}: unsupported image extension '{ext}' (use .png or .jpg)")
    arr = to_uint8(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    buf = io.BytesIO()
    iio.imwrite(buf, arr, extension=ext)
    write_bytes_atomic(path, buf.getvalue())


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as float32 [H, W, C] in [0, 1]."""
    import imageio.v3 as iio

    try:
        arr = iio.imread(path)
    except FileNotFoundError:
        raise SplatError(f"{path}: no such file") from None
    except Exception as e:  # imageio raises many types for corrupt files
        raise SplatError(f"{path}: cannot read image ({type(e).__name__})") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    return arr.astype(np.float32) / scale
