"""Photos -> camera poses with pycolmap: SIFT on the CPU, matching, incremental mapping, undistortion.

The result is a COLMAP dataset folder (images/ undistorted, sparse/0) that
``load_dataset`` reads like any other. It is built in a hidden folder beside ``out`` and
renamed into place at the end, so a failed or interrupted run leaves no half-made dataset
that the next run would refuse. COLMAP's own log (glog, ~150 lines a run) goes to
``out/colmap/sfm.log``; the console shows one line per stage.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from ..errors import SplatError
from ..io.atomic import write_text_atomic
from ..progress import Progress
from .loaders import IMAGE_EXTS
from .photos import left_out_text, stage_photos

EXHAUSTIVE_UP_TO = 100  # photos; beyond, each is matched with its neighbours in name order
SEQUENTIAL_OVERLAP = 20
RELAXED_TRIES = 3  # mappings with relaxed thresholds (and another seed each) while matched photos are left out


CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")


def run_sfm(photos: str | Path, out: str | Path, log: Callable[[str], None] = print, min_registered: int = 3,
            camera_model: str = "SIMPLE_RADIAL") -> Path:
    """Estimate poses for the photos in ``photos`` and write a COLMAP dataset to ``out``.

    All photos share one camera of ``camera_model`` (COLMAP's name; SIMPLE_RADIAL,
    COLMAP's default, has one distortion term; SIMPLE_PINHOLE for undistorted images).

    Raises:
        SplatError: no photos, ``out`` not empty, or too few images registered.
    """
    import pycolmap

    if camera_model not in CAMERA_MODELS:
        raise SplatError(f"camera model '{camera_model}' is unknown (use one of {', '.join(CAMERA_MODELS)})")
    photos, out = Path(photos), Path(out)
    if not photos.is_dir():
        raise SplatError(f"photos folder {photos} does not exist")
    names = sorted(p.name for p in photos.iterdir() if p.suffix in IMAGE_EXTS)
    if len(names) < 2:
        raise SplatError(f"{photos}: needs at least 2 images (.png or .jpg), found {len(names)}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SplatError(f"output folder {out} already exists and is not empty")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise SplatError(f"{out}: cannot create the dataset folder ({e.strerror})") from None
    log_file = tmp / "colmap" / "sfm.log"
    try:
        (tmp / "colmap").mkdir()
        with native_log_to(log_file):
            _reconstruct(pycolmap, photos, names, tmp, log, min_registered, camera_model)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException as e:
        kept = _keep_log(log_file, out)
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, SplatError) and kept:
            raise SplatError(f"{e} (COLMAP's log: {kept})") from None
        raise
    log(f"sfm: wrote {out} (COLMAP's log: {out / 'colmap' / 'sfm.log'})")
    return out


def _keep_log(log_file: Path, out: Path) -> Path | None:
    """Save COLMAP's log of a failed run beside ``out`` (the work folder is removed)."""
    if not log_file.is_file():
        return None
    kept = out.with_name(out.name + ".sfm.log")
    with contextlib.suppress(OSError):
        shutil.copyfile(log_file, kept)
        return kept
    return None


@contextlib.contextmanager
def native_log_to(path: Path):
    """Send what native code writes to file descriptor 2 (glog) to ``path``; Python's own
    ``sys.stderr`` keeps the console when it is that descriptor (a captured stream is left as it is)."""
    sys.stderr.flush()
    saved = os.dup(2)
    console = None
    try:
        uses_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        uses_fd2 = False
    previous = sys.stderr
    with open(path, "ab") as f:
        os.dup2(f.fileno(), 2)
    try:
        if uses_fd2:
            console = os.fdopen(os.dup(saved), "w", buffering=1)
            sys.stderr = console
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        sys.stderr = previous
        os.dup2(saved, 2)
        os.close(saved)
        if console is not None:
            console.close()


class _LogFollower:
    """Follows COLMAP's log file in a thread and turns its per-item lines into progress.

    ``watch(regex, on_match)`` sets what the current stage looks for; ``on_match`` gets the
    match. The native calls release the GIL, so the thread runs while they work."""

    def __init__(self, path: Path):
        self.path, self.rule = path, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)

    def watch(self, regex: str | None, on_match=None) -> None:
        self.rule = (re.compile(regex), on_match) if regex else None

    def _run(self) -> None:
        pos = 0
        while not self._stop.wait(0.25):
            try:
                with open(self.path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
            except OSError:
                continue
            end = chunk.rfind(b"\n") + 1
            pos += end
            rule = self.rule
            if rule is None:
                continue
            for line in chunk[:end].decode("utf-8", "replace").splitlines():
                m = rule[0].search(line)
                if m:
                    rule[1](m)


def _relaxed(options) -> None:
    """Mapper thresholds for sparse captures: fewer inliers to start and to register a view,
    smaller models kept, two-view tracks triangulated. On 24 of the bonsai photos (every
    third of 84) the defaults split the capture into three models and kept 18; these 24."""
    m = options.mapper
    m.init_min_num_inliers, m.init_min_tri_angle = 50, 8.0
    m.abs_pose_min_num_inliers, m.abs_pose_min_inlier_ratio, m.max_reg_trials = 15, 0.15, 5
    options.min_model_size, options.min_num_matches = 3, 10
    options.triangulation.ignore_two_view_tracks = False


def _mapping_options(pycolmap, attempt: int):
    options = pycolmap.IncrementalPipelineOptions()
    options.random_seed = options.mapper.random_seed = options.triangulation.random_seed = attempt
    # drop observations above 2 px (COLMAP's default: 4) before each bundle adjustment: with
    # sub-pixel features, a few 2-4 px matches tilted the views that see little texture
    # (with affine SIFT, worst view 0.21-0.46 degrees over ten runs, against 0.29-1.2 at 4 px)
    options.mapper.filter_max_reproj_error = 2.0
    if attempt:
        _relaxed(options)
    return options


def _matched_names(pycolmap, db_path: Path) -> dict[str, int]:
    """Name -> how many other photos it has verified matches with."""
    db = pycolmap.Database.open(str(db_path))
    try:
        names = {im.image_id: im.name for im in db.read_all_images()}
        counts = dict.fromkeys(names.values(), 0)
        pair_ids, inliers = db.read_two_view_geometry_num_inliers()
        for pid, n in zip(pair_ids, inliers):
            if n > 0:
                for image_id in pycolmap.pair_id_to_image_pair(pid):
                    counts[names[image_id]] += 1
        return counts
    finally:
        db.close()


def model_figures(rec) -> dict:
    """Registered images, points, mean and median reprojection error (px) of a pycolmap model."""
    errors = [p.error for p in rec.points3D.values()]
    return {"registered": rec.num_reg_images(), "points": rec.num_points3D(),
            "mean_reprojection_px": round(float(rec.compute_mean_reprojection_error()), 3),
            "median_point_error_px": round(float(statistics.median(errors)), 3) if errors else None}


def _map(pycolmap, db: Path, images: Path, work: Path, count: int, follow, attempt: int):
    """Incremental mapping (attempt 0: COLMAP's thresholds; later ones relaxed, each with its own
    seed); the model that registers most images (None if none) and how many models were made."""
    sparse = work / f"sparse{attempt}"
    sparse.mkdir(exist_ok=True)
    label = f"sfm: mapping (relaxed, {attempt})" if attempt else "sfm: mapping"
    bar = Progress(label, count)
    best_count = [0]

    def on_register(m):
        best_count[0] = max(best_count[0], int(m.group(1)))
        bar.update(best_count[0], "images placed")

    follow.watch(r"num_reg_(?:frames|images)=(\d+)", on_register)
    recs = pycolmap.incremental_mapping(db, images, sparse, options=_mapping_options(pycolmap, attempt))
    follow.watch(None)
    best = max(recs.values(), key=lambda r: (r.num_reg_images(), -r.compute_mean_reprojection_error()), default=None)
    n = best.num_reg_images() if best is not None else 0
    bar.close(f"{n} in the largest of {len(recs)} model{'s' if len(recs) != 1 else ''}", done=n)
    return best, len(recs)


def _reconstruct(pycolmap, photos: Path, names: list[str], out: Path, log, min_registered: int,
                 camera_model: str) -> dict:
    """Features, matches, mapping and undistortion of ``names`` into the dataset folder ``out``.
    Returns the summary (also written to ``out/colmap/summary.json``)."""
    work = out / "colmap"
    db = work / "database.db"
    t0 = time.perf_counter()
    images = work / "photos"
    images.mkdir()
    total = len(names)
    staged = stage_photos(photos, names, images)
    log(f"sfm: {staged.describe()}")
    names = staged.names
    if len(names) < 2:
        raise SplatError(f"{photos}: fewer than 2 usable photos (left out: {left_out_text(staged.left_out)})")
    with _LogFollower(work / "sfm.log") as follow:
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = camera_model
        extraction = pycolmap.FeatureExtractionOptions()
        # affine-adapted SIFT: surfaces seen at grazing angles still match (on the generated
        # 30-view tabletop at 400 px: 3x as many 3D points per view, worst view 0.3-1.2 degrees against 1.7-2.2)
        extraction.sift.estimate_affine_shape = True
        # one camera per photo size (SINGLE per call): photos of one size are one camera
        # more often than not, and a shared camera constrains the focal length far better
        groups: dict[tuple[int, int], list[str]] = {}
        for n in names:
            groups.setdefault(staged.sizes[n], []).append(n)
        bar = Progress("sfm: SIFT features", len(names))
        done = 0
        for group in groups.values():
            follow.watch(r"Processed file \[(\d+)/\d+\]", lambda m, d=done: bar.update(d + int(m.group(1))))
            pycolmap.extract_features(db, images, image_names=group, camera_mode=pycolmap.CameraMode.SINGLE,
                                      reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)
            done += len(group)
        bar.close()
        if len(names) <= EXHAUSTIVE_UP_TO:
            bar = Progress(f"sfm: matching every pair ({len(names) * (len(names) - 1) // 2})", 1)
            def on_block(m):  # the line comes as block (i, j) of n x n starts
                i, n, j = int(m.group(1)), int(m.group(2)), int(m.group(3))
                bar.total = n * n
                bar.update((i - 1) * n + j - 1, "blocks of 50 x 50 photos")

            follow.watch(r"Processing block \[(\d+)/(\d+), (\d+)/\d+\]", on_block)
            pycolmap.match_exhaustive(db, device=pycolmap.Device.cpu)
        else:
            log(f"sfm: {len(names)} photos, more than {EXHAUSTIVE_UP_TO}: matching each with its "
                f"{SEQUENTIAL_OVERLAP} neighbours in name order, not every pair (that grows with the square "
                f"of the count); photos taken in order match best")
            bar = Progress("sfm: matching neighbours", len(names))
            follow.watch(r"Matching image \[(\d+)/\d+\]", lambda m: bar.update(int(m.group(1))))
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = SEQUENTIAL_OVERLAP
            pycolmap.match_sequential(db, pairing_options=pairing, device=pycolmap.Device.cpu)
        bar.close()
        matched = _matched_names(pycolmap, db)
        reachable = sum(1 for n in names if matched.get(n, 0) > 0)
        best, models = None, 0
        for attempt in range(1 + RELAXED_TRIES):
            if attempt:
                placed = best.num_reg_images() if best else 0
                log(f"sfm: the mapper placed {placed} of the {reachable} photos that match others ({models} "
                    f"model{'s' if models != 1 else ''}); trying again with relaxed thresholds "
                    f"({attempt} of {RELAXED_TRIES})")
            found, found_models = _map(pycolmap, db, images, work, len(names), follow, attempt)
            if found is not None and (best is None or found.num_reg_images() > best.num_reg_images()):
                best, models = found, found_models
            if best is not None and best.num_reg_images() >= reachable:
                break
        if best is None:
            raise SplatError(f"sfm: no model could be built from {len(names)} photos (too little overlap or texture)")
        registered = {best.images[i].name for i in best.reg_image_ids()}
        for n in names:
            if n not in registered:
                staged.left_out[n] = ("matched no other photo" if matched.get(n, 0) == 0
                                      else f"matched {matched[n]} photos but could not be placed")
        n = len(registered)
        if n < min_registered:
            raise SplatError(f"sfm: only {n} of {len(names)} photos could be placed ({min_registered} needed): "
                             f"they overlap too little or show too little texture")
        figures = model_figures(best)
        log(f"sfm: placed {n} of {len(names)} photos, {figures['points']} points, reprojection error "
            f"{figures['mean_reprojection_px']} px mean, {figures['median_point_error_px']} px median")
        if staged.left_out:
            log(f"sfm: left out {len(staged.left_out)}: {left_out_text(staged.left_out)}")
        model = work / "model"
        model.mkdir(exist_ok=True)
        best.write(model)
        bar = Progress("sfm: undistorting", n)
        follow.watch(r"Undistorting image \[(\d+)/\d+\]", lambda m: bar.update(int(m.group(1))))
        pycolmap.undistort_images(out, model, images)  # writes out/images and out/sparse
        bar.close()
    if (out / "sparse").is_dir() and not (out / "sparse" / "0").exists():
        (out / "sparse" / "0").mkdir()
        for f in list((out / "sparse").iterdir()):
            if f.is_file():
                shutil.move(str(f), out / "sparse" / "0" / f.name)
    shutil.rmtree(images, ignore_errors=True)  # links and upright copies; out/images holds the result
    summary = {"photos": total, **figures, "models": models, "seconds": round(time.perf_counter() - t0, 1),
               "rotated": staged.rotated, "left_out": staged.left_out}
    write_text_atomic(work / "summary.json", json.dumps(summary, indent=1))
    log(f"sfm: done in {summary['seconds']:.1f} s")
    return summary
