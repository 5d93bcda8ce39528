"""The web viewer: a viser server that renders frames for each browser with our rasterizer.

Each connected browser gets one render thread. It renders at the browser's camera,
lower resolution while the camera moves (to hold ``target_fps``), full resolution
once it stops, and drops a full-resolution frame whose camera moved while it was
rendering. A render error is shown in the GUI and the thread keeps serving.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..camera import Camera
from ..errors import SplatError
from ..render.api import available_backends, check_backend_name, resolve_backend
from ..render.views import scene_center_radius
from ..store import GaussianStore
from .convert import camera_from_pose, pose_from_camera
from .frames import MODES, FrameSettings, ResolutionPolicy, render_frame
from .splats import CLIENT_LIMIT, client_splats

MOVING_SECONDS = 0.2  # a camera update this recent means the camera is moving


@dataclass
class SentFrame:
    """The last frame sent to a browser: the camera it was rendered at and the image."""

    camera: Camera
    image: np.ndarray  # [H, W, 3] uint8
    full: bool
    seconds: float  # rendering
    send_seconds: float = 0.0  # JPEG encoding and queueing for the browser


class _ClientLoop:
    """Render thread of one browser."""

    def __init__(self, viewer: "Viewer", client):
        self.viewer, self.client = viewer, client
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.camera_stamp = 0
        self.last_move = 0.0
        self.sent_key = None
        self.last: SentFrame | None = None
        self.dropped = 0
        self.policy = ResolutionPolicy(viewer.target_fps)
        self.frame_times: list[float] = []
        client.camera.on_update(self._camera_moved)
        self.thread = threading.Thread(target=self._run, name=f"splat-view-{client.client_id}", daemon=True)
        self.thread.start()

    def _camera_moved(self, _camera) -> None:
        self.camera_stamp += 1
        self.last_move = time.monotonic()
        self.wake.set()

    def current_camera(self) -> Camera | None:
        """The browser's camera at full size (within the resolution cap), or None before it reports."""
        cam = self.client.camera
        w, h = int(cam.image_width), int(cam.image_height)
        if w <= 0 or h <= 0:
            return None  # the browser has not reported its camera yet (its first message may
            # have been handled before this loop subscribed, so the state, not a callback, decides)
        cap = self.viewer.settings.max_side
        if max(w, h) > cap:
            w, h = max(1, round(w * cap / max(w, h))), max(1, round(h * cap / max(w, h)))
        return camera_from_pose(cam.wxyz, cam.position, cam.fov, w, h)

    def _gone(self) -> bool:
        """True once the browser is no longer connected (a disconnect handled before this
        loop was registered would otherwise leave it running for ever)."""
        return self.client.client_id not in self.viewer.server.get_clients()

    def _run(self) -> None:
        while not self.stop.is_set():
            moving = time.monotonic() - self.last_move < MOVING_SECONDS
            self.wake.wait(timeout=0.05 if moving else 0.25)
            self.wake.clear()
            if self.stop.is_set() or self._gone():
                self.viewer.forget(self)
                return
            if self.viewer.client_side:
                continue
            moving = time.monotonic() - self.last_move < MOVING_SECONDS
            key = (self.camera_stamp, self.viewer.version)
            if self.sent_key == (key, True) or (moving and self.sent_key == (key, False)):
                continue  # this view is on screen already
            try:
                camera = self.current_camera()
            except Exception:  # noqa: BLE001 - a camera read during disconnect
                continue
            if camera is None:
                continue
            self._render_and_send(camera, key, moving)

    def _render_and_send(self, camera: Camera, key, moving: bool) -> None:
        scale = self.policy.scale if moving else 1.0
        cam = camera.scaled(scale) if scale < 1 else camera
        store, settings = self.viewer.snapshot()
        t0 = time.perf_counter()
        try:
            image = self.viewer.render_fn(store, cam, settings)
        except Exception as e:  # noqa: BLE001 - shown in the GUI; the server keeps serving
            self.viewer.report_error(e)
            self.sent_key = (key, True)  # do not retry the same view in a tight loop
            return
        seconds = time.perf_counter() - t0
        if moving:
            self.policy.update(seconds, scale)
        elif self.camera_stamp != key[0]:
            self.dropped += 1  # the camera moved while this slow full frame rendered
            return
        t1 = time.perf_counter()
        try:
            self.client.scene.set_background_image(image, format="jpeg", jpeg_quality=85)
        except Exception:  # noqa: BLE001 - the browser went away mid-frame
            return
        self.sent_key = (key, not moving)
        self.last = SentFrame(cam, image, not moving, seconds, time.perf_counter() - t1)
        now = time.perf_counter()
        self.frame_times = [t for t in self.frame_times if now - t < 2.0] + [now]
        self.viewer.report_frame(self)

    def close(self) -> None:
        self.stop.set()
        self.wake.set()


