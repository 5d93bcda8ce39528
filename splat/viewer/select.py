"""Click-to-select in the viewer: a click on the scene selects the object under it, the
selection is highlighted, and buttons delete it, keep only it, or save it to a file.

A click picks among the scene's clusters (``splat.segment.clusters``): prepared on the first
click (or read from a run's ``segments.pt`` when it belongs to the scene), then each click
costs one render of a pixel. "Pick" chooses the level: the object, one of its parts (a
piece of one colour: a box's face) or the whole group (a stack of touching objects); viser
reports no modifier keys with a click, so the dropdown stands in for a modified click. The region-growing
click (``splat.segment.click_select``) stays available as the method "grow"."""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from ..segment.clusters import LEVELS
from ..store import GaussianStore
from .server import Viewer

HIGHLIGHT = (1.0, 0.85, 0.0)


def highlighted(store: GaussianStore, mask: torch.Tensor) -> GaussianStore:
    """A copy with the selected Gaussians tinted half-way to yellow, view-dependent colour off."""
    from ..store import rgb_to_sh_dc

    out = store.clone()
    rgb = out.rgb[mask].clamp(0, 1)
    out.sh[mask, 0] = rgb_to_sh_dc(0.5 * rgb + 0.5 * torch.tensor(HIGHLIGHT, dtype=rgb.dtype))
    out.sh[mask, 1:] = 0
    return out


class SelectionTool:
    """Adds the "Select object" controls to ``viewer``; ``cameras`` are the views the
    selection grows in (default: 16 orbit views around the scene)."""

    def __init__(self, viewer: Viewer, cameras=None, cache: Path | None = None):
        self.viewer = viewer
        self.cameras = list(cameras) if cameras else None
        self.cache = cache  # a run's segments.pt: read when it fits the scene, written when prepared here
        self.clusters = None  # (store, SceneClusters) of the last store clicked
        self.mask: torch.Tensor | None = None
        self._tinted = None  # (store, mask, highlighted store)
        self.busy = threading.Lock()
        gui = viewer.server.gui
        with gui.add_folder("Select object"):
            self.gui_enabled = gui.add_checkbox("Click selects", True)
            self.gui_level = gui.add_dropdown("Pick", LEVELS, initial_value=LEVELS[0])
            self.gui_method = gui.add_dropdown("Method", ("clusters", "grow"), initial_value="clusters")
            self.gui_delete = gui.add_button("Delete selection", disabled=True)
            self.gui_keep = gui.add_button("Keep only selection", disabled=True)
            self.gui_clear = gui.add_button("Clear selection", disabled=True)
            self.gui_path = gui.add_text("Save to", "selection.ply")
            self.gui_save = gui.add_button("Save selection", disabled=True)
            self.gui_info = gui.add_markdown("click an object to select it")
        self.gui_delete.on_click(lambda _: self.apply(keep=False))
        self.gui_keep.on_click(lambda _: self.apply(keep=True))
        self.gui_clear.on_click(lambda _: self.set_mask(None))
        self.gui_save.on_click(lambda _: self.save(Path(self.gui_path.value)))
        viewer.server.scene.on_click()(self._clicked)
        viewer.decorate = self._decorate

    def _decorate(self, store: GaussianStore) -> GaussianStore:
        m = self.mask
        if m is None or len(m) != len(store) or not m.any():
            return store
        cached = self._tinted  # every frame asks: tint once per store and selection
        if cached is None or cached[0] is not store or cached[1] is not m:
            cached = self._tinted = (store, m, highlighted(store, m))
        return cached[2]

    def _clicked(self, event) -> None:
        if not self.gui_enabled.value or self.viewer.client_side:
            return
        loop = self.viewer.loops.get(event.client_id)
        camera = loop.current_camera() if loop else None
        if camera is None:
            return
        x, y = event.screen_pos
        threading.Thread(target=self.select_at, args=(camera, (x * camera.width, y * camera.height)), daemon=True).start()

    def select_at(self, camera, pixel) -> None:
        """Select the object under ``pixel`` (x, y) of ``camera``; errors go to the GUI."""
        from ..errors import SplatError
        from ..render.views import default_cameras
        from ..segment import click_select
        from ..segment.clusters import pick_cluster

        if not self.busy.acquire(blocking=False):
            return  # one selection at a time
        try:
            store, settings = self.viewer.snapshot(decorated=False)
            cams = self.cameras or default_cameras(store, 16, 128, 128)
            try:
                if self.gui_method.value == "grow":
                    self.gui_info.content = "selecting ..."
                    mask = click_select(store, camera, [pixel], cams, backend=settings.backend)
                else:
                    clusters = self._clusters_of(store, cams, settings.backend)
                    mask = pick_cluster(store, clusters, camera, pixel, self.gui_level.value, backend=settings.backend)
            except SplatError as e:
                self.gui_info.content = f"no selection: {e}"
                return
            self.set_mask(mask)
        finally:
            self.busy.release()

    def _clusters_of(self, store: GaussianStore, cams, backend: str):
        """The clusters of ``store``: the last ones when the store is the same, the cache's
        when they fit it, else prepared now (and written to the cache)."""
        from ..segment.clusters import prepare_clusters, store_fingerprint
        from ..segment.runs import load_clusters, save_clusters

        if self.clusters is not None and self.clusters[0] is store:
            return self.clusters[1]
        fingerprint = store_fingerprint(store)
        if self.clusters is not None and self.clusters[1].fingerprint == fingerprint:  # a copy of the same scene
            self.clusters = (store, self.clusters[1])
            return self.clusters[1]
        cached = load_clusters(self.cache) if self.cache is not None else None
        if cached is None or not cached.fits(fingerprint):
            self.gui_info.content = "preparing the scene's clusters (once) ..."
            cached = prepare_clusters(store, cams, backend=backend)
            if self.cache is not None:
                try:
                    save_clusters(cached, self.cache)
                except Exception:  # a read-only run still selects; the cache is only a cache
                    pass
        self.clusters = (store, cached)
        return cached

    def set_mask(self, mask: torch.Tensor | None) -> None:
        self.mask = mask if mask is not None and mask.any() else None
        n = 0 if self.mask is None else int(self.mask.sum())
        for b in (self.gui_delete, self.gui_keep, self.gui_clear, self.gui_save):
            b.disabled = n == 0
        self.gui_info.content = f"{n} Gaussians selected" if n else "click an object to select it"
        self.viewer._changed()

    def apply(self, keep: bool) -> None:
        """Keep only (``keep``) or delete the selection."""
        m = self.mask
        if m is None:
            return
        store, _ = self.viewer.snapshot(decorated=False)
        self.mask = None
        kept = m if keep else ~m
        new = store.select(kept)
        if self.clusters is not None and self.clusters[0] is store:  # the kept Gaussians keep their clusters
            from ..segment.clusters import SceneClusters, store_fingerprint

            old = self.clusters[1]
            self.clusters = (new, SceneClusters({k: v[kept] for k, v in old.labels.items()}, store_fingerprint(new),
                                                old.seconds, old.views, old.params))
        self.viewer.set_store(new)
        self.set_mask(None)

    def save(self, path: Path) -> None:
        """Write the selection atomically (any written format, by suffix); errors go to the GUI."""
        from ..errors import SplatError
        from ..io.scene_files import save_scene

        if self.mask is None:
            return
        store, _ = self.viewer.snapshot(decorated=False)
        try:
            save_scene(store.select(self.mask), path)
            self.gui_info.content = f"saved {int(self.mask.sum())} Gaussians to {path}"
        except SplatError as e:
            self.gui_info.content = f"not saved: {e}"
