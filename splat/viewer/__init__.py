"""The real-time web viewer (viser): server-rendered frames, client-side splats, live training."""

from .server import Viewer

__all__ = ["Viewer"]
