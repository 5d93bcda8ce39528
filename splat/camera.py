"""Pinhole cameras in the OpenCV convention (x right, y down, z forward).

``viewmat`` maps world to camera coordinates; ``K`` is in pixels with pixel
centres at +0.5 (the centre of the top-left pixel is (0.5, 0.5)).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .errors import SplatError
from .io.atomic import write_text_atomic

# OpenGL/NeRF camera axes (x right, y up, z backward) -> OpenCV: flip y and z.
_GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


@dataclass
class Camera:
    """One pinhole camera.

    Attributes:
        K: [3, 3] intrinsics in pixels.
        viewmat: [4, 4] world -> camera (OpenCV convention).
        width, height: image size in pixels.
        near, far: depth range; Gaussians outside it are culled.
    """

    K: torch.Tensor
    viewmat: torch.Tensor
    width: int
    height: int
    near: float = 0.01
    far: float = 1e10

    def __post_init__(self):
        # camera matrices are kept in float64; the renderer casts to the store's dtype
        self.K = torch.as_tensor(self.K, dtype=torch.float64).detach().cpu()
        self.viewmat = torch.as_tensor(self.viewmat, dtype=torch.float64).detach().cpu()
        if tuple(self.K.shape) != (3, 3):
            raise SplatError(f"camera K: shape {tuple(self.K.shape)}, expected (3, 3)")
        if tuple(self.viewmat.shape) != (4, 4):
            raise SplatError(f"camera viewmat: shape {tuple(self.viewmat.shape)}, expected (4, 4)")
        if not (torch.isfinite(self.K).all() and torch.isfinite(self.viewmat).all()):
            raise SplatError("camera: K or viewmat has non-finite values")
        if int(self.width) != self.width or int(self.height) != self.height or self.width < 1 or self.height < 1:
            raise SplatError(f"camera: image size {self.width}x{self.height} must be positive integers")
        self.width, self.height = int(self.width), int(self.height)
        if not (0 < self.near < self.far):
            raise SplatError(f"camera: need 0 < near < far, got near={self.near} far={self.far}")

    # -- constructors ---------------------------------------------------------------
    @staticmethod
    def intrinsics_from_fov(fov_deg: float, width: int, height: int) -> torch.Tensor:
        """[3, 3] K for a vertical field of view in degrees, principal point at the centre."""
        if not (0 < fov_deg < 180):
            raise SplatError(f"field of view {fov_deg} degrees must be in (0, 180)")
        f = 0.5 * height / math.tan(math.radians(fov_deg) / 2)
        return torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=torch.float64)

    @classmethod
    def look_at(
        cls,
        eye: Sequence[float],
        target: Sequence[float],
        up: Sequence[float] = (0.0, 0.0, 1.0),
        fov_deg: float = 50.0,
        width: int = 512,
        height: int = 512,
        **kw,
    ) -> "Camera":
        """A camera at ``eye`` looking at ``target``; ``up`` is world up (image up).

        ``fov_deg`` is the vertical field of view.
        """
        eye = torch.as_tensor(eye, dtype=torch.float64)
        target = torch.as_tensor(target, dtype=torch.float64)
        up = torch.as_tensor(up, dtype=torch.float64)
        forward = target - eye
        if forward.norm() == 0:
            raise SplatError("look_at: eye and target are the same point")
        z = forward / forward.norm()
        x = torch.linalg.cross(z, up)  # camera x = right; image y (down) = z × x
        if x.norm() < 1e-9:
            raise SplatError("look_at: up is parallel to the viewing direction")
        x = x / x.norm()
        y = torch.linalg.cross(z, x)
        R = torch.stack([x, y, z])  # rows: camera axes in world coordinates
        viewmat = torch.eye(4, dtype=torch.float64)
        viewmat[:3, :3] = R
        viewmat[:3, 3] = -R @ eye
        return cls(cls.intrinsics_from_fov(fov_deg, width, height), viewmat, width, height, **kw)

    @classmethod
    def from_opengl_c2w(cls, c2w, K, width: int, height: int, **kw) -> "Camera":
        """From an OpenGL/NeRF camera-to-world matrix (x right, y up, z backward).

        Args:
            c2w: [4, 4] or [3, 4] camera-to-world (Blender / nerfstudio convention).
            K: [3, 3] intrinsics in pixels.
        """
        c2w = torch.as_tensor(c2w, dtype=torch.float64)
        if tuple(c2w.shape) == (3, 4):
            c2w = torch.cat([c2w, torch.tensor([[0, 0, 0, 1.0]], dtype=torch.float64)])
        if tuple(c2w.shape) != (4, 4):
            raise SplatError(f"camera-to-world matrix: shape {tuple(c2w.shape)}, expected (4, 4) or (3, 4)")
        viewmat = torch.linalg.inv(c2w @ _GL_TO_CV)
        return cls(torch.as_tensor(K, dtype=torch.float64), viewmat, width, height, **kw)

    def opengl_c2w(self) -> torch.Tensor:
        """[4, 4] OpenGL/NeRF camera-to-world matrix of this camera."""
        return torch.linalg.inv(self.viewmat.double()) @ _GL_TO_CV

    # -- derived --------------------------------------------------------------------
    @property
    def center(self) -> torch.Tensor:
        """[3] camera centre in world coordinates."""
        R, t = self.viewmat[:3, :3], self.viewmat[:3, 3]
        return -R.T @ t

    def resized(self, width: int, height: int) -> "Camera":
        """The same camera with the image rescaled to ``width`` x ``height``."""
        K = self.K.clone()
        K[0] *= width / self.width
        K[1] *= height / self.height
        return Camera(K, self.viewmat.clone(), width, height, self.near, self.far)

    def scaled(self, scale: float, min_side: int = 8) -> "Camera":
        """The same view at ``scale`` × the image size (rounded, at least ``min_side`` pixels a side)."""
        return self.resized(max(min_side, int(round(self.width * scale))), max(min_side, int(round(self.height * scale))))

    def cropped(self, x0: int, y0: int, width: int, height: int) -> "Camera":
        """The camera of the pixel window [x0, x0 + width) × [y0, y0 + height) of this image
        (the window may reach past the image's edges): the principal point moves, nothing else."""
        K = self.K.clone()
        K[0, 2] -= x0
        K[1, 2] -= y0
        return Camera(K, self.viewmat.clone(), width, height, self.near, self.far)

    def downscaled(self, factor: int) -> "Camera":
        """The camera of this image area-averaged by an integer ``factor`` (trailing
        pixels dropped): K / factor exactly, size // factor."""
        if factor == 1:
            return self
        K = self.K.clone()
        K[:2] /= factor
        return Camera(K, self.viewmat.clone(), self.width // factor, self.height // factor, self.near, self.far)

    def to_dict(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "K": self.K.tolist(),
            "viewmat": self.viewmat.tolist(),
            "near": self.near,
            "far": self.far,
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "camera") -> "Camera":
        if not isinstance(d, dict):
            raise SplatError(f"{where}: expected an object with K, viewmat, width, height")
        for key in ("K", "viewmat", "width", "height"):
            if key not in d:
                raise SplatError(f"{where}: missing '{key}'")
        try:
            K = torch.tensor(d["K"], dtype=torch.float64)
            viewmat = torch.tensor(d["viewmat"], dtype=torch.float64)
            w, h = d["width"], d["height"]
            near, far = float(d.get("near", 0.01)), float(d.get("far", 1e10))
        except (TypeError, ValueError) as e:
            raise SplatError(f"{where}: bad value ({e})") from None
        if not isinstance(w, int) or not isinstance(h, int) or isinstance(w, bool) or isinstance(h, bool):
            raise SplatError(f"{where}: width and height must be integers")
        try:
            return cls(K, viewmat, w, h, near, far)
        except SplatError as e:
            raise SplatError(f"{where}: {e}") from None


def as_camera_list(cameras: "Camera | Sequence[Camera]") -> list[Camera]:
    """Normalise a camera or a sequence of cameras to a non-empty list."""
    cams = [cameras] if isinstance(cameras, Camera) else list(cameras)
    if not cams:
        raise SplatError("no cameras given")
    for c in cams:
        if not isinstance(c, Camera):
            raise SplatError(f"expected Camera objects, got {type(c).__name__}")
    return cams


def load_cameras_json(path: str | os.PathLike) -> list[Camera]:
    """Read cameras from JSON: a list of camera objects or ``{"cameras": [...]}``.

    Each camera has ``K`` (3x3), ``viewmat`` (4x4, world->camera, OpenCV),
    ``width``, ``height`` and optional ``near``/``far``.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SplatError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SplatError(f"{path}: cannot read ({e})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise SplatError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
    items = doc.get("cameras") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise SplatError(f"{path}: expected a non-empty list of cameras")
    return [Camera.from_dict(d, f"{path}: camera {i}") for i, d in enumerate(items)]


def save_cameras_json(cameras: Sequence[Camera], path: str | os.PathLike) -> None:
    """Write cameras as ``{"cameras": [...]}`` JSON, atomically."""
    write_text_atomic(path, json.dumps({"cameras": [c.to_dict() for c in cameras]}, indent=1))


def orbit_cameras(
    center: Sequence[float],
    radius: float,
    n: int,
    elevation_deg: float = 25.0,
    fov_deg: float = 50.0,
    width: int = 512,
    height: int = 512,
    up: Sequence[float] = (0.0, 0.0, 1.0),
) -> list[Camera]:
    """``n`` cameras evenly spaced on a circle around ``center``, looking at it.

    The orbit lies in the plane orthogonal to ``up``, raised by ``elevation_deg``.
    """
    center_t = torch.as_tensor(center, dtype=torch.float64)
    up_t = torch.as_tensor(up, dtype=torch.float64)
    up_t = up_t / up_t.norm()
    # two axes spanning the plane orthogonal to up
    helper = torch.tensor([1.0, 0, 0], dtype=torch.float64)
    if abs(float(helper @ up_t)) > 0.9:
        helper = torch.tensor([0, 1.0, 0], dtype=torch.float64)
    a = torch.linalg.cross(up_t, helper)
    a = a / a.norm()
    b = torch.linalg.cross(up_t, a)
    el = math.radians(elevation_deg)
    cams = []
    for i in range(n):
        az = 2 * math.pi * i / n
        d = math.cos(el) * (math.cos(az) * a + math.sin(az) * b) + math.sin(el) * up_t
        cams.append(Camera.look_at(center_t + radius * d, center_t, up_t, fov_deg, width, height))
    return cams
