"""Viewer frame rate: server-rendered frames at 640x360 while the camera moves.

Two measurements on a trained scene (default: the demo's run):
  1. render loop: our render + JPEG encode along an orbit, full 640x360 every frame;
  2. browser: `splat view`'s server in this process, headless Chromium at 640x360 with the
     mouse orbiting the camera for --seconds; frames sent per second and their sizes
     (the resolution adapts to hold 10 frames per second while moving).

    python tools/bench_viewer.py [RUN_OR_PLY] [--backend cpu] [--seconds 10]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def render_loop(store, cams, backend, frames):
    import imageio.v3 as iio

    from splat.viewer.frames import FrameSettings, render_frame

    settings = FrameSettings(backend=backend)
    render_frame(store, cams[0], settings)  # warm-up (and build)
    times = []
    for cam in cams[:frames]:
        t0 = time.perf_counter()
        img = render_frame(store, cam, settings)
        iio.imwrite(io.BytesIO(), img, extension=".jpeg", quality=85)
        times.append(time.perf_counter() - t0)
    return times


def screenshot(store, cams, backend, out):
    """Save a screenshot of the viewer (first dataset camera, full-resolution frame)."""
    import imageio.v3 as iio

    from browser import browser, screenshot as grab
    from splat.viewer import Viewer

    viewer = Viewer(store, cams[:1], port=0, backend=backend)
    try:
        with browser() as b:
            page = b.new_page(viewport={"width": 1280, "height": 720})
            page.goto(viewer.url)
            t_end = time.monotonic() + 60
            while time.monotonic() < t_end and not any(l.last and l.last.full for l in viewer.loops.values()):
                time.sleep(0.2)
            time.sleep(1.0)
            iio.imwrite(out, grab(page), **({"quality": 90} if out.endswith(".jpg") else {}))
    finally:
        viewer.close()


def browser_loop(store, cams, backend, seconds):
    from browser import browser
    from splat.viewer import Viewer

    viewer = Viewer(store, cams[:1], port=0, backend=backend)
    sizes, stamps, parts = [], [], []
    try:
        with browser() as b:
            page = b.new_page(viewport={"width": 640, "height": 360})
            page.goto(viewer.url)
            t_end = time.monotonic() + 60
            while time.monotonic() < t_end and not any(l.last for l in viewer.loops.values()):
                time.sleep(0.2)
            loop = next(iter(viewer.loops.values()))
            seen = loop.last
            page.mouse.move(200, 180)
            page.mouse.down()
            t0 = time.monotonic()
            x = 200
            while time.monotonic() - t0 < seconds:
                x += 6 if (int(time.monotonic() - t0) // 3) % 2 == 0 else -6
                page.mouse.move(x, 180)
                time.sleep(0.02)
                if loop.last is not seen:
                    seen = loop.last
                    if not seen.full:
                        sizes.append(seen.image.shape[:2])
                        parts.append((seen.seconds, seen.send_seconds))
                        stamps.append(time.monotonic())
            page.mouse.up()
            dropped = loop.dropped
    finally:
        viewer.close()
    return sizes, stamps, dropped, statistics.median(p[0] for p in parts) if parts else float("nan")


class _FakeCamera:
    """A browser camera moved by this process at ``rate`` updates per second along ``path``."""

    def __init__(self, path):
        from splat.viewer.convert import pose_from_camera
        import viser.transforms as vtf

        self.poses = []
        for cam in path:
            pos, look, up, fov = pose_from_camera(cam)
            R = cam.viewmat[:3, :3].numpy().T
            self.poses.append((vtf.SO3.from_matrix(R).wxyz, pos, fov))
        self.wxyz, self.position, self.fov = self.poses[0]
        self.image_width, self.image_height = path[0].width, path[0].height
        self.callbacks = []

    def on_update(self, cb):
        self.callbacks.append(cb)


class _FakeScene:
    def __init__(self):
        self.sent = []

    def set_background_image(self, image, format="jpeg", jpeg_quality=85):
        import imageio.v3 as iio

        iio.imwrite(io.BytesIO(), image, extension=".jpeg", quality=jpeg_quality)  # the encode viser does
        self.sent.append((time.monotonic(), image.shape[:2]))


def server_loop(store, path, backend, seconds, rate=30.0):
    """The viewer's per-client render thread with a camera moving at ``rate`` updates/s and no
    browser on this machine's cores (as when the browser runs on another computer)."""
    from types import SimpleNamespace

    from splat.viewer import Viewer
    from splat.viewer.server import _ClientLoop

    viewer = Viewer(store, path[:1], port=0, backend=backend)
    cam, scene = _FakeCamera(path), _FakeScene()
    loop = _ClientLoop(viewer, SimpleNamespace(camera=cam, scene=scene, client_id=-1))
    loop._gone = lambda: False  # not a websocket client of the server
    try:
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < seconds:
            i += 1
            cam.wxyz, cam.position, cam.fov = cam.poses[i % len(cam.poses)]
            for cb in cam.callbacks:
                cb(cam)
            time.sleep(1.0 / rate)
    finally:
        loop.close()
        viewer.close()
    moving = [(t, hw) for t, hw in scene.sent if t - t0 > 2.0]  # after the first frames settle the scale
    fps = (len(moving) - 1) / (moving[-1][0] - moving[0][0]) if len(moving) > 1 else float("nan")
    return fps, [hw for _, hw in moving]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene", nargs="?", default="demo_out/run")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--screenshot", help="Also save a 1280x720 screenshot of the viewer here (.jpg or .png).")
    args = ap.parse_args()

    from splat.cli import _scene_and_cameras
    from splat.render.paths import camera_path

    torch.set_num_threads(torch.get_num_threads())
    store, cams = _scene_and_cameras(Path(args.scene))
    path = camera_path("orbit", cams, frames=args.frames, width=640, height=360)
    if args.screenshot:
        screenshot(store, cams, args.backend, args.screenshot)
    times = render_loop(store, path, args.backend, args.frames)
    server_fps, server_sizes = server_loop(store, path, args.backend, args.seconds)
    sizes, stamps, dropped, render_s = browser_loop(store, path, args.backend, args.seconds)
    fps_browser = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
    pixels = [h * w for h, w in sizes]
    print(f"scene: {args.scene} ({len(store)} Gaussians), backend {args.backend}, {torch.get_num_threads()} threads")
    print("| measurement | frames | frames/s | median ms | resolution |")
    print("|---|---|---|---|---|")
    med = statistics.median(times)
    print(f"| render + JPEG, 640x360 every frame | {len(times)} | {1 / med:.1f} | {1000 * med:.1f} | 640x360 |")
    if server_sizes:
        mh, mw = sorted(server_sizes)[len(server_sizes) // 2]
        print(f"| viewer render thread, camera moving at 30 updates/s, no browser on these cores | "
              f"{len(server_sizes)} | {server_fps:.1f} | - | median {mw}x{mh} |")
    if sizes:
        mh, mw = sorted(sizes)[len(sizes) // 2]
        print(f"| headless Chromium (software WebGL) on the same cores, mouse orbiting | {len(sizes)} | "
              f"{fps_browser:.1f} | {1000 * render_s:.0f} (render) | median {mw}x{mh}, "
              f"{statistics.median(pixels) / (640 * 360):.0%} of the pixels; {dropped} full frames dropped |")


if __name__ == "__main__":
    main()
