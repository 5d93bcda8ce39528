"""Live training view: the trainer's progress callback hands the viewer fresh Gaussians.

Training never waits on the viewer when no browser is connected: the hook then only
checks the client count. With browsers connected it copies the Gaussians at most
``push_every`` seconds, and the "viewer share" slider makes training sleep that
fraction of each step so the render threads get the CPU. Pause blocks training
between steps until resumed. With ``--transients`` a panel shows the photo of the view just
trained with its transient mask over it in red, so a user sees what training leaves out.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from .server import Viewer

MASK_TINT = np.array([255, 40, 40], np.float32)  # transient pixels are blended towards this red


def mask_overlay(photo: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """[H, W, 3] uint8: ``photo`` ([H, W, 3] in [0, 1]) with the pixels of ``mask`` ([H, W] bool,
    True = transient) tinted red, half and half."""
    rgb = photo.detach().clamp(0, 1).cpu().float().numpy() * 255
    m = mask.cpu().numpy()[..., None]
    return np.where(m, 0.5 * rgb + 0.5 * MASK_TINT, rgb).round().astype(np.uint8)


class LiveTraining:
    """Adds pause/resume and a training-speed/frame-rate control to ``viewer``.

    Call ``after_step(trainer, metrics)`` from the trainer's progress callback.
    """

    def __init__(self, viewer: Viewer, push_every: float = 0.5):
        self.viewer = viewer
        self.push_every = push_every
        self.running = threading.Event()
        self.running.set()
        self._last_push = 0.0
        self._step_start = time.perf_counter()
        gui = viewer.server.gui
        self.gui_pause = gui.add_button("Pause training")
        self.gui_share = gui.add_slider("Viewer share of CPU", 0.0, 0.9, 0.05, 0.25)
        self.gui_progress = gui.add_markdown("training: starting")
        self.gui_pause.on_click(lambda _: self.toggle())
        self.gui_mask = None  # the transient-mask panel, made with the first mask

    def show_mask(self, trainer, view: int) -> None:
        """Show ``view``'s photo with its latest transient mask (nothing before it has one)."""
        mask = trainer.transients.masks.get(view) if trainer.transients is not None else None
        if mask is None:
            return
        image = mask_overlay(trainer.view_images(view)[0], mask)
        if self.gui_mask is None:
            self.gui_mask = self.viewer.server.gui.add_image(image, label="Transient mask (red: left out)",
                                                             format="jpeg")
        else:
            self.gui_mask.image = image

    def toggle(self) -> None:
        """Pause a running training, or resume a paused one."""
        if self.running.is_set():
            self.running.clear()
            self.gui_pause.label = "Resume training"
        else:
            self.running.set()
            self.gui_pause.label = "Pause training"

    def after_step(self, trainer, metrics: dict) -> None:
        now = time.perf_counter()
        step_seconds = now - self._step_start
        if self.viewer.num_clients:
            if now - self._last_push >= self.push_every:
                self.viewer.set_store(trainer.store())
                view = metrics["view"]
                self.show_mask(trainer, view if isinstance(view, int) else view[0])
                self._last_push = time.perf_counter()
                self.gui_progress.content = (f"training: step {metrics['step']}/{trainer.config.steps}, "
                                             f"PSNR {metrics['psnr']:.2f}, {metrics['gaussians']} Gaussians")
            share = float(self.gui_share.value)
            if share > 0:
                time.sleep(step_seconds * share / (1 - share))
            if not self.running.is_set():
                self.gui_progress.content = f"training: paused at step {metrics['step']}"
                while not self.running.wait(timeout=0.5):
                    if not self.viewer.num_clients:
                        break  # nobody left to press resume: carry on
                self.running.set()
                self.gui_pause.label = "Pause training"
        self._step_start = time.perf_counter()
