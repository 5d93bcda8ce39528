"""The training loop: data, loss, Adam, strategy, logs, checkpoints, exact resume.

It writes a run folder (layout: ``splat.train.run``).

All random draws come from one generator seeded by ``config.seed`` and saved in
every checkpoint, and the CPU backend is deterministic, so N steps + resume + N
steps equal 2N steps in one go, bitwise. Torch's global generator is neither drawn from
nor saved: its state is seeded afresh in every process, so saving it recorded noise.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Callable

import torch

from ..camera import save_cameras_json
from ..data.dataset import Dataset, check_images_readable
from ..errors import NothingToDo, SplatError
from ..interrupts import Interrupted, deferred, signal_name
from ..io.atomic import write_text_atomic
from ..io.images import load_image, save_image
from ..io.ply import save_ply
from ..render import rasterize
from ..render.api import resolve_backend
from .run import Run
from ..store import GaussianStore, num_sh_bases
from .adam import Adam
from .adc import ADCStrategy
from .appearance import Appearance
from .checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .device import pick_device
from .init import scene_centre, scene_scale, starting_store
from .losses import l1, photometric_loss, psnr
from .mcmc import MCMCStrategy
from .transients import TransientMasks

def _times(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """The product of two optional [H, W] loss weights (None: every pixel counts)."""
    return a if b is None else b if a is None else a * b


# SH is one optimised tensor [N, K, 3] (the store's, not joined anew each step); its DC band,
# the first 3 values of each row, learns at lr "sh_dc" and the higher bands at "sh_rest".
SH_BANDS = {"sh": (3, "sh_dc", "sh_rest")}


def store_from_params(params: dict) -> GaussianStore:
    """The GaussianStore view of the optimised tensors. A render at a lower SH degree than
    the store's reads the bands it needs; the others get a zero gradient."""
    return GaussianStore(params["means"], params["log_scales"], params["quats"], params["opacity_logits"],
                         params["sh"])


def params_from_store(store: GaussianStore) -> dict:
    return {"means": store.means, "log_scales": store.log_scales, "quats": store.quats,
            "opacity_logits": store.opacity_logits, "sh": store.sh}


def merged_sh(adam_state: dict) -> dict:
    """An optimiser state saved with SH in two groups (sh_dc, sh_rest: runs before SH became
    one tensor) with them joined, rows and moments alike; any other state as it is."""
    if "sh_dc" not in adam_state["params"]:
        return adam_state
    out = {**adam_state, "bands": SH_BANDS}
    for key in ("params", "exp_avg", "exp_avg_sq"):
        groups = dict(adam_state[key])
        dc, rest = groups.pop("sh_dc"), groups.pop("sh_rest")
        out[key] = {**groups, "sh": torch.cat([dc, rest], 1)}
    return out


def fit_to_dataset(config: TrainConfig, dataset: Dataset) -> None:
    """Check the batch against the views and size the cap when not set (once, from what
    training starts with; it is saved with the run)."""
    if config.batch > len(dataset.train):
        raise SplatError(f"--batch {config.batch}: the dataset has {len(dataset.train)} training views")
    if config.nproc > len(dataset.train):
        raise SplatError(f"--nproc {config.nproc}: more processes than the {len(dataset.train)} training views")
    if config.cap is None:
        points = len(dataset.points) if dataset.points is not None and len(dataset.points) else config.init_count
        config.cap = config.sized_cap(min(points, config.init_count) + int(config.sky_fraction * config.init_count))


