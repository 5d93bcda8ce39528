"""Training settings: one JSON-serialisable record, saved with every run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import SplatError

STRATEGIES = ("mcmc", "adc")


@dataclass
class TrainConfig:
    """Everything a run depends on (the field's defaults unless stated).

    Learning rates per group; the means' rate is multiplied by the scene scale and
    decays exponentially to ``means_lr_final`` x its start at the last step.
    ``background`` is "random" (a new colour each step) or three floats.
    Refinement steps are absolute step numbers; ``None`` picks the strategy's default.
    """

    data: str = ""
    downscale: int = 1
    skip_missing: bool = False  # leave out frames whose image is missing (else an error naming them)
    steps: int = 30_000
    strategy: str = "mcmc"
    cap: int = 1_000_000
    backend: str = "auto"
    seed: int = 0
    sh_degree: int = 3
    sh_interval: int = 1000
    init_count: int = 100_000
    init_extent: float = 1.0
    sky_fraction: float = 0.1  # extra Gaussians on a far sphere for the background, x init_count
    sky_radius: float = 3.0  # x scene scale
    init_opacity: float | None = None  # mcmc 0.5, adc 0.1
    init_scale: float | None = None  # x mean 3-NN distance (default 1.0; the MCMC reference uses 0.1)
    lr: dict = field(default_factory=lambda: {
        "means": 1.6e-4, "log_scales": 5e-3, "quats": 1e-3, "opacity_logits": 5e-2,
        "sh_dc": 2.5e-3, "sh_rest": 2.5e-3 / 20,
    })
    means_lr_final: float = 0.01
    ssim_weight: float = 0.2
    alpha_weight: float = 0.1
    background: str | list = "random"
    eval_background: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    mode: str = "classic"
    refine_start: int | None = None
    refine_stop: int | None = None
    refine_every: int | None = None
    reset_every: int | None = None
    grow_grad2d: float = 2e-4
    absgrad: bool = False
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10

    def validate(self) -> "TrainConfig":
        from ..render.api import check_backend_name

        check_backend_name(self.backend)
        if self.strategy not in STRATEGIES:
            raise SplatError(f"strategy '{self.strategy}' is unknown (use {' or '.join(STRATEGIES)})")
        for name in ("steps", "cap", "init_count", "checkpoint_every", "log_every", "sh_interval", "downscale"):
            if int(getattr(self, name)) < 1:
                raise SplatError(f"{name.replace('_', '-')} {getattr(self, name)} must be a positive integer")
        if not 0 <= int(self.seed) < 2**63:
            raise SplatError(f"seed {self.seed} must be in 0..2^63-1")
        if not 0 <= self.sh_degree <= 3:
            raise SplatError(f"sh-degree {self.sh_degree} must be in 0..3")
        if isinstance(self.background, str) and self.background != "random":
            raise SplatError(f"background '{self.background}' must be 'random' or three numbers")
        if not isinstance(self.background, str) and len(self.background) != 3:
            raise SplatError("background must have three values")
        missing = {"means", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest"} - set(self.lr)
        if missing:
            raise SplatError(f"learning rates missing for {', '.join(sorted(missing))}")
        return self

    def load_dataset(self):
        """The Dataset these settings train on (every command that opens a run's data asks here)."""
        from ..data.loaders import load_dataset

        return load_dataset(self.data, self.downscale, skip_missing=self.skip_missing)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SplatError(f"unknown training settings: {', '.join(sorted(unknown))}")
        return cls(**d).validate()

