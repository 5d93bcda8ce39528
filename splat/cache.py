"""Where splat keeps what it can make again: native builds and resampled dataset images."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$SPLAT_CACHE``, default ``~/.cache/splat``."""
    return Path(os.environ.get("SPLAT_CACHE", Path.home() / ".cache" / "splat"))