def prepare_run(config: TrainConfig, run: str | Path) -> Dataset:
    """Check everything a new run in ``run`` needs (settings, backend, dataset, images), then
    create the folder with its config.json and cameras.json. Returns the dataset. A start that
    fails here leaves nothing behind."""
    run = Path(run)
    layout = Run(run)
    if run.exists() and not run.is_dir():
        raise SplatError(f"{run}: is a file; --out names the run folder to create")
    if layout.started or layout.checkpoints():
        raise SplatError(f"{run} already holds a run: resume it with --resume or choose another --out")
    config.validate()
    resolve_backend(config.backend, pick_device(config.backend))  # builds a native one now, not mid-run
    dataset = config.load_dataset()
    if not dataset.train:
        raise SplatError(f"{config.data}: no training views")
    check_images_readable([dataset.image_paths[i] for i in dataset.train + dataset.test])
    fit_to_dataset(config, dataset)
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SplatError(f"{run}: cannot create the run folder ({e.strerror})") from None
    write_text_atomic(layout.config_path, json.dumps(config.to_dict(), indent=1))
    save_cameras_json(dataset.cameras, layout.cameras_path)
    return dataset


def plan_resume(run: Path, steps: int | None) -> tuple[TrainConfig, dict | None, bool]:
    """(the run's config with its new total steps, its newest checkpoint or None, whether the
    steps changed) for resuming ``run``.

    Raises:
        NothingToDo: the run is finished and no more steps were asked for.
        SplatError: not a run, a damaged checkpoint, or ``steps`` below the run's step.
    """
    layout = Run(run)
    config = layout.config()
    found = layout.checkpoints()
    state = load_checkpoint(found[-1]) if found else None
    done = int(state.get("step", 0)) if isinstance(state, dict) else 0
    target = config.steps if steps is None else steps
    if steps is not None and steps < done:
        raise SplatError(f"--steps {steps} is below the run's step {done}: a run only goes forward")
    if done >= target and layout.finished:
        raise NothingToDo(f"{run}: finished at step {done} of {target}; nothing to do, left as it is "
                          f"(continue it with --resume {run} --steps N, N > {done})")
    changed = target != config.steps
    config.steps = target
    config.validate()
    return config, state, changed


