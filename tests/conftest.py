"""Shared test helpers: fresh random scenes and cameras."""

from __future__ import annotations

import pytest
import torch

import splat


def random_store(n: int, sh_degree: int = 0, dtype=torch.float32, seed: int = 0, spread: float = 1.0,
                 scale: tuple[float, float] = (0.03, 0.2)) -> splat.GaussianStore:
    """N random Gaussians around the origin, all parameters random."""
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    lo, hi = scale
    return splat.GaussianStore(
        means=(torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1).to(dtype) * spread,
        log_scales=torch.empty(n, 3, dtype=dtype).uniform_(float(torch.log(torch.tensor(lo))), float(torch.log(torch.tensor(hi))), generator=g),
        quats=torch.randn(n, 4, generator=g, dtype=dtype),
        opacity_logits=torch.randn(n, generator=g, dtype=dtype),
        sh=torch.randn(n, k, 3, generator=g, dtype=dtype) * 0.5,
    )


def front_camera(width: int = 64, height: int = 48, distance: float = 4.0, fov: float = 45.0) -> splat.Camera:
    """A camera on -y looking at the origin, z up."""
    return splat.Camera.look_at((0.3, -distance, 0.8), (0.0, 0.0, 0.0), (0, 0, 1), fov, width, height)


def run_cli(capsys, *args):
    """Run ``splat ARGS`` in this process: (exit code, stdout, stderr)."""
    from splat.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def tmp_ply(tmp_path):
    return tmp_path / "scene.ply"


def gaussian_dataset(folder, views: int = 16, size: int = 64, n: int = 2000, seed: int = 0):
    """A transforms.json dataset rendered from a random Gaussian scene with the CPU backend
    (no open3d needed: used where the generator cannot run, e.g. on the GPU machine)."""
    import json
    from pathlib import Path

    from splat.camera import orbit_cameras
    from splat.io.images import save_image
    from splat.io.ply import save_point_cloud
    from splat.render import rasterize

    folder = Path(folder)
    (folder / "images").mkdir(parents=True)
    store = random_store(n, 0, seed=seed, scale=(0.03, 0.12))
    store.opacity_logits = store.opacity_logits.abs() + 1.0  # mostly opaque: a solid-looking scene
    cams = orbit_cameras((0, 0, 0), 4.0, views, elevation_deg=30, fov_deg=50, width=size, height=size)
    frames = []
    for i, cam in enumerate(cams):
        img = rasterize(store, cam, backend="cpu", background=(0.6, 0.7, 0.9)).color[0].clamp(0, 1)
        save_image(img, folder / "images" / f"{i:04d}.png")
        frames.append({"file_path": f"images/{i:04d}.png", "transform_matrix": cam.opengl_c2w().tolist()})
    save_point_cloud(folder / "points3d.ply", store.means.numpy(), store.rgb.clamp(0, 1).numpy())
    K = cams[0].K
    meta = {"fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
            "w": size, "h": size, "ply_file_path": "points3d.ply", "frames": frames}
    (folder / "transforms.json").write_text(json.dumps(meta))
    return folder
