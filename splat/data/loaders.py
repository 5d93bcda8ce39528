"""Loaders into ``Dataset``: transforms.json (Blender, instant-ngp, nerfstudio) and COLMAP models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from ..camera import Camera
from ..errors import SplatError
from ..io.ply import load_point_cloud
from .colmap import read_model
from .dataset import Dataset, every_eighth, is_missing, missing_images_error, normalise

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")


def _image_size(path: Path) -> tuple[int, int]:
    import imageio.v3 as iio

    try:
        props = iio.improps(path)
    except Exception as e:  # unreadable image
        raise SplatError(f"{path}: cannot read image ({type(e).__name__})") from None
    h, w = props.shape[:2]
    return int(w), int(h)


def _resolve_image(base: Path, file_path: str) -> Path:
    try:
        p = (base / file_path).resolve()
        if p.suffix == "" or not p.exists():
            for ext in IMAGE_EXTS:  # Blender files name frames without the extension
                if p.with_name(p.name + ext).is_file():
                    return p.with_name(p.name + ext)
    except (OSError, ValueError) as e:  # a name too long, a NUL byte, ...
        raise SplatError(f"image {file_path[:200]!r}: cannot be looked up ({getattr(e, 'strerror', None) or e})") from None
    return p


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SplatError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError:
        raise SplatError(f"{path}: not UTF-8 text") from None
    except RecursionError:
        raise SplatError(f"{path}: JSON nested too deeply") from None
    except OSError as e:
        raise SplatError(f"{path}: cannot read ({e.strerror})") from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list) or not data["frames"]:
        raise SplatError(f"{path}: needs a non-empty 'frames' list")
    if not all(isinstance(fr, dict) for fr in data["frames"]):
        raise SplatError(f"{path}: every frame must be an object")
    return data


def _intrinsics(meta: dict, frame: dict, image: Path, where: str):
    """(K [3, 3], width, height, distortion or None) from a frame, falling back to the file's top level."""
    try:
        K, w, h, dist = _intrinsics_values(meta, frame, image, where)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError) as e:
        raise SplatError(f"{where}: bad intrinsics ({str(e).splitlines()[0]})") from None
    if not (torch.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0):
        raise SplatError(f"{where}: focal lengths and principal point must be finite, focal lengths > 0")
    if dist and not all(math.isfinite(v) for v in dist.values()):
        raise SplatError(f"{where}: distortion coefficients must be finite")
    return K, w, h, dist


def _intrinsics_values(meta: dict, frame: dict, image: Path, where: str):
    get = lambda k: frame.get(k, meta.get(k))  # noqa: E731
    w, h = get("w"), get("h")
    if w is None or h is None:
        w, h = _image_size(image)
    if isinstance(w, bool) or isinstance(h, bool) or float(w) != int(w) or float(h) != int(h) or int(w) < 1 or int(h) < 1:
        raise SplatError(f"{where}: image size {w}x{h} must be positive integers")
    w, h = int(w), int(h)
    fx, fy = get("fl_x"), get("fl_y")
    if fx is None:
        angle_x = get("camera_angle_x")
        if angle_x is None:
            raise SplatError(f"{where}: no focal length (fl_x or camera_angle_x)")
        fx = 0.5 * w / math.tan(0.5 * float(angle_x))
    if fy is None:
        angle_y = get("camera_angle_y")
        fy = 0.5 * h / math.tan(0.5 * float(angle_y)) if angle_y is not None else fx
    cx, cy = get("cx"), get("cy")
    cx = w / 2 if cx is None else cx
    cy = h / 2 if cy is None else cy
    K = torch.tensor([[float(fx), 0, float(cx)], [0, float(fy), float(cy)], [0, 0, 1]], dtype=torch.float64)
    d = {k: float(get(k)) for k in ("k1", "k2", "p1", "p2") if get(k) is not None}
    return K, w, h, (d if any(v != 0 for v in d.values()) else None)


