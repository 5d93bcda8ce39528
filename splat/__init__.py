"""splat: 3D Gaussian Splatting — train, view, edit and segment scenes.

Public API: GaussianStore, load_ply, save_ply, Camera, render.rasterize.
"""

from . import render
from .camera import Camera, load_cameras_json, orbit_cameras, save_cameras_json
from .errors import SplatError
from .io.ply import load_ply, save_ply
from .store import GaussianStore

__version__ = "0.1.0"

__all__ = [
    "GaussianStore", "Camera", "SplatError", "load_ply", "save_ply", "render",
    "load_cameras_json", "save_cameras_json", "orbit_cameras",
]