class Trainer:
    """Trains a GaussianStore on a dataset. Build with ``Trainer.start`` or ``Trainer.resume``."""

    def __init__(self, config: TrainConfig, run: Path, dataset: Dataset):
        self.config, self.run, self.dataset = config.validate(), Path(run), dataset
        fit_to_dataset(config, dataset)
        self.device = pick_device(config.backend)
        self.scene_scale = scene_scale(dataset)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.order, self.order_pos = torch.zeros(0, dtype=torch.int64), 0
        self.images: dict[int, tuple] = {}
        self.elapsed = 0.0
        self.checkpointed_step: int | None = None  # the step the newest checkpoint holds
        self.strategy = self._make_strategy()
        self.adam: Adam | None = None
        # fused C++ SSIM and Adam for CPU training (the torch versions are the reference)
        self.fused = None
        if self.device.type == "cpu":
            from .fused import train_extension

            self.fused = train_extension()
        self.appearance = (Appearance(dataset.train, config.appearance_start, config.appearance_reg, self.device,
                                      config.appearance_spread)
                           if config.appearance else None)
        self.transients = TransientMasks(config.transients_start, config.transients_threshold, dataset.cameras,
                                         dataset.train) if config.transients else None

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def start(cls, config: TrainConfig, run: str | Path) -> "Trainer":
        """A new run in folder ``run`` (created; it must not hold a run already).

        Everything that can be checked is checked before the folder is made (settings,
        backend, dataset, images), so a start that fails leaves nothing behind.
        """
        dataset = prepare_run(config, run)
        trainer = cls(config, Path(run), dataset)
        trainer._init_gaussians()
        return trainer

    @classmethod
    def resume(cls, run: str | Path, steps: int | None = None) -> "Trainer":
        """Continue a run from its newest checkpoint (from step 0 if it has none), optionally to
        a new total ``steps``.

        Raises:
            NothingToDo: the run is finished and no more steps were asked for (it is left alone).
            SplatError: not a run, a damaged checkpoint, or ``steps`` below the run's step.
        """
        run = Path(run)
        config, state, changed = plan_resume(run, steps)
        trainer = cls(config, run, config.load_dataset())
        if state is None:  # a start stopped before its first checkpoint: begin again, as the start would have
            trainer._init_gaussians()
        else:
            trainer.load_state(state)
        if changed:
            write_text_atomic(Run(run).config_path, json.dumps(config.to_dict(), indent=1))
        trainer._truncate_log()
        return trainer

    def _make_strategy(self):
        c = self.config
        strategy = MCMCStrategy if c.strategy == "mcmc" else ADCStrategy
        settings = c.strategy_config()
        if c.transients:  # growth waits until the masks have settled (RobustSplat's delayed densification)
            settings = dataclasses.replace(settings, refine_start=max(settings.refine_start, 2 * c.transients_start))
        return strategy(self._strategy_generator(), self.scene_scale, cap=self._local_cap(), config=settings,
                        scene_centre=scene_centre(self.dataset))

    def _strategy_generator(self) -> torch.Generator:
        return self.generator

    def _local_cap(self) -> int:
        """The most Gaussians this process may hold."""
        return self.config.cap

    def _init_gaussians(self) -> None:
        store = starting_store(self.config, self.dataset, self.scene_scale, self.generator)
        params = {k: v.to(self.device) for k, v in self._own_part(params_from_store(store)).items()}
        self.adam = Adam(params, self._learning_rates(0), fused=self.fused, bands=SH_BANDS)

    def _own_part(self, params: dict) -> dict:
        """The Gaussians of ``params`` this process trains (all of them here)."""
        return params

    # -- state ------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "step": self.step, "adam": self.adam.state_dict(), "strategy": self.strategy.state_dict(),
            "generator": self.generator.get_state(),
            "order": self.order.clone(), "order_pos": self.order_pos, "elapsed": self.elapsed,
            "config": self.config.to_dict(),
            **({"appearance": self.appearance.state_dict()} if self.appearance else {}),
            **({"transients": self.transients.state_dict()} if self.transients else {}),
        }

    def load_state(self, state: dict) -> None:
        if "shards" in state:
            raise SplatError(f"{self.run}: its checkpoint is sharded over {len(state['shards'])} processes; "
                             f"this trainer runs in one")
        try:
            self.step = int(state["step"])
            self.adam = Adam.from_state_dict(merged_sh(state["adam"]), fused=self.fused, device=self.device)
            self.strategy.load_state_dict(state["strategy"])
            self.generator.set_state(state["generator"])
            self.order, self.order_pos = state["order"], int(state["order_pos"])
            self.elapsed = float(state.get("elapsed", 0.0))
            self.checkpointed_step = self.step
            if self.appearance:
                self.appearance.load_state_dict(state["appearance"], self.device)
            if self.transients:
                self.transients.load_state_dict(state["transients"], self.device)
        except (KeyError, TypeError, RuntimeError) as e:
            raise SplatError(f"{self.run}: checkpoint is incomplete or damaged ({type(e).__name__}: {e})") from None

    def describe(self) -> str:
        """The first line a user sees: views and their size after downscale, held-out views,
        Gaussians at the start and the cap, strategy, steps, and where the run goes."""
        c, d = self.config, self.dataset
        sizes = sorted({(d.cameras[i].width, d.cameras[i].height) for i in d.train})
        size = "x".join(map(str, sizes[0])) + (f" (and {len(sizes) - 1} other sizes)" if len(sizes) > 1 else "")
        where = f"resuming {self.run} at step {self.step}" if self.step else f"run: {self.run}"
        batch = f" of {c.batch} views (learning rates x {math.sqrt(c.batch):.3g})" if c.batch > 1 else ""
        ranks = f" in {c.nproc} processes" if c.nproc > 1 else ""
        return (f"train: {len(d.train)} views of {size} (downscale {c.downscale}), {len(d.test)} held out; "
                f"{self.gaussians()} Gaussians at the start, cap {c.cap}; {c.strategy}, {c.steps} steps{batch}"
                f"{ranks}; {where}")

    def store(self) -> GaussianStore:
        """The current Gaussians (detached, on the CPU)."""
        return store_from_params({k: v.detach() for k, v in self.adam.params.items()}).to("cpu")

    # -- one step -----------------------------------------------------------------------------------
    def _learning_rates(self, step: int) -> dict:
        c = self.config
        lrs = dict(c.lr)
        t = min(step / max(c.steps - 1, 1), 1.0)
        lrs["means"] = c.lr["means"] * self.scene_scale * c.means_lr_final ** t
        if c.batch > 1:  # Grendel's rule for batches of views: sqrt(batch) x every rate
            lrs = {k: v * math.sqrt(c.batch) for k, v in lrs.items()}
        return lrs

    def _next_view(self) -> int:
        if self.order_pos >= len(self.order):
            self.order = torch.randperm(len(self.dataset.train), generator=self.generator)
            self.order_pos = 0
        i = self.dataset.train[int(self.order[self.order_pos])]
        self.order_pos += 1
        return i

    def view_images(self, i: int):
        """(rgb [H, W, 3], alpha [H, W, 1] or None, mask [H, W] or None) of view i, on the device."""
        if i not in self.images:
            rgba = torch.from_numpy(self.dataset.image_rgba(i).copy())
            rgb = rgba[..., :3].to(self.device)
            alpha = rgba[..., 3:4].to(self.device) if rgba.shape[-1] == 4 else None
            mask = None
            masks = self.dataset.extras.get("mask")
            if masks:
                m = self.dataset.resample_to_view(i, load_image(masks[i]), "mask")
                m = m if m.ndim == 2 else m[..., 0]
                mask = (torch.from_numpy(m.copy()) > 0.5).float().to(self.device)
            self.images[i] = (rgb, alpha, mask)
        return self.images[i]

    def preload(self, progress: Callable[[int], None] | None = None, budget_bytes: int = 4 << 30) -> bool:
        """Read every training view now (decoded, undistorted, downscaled), calling ``progress(done)``
        after each, so the first epoch does not stall on the disk; False (nothing read) when
        they would take more than ``budget_bytes`` of memory, as then they are read as used."""
        d = self.dataset
        need = sum(d.cameras[i].width * d.cameras[i].height * 4 * 4 for i in d.train)  # float32 RGBA, at most
        if need > budget_bytes:
            return False
        for done, i in enumerate(d.train, 1):
            self.view_images(i)
            if progress:
                progress(done)
        return True

    def _background(self) -> torch.Tensor:
        if self.config.background == "random":
            return torch.rand(3, generator=self.generator).to(self.device)
        return torch.tensor([float(v) for v in self.config.background], device=self.device)

    def _same_size(self, views: list[int]) -> list[list[int]]:
        """The batch's views grouped by image size, in first-seen order: each group renders in
        one call."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i in views:
            cam = self.dataset.cameras[i]
            groups.setdefault((cam.width, cam.height), []).append(i)
        return list(groups.values())

    def train_step(self) -> dict:
        """One optimisation step over ``config.batch`` views. Returns its metrics."""
        c = self.config
        step = self.step
        self.adam.lrs = self._learning_rates(step)
        views = [self._next_view() for _ in range(c.batch)]
        bg = self._background()
        sh_degree = min(step // c.sh_interval, c.sh_degree)
        store = store_from_params(self.adam.params)
        rendered, results, extra_loss = self._render(store, views, bg, sh_degree)
        photo, alpha_loss, psnrs = [], [], []
        for i, image, predicted_alpha, depth in rendered:
            rgb, alpha, mask = self.view_images(i)
            target = rgb if alpha is None else rgb * alpha + bg * (1 - alpha)
            weight = mask
            if self.appearance is not None:  # the view's map, fitted where its last mask keeps pixels
                kept = self.transients.last_weight(i, image.dtype) if self.transients is not None else None
                self.appearance.fit(i, image.detach(), target, _times(weight, kept), step)
                if self.appearance.gate > 0:  # shut, the maps are the identity: the plain loss
                    image = self.appearance.apply(image, i)
                    weight = _times(weight, self.appearance.unsaturated(image, target))
            if self.transients is not None:
                weight = _times(weight, self.transients.weight(i, image.detach(), target, step,
                                                               None if depth is None else depth.detach()))
            photo.append(photometric_loss(image, target, weight, c.ssim_weight, fused=self.fused is not None))
            if alpha is not None and c.alpha_weight > 0:
                alpha_loss.append(l1(predicted_alpha, alpha))
            psnrs.append(min(psnr(image.detach(), target), 120.0))
        # the mean over the batch (with one view: that view's loss, bit for bit as before)
        loss = self._regularizer() if not photo else sum(photo[1:], photo[0]) / c.batch + self._regularizer()
        if alpha_loss:
            loss = loss + c.alpha_weight * (sum(alpha_loss[1:], alpha_loss[0]) / c.batch)
        if extra_loss is not None:
            loss = loss + extra_loss
        loss_value, psnr_mean = self._step_summary(loss.detach(), psnrs)
        if not math.isfinite(loss_value):
            self._diverged(f"the loss is {loss_value}", self.step + 1)
        loss.backward()
        for result in self._strategy_results(results):
            self.strategy.after_backward(self.adam, result, step, views=c.batch)
        # SH bands past the step's degree have had no gradient yet: the step skips them
        self.adam.step(used={"sh": num_sh_bases(sh_degree) * 3})
        self.strategy.after_step(self.adam, step, self.adam.lrs["means"])
        self.step += 1
        metrics = {"step": self.step, "loss": loss_value, "psnr": psnr_mean,
                   "gaussians": self.gaussians(), "sh_degree": sh_degree, "view": views[0] if c.batch == 1 else views}
        if self.step % c.log_every == 0 or self.step % c.checkpoint_every == 0 or self.step == c.steps:
            self.check_finite()  # a bad value also reaches the loss within a step or two
            metrics["tile_pairs_per_pixel"] = self._tile_pairs(results)
            if self.transients is not None:
                metrics["transient_coverage"] = round(self.transients.coverage(), 4)
        return metrics

    # -- the parts a sharded trainer replaces (splat.train.sharded) ---------------------------------
    def _render(self, store: GaussianStore, views: list[int], bg: torch.Tensor, sh_degree: int):
        """Render the batch: ([(view, color [H, W, 3], alpha [H, W, 1], depth [H, W, 1] or None)
        per view], the RenderResults the strategy reads, an extra loss term or None)."""
        c = self.config
        rendered, results = [], []
        for group in self._same_size(views):
            cams = [self.dataset.cameras[i] for i in group]
            result = rasterize(store, cams if len(cams) > 1 else cams[0], backend=c.backend, sh_degree=sh_degree,
                               background=bg, mode=c.mode, contributions=False,
                               absgrad=c.strategy == "adc" and c.adc.absgrad)
            results.append(result)
            rendered += [(i, result.color[k], result.alpha[k], result.depth[k]) for k, i in enumerate(group)]
        return rendered, results, None

    def _regularizer(self) -> torch.Tensor | float:
        return self.strategy.regularizer(self.adam)

    def _step_summary(self, loss: torch.Tensor, psnrs: list[float]) -> tuple[float, float]:
        """(the step's loss, the mean training PSNR of its views)."""
        return float(loss), sum(psnrs) / len(psnrs)

    def _strategy_results(self, results: list) -> list:
        return results

    def gaussians(self) -> int:
        return len(self.adam)

    def _tile_pairs(self, results: list) -> float:
        return round(sum(r.tile_pairs_per_pixel() for r in results) / len(results), 2)

    def check_finite(self) -> None:
        """Stop with a one-line error if any parameter holds NaN or Inf."""
        for name, p in self.adam.params.items():
            if p.numel() == 0:
                continue
            # min and max in one pass (NaN reaches both) where isfinite(p).all() takes four
            lo, hi = torch.aminmax(p.detach())
            if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
                self._diverged(f"parameter '{name}' has non-finite values", self.step)

    def _diverged(self, what: str, step: int) -> None:
        found = list_checkpoints(self.run)
        keep = f"the last good checkpoint is {found[-1]}" if found else "no checkpoint was written yet"
        raise SplatError(f"training stopped at step {step}: {what}; {keep}")

    # -- the loop -----------------------------------------------------------------------------------
    def _truncate_log(self) -> None:
        """Drop log lines past the checkpoint being resumed, so the log reads as one run."""
        path = Run(self.run).metrics_path
        if not path.exists():
            return
        kept = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= self.step]
        write_text_atomic(path, "".join(ln + "\n" for ln in kept))

    def save_checkpoint(self) -> Path:
        path = save_checkpoint(self.run, self.step, self.state(), self.config.keep_checkpoints)
        self.checkpointed_step = self.step
        self.save_views_models()
        return path

    def save_views_models(self) -> None:
        """What was learnt per training view, for a user to look at: the transient masks
        (``RUN/masks/``) and the colour maps (``RUN/appearance.json``)."""
        layout = Run(self.run)
        if self.transients is not None and self.transients.masks:
            layout.masks_dir.mkdir(exist_ok=True)
            for i, m in self.transients.masks.items():
                save_image(m.to(torch.uint8).cpu().numpy() * 255, layout.mask_path(i))
        if self.appearance is not None:
            views = self.appearance.named_maps([p.name for p in self.dataset.image_paths])
            write_text_atomic(layout.appearance_path, json.dumps(
                {"model": "c' = M c + b, as [M | b] (3 x 4) per training view", "views": views}, indent=1))

    def _open_log(self):
        return open(Run(self.run).metrics_path, "a")

    def _agree(self, stop: bool) -> bool:
        """Whether to stop now (a sharded run stops when any rank was asked to)."""
        return stop

    def _write_scene(self) -> None:
        save_ply(self.store(), Run(self.run).scene_path)

    def train(self, stop_after: int | None = None, progress: Callable[[dict], None] | None = None) -> dict:
        """Run to ``config.steps`` (or ``stop_after`` steps in total, for tests that stop a run).

        Writes checkpoints every ``checkpoint_every`` steps and at the end, then the PLY.
        SIGINT or SIGTERM stops it after the step in flight: it checkpoints that step and
        raises ``Interrupted`` saying so. Returns the last metrics.
        """
        c = self.config
        end = c.steps if stop_after is None else min(stop_after, c.steps)
        metrics = {"step": self.step}
        log = self._open_log()
        try:
            with deferred() as stop:
                t_last = time.perf_counter()
                while self.step < end and not self._agree(bool(stop)):
                    metrics = self.train_step()
                    now = time.perf_counter()
                    self.elapsed += now - t_last
                    t_last = now
                    metrics["elapsed"] = self.elapsed
                    if self.step % c.log_every == 0 or self.step == end:
                        log.write(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}) + "\n")
                        log.flush()
                    if progress:
                        progress(metrics)
                    if self.step % c.checkpoint_every == 0 and self.step != end:
                        self.save_checkpoint()
                if self.checkpointed_step != self.step:
                    self.save_checkpoint()
        finally:
            log.close()
        if self.step >= c.steps:
            self._write_scene()
        if stop:
            raise Interrupted(f"interrupted ({signal_name(stop.signum)}) at step {self.step} of {c.steps}; "
                              f"checkpoint {latest_checkpoint(self.run)} holds it; "
                              f"resume with: splat train --resume {self.run}", stop.signum)
        return metrics