def load_transforms(path: str | Path, downscale: int = 1, normalize: bool = True, skip_missing: bool = False) -> Dataset:
    """A transforms.json dataset: a .json file, or a folder with transforms.json or
    Blender's transforms_{train,val,test}.json (which then name the split).
    Frames whose image is missing are an error naming them all, or with ``skip_missing``
    left out (said on stderr): photos culled after the poses were made are common."""
    path = Path(path)
    if path.is_dir():
        files = [path / "transforms.json"] if (path / "transforms.json").exists() else \
            [path / f"transforms_{s}.json" for s in ("train", "val", "test") if (path / f"transforms_{s}.json").exists()]
        if not files:
            raise SplatError(f"{path}: no transforms.json (or transforms_train.json) in this folder")
    else:
        files = [path]
    cams, paths, split_of, distortion, extras = [], [], [], [], {}
    points = colors = None
    missing, frames_seen = [], 0
    for f in files:
        meta = _read_json(f)
        if meta.get("ply_file_path") and points is None:  # nerfstudio: initial points in the poses' world
            if not isinstance(meta["ply_file_path"], str):
                raise SplatError(f"{f}: ply_file_path must be a string")
            points, colors = load_point_cloud((f.parent / meta["ply_file_path"]).resolve())
        split = f.stem.split("_")[-1] if f.stem != "transforms" else None
        for k, frame in enumerate(meta["frames"]):
            where = f"{f} frame {k}"
            if "file_path" not in frame or "transform_matrix" not in frame:
                raise SplatError(f"{where}: needs file_path and transform_matrix")
            if not isinstance(frame["file_path"], str) or not frame["file_path"]:
                raise SplatError(f"{where}: file_path must be a non-empty string")
            image = _resolve_image(f.parent, frame["file_path"])
            frames_seen += 1
            if is_missing(image):
                missing.append(image)
                continue
            K, w, h, dist = _intrinsics(meta, frame, image, where)
            try:
                cam = Camera.from_opengl_c2w(frame["transform_matrix"], K, w, h)
            except (TypeError, ValueError, RuntimeError) as e:
                raise SplatError(f"{where}: bad transform_matrix ({e})") from None
            cams.append(cam.downscaled(downscale))
            paths.append(image)
            split_of.append(split)
            distortion.append(dist)
            for key in ("instance_file_path", "depth_file_path", "mask_path"):
                if key in frame and isinstance(frame[key], str):
                    extras.setdefault(key.replace("_file_path", "").replace("_path", ""), []).append(
                        (f.parent / frame[key]).resolve())
            # the true transient mask of a generated wild view (scoring only; clean views have none)
            truth = frame.get("transient_mask_file_path")
            extras.setdefault("transient", []).append((f.parent / truth).resolve() if isinstance(truth, str) else None)
        names = {n: meta.get(f"{n}_filenames", []) for n in ("train", "val", "test")}
        if not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in names.values()):
            raise SplatError(f"{f}: train/val/test_filenames must be lists of strings")
        names = {n: set(v) for n, v in names.items()}
    _report_missing(missing, frames_seen, files[0], skip_missing)
    if any(s is not None for s in split_of):
        train = [i for i, s in enumerate(split_of) if s == "train"]
        test = [i for i, s in enumerate(split_of) if s in ("test", "val")]
        if not test:
            test = [i for i, s in enumerate(split_of) if s == "val"]
    elif names["train"]:  # nerfstudio's train_filenames / test_filenames
        rel = [str(p.relative_to(files[0].parent.resolve())) if p.is_relative_to(files[0].parent.resolve()) else str(p) for p in paths]
        train = [i for i, r in enumerate(rel) if r in names["train"]]
        test = [i for i, r in enumerate(rel) if r in names["test"] or r in names["val"]]
    else:
        train, test = every_eighth(len(cams))
    transform = np.eye(4)
    if normalize:
        cams, points, transform = normalise(cams, points)
    if not any(extras.get("transient", [])):
        extras.pop("transient", None)
    return Dataset(cams, paths, train, test, points, colors, transform, distortion, downscale,
                   {k: v for k, v in extras.items() if len(v) == len(cams)})


def _report_missing(missing: list[Path], total: int, where: Path, skip: bool) -> None:
    """Raise naming every missing image, or with ``skip`` say how many frames are left out."""
    if not missing:
        return
    if not skip or len(missing) == total:
        raise missing_images_error(missing, total, str(where))
    import sys

    print(f"splat: {where}: left out {len(missing)} of {total} frames whose images are missing "
          f"(first: {missing[0]})", file=sys.stderr, flush=True)


def find_colmap_model(root: Path) -> Path:
    for cand in (root / "sparse" / "0", root / "sparse", root):
        if any((cand / f"cameras{e}").exists() for e in (".bin", ".txt")):
            return cand
    raise SplatError(f"{root}: no COLMAP model (looked in sparse/0, sparse and the folder itself)")


def load_colmap(path: str | Path, downscale: int = 1, normalize: bool = True, images: str = "images",
                skip_missing: bool = False) -> Dataset:
    """A COLMAP dataset folder: images/ and a sparse model (sparse/0, sparse or the folder).
    Missing images: as ``load_transforms``."""
    root = Path(path)
    if not root.is_dir():
        raise SplatError(f"{root}: not a folder")
    model = read_model(find_colmap_model(root))
    cams, paths, distortion, missing = [], [], [], []
    for _, im in sorted(model.images.items(), key=lambda kv: kv[1].name):  # name order: a stable split
        if is_missing(root / images / im.name):
            missing.append(root / images / im.name)
            continue
        c = model.cameras[im.camera_id]
        fx, fy, cx, cy = c.pinhole()
        K = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float64)
        cam = Camera(K, torch.from_numpy(im.viewmat()), c.width, c.height)
        cams.append(cam.downscaled(downscale))
        paths.append(root / images / im.name)
        distortion.append(c.distortion())
    _report_missing(missing, len(model.images), root, skip_missing)
    train, test = every_eighth(len(cams))
    points = model.points if len(model.points) else None
    colors = model.colors.astype(np.float64) / 255 if len(model.points) else None
    transform = np.eye(4)
    if normalize:
        cams, points, transform = normalise(cams, points)
    return Dataset(cams, paths, train, test, points, colors, transform, distortion, downscale)


def load_dataset(path: str | Path, downscale: int = 1, normalize: bool = True, skip_missing: bool = False) -> Dataset:
    """Any supported dataset: a transforms.json file or folder, or a COLMAP folder."""
    path = Path(path)
    if not path.exists():
        raise SplatError(f"dataset {path} does not exist")
    if downscale < 1:
        raise SplatError(f"downscale {downscale} must be a positive integer")
    if path.suffix == ".json" or (path.is_dir() and any(path.glob("transforms*.json"))):
        return load_transforms(path, downscale, normalize, skip_missing=skip_missing)
    return load_colmap(path, downscale, normalize, skip_missing=skip_missing)