class Viewer:
    """A viser server showing ``store``.

    Args:
        store: the Gaussians (copied to the CPU, detached).
        cameras: optional dataset cameras: the first is the initial view; all can be shown as frusta.
        host, port: where to listen (loopback by default; a taken port moves to the next free one).
        backend: renderer backend ("auto", "cpu", "torch", "cuda").
        client_side: send splats to the browser instead of rendering frames.
        target_fps: frame rate held while the camera moves.
        client_limit: most splats sent in client-side mode.
    """

    def __init__(self, store: GaussianStore, cameras: Sequence[Camera] | None = None, host: str = "127.0.0.1",
                 port: int = 8080, backend: str = "auto", client_side: bool = False, target_fps: float = 10.0,
                 client_limit: int = CLIENT_LIMIT):
        import viser

        if len(store) == 0:
            raise SplatError("the scene has no Gaussians to show")
        check_port(port)
        self._lock = threading.Lock()
        self._store = store.detach().to("cpu").clone()
        self.cameras = list(cameras) if cameras else None
        self.settings = FrameSettings(backend=backend, sh_degree=store.sh_degree)
        self.version = 0
        self.target_fps = target_fps
        self.client_side = False
        self.client_limit = client_limit
        self.render_fn: Callable[[GaussianStore, Camera, FrameSettings], np.ndarray] = render_frame
        self.decorate: Callable[[GaussianStore], GaussianStore] = lambda s: s
        self.loops: dict[int, _ClientLoop] = {}
        self.last_error: str | None = None
        check_host(host)
        check_backend_name(backend)
        # build the native backends now: the page would otherwise stay blank while they compile
        if backend == "auto":
            available_backends()
        else:
            resolve_backend(backend, torch.device("cpu") if backend != "cuda" else torch.device("cuda"))
        free = free_port(host, int(port))
        if free != int(port):
            print(f"splat: port {port} is taken; serving on {free}", file=sys.stderr, flush=True)
        try:
            self.server = viser.ViserServer(host=host, port=free, verbose=False)
        except (OSError, OverflowError, ValueError) as e:
            raise SplatError(f"cannot listen on {host}:{free} ({getattr(e, 'strerror', None) or e})") from None
        self.host, self.port = host, self.server.get_port()
        self._splats = None
        self._frusta = []
        self._set_initial_camera()
        self._build_gui()
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)
        if client_side:
            self.set_client_side(True)

    # -- state shared with the render threads -------------------------------------------------
    def snapshot(self, decorated: bool = True) -> tuple[GaussianStore, FrameSettings]:
        """(store, settings) to render; ``decorated`` applies ``self.decorate`` (the selection highlight)."""
        with self._lock:
            store, settings = self._store, FrameSettings(**vars(self.settings))
        return (self.decorate(store) if decorated else store), settings

    def set_store(self, store: GaussianStore) -> None:
        """Show a new store (e.g. the trainer's current Gaussians); copied, detached, on the CPU."""
        copy = store.detach().to("cpu").clone()
        with self._lock:
            self._store = copy
            self.version += 1
        if self.client_side:
            self._send_splats()
        self._wake_all()

    def _changed(self) -> None:
        with self._lock:
            self.version += 1
        self._wake_all()

    def _wake_all(self) -> None:
        for loop in list(self.loops.values()):
            loop.wake.set()

    @property
    def num_clients(self) -> int:
        return len(self.loops)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- setup --------------------------------------------------------------------------------
    def _initial_view(self) -> Camera:
        if self.cameras:
            return self.cameras[0]
        from ..render.views import default_cameras

        return default_cameras(self._store, 1)[0]

    def _set_initial_camera(self) -> None:
        cam = self._initial_view()
        position, look, up, fov = pose_from_camera(cam)
        from ..render.paths import world_up

        world = world_up(self.cameras).numpy() if self.cameras else np.array([0.0, 0.0, 1.0])
        self.server.scene.set_up_direction(tuple(float(v) for v in world))
        ic = self.server.initial_camera
        ic.position = tuple(float(v) for v in position)
        ic.look_at = tuple(float(v) for v in position + look * _look_distance(self._store, position))
        ic.up = tuple(float(v) for v in up)
        ic.fov = float(fov)

    def _build_gui(self) -> None:
        gui = self.server.gui
        backends = ["auto"] + [b for b in available_backends() if b != "gsplat"]
        start = self.settings.backend if self.settings.backend in backends else "auto"
        self.gui_backend = gui.add_dropdown("Backend", tuple(backends), initial_value=start)
        self.gui_mode = gui.add_dropdown("Render mode", MODES, initial_value="RGB")
        self.gui_sh = gui.add_slider("SH degree", 0, max(self._store.sh_degree, 1), 1, self._store.sh_degree,
                                     disabled=self._store.sh_degree == 0)
        self.gui_cap = gui.add_number("Resolution cap", self.settings.max_side, min=64, max=4096, step=16)
        self.gui_bg = gui.add_rgb("Background", (0, 0, 0))
        self.gui_client = gui.add_checkbox("Client-side splats", False)
        self.gui_frusta = gui.add_checkbox("Show cameras", False, disabled=not self.cameras)
        self.gui_fps = gui.add_markdown("frame rate: -")
        self.gui_status = gui.add_markdown("")

        def settings_changed(_):
            with self._lock:
                self.settings.backend = self.gui_backend.value
                self.settings.mode = self.gui_mode.value
                self.settings.sh_degree = int(self.gui_sh.value)
                self.settings.max_side = int(self.gui_cap.value)
                self.settings.background = tuple(c / 255 for c in self.gui_bg.value)
            self.last_error = None
            self.gui_status.content = ""
            self._changed()

        for h in (self.gui_backend, self.gui_mode, self.gui_sh, self.gui_cap, self.gui_bg):
            h.on_update(settings_changed)
        self.gui_client.on_update(lambda _: self.set_client_side(bool(self.gui_client.value)))
        self.gui_frusta.on_update(lambda _: self.show_cameras(bool(self.gui_frusta.value)))

    # -- modes --------------------------------------------------------------------------------
    def set_client_side(self, on: bool) -> None:
        """Switch between server-rendered frames and splats rendered by the browser."""
        self.client_side = on
        if self.gui_client.value != on:
            self.gui_client.value = on
        if on:
            self.server.scene.set_background_image(None)
            self._send_splats()
        else:
            if self._splats is not None:
                self._splats.remove()
                self._splats = None
            for loop in list(self.loops.values()):
                loop.sent_key = None
            self.gui_status.content = ""
            self._changed()

    def _send_splats(self) -> None:
        store, _ = self.snapshot()
        arrays, note = client_splats(store, self.client_limit)
        if self._splats is None:
            self._splats = self.server.scene.add_gaussian_splats("/splats", **arrays)
        else:
            self._splats.set_gaussians(**arrays)
        self.gui_status.content = note

    def show_cameras(self, on: bool) -> None:
        """Show or hide the dataset cameras as frusta."""
        for f in self._frusta:
            f.remove()
        self._frusta = []
        if not (on and self.cameras):
            return
        import viser.transforms as vtf

        _, radius = scene_center_radius(self._store)
        for i, cam in enumerate(self.cameras):
            position, _, _, fov = pose_from_camera(cam)
            R = cam.viewmat[:3, :3].numpy().T  # camera -> world, OpenCV axes as viser expects
            self._frusta.append(self.server.scene.add_camera_frustum(
                f"/cameras/{i}", fov=fov, aspect=cam.width / cam.height, scale=0.05 * radius,
                wxyz=vtf.SO3.from_matrix(R).wxyz, position=position, color=(255, 160, 0)))

    # -- per-client ---------------------------------------------------------------------------
    def _connect(self, client) -> None:
        self.loops[client.client_id] = _ClientLoop(self, client)

    def _disconnect(self, client) -> None:
        loop = self.loops.pop(client.client_id, None)
        if loop is not None:
            loop.close()

    def forget(self, loop: _ClientLoop) -> None:
        """Drop a loop whose browser left (called by the loop itself)."""
        if self.loops.get(loop.client.client_id) is loop:
            self.loops.pop(loop.client.client_id, None)
        loop.stop.set()

    def report_error(self, e: Exception) -> None:
        msg = f"{type(e).__name__}: {e}".splitlines()[0]
        if msg != self.last_error:
            self.last_error = msg
            traceback.print_exception(e)
            self.gui_status.content = f"**render error:** {msg}"

    def report_frame(self, loop: _ClientLoop) -> None:
        f = loop.last
        fps = len(loop.frame_times) / 2.0
        self.gui_fps.content = f"frame rate: {fps:.1f}/s, last {f.image.shape[1]}x{f.image.shape[0]} in {1000 * f.seconds:.0f} ms"

    def close(self) -> None:
        for loop in list(self.loops.values()):
            loop.close()
        self.loops.clear()
        self.server.stop()


