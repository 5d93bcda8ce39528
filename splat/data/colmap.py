"""COLMAP sparse models: read and write cameras, images and points3D, binary or text.

Only what a splatting dataset needs: intrinsics (SIMPLE_PINHOLE, PINHOLE,
SIMPLE_RADIAL, RADIAL, OPENCV), world-to-camera poses (OpenCV convention, as
ours) and the 3D points with colours. Every size read from a binary file is
checked against the bytes that are left, so a truncated or forged file gives
one line, never a huge allocation.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SplatError
from ..io.atomic import write_bytes_atomic, write_text_atomic

# model id -> (name, number of parameters)
MODELS = {0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5), 4: ("OPENCV", 8)}
MODEL_IDS = {name: (i, n) for i, (name, n) in MODELS.items()}


@dataclass
class ColmapCamera:
    model: str
    width: int
    height: int
    params: np.ndarray  # as COLMAP orders them

    def pinhole(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy)."""
        p = self.params
        if self.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
            return float(p[0]), float(p[0]), float(p[1]), float(p[2])
        return float(p[0]), float(p[1]), float(p[2]), float(p[3])

    def distortion(self) -> dict | None:
        """OpenCV-style k1, k2, p1, p2, or None for a pinhole model."""
        p = self.params
        names = {"SIMPLE_RADIAL": ("k1",), "RADIAL": ("k1", "k2"), "OPENCV": ("k1", "k2", "p1", "p2")}.get(self.model)
        if names is None:
            return None
        d = dict(zip(names, p[len(p) - len(names):]))
        if not any(float(v) != 0 for v in d.values()):
            return None
        return {k: float(v) for k, v in d.items()}


@dataclass
class ColmapImage:
    name: str
    camera_id: int
    qvec: np.ndarray  # [4] w, x, y, z: world -> camera rotation
    tvec: np.ndarray  # [3]

    def viewmat(self) -> np.ndarray:
        """[4, 4] world -> camera."""
        norm = np.linalg.norm(self.qvec)
        if not (np.isfinite(norm) and norm > 0):
            raise SplatError(f"COLMAP image {self.name!r}: its rotation quaternion {self.qvec.tolist()} is not a rotation")
        w, x, y, z = self.qvec / norm
        R = np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ])
        V = np.eye(4)
        V[:3, :3], V[:3, 3] = R, self.tvec
        return V


@dataclass
class ColmapModel:
    cameras: dict[int, ColmapCamera] = field(default_factory=dict)
    images: dict[int, ColmapImage] = field(default_factory=dict)
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # [P, 3]
    colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))  # [P, 3]


