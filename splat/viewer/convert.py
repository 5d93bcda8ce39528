"""Conversions between viser's camera state and our ``Camera``.

viser follows the OpenCV convention too (look +z, up −y, right +x): ``wxyz`` is the
rotation R and ``position`` the t of P_world = [R | t] p_camera, so our world→camera
viewmat is the inverse of that pose; ``fov`` is the vertical field of view in radians.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..camera import Camera
from ..geometry import quat_to_rotmat


def camera_from_pose(wxyz, position, fov_y: float, width: int, height: int) -> Camera:
    """Our Camera for a viser pose, vertical field of view (radians) and image size."""
    R = quat_to_rotmat(torch.as_tensor(np.asarray(wxyz, dtype=np.float64))[None])[0].numpy()
    viewmat = np.eye(4)
    viewmat[:3, :3] = R.T
    viewmat[:3, 3] = -R.T @ np.asarray(position, dtype=np.float64)
    f = 0.5 * height / math.tan(fov_y / 2)
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    return Camera(torch.from_numpy(K), torch.from_numpy(viewmat), width, height)


def pose_from_camera(camera: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(position [3], look direction [3], image-up direction [3], vertical fov in radians)."""
    V = camera.viewmat.numpy()
    R = V[:3, :3].T  # camera -> world
    position = -R @ V[:3, 3]
    fov = 2 * math.atan(0.5 * camera.height / float(camera.K[1, 1]))
    return position, R[:, 2], -R[:, 1], fov
