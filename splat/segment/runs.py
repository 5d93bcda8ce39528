"""Segmentation of a training run: label masks from a folder, or clicks in one of its views."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import SplatError
from ..store import GaussianStore
from .click import GrowParams, check_pixel, click_select
from .clusters import LEVELS, ClusterParams, SceneClusters, pick_cluster, prepare_clusters, store_fingerprint
from .lift import lift_labels


def read_label_image(path: Path) -> torch.Tensor:
    """[H, W] int64 labels from a greyscale PNG (8 or 16 bit) or an integer ``.npy``."""
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            import imageio.v3 as iio

            arr = np.asarray(iio.imread(path))
    except Exception as e:  # imageio and numpy raise many kinds for a file that is not an image
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise SplatError(f"{path}: cannot read label image ({reason})") from None
    if arr.ndim == 3:
        if not (arr[..., :1] == arr[..., : min(3, arr.shape[2])]).all():
            raise SplatError(f"{path}: a colour image; label images hold one integer per pixel")
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.dtype.kind not in "iu":
        raise SplatError(f"{path}: expected a 2D integer image, got {arr.dtype} {arr.shape}")
    if arr.size and arr.min() < 0:
        raise SplatError(f"{path}: labels must be >= 0")
    return torch.from_numpy(arr.astype(np.int64))


def fit_labels(label: torch.Tensor, dataset, i: int, path: Path) -> torch.Tensor:
    """Label image ``label`` of view i in the view's frame (``Dataset.resample_to_view``: the
    photo's undistortion and downscale, nearest sample). A size that is neither the photo's nor
    the view's is a one-line error: a mask made for another image would label the wrong Gaussians."""
    try:
        return torch.from_numpy(np.ascontiguousarray(dataset.resample_to_view(i, label.numpy(), "labels")))
    except SplatError as e:
        raise SplatError(f"{path}: {str(e).split(': ', 1)[1]}") from None


def _views(dataset, which: str) -> list[int]:
    if which not in ("train", "all"):
        raise SplatError(f"views '{which}': use train or all")
    return list(dataset.train) if which == "train" else list(range(len(dataset)))


def lift_run_masks(run: str | Path, masks: str | Path, background_bias: float = 0.0, views: str = "train",
                   backend: str = "auto") -> tuple[GaussianStore, int]:
    """The run's store with labels lifted from ``masks``/<image stem>.png|.npy; and how many views had one."""
    from ..train.run import Run

    masks = Path(masks)
    if not masks.is_dir():
        raise SplatError(f"{masks}: not a folder of label images")
    config, dataset, store = Run(run).load()
    cams, labels = [], []
    for i in _views(dataset, views):
        stem = dataset.image_paths[i].stem
        found = next((masks / f"{stem}{ext}" for ext in (".png", ".npy") if (masks / f"{stem}{ext}").is_file()), None)
        if found is None:
            continue
        cam = dataset.cameras[i]
        cams.append(cam)
        labels.append(fit_labels(read_label_image(found), dataset, i, found))
    if not cams:
        example = dataset.image_paths[dataset.train[0]].stem
        raise SplatError(f"{masks}: no label image matches the dataset's views (expected names like {example}.png)")
    return lift_labels(store, cams, labels, background_bias, backend=backend or config.backend), len(cams)


