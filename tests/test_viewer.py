"""The web viewer, in a real browser (headless Chromium), plus its pure parts."""

import socket

import numpy as np
import pytest
import torch

from splat.camera import Camera
from splat.viewer.convert import camera_from_pose, pose_from_camera
from splat.viewer.frames import FrameSettings, ResolutionPolicy, render_frame
from splat.viewer.splats import client_splats
from browser import browser, screenshot, wait_for
from conftest import random_store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scene():
    s = random_store(3000, 1, seed=0, scale=(0.03, 0.1))
    s.opacity_logits = s.opacity_logits.abs() + 2.0
    return s


def test_pose_round_trip():
    cam = Camera.look_at((1.0, -3.0, 2.0), (0.1, 0.2, 0.0), (0, 0, 1), 40.0, 320, 200)
    position, look, up, fov = pose_from_camera(cam)
    import viser.transforms as vtf

    R = np.stack([np.cross(-up, look), -up, look], 1)  # camera axes in world: x right, y down, z look
    back = camera_from_pose(vtf.SO3.from_matrix(R).wxyz, position, fov, 320, 200)
    assert torch.allclose(back.viewmat, cam.viewmat, atol=1e-9) and torch.allclose(back.K, cam.K, atol=1e-9)


def test_resolution_policy_holds_the_target_rate():
    p = ResolutionPolicy(target_fps=10)
    for _ in range(40):
        p.update(0.4 * p.scale ** 2, p.scale)  # full resolution takes 0.4 s
    assert abs(0.4 * p.scale ** 2 - 0.1) < 0.01
    p.update(0.001, p.scale)
    assert p.scale <= 1.0


def test_client_splats_subsample_by_opacity_and_size():
    s = scene()
    arrays, note = client_splats(s, limit=1000)
    assert arrays["centers"].shape == (1000, 3) and arrays["covariances"].shape == (1000, 3, 3)
    assert "1000 of 3000" in note
    score = (s.opacities * s.log_scales.mean(-1).exp()).numpy()
    assert arrays["opacities"].min() >= 0 and np.sort(score)[-1000] <= score.max()
    kept = set(map(tuple, arrays["centers"].round(5).tolist()))
    best = s.means[torch.argmax(torch.as_tensor(score))].numpy().round(5)
    assert tuple(best.tolist()) in kept
    cov = arrays["covariances"]
    assert np.allclose(cov, cov.transpose(0, 2, 1), atol=1e-6) and (np.linalg.eigvalsh(cov) > 0).all()


def test_render_modes():
    s = scene()
    cam = Camera.look_at((0.3, -4, 0.8), (0, 0, 0), (0, 0, 1), 45, 64, 48)
    for mode in ("RGB", "depth", "alpha"):
        img = render_frame(s, cam, FrameSettings(backend="torch", mode=mode))
        assert img.shape == (48, 64, 3) and img.dtype == np.uint8 and img.max() > 100


REGION = (slice(150, 410), slice(70, 290))  # rows, columns clear of the GUI panel, notice and axes


