"""Editing: selections that compose, and operations that each return a new store.

Every operation has a ``splat edit`` command that only parses arguments and calls it.
"""

from .color import ColorGrade
from .ops import clean, clean_masks, color, crop, delete, duplicate, merge, transform, truncate_sh
from .selection import All, Box, ColorNear, Frustum, Label, OpacityBelow, ScaleAbove, Selection, Sphere, combine
from .similarity import Similarity, euler_to_quat, transform_camera_viewmat

__all__ = [
    "All", "Box", "ColorGrade", "ColorNear", "Frustum", "Label", "OpacityBelow", "ScaleAbove", "Selection",
    "Similarity", "Sphere", "clean", "clean_masks", "color", "combine", "crop", "delete", "duplicate",
    "euler_to_quat", "merge", "transform", "transform_camera_viewmat", "truncate_sh",
]
