"""Segmentation without model weights: lift label masks to Gaussians, select objects by clicks."""

from .click import GrowParams, click_select, seed_points
from .lift import assign_labels, label_votes, lift_labels, render_labels

__all__ = ["GrowParams", "assign_labels", "click_select", "label_votes", "lift_labels", "render_labels", "seed_points"]