@pytest.mark.slow
def test_browser_shows_server_frames_client_splats_and_survives_errors():
    from splat.viewer import Viewer

    s = scene()
    cam = Camera.look_at((0.3, -4, 0.8), (0, 0, 0), (0, 0, 1), 45, 640, 480)
    viewer = Viewer(s, cameras=[cam], port=free_port(), backend="cpu")
    try:
        with browser() as b:
            page = b.new_page(viewport={"width": 640, "height": 480})
            page.goto(viewer.url)
            loop = wait_for(lambda: next((l for l in viewer.loops.values() if l.last and l.last.full), None), 60)
            assert loop is not None, "no full-resolution frame was sent"
            assert loop.last.image.shape == (480, 640, 3)
            # the browser shows our render of the dataset camera it started at
            ours = render_frame(s, cam, FrameSettings(backend="cpu")).astype(np.float64)
            other = render_frame(s, Camera.look_at((1.5, -3.7, 0.8), (0, 0, 0), (0, 0, 1), 45, 640, 480),
                                 FrameSettings(backend="cpu")).astype(np.float64)

            def diff():
                shot = screenshot(page).astype(np.float64)
                return np.abs(shot[REGION] - ours[REGION]).mean() if shot.shape == ours.shape else 255.0

            d = wait_for(lambda: (lambda v: v if v < 6 else None)(diff()), 20) or diff()
            assert d < 6, f"screen differs from our render by {d:.1f} levels on average"
            assert np.abs(other[REGION] - ours[REGION]).mean() > 4 * d  # the comparison can tell views apart

            # client-side splats: frames stop, the browser draws the splats itself on a cleared background
            viewer.set_client_side(True)

            def coloured():  # the black server frame is gone and coloured splats cover the region
                shot = screenshot(page)[REGION].astype(np.int32)
                sat = shot.max(-1) - shot.min(-1)
                return (sat > 30).mean() > 0.2 and (shot.max(-1) < 30).mean() < 0.02

            assert wait_for(coloured, 60), "client-side splats did not appear"
            assert "3000 splats" in viewer.gui_status.content
            viewer.set_client_side(False)

            # a render function that raises: the error shows in the GUI, the server keeps serving
            def broken(*_):
                raise RuntimeError("renderer exploded")

            viewer.render_fn = broken
            viewer._changed()
            assert wait_for(lambda: page.get_by_text("renderer exploded").count() > 0, 30)
            viewer.render_fn = render_frame
            page2 = b.new_page(viewport={"width": 320, "height": 240})
            page2.goto(viewer.url)
            assert wait_for(lambda: any(l.last and l.last.image.shape == (240, 320, 3) for l in viewer.loops.values()), 60)
    finally:
        viewer.close()


def _trainer(tmp_path, steps, **options):
    from splat.train import TrainConfig, Trainer
    from conftest import gaussian_dataset

    data = tmp_path / "data"
    gaussian_dataset(data, views=8, size=32, n=500)
    cfg = TrainConfig(data=str(data), steps=steps, backend="cpu", cap=2000, sh_degree=1, checkpoint_every=10_000,
                      **options)
    return Trainer.start(cfg, tmp_path / "run")


def test_mask_overlay_tints_only_the_masked_pixels():
    from splat.viewer.live import MASK_TINT, mask_overlay

    photo = torch.full((4, 5, 3), 0.2)
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[1:3, 2] = True
    out = mask_overlay(photo, mask)
    assert out.dtype == np.uint8 and out.shape == (4, 5, 3)
    assert (out[~mask.numpy()] == 51).all()
    assert np.array_equal(out[1, 2], np.round(0.5 * 51 + 0.5 * MASK_TINT).astype(np.uint8))


def test_live_training_shows_the_transient_mask_of_the_view(tmp_path):
    from splat.viewer import Viewer
    from splat.viewer.live import LiveTraining, mask_overlay

    trainer = _trainer(tmp_path, 6, transients=True, transients_start=2)
    viewer = Viewer(trainer.store(), port=free_port(), backend="cpu")
    try:
        live = LiveTraining(viewer, push_every=0.0)
        metrics = trainer.train_step()
        live.show_mask(trainer, metrics["view"])  # before transients_start: no mask, no panel
        assert live.gui_mask is None
        while trainer.step < 6:
            metrics = trainer.train_step()
        view = metrics["view"]
        live.show_mask(trainer, view)
        expected = mask_overlay(trainer.view_images(view)[0], trainer.transients.masks[view])
        assert live.gui_mask is not None and np.array_equal(live.gui_mask.image, expected)
    finally:
        viewer.close()


def test_live_training_does_not_touch_the_viewer_without_browsers(tmp_path):
    from splat.viewer import Viewer
    from splat.viewer.live import LiveTraining

    trainer = _trainer(tmp_path, 15)
    viewer = Viewer(trainer.store(), port=free_port(), backend="cpu")
    try:
        live = LiveTraining(viewer, push_every=0.0)
        trainer.train(progress=lambda m: live.after_step(trainer, m))
        assert trainer.step == 15 and viewer.version == 0  # nothing copied, nothing rendered
    finally:
        viewer.close()


