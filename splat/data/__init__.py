"""Datasets: cameras + images (+ masks, + initial points) from COLMAP, transforms.json or generated scenes."""

from .colmap import ColmapCamera, ColmapImage, ColmapModel, read_model, rotmat_to_qvec, write_model
from .dataset import Dataset, undistort_image
from .loaders import load_colmap, load_dataset, load_transforms

__all__ = ["Dataset", "load_dataset", "load_transforms", "load_colmap", "read_model", "write_model",
           "ColmapModel", "ColmapCamera", "ColmapImage", "rotmat_to_qvec", "undistort_image"]