def parse_pixel(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise SplatError(f"--pixel '{text}': expected X,Y") from None
    return x, y


def click_level(group: bool, part: bool) -> str:
    """The level the --group and --part flags of a click ask for (neither: the object)."""
    if group and part:
        raise SplatError("--group and --part: pick one level")
    return "group" if group else "part" if part else "object"


def prepare_run(run: str | Path, backend: str = "auto", params: ClusterParams | None = None,
                progress=None) -> SceneClusters:
    """The clusters of the run's scene from its training views, written to RUN/segments.pt."""
    from ..train.run import Run

    config, dataset, store = Run(run).load()
    return _prepare_and_save(run, store, _training_cameras(dataset), _backend(backend, config), params, progress)


def _training_cameras(dataset) -> list:
    return [dataset.cameras[i] for i in dataset.train]


def _prepare_and_save(run, store, cameras, backend, params=None, progress=None) -> SceneClusters:
    from ..train.run import Run

    clusters = prepare_clusters(store, cameras, params, backend=backend, progress=progress)
    save_clusters(clusters, Run(run).segments_path)
    return clusters


def _backend(backend: str, config) -> str:
    return config.backend if backend in (None, "", "auto") else backend


def save_clusters(clusters: SceneClusters, path: Path) -> None:
    from ..io.atomic import atomic_write

    with atomic_write(path) as f:
        torch.save(clusters.to_dict(), f)


def load_clusters(path: Path) -> SceneClusters | None:
    """The clusters cached at ``path``; None when there are none or the file is unreadable
    (a cache: it is made again)."""
    if not path.is_file():
        return None
    try:
        return SceneClusters.from_dict(torch.load(path, weights_only=True))
    except Exception:  # a truncated or foreign file: the cache is rebuilt, never trusted
        return None


def run_clusters(run: str | Path, store: GaussianStore, dataset, backend: str = "cpu", announce=None) -> SceneClusters:
    """The run's cached clusters when they belong to ``store`` (its geometry); else prepared
    now from ``store`` and the training views of ``dataset`` and cached (``announce(text)``
    says so first)."""
    from ..train.run import Run

    layout = Run(run)
    cached = load_clusters(layout.segments_path)
    fingerprint = store_fingerprint(store)
    if cached is not None and cached.fits(fingerprint):
        return cached
    if announce:
        if cached is None:
            why = "none are cached"
        elif cached.fingerprint != fingerprint:
            why = "the scene changed since they were made"
        else:
            why = "they were made by an older method"
        announce(f"preparing the scene's clusters ({why}; cached in {layout.segments_path}) ...")
    return _prepare_and_save(run, store, _training_cameras(dataset), backend)


def click_run(run: str | Path, view: int, pixels: Sequence[tuple[float, float]], label: int | None = None,
              background_bias: float = 0.0, backend: str = "auto", params: GrowParams | None = None,
              method: str = "clusters", level: str = "object", announce=None) -> tuple[GaussianStore, int, int]:
    """The run's store with the clicked object labelled; returns (store, label, count selected).

    ``view`` indexes the run's cameras (``RUN/cameras.json`` order); pixels are (x, y) in
    that view's pixels. ``method`` "clusters" picks the cluster at ``level`` under each pixel
    (their union), "grow" grows regions over the rendered surface (``click_select``).
    Existing labels are kept elsewhere; without them, the rest is -1.
    """
    from ..train.run import Run

    if method not in ("clusters", "grow"):
        raise SplatError(f"--method {method}: use clusters or grow")
    if level not in LEVELS:
        raise SplatError(f"level '{level}': use {' or '.join(LEVELS)}")
    config, dataset, store = Run(run).load()
    if not 0 <= view < len(dataset):
        raise SplatError(f"--view {view} is out of range 0..{len(dataset) - 1}")
    if not pixels:
        raise SplatError("give at least one --pixel X,Y")
    camera, backend = dataset.cameras[view], _backend(backend, config)
    if method == "grow":
        sel = click_select(store, camera, pixels, _training_cameras(dataset), params, background_bias, backend=backend)
    else:
        for x, y in pixels:  # a pixel outside the view is refused before any preparation
            check_pixel(camera, x, y)
        clusters = run_clusters(run, store, dataset, backend, announce)
        sel = torch.zeros(len(store), dtype=torch.bool)
        for pixel in pixels:
            sel |= pick_cluster(store, clusters, camera, pixel, level, backend=backend)
    old = store.labels
    if label is None:
        label = int(old.max()) + 1 if old is not None and len(old) and old.max() >= 0 else 1
    if label < 0:
        raise SplatError(f"--label {label}: labels are >= 0")
    new = old.clone() if old is not None else torch.full((len(store),), -1, dtype=torch.int64)
    new[sel] = label
    out = store.detach().clone()
    out.extras["labels"] = new
    return out, label, int(sel.sum())
