"""Training settings: one JSON-serialisable record, saved with every run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import SplatError

STRATEGIES = ("mcmc", "adc")
CAP_PER_INITIAL = 5  # the default cap, x the initial Gaussians ...
CAP_RANGE = (100_000, 1_000_000)  # ... within these


def _opt(default, help: str, **kw):
    """A setting: its default and the one-line help its command-line option shows."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class MCMCConfig:
    """3DGS-MCMC (relocation of dead Gaussians, growth towards the cap, SGLD noise): the
    reference code's settings (``shared/NOTES.md``), but the initial scale (see ``init_scale``)."""

    refine_start: int = _opt(500, "First step of relocation and growth.")
    refine_stop: int = _opt(25_000, "Relocation and growth stop before this step.")
    refine_every: int = _opt(100, "Steps between relocations.")
    growth: float = _opt(1.05, "Each relocation grows the count by this factor, up to the cap.")
    min_opacity: float = _opt(0.005, "Gaussians below this opacity are dead and relocated.")
    noise_lr: float = _opt(5e5, "Scale of the SGLD position noise.")
    opacity_reg: float = _opt(0.01, "Weight of the mean-opacity regulariser.")
    scale_reg: float = _opt(0.01, "Weight of the mean-scale regulariser.")
    init_opacity: float = _opt(0.5, "Opacity of the initial Gaussians.")
    # the reference starts at 0.1 x; at 0.1 x the Gaussians begin below a pixel and short runs
    # stall (300 steps on the 64 px default scene: 6.6 dB held out at 0.1 x, 22.6 dB at 1 x).
    # 0.5 x: on the real capture (bonsai, 399x265, 3000 steps) 30 % less time per step than
    # 1 x (smaller footprints: fewer tile pairs) at the same held-out PSNR (24.55 against 24.50 dB)
    init_scale: float = _opt(0.5, "Initial scale, x the mean distance to the 3 nearest neighbours.")


@dataclass
class ADCConfig:
    """Adaptive density control of the original 3DGS (clone, split, prune, opacity reset)."""

    refine_start: int = _opt(500, "First step of densification.")
    refine_stop: int = _opt(15_000, "Densification stops before this step.")
    refine_every: int = _opt(100, "Steps between densifications.")
    reset_every: int = _opt(3000, "Steps between opacity resets.")
    absgrad: bool = _opt(False, "Densify on sums of per-pixel absolute screen-space gradients (AbsGS).")
    grad_threshold: float | None = _opt(None, "Screen-space gradient that triggers densification "
                                        "(default 2e-4, or 8e-4 with absgrad, whose sums are larger).")
    dense_percent: float = _opt(0.01, "Clone below, split above this scale, x the scene extent.")
    min_opacity: float = _opt(0.005, "Prune below this opacity.")
    max_world_scale: float = _opt(0.1, "After the first reset prune above this scale, x the scene extent "
                                  "(beyond the scene: x the distance from its centre).")
    # the reference code prunes above 20 px; gsplat leaves it off, and so do we: the far
    # background is seen that large (see ADCStrategy._too_big and docs/BENCHMARKS.md)
    max_screen_radius: float = _opt(0.0, "After the first reset prune above this screen radius in pixels "
                                    "(0: off; the reference code uses 20).")
    init_opacity: float = _opt(0.1, "Opacity of the initial Gaussians.")
    init_scale: float = _opt(1.0, "Initial scale, x the mean distance to the 3 nearest neighbours.")

    def threshold(self) -> float:
        return self.grad_threshold if self.grad_threshold is not None else (8e-4 if self.absgrad else 2e-4)


STRATEGY_CONFIGS = {"mcmc": MCMCConfig, "adc": ADCConfig}

# settings that lived at the top level of config.json before the strategies had their own
# (runs made then still resume): old name -> name in the strategy's settings
_LEGACY = {"refine_start": "refine_start", "refine_stop": "refine_stop", "refine_every": "refine_every",
           "reset_every": "reset_every", "grow_grad2d": "grad_threshold", "absgrad": "absgrad",
           "init_opacity": "init_opacity", "init_scale": "init_scale"}