@pytest.mark.slow
def test_live_training_in_the_browser_with_pause(tmp_path):
    import threading
    import time

    from splat.viewer import Viewer
    from splat.viewer.live import LiveTraining

    trainer = _trainer(tmp_path, 400, transients=True, transients_start=10)
    viewer = Viewer(trainer.store(), trainer.dataset.cameras[:1], port=free_port(), backend="cpu")
    live = LiveTraining(viewer, push_every=0.0)
    try:
        with browser() as b:
            page = b.new_page(viewport={"width": 320, "height": 240})
            page.goto(viewer.url)
            assert wait_for(lambda: viewer.num_clients and any(l.last for l in viewer.loops.values()), 60)
            live.gui_share.value = 0.0
            t = threading.Thread(target=lambda: trainer.train(progress=lambda m: live.after_step(trainer, m)))
            t.start()
            assert wait_for(lambda: trainer.step >= 20, 60)
            live.toggle()  # pause
            time.sleep(0.5)
            paused_at = trainer.step
            time.sleep(1.5)
            assert trainer.step == paused_at and "paused" in live.gui_progress.content
            version = viewer.version
            live.toggle()  # resume
            t.join(120)
            assert not t.is_alive() and trainer.step == 400 and viewer.version > version
            # the transient-mask panel came with the masks and reached the page
            assert live.gui_mask is not None
            assert wait_for(lambda: page.get_by_text("Transient mask").count() > 0, 30)
            # the browser got frames of the training scene after the last push
            assert wait_for(lambda: any(l.sent_key and l.sent_key[0][1] == viewer.version for l in viewer.loops.values()), 30)
    finally:
        viewer.close()


@pytest.mark.slow
def test_click_in_the_browser_selects_highlights_and_keeps_an_object(tmp_path):
    from splat.segment import render_labels
    from splat.viewer import Viewer
    from splat.viewer.select import SelectionTool
    from test_segment import tabletop

    store, truth = tabletop()
    cam = Camera.look_at((0.0, -4.0, 2.5), (0, 0, 0.3), (0, 0, 1), 45, 640, 480)
    viewer = Viewer(store, cameras=[cam], port=free_port(), backend="cpu")
    tool = SelectionTool(viewer)
    try:
        with browser() as b:
            page = b.new_page(viewport={"width": 640, "height": 480})
            page.goto(viewer.url)
            assert wait_for(lambda: any(l.last and l.last.full for l in viewer.loops.values()), 60)

            def browser_view_is_cam():
                for loop in viewer.loops.values():
                    c = loop.current_camera()
                    if (c is not None and (c.width, c.height) == (cam.width, cam.height)
                            and torch.allclose(c.viewmat.double(), cam.viewmat.double(), atol=1e-3)
                            and torch.allclose(c.K.double(), cam.K.double(), rtol=1e-3)):
                        return True
                return False

            # the click below is aimed with `cam`: wait until the browser reports that view (on a
            # loaded machine its first reports could still be of another canvas size)
            assert wait_for(browser_view_is_cam, 60), [
                (c.width, c.height, c.viewmat, c.K) for c in (l.current_camera() for l in viewer.loops.values()) if c
            ]
            gt = store.clone()
            gt.extras["labels"] = truth
            m = render_labels(gt, cam, backend="cpu")
            ys, xs = torch.nonzero(m == 1, as_tuple=True)  # the ball
            j = int(torch.argmin((ys - ys.float().mean()) ** 2 + (xs - xs.float().mean()) ** 2))
            page.mouse.click(int(xs[j]), int(ys[j]))
            assert wait_for(lambda: tool.mask is not None, 30), tool.gui_info.content
            picked = tool.mask
            assert (truth[picked] == 1).float().mean() > 0.95 and picked.sum() > 0.5 * (truth == 1).sum()
            # the highlight reaches the screen: around the click the page shows our render of the
            # highlighted scene, not the plain one
            from splat.viewer.select import highlighted

            y, x = int(ys[j]), int(xs[j])
            patch = (slice(y - 3, y + 4), slice(x - 3, x + 4))
            plain = render_frame(store, cam, FrameSettings(backend="cpu"))[patch].astype(float)
            lit = render_frame(highlighted(store, picked), cam, FrameSettings(backend="cpu"))[patch].astype(float)
            assert np.abs(lit - plain).mean() > 30

            def shows_highlight():
                shot = screenshot(page)[patch].astype(float)
                return np.abs(shot - lit).mean() < 0.5 * np.abs(shot - plain).mean()

            assert wait_for(shows_highlight, 60)
            tool.save(tmp_path / "ball.ply")
            from splat.io.ply import load_ply

            assert len(load_ply(tmp_path / "ball.ply")) == int(picked.sum())
            page.get_by_role("button", name="Keep only selection").click()
            assert wait_for(lambda: len(viewer.snapshot()[0]) == int(picked.sum()), 30)
    finally:
        viewer.close()