def check_port(port: int) -> None:
    if not 0 <= int(port) <= 65535:
        raise SplatError(f"port {port} is outside 0..65535")


def free_port(host: str, port: int, tries: int = 100) -> int:
    """``port`` if it can be listened on at ``host``, else the next one that can (a one-line
    error when none of ``tries`` ports up to 65535 is free). Port 0 asks the system for one."""
    import socket

    if port == 0:
        return 0
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for p in range(port, min(port + tries, 65536)):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, p))
                return p
            except OSError:
                continue
    raise SplatError(f"no free port at {host} from {port} to {min(port + tries, 65536) - 1}; choose another --port")


def check_host(host: str) -> None:
    """One-line error for an address this machine cannot listen on. Names are resolved with
    a time limit (viser would wait on an unreachable DNS for a long time)."""
    import concurrent.futures
    import ipaddress
    import socket

    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        pool = concurrent.futures.ThreadPoolExecutor(1)
        try:
            infos = pool.submit(socket.getaddrinfo, host, None, type=socket.SOCK_STREAM).result(timeout=3)
        except concurrent.futures.TimeoutError:
            raise SplatError(f"host '{host}': name lookup timed out") from None
        except OSError:
            raise SplatError(f"host '{host}': not an address or a name this machine can resolve") from None
        finally:
            pool.shutdown(wait=False)
        addresses = [info[4][0] for info in infos]
    for addr in addresses[:1]:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((addr, 0))
            except OSError as e:
                raise SplatError(f"host '{host}': cannot listen there ({e.strerror})") from None


def _look_distance(store: GaussianStore, position: np.ndarray) -> float:
    center, _ = scene_center_radius(store)
    return max(float(np.linalg.norm(center.numpy() - position)), 1e-3)
