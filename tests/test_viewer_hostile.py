"""The viewer under hostile input: where it listens, what URLs serve, junk websocket
messages, many clients, clients that come and go."""

import asyncio
import http.client
import os
import threading
import time
from pathlib import Path

import pytest

from test_viewer import free_port, scene


@pytest.fixture
def viewer():
    from splat.viewer import Viewer

    v = Viewer(scene(), port=free_port(), backend="cpu")
    yield v
    v.close()


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp* shows them) listening on ``port``."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            addr, p = f[1].split(":")
            if int(p, 16) == port and f[3] == "0A":  # 0A = LISTEN
                out.append(addr)
    return out


def test_binds_loopback_only_by_default(viewer):
    addrs = _listening(viewer.port)
    if not addrs:
        pytest.skip("no /proc/net/tcp on this system")
    assert all(a in ("0100007F", "00000000000000000000000001000000") for a in addrs), addrs


def test_no_url_serves_a_file_from_disk(viewer, tmp_path, monkeypatch):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    monkeypatch.chdir(tmp_path)
    paths = ["/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd",
             "//etc/passwd", "/secret.txt", "/" + str(secret), "/%2F" + str(secret).lstrip("/"),
             "/static/../../secret.txt", "/?file=secret.txt"]
    for path in paths:
        conn = http.client.HTTPConnection("127.0.0.1", viewer.port, timeout=10)
        conn.request("GET", path)
        body = conn.getresponse().read()
        conn.close()
        assert b"TOP-SECRET-MARKER" not in body and b"root:x:" not in body, path


def _protocol():
    import viser

    return f"viser-v{viser.__version__}"


async def _recv_some(ws, seconds=1.0) -> int:
    n = 0
    try:
        while True:
            await asyncio.wait_for(ws.recv(), seconds)
            n += 1
    except (asyncio.TimeoutError, Exception):
        return n


def test_junk_websocket_messages_leave_others_served(viewer):
    import websockets

    url = f"ws://127.0.0.1:{viewer.port}"

    async def scenario():
        async with websockets.connect(url, subprotocols=[_protocol()]) as good:
            assert await _recv_some(good) >= 1
            junk_sent = 0
            for junk in (b"\x00\xff" * 10, b"\x93\x01\x02", b"\x81\xa4type\xa3bad", os.urandom(5_000_000),
                         "not binary", b"\xdf\xff\xff\xff\xff"):
                try:
                    async with websockets.connect(url, subprotocols=[_protocol()], max_size=None) as bad:
                        await bad.send(junk)
                        junk_sent += 1
                        await _recv_some(bad, 0.3)
                except Exception:  # the server may drop the junk client: that is fine
                    pass
            viewer.gui_status.content = "still here"  # a broadcast the good client must receive
            assert await _recv_some(good) >= 1
            async with websockets.connect(url, subprotocols=[_protocol()]) as late:
                assert await _recv_some(late) >= 1
            return junk_sent

    assert asyncio.run(scenario()) >= 1


CAMERA = {"type": "ViewerCameraMessage", "wxyz": [0.0, 0.0, 0.0, 1.0], "position": [0.0, 0.0, 4.0], "fov": 0.8,
          "near": 0.01, "far": 100.0, "image_height": 48, "image_width": 64, "look_at": [0.0, 0.0, 0.0],
          "up_direction": [0.0, 1.0, 0.0]}


async def _client(url):
    """A websocket client that says what a browser says first (its camera), so the server
    registers it and starts its render thread."""
    import msgspec
    import websockets

    ws = await websockets.connect(url, subprotocols=[_protocol()], max_size=None)
    await ws.send(msgspec.msgpack.encode(CAMERA))
    return ws


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_many_clients_and_200_connects_leak_nothing(viewer):
    import websockets

    url = f"ws://127.0.0.1:{viewer.port}"

    async def twenty():
        conns = [await _client(url) for _ in range(20)]
        counts = await asyncio.gather(*(_recv_some(c) for c in conns))
        assert len(viewer.loops) == 20  # each has its render thread
        assert sum(1 for loop in viewer.loops.values() if loop.last is not None) == 20  # and got a frame
        for c in conns:
            await c.close()
        return counts

    assert all(n >= 1 for n in asyncio.run(twenty()))

    async def connect_and_drop(n):
        for i in range(n):
            ws = await _client(url)
            await _recv_some(ws, 0.02 * (i % 5))  # some leave before their first frame, some during
            ws.transport.abort()  # gone mid-conversation, no close handshake

    asyncio.run(connect_and_drop(50))
    time.sleep(1.0)
    threads0, rss0 = threading.active_count(), _rss_mb()
    asyncio.run(connect_and_drop(200))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (viewer.loops or threading.active_count() > threads0 + 2):
        time.sleep(0.2)
    assert not viewer.loops, f"{len(viewer.loops)} client loops left"
    assert threading.active_count() <= threads0 + 2
    assert _rss_mb() - rss0 < 30, f"RSS grew {_rss_mb() - rss0:.1f} MB over 200 connects"
