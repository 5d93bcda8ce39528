"""File formats: PLY scenes, atomic writes."""

from .atomic import atomic_write, write_bytes_atomic, write_text_atomic
from .ply import load_ply, ply_bytes, save_ply

__all__ = ["atomic_write", "write_bytes_atomic", "write_text_atomic", "load_ply", "save_ply", "ply_bytes"]