class _Reader:
    """Bounds-checked little-endian reads from bytes."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise SplatError(f"{self.path}: truncated (needs {size} more bytes at offset {self.pos})")
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return out

    def count(self, min_record: int) -> int:
        (n,) = self.take("Q")
        if n * min_record > len(self.data) - self.pos:
            raise SplatError(f"{self.path}: claims {n} records, more than the file holds (truncated or corrupt)")
        return n

    def string(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise SplatError(f"{self.path}: truncated (unterminated image name)")
        s = self.data[self.pos:end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return s

    def array(self, n: int, dtype: str) -> np.ndarray:
        dt = np.dtype(dtype)
        if self.pos + n * dt.itemsize > len(self.data):
            raise SplatError(f"{self.path}: truncated (array of {n} at offset {self.pos})")
        a = np.frombuffer(self.data, dt, n, self.pos)
        self.pos += n * dt.itemsize
        return a


def _model_name(model_id: int, path: Path) -> tuple[str, int]:
    if model_id not in MODELS:
        raise SplatError(f"{path}: camera model id {model_id} is not supported "
                         f"(supported: {', '.join(n for n, _ in MODELS.values())})")
    return MODELS[model_id]


def _read_bin(folder: Path) -> ColmapModel:
    m = ColmapModel()
    p = folder / "cameras.bin"
    r = _Reader(p.read_bytes(), p)
    for _ in range(r.count(24)):
        cam_id, model_id, w, h = r.take("iiQQ")
        name, n = _model_name(model_id, p)
        m.cameras[cam_id] = ColmapCamera(name, int(w), int(h), np.array(r.take(f"{n}d")))
    p = folder / "images.bin"
    r = _Reader(p.read_bytes(), p)
    for _ in range(r.count(64 + 4 + 1 + 8)):
        image_id, qw, qx, qy, qz, tx, ty, tz, cam_id = r.take("I7dI")
        name = r.string()
        (n2d,) = r.take("Q")
        r.array(int(n2d), np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")]))  # 2D points: skipped
        m.images[image_id] = ColmapImage(name, cam_id, np.array([qw, qx, qy, qz]), np.array([tx, ty, tz]))
    p = folder / "points3D.bin"
    if p.exists():
        r = _Reader(p.read_bytes(), p)
        pts, cols = [], []
        for _ in range(r.count(43 + 8)):
            _pid, x, y, z, cr, cg, cb, _err = r.take("Q3d3Bd")
            (track,) = r.take("Q")
            r.array(int(track) * 2, "<u4")
            pts.append((x, y, z))
            cols.append((cr, cg, cb))
        m.points = np.array(pts, dtype=np.float64).reshape(-1, 3)
        m.colors = np.array(cols, dtype=np.uint8).reshape(-1, 3)
    return m


def _lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip() and not ln.startswith("#")]


def _read_txt(folder: Path) -> ColmapModel:
    m = ColmapModel()
    p = folder / "cameras.txt"
    try:
        for ln in _lines(p):
            f = ln.split()
            if f[1] not in MODEL_IDS:
                raise SplatError(f"{p}: camera model {f[1]} is not supported (supported: {', '.join(MODEL_IDS)})")
            n = MODEL_IDS[f[1]][1]
            if len(f) != 4 + n:
                raise SplatError(f"{p}: camera {f[0]} has {len(f) - 4} parameters, {f[1]} needs {n}")
            m.cameras[int(f[0])] = ColmapCamera(f[1], int(f[2]), int(f[3]), np.array([float(v) for v in f[4:]]))
        p = folder / "images.txt"
        # two lines per image; the second (its 2D points) may be empty, which _lines drops:
        # re-read keeping empty lines after each header
        raw = [ln.rstrip("\n") for ln in p.read_text(errors="replace").splitlines() if not ln.startswith("#")]
        i = 0
        while i < len(raw):
            if not raw[i].strip():
                i += 1
                continue
            f = raw[i].split()
            if len(f) < 10:
                raise SplatError(f"{p}: image line has {len(f)} fields, needs 10")
            m.images[int(f[0])] = ColmapImage(" ".join(f[9:]), int(f[8]), np.array([float(v) for v in f[1:5]]),
                                              np.array([float(v) for v in f[5:8]]))
            i += 2
        p = folder / "points3D.txt"
        if p.exists():
            rows = [ln.split() for ln in _lines(p)]
            m.points = np.array([[float(v) for v in r[1:4]] for r in rows], dtype=np.float64).reshape(-1, 3)
            cols = np.array([[int(v) for v in r[4:7]] for r in rows], dtype=np.int64).reshape(-1, 3)
            if cols.size and (cols.min() < 0 or cols.max() > 255):
                raise SplatError(f"{p}: point colours must be 0..255")
            m.colors = cols.astype(np.uint8)
    except (ValueError, IndexError, OverflowError) as e:
        raise SplatError(f"{p}: malformed line ({e})") from None
    return m


def read_model(folder: str | Path) -> ColmapModel:
    """Read a COLMAP sparse model folder (cameras, images, points3D; .bin or .txt)."""
    folder = Path(folder)
    try:
        if (folder / "cameras.bin").exists() and (folder / "images.bin").exists():
            m = _read_bin(folder)
        elif (folder / "cameras.txt").exists() and (folder / "images.txt").exists():
            m = _read_txt(folder)
        else:
            raise SplatError(f"{folder}: no COLMAP model (cameras and images .bin or .txt)")
    except OSError as e:
        raise SplatError(f"{folder}: cannot read COLMAP model ({e.strerror or e})") from None
    for img in m.images.values():
        if img.camera_id not in m.cameras:
            raise SplatError(f"{folder}: image {img.name} refers to camera {img.camera_id}, which is not in the model")
    if not m.images:
        raise SplatError(f"{folder}: the COLMAP model has no registered images")
    return m


def write_model(model: ColmapModel, folder: str | Path, binary: bool = True) -> None:
    """Write a COLMAP sparse model (each file atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if binary:
        b = [struct.pack("<Q", len(model.cameras))]
        for cid, c in model.cameras.items():
            b.append(struct.pack("<iiQQ", cid, MODEL_IDS[c.model][0], c.width, c.height) + np.asarray(c.params, "<f8").tobytes())
        write_bytes_atomic(folder / "cameras.bin", b"".join(b))
        b = [struct.pack("<Q", len(model.images))]
        for iid, im in model.images.items():
            b.append(struct.pack("<I7dI", iid, *im.qvec, *im.tvec, im.camera_id) + im.name.encode() + b"\0" + struct.pack("<Q", 0))
        write_bytes_atomic(folder / "images.bin", b"".join(b))
        b = [struct.pack("<Q", len(model.points))]
        for k, (p, c) in enumerate(zip(model.points, model.colors)):
            b.append(struct.pack("<Q3d3BdQ", k + 1, *p, *(int(v) for v in c), 0.0, 0))
        write_bytes_atomic(folder / "points3D.bin", b"".join(b))
    else:
        write_text_atomic(folder / "cameras.txt", "".join(
            f"{cid} {c.model} {c.width} {c.height} " + " ".join(repr(float(v)) for v in c.params) + "\n"
            for cid, c in model.cameras.items()))
        write_text_atomic(folder / "images.txt", "".join(
            f"{iid} " + " ".join(repr(float(v)) for v in (*im.qvec, *im.tvec)) + f" {im.camera_id} {im.name}\n\n"
            for iid, im in model.images.items()))
        write_text_atomic(folder / "points3D.txt", "".join(
            f"{k + 1} {p[0]!r} {p[1]!r} {p[2]!r} {int(c[0])} {int(c[1])} {int(c[2])} 0\n"
            for k, (p, c) in enumerate(zip(model.points.tolist(), model.colors))))


def rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    """[3, 3] rotation -> [4] quaternion w, x, y, z (w >= 0); the inverse of ColmapImage.viewmat's."""
    t = np.trace(R)
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        q = [s / 4, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2
        q = [(R[2, 1] - R[1, 2]) / s, s / 4, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif R[1, 1] > R[2, 2]:
        s = math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, s / 4, (R[1, 2] + R[2, 1]) / s]
    else:
        s = math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, s / 4]
    q = np.array(q) / np.linalg.norm(q)
    return -q if q[0] < 0 else q