@dataclass
class TrainConfig:
    """Everything a run depends on (the field's defaults unless stated); ``RUN/config.json``
    holds all of it, the chosen strategy's settings included.

    Learning rates per group; the means' rate is multiplied by the scene scale and
    decays exponentially to ``means_lr_final`` x its start at the last step.
    ``background`` is "random" (a new colour each step) or three floats.
    Refinement steps are absolute step numbers.
    """

    data: str = _opt("", "Dataset: a transforms.json (or its folder) or a COLMAP folder.", cli=False)
    downscale: int = _opt(1, "Integer image downscale factor.")
    skip_missing: bool = _opt(False, "Leave out frames whose image is missing (default: an error that lists them).")
    steps: int = _opt(30_000, "Training steps in all.")
    batch: int = _opt(1, "Views per step: their losses are averaged and every learning rate is multiplied "
                         "by sqrt(batch), as Grendel scales them; refinement stays scheduled in steps.")
    nproc: int = _opt(1, "Processes to train in (torch.distributed: gloo on the CPU, nccl on GPUs); each "
                         "holds about 1/nproc of the Gaussians and renders its share of each batch.")
    strategy: str = _opt("mcmc", "mcmc or adc.")
    cap: int | None = _opt(None, "Most Gaussians (mcmc grows to it; adc stops growing at it); default: "
                           "5 x the initial Gaussians, within 100k..1M, fixed at the start.")
    backend: str = _opt("auto", "auto, cpu, cuda, torch or gsplat.")
    seed: int = _opt(0, "Random seed.")
    sh_degree: int = _opt(3, "Highest SH degree (0..3).")
    sh_interval: int = _opt(1000, "Steps between SH degree increases.")
    init_count: int = _opt(100_000, "Initial Gaussians when the dataset has no points.")
    init_extent: float = _opt(1.0, "Random initial points: half-size of their cube, x the scene scale.")
    sky_fraction: float = _opt(0.1, "Extra Gaussians on a far sphere for the background, x init-count.")
    sky_radius: float = _opt(3.0, "Radius of that sphere, x the scene scale (further where the initial "
                                  "points reach further: beyond 99 % of them).")
    lr: dict = _opt({"means": 1.6e-4, "log_scales": 5e-3, "quats": 1e-3, "opacity_logits": 5e-2,
                     "sh_dc": 2.5e-3, "sh_rest": 2.5e-3 / 20}, "Adam learning rate of")
    means_lr_final: float = _opt(0.01, "The means' learning rate at the last step, x its start.")
    ssim_weight: float = _opt(0.2, "Weight of D-SSIM in the photometric loss (the rest is L1).")
    alpha_weight: float = _opt(0.1, "Weight of the L1 loss on alpha where images have one.")
    background: str | list = _opt("random", "'random' (a new colour each step) or R,G,B.")
    eval_background: list = _opt([0.0, 0.0, 0.0], "Background R,G,B of the held-out renders.")
    mode: str = _opt("classic", "classic or antialiased.")
    appearance: bool = _opt(False, "Learn a colour map per training view (a 3x3 matrix and an offset, mean "
                                   "over views the identity) for exposure and white balance that wander; "
                                   "held-out views and exports render without it.")
    appearance_start: int = _opt(100, "Step from which the colour maps are solved (identity before).")
    appearance_reg: float = _opt(0.1, "Ridge of each colour map towards identity, x the pixels it is fitted to.")
    appearance_spread: float = _opt(0.04, "The maps act only where their gains spread (RMS of gain - 1) above "
                                          "this, in full from twice it: below, one exposure (0: always in full).")
    transients: bool = _opt(False, "Keep passers-by out of the scene: pixels whose residual stands out "
                                   "(smoothed, against a running threshold) and that other views see fitted "
                                   "leave the loss; growth waits for "
                                   "the masks; RUN/masks/ holds them.")
    transients_start: int = _opt(100, "Step from which transient masks are computed; growth begins no earlier "
                                      "than twice this.")
    transients_threshold: float = _opt(3.0, "A pixel is transient when its smoothed residual exceeds this many "
                                            "times the running median residual.")
    checkpoint_every: int = _opt(1000, "Steps between checkpoints.")
    keep_checkpoints: int = _opt(2, "Checkpoints kept (the newest).")
    log_every: int = _opt(10, "Steps between lines of metrics.jsonl.")
    mcmc: MCMCConfig = _opt(None, "", nested=True)
    adc: ADCConfig = _opt(None, "", nested=True)

    def __post_init__(self):
        for name, cls in STRATEGY_CONFIGS.items():
            value = getattr(self, name)
            if value is None:
                setattr(self, name, cls())
            elif isinstance(value, dict):
                setattr(self, name, _strategy_config(cls, value, name))

    def strategy_config(self):
        """The chosen strategy's settings (MCMCConfig or ADCConfig)."""
        return getattr(self, self.strategy)

    def validate(self) -> "TrainConfig":
        from ..render.api import check_backend_name

        check_backend_name(self.backend)
        if self.strategy not in STRATEGIES:
            raise SplatError(f"strategy '{self.strategy}' is unknown (use {' or '.join(STRATEGIES)})")
        if self.cap is not None and int(self.cap) < 1:
            raise SplatError(f"cap {self.cap} must be a positive integer")
        if int(self.nproc) < 1:
            raise SplatError(f"nproc {self.nproc} must be a positive integer")
        if int(self.nproc) > 1:
            wrong = [f"--{n}" for n in ("appearance", "transients") if getattr(self, n)]
            if self.strategy == "adc" and self.adc.absgrad:
                wrong.append("--adc-absgrad")
            if wrong:
                raise SplatError(f"--nproc {self.nproc}: {' and '.join(wrong)} run in one process only for now")
            if self.backend not in ("auto", "cpu", "cuda"):
                raise SplatError(f"--nproc {self.nproc} needs --backend cpu or cuda (not {self.backend})")
        for name in ("steps", "batch", "init_count", "checkpoint_every", "log_every", "sh_interval", "downscale"):
            if int(getattr(self, name)) < 1:
                raise SplatError(f"{name.replace('_', '-')} {getattr(self, name)} must be a positive integer")
        if not 0 <= int(self.seed) < 2**63:
            raise SplatError(f"seed {self.seed} must be in 0..2^63-1")
        if self.mode not in ("classic", "antialiased"):
            raise SplatError(f"mode '{self.mode}' must be classic or antialiased")
        if self.transients and int(self.transients_start) < 1:
            raise SplatError(f"transients-start {self.transients_start} must be a positive integer")
        if not self.transients_threshold > 1:
            raise SplatError(f"transients-threshold {self.transients_threshold} must be above 1")
        if int(self.appearance_start) < 0 or not self.appearance_reg >= 0 or not self.appearance_spread >= 0:
            raise SplatError("appearance-start, appearance-reg and appearance-spread must be >= 0")
        if not 0 <= self.sh_degree <= 3:
            raise SplatError(f"sh-degree {self.sh_degree} must be in 0..3")
        if isinstance(self.background, str) and self.background != "random":
            raise SplatError(f"background '{self.background}' must be 'random' or three numbers")
        if not isinstance(self.background, str) and len(self.background) != 3:
            raise SplatError("background must have three values")
        missing = {"means", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest"} - set(self.lr)
        if missing:
            raise SplatError(f"learning rates missing for {', '.join(sorted(missing))}")
        s = self.strategy_config()
        for name in ("refine_every", "reset_every"):
            if hasattr(s, name) and int(getattr(s, name)) < 1:
                raise SplatError(f"{self.strategy}-{name.replace('_', '-')} {getattr(s, name)} must be a positive integer")
        if not (s.init_scale > 0 and 0 < s.init_opacity < 1):
            raise SplatError(f"{self.strategy}: init-scale must be > 0 and init-opacity in (0, 1)")
        return self

    def sized_cap(self, initial: int) -> int:
        """The cap: as set, or sized from the ``initial`` Gaussians (points and sky) when not set.
        Growth to 5x the starting points keeps a real capture sharp at the sizes a CPU trains
        (bonsai at 400x266: 47k points -> 235k) while the step time stays bounded."""
        if self.cap is not None:
            return int(self.cap)
        return int(min(max(CAP_PER_INITIAL * initial, CAP_RANGE[0]), CAP_RANGE[1]))

    def load_dataset(self):
        """The Dataset these settings train on (every command that opens a run's data asks here)."""
        from ..data.loaders import load_dataset

        return load_dataset(self.data, self.downscale, skip_missing=self.skip_missing)

    def to_dict(self) -> dict:
        """Every setting, with the chosen strategy's own (the other strategy's are left out)."""
        d = dataclasses.asdict(self)
        for name in STRATEGY_CONFIGS:
            if name != self.strategy:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A TrainConfig from its dict (``to_dict``, config.json). The top-level strategy
        settings of earlier runs (``refine_start``, ``grow_grad2d``, ...) are read into the
        run's strategy's settings; ``None`` among them means that strategy's default."""
        if not isinstance(d, dict):
            raise SplatError("training settings must be a JSON object")
        d = dict(d)
        strategy = d.get("strategy", "mcmc")
        legacy = {_LEGACY[k]: d.pop(k) for k in list(d) if k in _LEGACY}
        if strategy in STRATEGY_CONFIGS:
            nested = dict(d.get(strategy) or {})
            target = {f.name for f in dataclasses.fields(STRATEGY_CONFIGS[strategy])}
            nested.update({k: v for k, v in legacy.items() if v is not None and k in target and k not in nested})
            d[strategy] = nested
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SplatError(f"unknown training settings: {', '.join(sorted(unknown))}")
        return cls(**d).validate()



def _strategy_config(cls, values: dict, name: str):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise SplatError(f"unknown {name} settings: {', '.join(sorted(unknown))}")
    return cls(**values)
