"""Rendering: ``rasterize(store, cameras, backend=...) -> RenderResult``."""

from .api import RenderResult, available_backends, rasterize, register_backend

__all__ = ["RenderResult", "rasterize", "available_backends", "register_backend"]