def test_the_pick_list_chooses_the_level_a_click_selects():
    from splat.segment import render_labels
    from splat.segment.clusters import LEVELS, pick_cluster
    from splat.viewer import Viewer
    from splat.viewer.select import SelectionTool
    from test_segment import cams
    from test_segment_clusters import two_colour_box

    store, truth = two_colour_box()  # a blue box with a red top: the object and its part differ there
    cam = Camera.look_at((0.0, -4.0, 2.5), (0, 0, 0.3), (0, 0, 1), 45, 160, 120)
    viewer = Viewer(store, cameras=[cam], port=free_port(), backend="cpu")
    tool = SelectionTool(viewer, cameras=cams(12, 128))
    try:
        gt = store.clone()
        gt.extras["labels"] = truth
        ys, xs = torch.nonzero(render_labels(gt, cam, backend="cpu") == 2, as_tuple=True)  # the top
        pixel = (float(xs.float().mean()) + 0.5, float(ys.float().mean()) + 0.5)
        assert tuple(tool.gui_level.options) == LEVELS and tool.gui_level.value == "object"
        picked = {}
        for level in LEVELS:
            tool.gui_level.value = level
            tool.select_at(cam, pixel)
            picked[level] = tool.mask
            assert torch.equal(tool.mask, pick_cluster(store, tool.clusters[1], cam, pixel, level, backend="cpu")), level
        assert picked["part"].sum() < picked["object"].sum()
    finally:
        viewer.close()


def test_train_view_flag_runs_without_a_browser(tmp_path, capsys):
    from conftest import gaussian_dataset, run_cli

    gaussian_dataset(tmp_path / "data", views=8, size=32, n=300)
    code, out, err = run_cli(capsys, "train", tmp_path / "data", "--out", tmp_path / "run", "--steps", 8,
                             "--backend", "cpu", "--view", "--port", free_port())
    assert code == 0, err
    assert "viewer: http://127.0.0.1:" in err and (tmp_path / "run" / "scene.ply").is_file()


def test_dataset_cameras_as_frusta_and_bad_hosts():
    from splat.camera import orbit_cameras
    from splat.errors import SplatError
    from splat.viewer import Viewer

    cams = orbit_cameras((0, 0, 0), 4.0, 5, width=64, height=48)
    viewer = Viewer(scene(), cams, port=free_port(), backend="cpu")
    try:
        viewer.show_cameras(True)
        assert len(viewer._frusta) == 5
        viewer.show_cameras(False)
        assert not viewer._frusta
    finally:
        viewer.close()
    for host, message in (("8.8.8.8", "cannot listen there"), ("999.1.1.1", "not an address|timed out")):
        with pytest.raises(SplatError, match=message):
            Viewer(scene(), host=host, port=free_port())
