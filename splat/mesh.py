"""Mesh extraction: render depth at many cameras and fuse it with open3d's TSDF volume.

For each camera: colour and depth at SH degree 0 (expected depth, or median depth: where
the transmittance falls to 0.5, sharper on thick or fuzzy surfaces); pixels with alpha < 0.5 are
dropped; the rest is integrated into a TSDF volume (open3d's ``VoxelBlockGrid``: voxel v,
truncation 4 v by its design, colour; the legacy ``ScalableTSDFVolume`` of open3d 0.20
extracts nothing here, even from a plane). Surfaces seen by fewer than ``min_weight``
views are left out. The extracted mesh keeps its large connected clusters,
loses unreferenced vertices, keeps vertex colours, and is put back into the dataset's
input coordinates (``transform`` maps input -> normalised world).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .camera import Camera
from .errors import SplatError
from .io.atomic import atomic_path
from .render import rasterize
from .render.paths import camera_path, focus_point
from .store import GaussianStore

DEPTH_MODES = ("expected", "median")
VIEW_SETS = ("train", "orbit")


def _open3d():
    try:
        import open3d as o3d
    except ImportError as e:
        raise SplatError(f"mesh extraction needs open3d ({e})") from None
    return o3d


def extract_mesh(store: GaussianStore, cameras: list[Camera], voxel: float | None = None, backend: str = "auto",
                 transform: np.ndarray | None = None, min_cluster: float = 0.02, min_weight: float = 2.0,
                 depth_mode: str = "median", progress: Callable[[int, int], None] | None = None):
    """Fuse the store's depth at ``cameras`` into a triangle mesh (an open3d TriangleMesh).

    Args:
        voxel: TSDF voxel size in the store's units (default: 1.5 pixels at the distance
            from the cameras to what they look at: finer voxels only fuse depth noise).
        transform: [4, 4] input -> store coordinates; the mesh is returned in input coordinates.
        depth_mode: "median" (default; expected depth with a warning from the gsplat backend,
            which has no median) or "expected". Measured on the default scene after the demo's
            training: F-score 0.96 with median depth, 0.40 with expected depth (fuzzy ground).
        min_cluster: connected pieces with fewer triangles than this fraction of the largest are dropped.
    """
    o3d = _open3d()
    if depth_mode not in DEPTH_MODES:
        raise SplatError(f"depth '{depth_mode}' is unknown (use {' or '.join(DEPTH_MODES)})")
    if not cameras:
        raise SplatError("no cameras to fuse depth from")
    centre = focus_point(cameras)
    reach = float(torch.stack([c.center for c in cameras]).sub(centre).norm(dim=1).max())
    focal = min(float(c.K[0, 0]) for c in cameras)
    voxel = voxel if voxel is not None else 1.5 * reach / focal
    if not voxel > 0:
        raise SplatError(f"voxel size {voxel} must be positive")
    o3c = o3d.core
    grid = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight", "color"), attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
        attr_channels=((1), (1), (3)), voxel_size=float(voxel), block_resolution=16, block_count=50_000,
        device=o3c.Device("CPU:0"))
    depth_max = 2.0 * reach  # beyond: background Gaussians (a sky sphere), never surfaces of the scene
    for k, cam in enumerate(cameras):
        with torch.no_grad():
            res = rasterize(store, cam, backend=backend, sh_degree=0, contributions=False)
        color = res.color[0].clamp(0, 1).cpu().numpy().astype(np.float32)
        alpha = res.alpha[0, ..., 0].cpu().numpy()
        if depth_mode == "median" and res.median_depth is None:
            from .render.api import warn_once

            warn_once(f"backend '{backend}' gives no median depth; fusing expected depth")
        if depth_mode == "median" and res.median_depth is not None:
            depth = res.median_depth[0, ..., 0].cpu().numpy().astype(np.float32)
        else:
            depth = res.depth[0, ..., 0].cpu().numpy().astype(np.float32)
        depth[alpha < 0.5] = 0  # not a surface: never integrated
        K = cam.K.numpy().copy()
        K[:2, 2] -= 0.5  # open3d puts pixel u at u, we put its centre at u + 0.5
        depth_t = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(depth)))
        color_t = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(color)))
        K_t, E_t = o3c.Tensor(K), o3c.Tensor(np.ascontiguousarray(cam.viewmat.numpy()))
        blocks = grid.compute_unique_block_coordinates(depth_t, K_t, E_t, 1.0, depth_max)
        grid.integrate(blocks, depth_t, color_t, K_t, E_t, 1.0, depth_max)
        if progress:
            progress(k + 1, len(cameras))
    mesh = grid.extract_triangle_mesh(weight_threshold=min_weight).to_legacy()
    if len(mesh.triangles) == 0:
        raise SplatError("the fused volume holds no surface (is the scene empty, or the voxel too large?)")
    clusters, counts, _ = (np.asarray(x) for x in mesh.cluster_connected_triangles())
    keep = counts >= min_cluster * counts.max()
    mesh.remove_triangles_by_mask(~keep[clusters])
    mesh.remove_unreferenced_vertices()
    if transform is not None:
        mesh.transform(np.linalg.inv(transform))
    return mesh


def mesh_cameras(kind: str, cameras: list[Camera], train: list[int] | None = None, frames: int = 120) -> list[Camera]:
    """The cameras to fuse from: the training views, or an orbit around what they look at."""
    if kind not in VIEW_SETS:
        raise SplatError(f"--views '{kind}' is unknown (use {' or '.join(VIEW_SETS)})")
    if kind == "train":
        return [cameras[i] for i in (train if train else range(len(cameras)))]
    return camera_path("orbit", cameras, frames=frames)


def save_mesh(mesh, path: str | os.PathLike) -> None:
    """Write a mesh (.ply or .obj) atomically: a temporary file in the same folder, then rename."""
    o3d = _open3d()
    path = Path(path)
    if path.suffix.lower() not in (".ply", ".obj"):
        raise SplatError(f"{path}: mesh must end in .ply or .obj")
    with atomic_path(path) as tmp:
        if not o3d.io.write_triangle_mesh(str(tmp), mesh, write_ascii=False):
            raise SplatError(f"{path}: open3d could not write the mesh")
