"""A training run folder: the one place that knows its layout.

    RUN/config.json        the TrainConfig (with the dataset path)
    RUN/cameras.json       the dataset's cameras (normalised world)
    RUN/metrics.jsonl      one JSON line every ``log_every`` steps
    RUN/checkpoints/       step_XXXXXXX.pt, the newest ``keep_checkpoints`` (see ``train.checkpoint``)
    RUN/scene.ply          the final Gaussians (a finished run has it)
    RUN/eval.json, RUN/eval/  held-out metrics and renders (see ``train.evaluate``)
    RUN/masks/NNNN.png     with --transients: each training view's transient mask (white = left out)
    RUN/appearance.json    with --appearance: each training view's colour map
    RUN/segments.pt        the scene's clusters for clicks (``splat segment prepare``; a cache)

The trainer writes it; every command that reads a run (eval, render, view, mesh, edit,
segment, demo, resume) asks a ``Run`` for its paths and contents instead of building them.
It lives in the train package, which writes runs: here nothing imports upwards.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SplatError


class Run:
    """The run folder ``folder`` (it need not exist yet)."""

    def __init__(self, folder: str | Path):
        self.folder = f = Path(folder)
        # the layout (module docstring)
        self.config_path, self.cameras_path, self.metrics_path = f / "config.json", f / "cameras.json", f / "metrics.jsonl"
        self.scene_path, self.eval_path, self.eval_dir = f / "scene.ply", f / "eval.json", f / "eval"
        self.masks_dir, self.appearance_path = f / "masks", f / "appearance.json"
        self.segments_path = f / "segments.pt"

    def mask_path(self, view: int) -> Path:
        """RUN/masks/NNNN.png of dataset view ``view``."""
        return self.masks_dir / f"{view:04d}.png"

    @property
    def inputs(self) -> list[Path]:
        """The files commands read from a run: no command writes over them but the trainer and
        the in-place updates of the scene (``edit --in-place``, ``segment``)."""
        return [self.scene_path, self.config_path, self.cameras_path, self.metrics_path, self.eval_path,
                self.segments_path]

    # -- state ----------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self.config_path.is_file()

    @property
    def finished(self) -> bool:
        return self.scene_path.is_file()

    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        from .checkpoint import list_checkpoints

        return list_checkpoints(self.folder)

    # -- contents -------------------------------------------------------------------------------
    def config(self):
        """The run's TrainConfig (its config.json), or a one-line SplatError."""
        import json

        from .config import TrainConfig

        if not self.config_path.is_file():
            raise SplatError(f"{self.folder}: not a training run (no config.json)")
        try:
            return TrainConfig.from_dict(json.loads(self.config_path.read_text()))
        except (json.JSONDecodeError, TypeError, ValueError, UnicodeDecodeError, AttributeError) as e:
            raise SplatError(f"{self.config_path}: unreadable ({e})") from None

    def cameras(self):
        """The run's cameras (list of Camera), or None where it has none."""
        from ..camera import load_cameras_json

        return load_cameras_json(self.cameras_path) if self.cameras_path.is_file() else None

    def scene_file(self) -> Path:
        """RUN/scene.ply of a finished run, or a one-line SplatError."""
        if not self.finished:
            raise SplatError(f"{self.folder}: has no scene.ply yet (the run has not finished; resume it)")
        return self.scene_path

    def store(self):
        """The trained Gaussians of a finished run."""
        from ..io.ply import load_ply

        return load_ply(self.scene_file())

    def load(self):
        """(config, dataset, store) of a finished run."""
        config = self.config()
        self.scene_file()  # a run that has not finished says so before its dataset is read
        return config, config.load_dataset(), self.store()


def scene_file_of(path: str | Path) -> Path:
    """The scene file a command reads for ``path``: the file itself, or a run folder's scene.ply."""
    path = Path(path)
    if path.is_dir():
        if not Run(path).finished:
            raise SplatError(f"{path}: a folder without scene.ply (expected a scene file or a finished training run)")
        return Run(path).scene_path
    return path
