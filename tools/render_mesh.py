"""Render a mesh to a PNG for a look: open3d ray casting, Lambert shading of the normals.

    python tools/render_mesh.py MESH.ply OUT.png [--views 4] [--size 320] [--elevation 35]

Cameras orbit the mesh's bounding-box centre (z up), far enough to frame it; the
views are placed side by side.
"""

from __future__ import annotations

import argparse
import math

import numpy as np


def render(mesh_path: str, views: int = 4, size: int = 320, elevation: float = 35.0) -> np.ndarray:
    import open3d as o3d

    from splat.camera import orbit_cameras

    mesh = o3d.io.read_triangle_mesh(mesh_path)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    lo, hi = mesh.get_min_bound(), mesh.get_max_bound()
    centre, radius = (lo + hi) / 2, float(np.linalg.norm(hi - lo)) / 2
    cams = orbit_cameras(centre, radius / math.sin(math.radians(25)), views, elevation, 50, size, size)
    light = np.array([0.4, -0.3, 0.85]) / np.linalg.norm([0.4, -0.3, 0.85])
    out = []
    for cam in cams:
        K, R, t = cam.K.numpy(), cam.viewmat[:3, :3].numpy(), cam.viewmat[:3, 3].numpy()
        u, v = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
        d = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1).reshape(-1, 3) @ R
        o = np.broadcast_to(-R.T @ t, d.shape)
        hit = scene.cast_rays(o3d.core.Tensor(np.concatenate([o, d], 1).astype(np.float32)))
        n = hit["primitive_normals"].numpy()
        ok = np.isfinite(hit["t_hit"].numpy())
        shade = 0.25 + 0.75 * np.abs(n @ light)
        img = np.where(ok[:, None], shade[:, None] * np.array([0.85, 0.8, 0.7]), np.array([1.0, 1.0, 1.0]))
        out.append(img.reshape(size, size, 3))
    return np.concatenate(out, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mesh")
    ap.add_argument("out")
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--elevation", type=float, default=35.0)
    args = ap.parse_args()
    from splat.io.images import save_image

    save_image(render(args.mesh, args.views, args.size, args.elevation), args.out)


if __name__ == "__main__":
    main()
