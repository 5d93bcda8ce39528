"""One dataset type for every loader: cameras, lazily loaded images, masks, points.

Images are read when asked for. Distorted images are undistorted (same pinhole
intrinsics, OpenCV radial-tangential model) and downscaled images are resized
once, then kept in an on-disk cache (``$SPLAT_CACHE/datasets``), so the rest of
the product sees pinhole cameras only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..cache import cache_dir
from ..camera import Camera
from ..errors import SplatError
from ..io.images import load_image, save_image


def distort(x: np.ndarray, y: np.ndarray, d: dict) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV radial-tangential distortion of normalised coordinates (k1, k2, p1, p2)."""
    k1, k2, p1, p2 = (float(d.get(k, 0.0)) for k in ("k1", "k2", "p1", "p2"))
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2
    return (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)


def undistort_image(image: np.ndarray, K: np.ndarray, d: dict, nearest: bool = False) -> np.ndarray:
    """The pinhole image (same K) of a distorted one: each output pixel samples the
    input where the distortion model sends it (bilinear, or ``nearest`` for labels and
    masks, whose values must not mix; 0 outside). [H, W, C] (any dtype with ``nearest``)."""
    H, W = image.shape[:2]
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    xd, yd = distort((u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], d)
    sx, sy = xd * K[0, 0] + K[0, 2] - 0.5, yd * K[1, 1] + K[1, 2] - 0.5  # array index coordinates
    if nearest:
        xi, yi = np.rint(sx).astype(np.int64), np.rint(sy).astype(np.int64)
        ok = ((xi >= 0) & (xi < W) & (yi >= 0) & (yi < H))[..., None]
        return np.where(ok, image[yi.clip(0, H - 1), xi.clip(0, W - 1)], 0).astype(image.dtype)
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    out = np.zeros_like(image)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = ((xi >= 0) & (xi < W) & (yi >= 0) & (yi < H))[..., None]
        out = out + np.where(ok, image[yi.clip(0, H - 1), xi.clip(0, W - 1)], 0) * w
    return out


def downscale_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Area-average by an integer factor (trailing rows and columns dropped). [H, W, C]."""
    if factor == 1:
        return image
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    return torch.nn.functional.avg_pool2d(t, factor)[0].permute(1, 2, 0).numpy()


@dataclass
class Dataset:
    """Cameras and images of a scene, in normalised world coordinates.

    Attributes:
        cameras: one pinhole Camera per image (downscaled, undistorted intrinsics).
        image_paths: the source image files.
        train: indices of the training views; test: the held-out ones.
        points: [P, 3] initial points (normalised world) or None; point_colors [P, 3] in [0, 1].
        transform: [4, 4] similarity, normalised = transform @ input coordinates
            (``to_input`` maps results back).
        distortion: per image, OpenCV k1 k2 p1 p2 to undo when loading, or None.
        downscale: integer factor applied to every image.
        extras: per-frame extra files by kind (e.g. "instance", "depth"), when the dataset has them;
            "transient" (the true transient masks of a generated wild scene, for scoring only)
            is None for the views that have none.
    """

    cameras: list[Camera]
    image_paths: list[Path]
    train: list[int]
    test: list[int]
    points: np.ndarray | None = None
    point_colors: np.ndarray | None = None
    transform: np.ndarray = field(default_factory=lambda: np.eye(4))
    distortion: list[dict | None] = field(default_factory=list)
    downscale: int = 1
    extras: dict[str, list[Path | None]] = field(default_factory=dict)
    _last: tuple | None = field(default=None, repr=False, compare=False)  # (i, image): image() then mask() reads once

    def __len__(self) -> int:
        return len(self.cameras)

    def _cache_path(self, i: int) -> Path:
        src = self.image_paths[i].resolve()
        stat = src.stat()
        key = hashlib.sha256(f"{src}|{stat.st_mtime_ns}|{stat.st_size}|{self.downscale}|{self.distortion[i]}".encode()).hexdigest()[:20]
        return cache_dir() / "datasets" / f"{key}.png"

    def image_rgba(self, i: int) -> np.ndarray:
        """Image i as float32 [H, W, 3 or 4] in [0, 1], undistorted and downscaled (cached on disk)."""
        if self._last is not None and self._last[0] == i:
            return self._last[1]
        img = self._read(i)
        self._last = (i, img)
        return img

    def _read(self, i: int) -> np.ndarray:
        path = self.image_paths[i]
        needs_work = self.downscale > 1 or (self.distortion and self.distortion[i])
        if needs_work:
            cached = self._cache_path(i)
            if cached.exists():
                return load_image(cached)
        img = load_image(path)
        if img.ndim == 2:
            img = img[..., None].repeat(3, -1)
        if needs_work:
            if self.distortion and self.distortion[i]:
                cam = self.cameras[i]
                K = cam.K.numpy() * np.array([[self.downscale], [self.downscale], [1]])  # full-resolution K
                img = undistort_image(img, K, self.distortion[i])
            img = downscale_image(img, self.downscale)
            cached.parent.mkdir(parents=True, exist_ok=True)
            save_image(img, cached)
            img = load_image(cached)  # the first read returns what every later read will
        cam = self.cameras[i]
        if img.shape[:2] != (cam.height, cam.width):
            raise SplatError(f"{path}: image is {img.shape[1]}x{img.shape[0]}, its camera says {cam.width}x{cam.height}")
        return img

    def image(self, i: int) -> torch.Tensor:
        """[H, W, 3] float32 RGB of view i (alpha dropped: see ``mask``)."""
        return torch.from_numpy(np.ascontiguousarray(self.image_rgba(i)[..., :3]))

    def resample_to_view(self, i: int, image: np.ndarray, kind: str) -> np.ndarray:
        """Another per-view image of photo i (a mask, a label image) in view i's frame: undistorted
        like the photo and brought to the view's size. The one place such images are resampled.

        Args:
            image: [H, W] or [H, W, C] at the photo's full size (or already at the view's size,
                then taken as it is).
            kind: "mask" (float; undistorted by nearest sample, area-averaged when downscaled,
                so a caller can threshold it) or "labels" (integers; nearest sample throughout).
        Returns:
            [h, w] or [h, w, C] at the view's size.
        Raises:
            SplatError: a size that is neither the photo's nor the view's.
        """
        if kind not in ("mask", "labels"):
            raise ValueError(f"kind {kind!r}")
        cam = self.cameras[i]
        squeeze = image.ndim == 2
        img = image[..., None] if squeeze else image
        H, W = img.shape[:2]
        f = self.downscale
        if f > 1 and (H, W) == (cam.height, cam.width):
            return image  # made for the view already
        if (H // f, W // f) != (cam.height, cam.width):
            full = f" or {cam.width * f}x{cam.height * f} at full size" if f > 1 else ""
            raise SplatError(f"view {i}: image is {W}x{H}, the view is {cam.width}x{cam.height}{full}")
        if self.distortion and self.distortion[i]:
            K = cam.K.numpy() * np.array([[f], [f], [1]])  # full-resolution K
            img = undistort_image(img, K, self.distortion[i], nearest=True)
        if f > 1:
            img = downscale_image(img.astype(np.float32), f) if kind == "mask" else \
                img[f // 2::f, f // 2::f][: cam.height, : cam.width]
        return img[..., 0] if squeeze else img

    def mask(self, i: int) -> torch.Tensor | None:
        """[H, W] float32 alpha of view i if its image has one, else None."""
        img = self.image_rgba(i)
        return torch.from_numpy(np.ascontiguousarray(img[..., 3])) if img.shape[2] == 4 else None

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """[P, 3] normalised world points -> the input dataset's coordinates."""
        inv = np.linalg.inv(self.transform)
        return points @ inv[:3, :3].T + inv[:3, 3]


