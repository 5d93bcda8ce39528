"""Camera paths for videos: an orbit or a spiral around what the dataset cameras look at,
or the dataset cameras themselves."""

from __future__ import annotations

import math

import torch

from ..camera import Camera, orbit_cameras
from ..errors import SplatError

PATHS = ("orbit", "spiral", "dataset")


def focus_point(cameras: list[Camera]) -> torch.Tensor:
    """[3] the point closest (least squares) to every camera's optical axis."""
    A = torch.zeros(3, 3, dtype=torch.float64)
    b = torch.zeros(3, dtype=torch.float64)
    for c in cameras:
        d = c.viewmat[2, :3]  # viewing direction in world coordinates
        P = torch.eye(3, dtype=torch.float64) - torch.outer(d, d)
        A += P
        b += P @ c.center
    if torch.linalg.matrix_rank(A) < 3:  # parallel axes: look at the point in front of the mean camera
        return torch.stack([c.center + c.viewmat[2, :3] for c in cameras]).mean(0)
    return torch.linalg.solve(A, b)


def world_up(cameras: list[Camera]) -> torch.Tensor:
    """[3] the mean of the cameras' image-up directions (-y of OpenCV cameras)."""
    up = -torch.stack([c.viewmat[1, :3] for c in cameras]).mean(0)
    return up / up.norm().clamp_min(1e-12)


def camera_path(kind: str, cameras: list[Camera], frames: int = 60, width: int | None = None,
                height: int | None = None) -> list[Camera]:
    """Cameras along ``kind`` ("orbit", "spiral" or "dataset") for the scene these cameras see.

    Image size defaults to the first camera's; the field of view is kept.
    """
    if kind not in PATHS:
        raise SplatError(f"path '{kind}' is unknown (use {', '.join(PATHS)})")
    if not cameras:
        raise SplatError("no cameras to build a path from")
    if frames < 1:
        raise SplatError(f"frames {frames} must be positive")
    first = cameras[0]
    W, H = width or first.width, height or first.height
    if kind == "dataset":  # one video: every frame at the first camera's (or the asked) size
        return [c.resized(W, H) for c in cameras]
    fov = math.degrees(2 * math.atan(0.5 * first.height / float(first.K[1, 1])))
    centre, up = focus_point(cameras), world_up(cameras)
    offsets = torch.stack([c.center for c in cameras]) - centre
    radius = float(offsets.norm(dim=1).mean())
    elevation = float(torch.rad2deg(torch.asin((offsets @ up / offsets.norm(dim=1).clamp_min(1e-12)).clamp(-1, 1))).mean())
    if kind == "orbit":
        return orbit_cameras(centre, radius, frames, elevation, fov, W, H, up)
    # spiral: around the mean camera position, two turns, always facing the focus point
    mean_c = torch.stack([c.center for c in cameras]).mean(0)
    forward = centre - mean_c
    if forward.norm() < 1e-9:
        forward = first.viewmat[2, :3].clone()
    forward = forward / forward.norm()
    right = torch.linalg.cross(forward, up)
    right = right / right.norm().clamp_min(1e-12)
    cam_up = torch.linalg.cross(right, forward)
    spread = float(offsets.norm(dim=1).std()) if len(cameras) > 1 else 0.0
    r = max(0.25 * radius, spread) * 0.5
    path = []
    for i in range(frames):
        t = 4 * math.pi * i / frames
        eye = mean_c + r * (math.cos(t) * right + math.sin(t) * cam_up) + 0.2 * r * math.sin(t / 2) * forward
        path.append(Camera.look_at(eye, centre, up, fov, W, H))
    return path
