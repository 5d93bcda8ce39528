"""Synthetic scenes with exact ground truth (depth, instance ids, meshes); recipes in scenes/."""

from .generator import generate, load_recipe, recipe_names, rig_cameras

__all__ = ["generate", "load_recipe", "recipe_names", "rig_cameras"]