def normalise(cameras: list[Camera], points: np.ndarray | None) -> tuple[list[Camera], np.ndarray | None, np.ndarray]:
    """Move the mean camera centre to the origin and scale so the farthest centre is at 1.

    Returns (cameras, points, transform [4, 4]) with normalised = transform @ input.
    """
    centres = np.stack([c.center.numpy() for c in cameras])
    mean = centres.mean(0)
    radius = float(np.linalg.norm(centres - mean, axis=1).max())
    s = 1.0 / radius if radius > 0 else 1.0
    T = np.eye(4)
    T[:3, :3] *= s
    T[:3, 3] = -s * mean
    out = []
    for c in cameras:
        V = c.viewmat.numpy().copy()
        # camera coordinates of x = mean + x_n / s are (R x_n) / s + (R mean + t): scale them by s
        V[:3, 3] = s * (V[:3, :3] @ mean + V[:3, 3])
        out.append(Camera(c.K, torch.from_numpy(V), c.width, c.height, near=c.near, far=c.far))
    pts = None if points is None else (points - mean) * s
    return out, pts, T


def every_eighth(n: int) -> tuple[list[int], list[int]]:
    """The default split: every 8th view (0, 8, 16, ...) held out."""
    test = list(range(0, n, 8)) if n > 1 else []
    return [i for i in range(n) if i not in set(test)], test


def is_missing(path: Path) -> bool:
    """True when ``path`` is not a file (a lookup error is a one-line SplatError)."""
    try:
        return not path.is_file()
    except OSError as e:  # a name too long for the file system, a bad folder ...
        raise SplatError(f"image {str(path)[:200]!r}: cannot be looked up ({e.strerror})") from None


def missing_images_error(missing: list[Path], total: int, where: str, skippable: bool = True) -> SplatError:
    """One line that names every missing image (the first five, then a count)."""
    names = ", ".join(str(p) for p in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    hint = "; --skip-missing trains on the others" if skippable and len(missing) < total else ""
    what = f"image {names} is missing" if len(missing) == 1 else f"{len(missing)} of {total} images are missing: {names}"
    return SplatError(f"{where}: {what}{hint}")


def check_images_readable(paths: list[Path]) -> None:
    """Open every image's file and check its structure (Pillow's ``verify``: headers and chunk
    checksums, no decoding), so a damaged photo stops a run before it starts, with every bad
    file named."""
    from PIL import Image

    bad = []
    for p in paths:
        try:
            with Image.open(p) as im:
                im.verify()
        except Exception as e:  # truncated, not an image, unreadable: Pillow raises many kinds
            bad.append(f"{p} ({type(e).__name__})")
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise SplatError(f"{len(bad)} image{'s' if len(bad) > 1 else ''} cannot be read: {', '.join(bad[:3])}{more}")
