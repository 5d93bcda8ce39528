"""A fresh machine: the README's commands, the installed package, native builds that were killed."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import splat
from splat.render import native

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The fenced commands at the top of the README: [demo command, test command]."""
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```\n(.+?)\n```", text)[:2]


def system_packages(command: str) -> set[str]:
    """Debian packages an ``apt-get install`` in ``command`` names."""
    found = set()
    for m in re.finditer(r"apt-get install ([^|&;)]+)", command):
        found |= {w for w in m.group(1).split() if not w.startswith("-")}
    return found


# the system libraries the demo's path needs (open3d's wheel links libusb-1.0; the scene
# generator and the mesh use open3d); the browser is for the viewer tests only
DEMO_SYSTEM_PACKAGES = {"libusb-1.0-0"}
TEST_ONLY_PACKAGES = {"chromium"}


def test_the_demo_command_installs_what_the_demo_needs():
    demo, tests = readme_commands()
    assert "splat demo" in demo and "pytest" in tests
    assert DEMO_SYSTEM_PACKAGES <= system_packages(demo)
    assert system_packages(tests) - TEST_ONLY_PACKAGES <= system_packages(demo)  # none installed only for tests


def test_the_test_command_installs_the_pinned_splat_transform():
    """The web-format tests need the reference at the version tools/splat_transform.py pins."""
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    import splat_transform

    tests = readme_commands()[1]
    assert f"@playcanvas/splat-transform@{splat_transform.PINNED}" in tests
    assert f"splat-peers/splat-transform-{splat_transform.PINNED}" in tests
    assert "SPLAT_REQUIRE_SPLAT_TRANSFORM=1" in tests


def test_the_demo_command_runs_apt_get_when_libusb_is_absent(tmp_path):
    """Run the demo command's system step on a PATH where ldconfig knows no libusb and
    apt-get records what it is asked for: it must ask for libusb-1.0-0."""
    demo = readme_commands()[0]
    system_step = demo.split("python3 -m venv")[0].rstrip("; ")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "apt.log"
    (bin_ / "ldconfig").write_text("#!/bin/sh\necho 'libc.so.6 (libc6,x86-64) => /lib/libc.so.6'\n")
    (bin_ / "apt-get").write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n")
    for f in bin_.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_}:/usr/bin:/bin"}
    subprocess.run(["bash", "-c", system_step], env=env, check=True, timeout=60)
    assert "libusb-1.0-0" in log.read_text().split()


def test_the_package_carries_the_native_sources():
    """Every source and header of cuda/ is in the installed package (a wheel without them
    silently trains on the torch backend, ~60x slower)."""
    shipped = {p.relative_to(native.CUDA_DIR).as_posix() for p in native.CUDA_DIR.rglob("*") if p.is_file()}
    assert {"cpu/project_cpu.cpp", "cpu/bin_cpu.cpp", "cpu/blend_cpu.cpp", "cpu/bindings.cpp", "cpu/train_ops.cpp", "include/splat/blend.h"} <= shipped
    if (ROOT / "cuda").is_dir():
        wanted = {p.relative_to(ROOT / "cuda").as_posix() for p in (ROOT / "cuda").rglob("*")
                  if p.is_file() and p.suffix in (".h", ".cuh", ".cpp", ".cu")}
        assert wanted <= shipped, sorted(wanted - shipped)


@pytest.mark.skipif(os.environ.get("SPLAT_REQUIRE_WHEEL") != "1", reason="CI runs the suite on an installed wheel")
def test_the_suite_runs_on_the_installed_package():
    here = Path(splat.__file__).resolve()
    assert (ROOT / "splat").resolve() not in here.parents, f"splat was imported from the checkout ({here})"
    assert "site-packages" in here.parts


def test_the_cpu_backend_renders_from_the_installed_package():
    from conftest import front_camera, random_store
    from splat.render import rasterize

    res = rasterize(random_store(50, 1), front_camera(16, 12), backend="cpu")
    assert res.color.shape == (1, 12, 16, 3)


def test_two_installs_keep_their_own_builds(tmp_path):
    import shutil

    copy = tmp_path / "native"
    shutil.copytree(native.CUDA_DIR, copy)
    files = lambda root: [root / "cpu" / "train_ops.cpp"]  # noqa: E731
    assert native._source_hash(native.CUDA_DIR, files(native.CUDA_DIR), []) != native._source_hash(copy, files(copy), [])


TINY = """
#include <torch/extension.h>
int answer() { return 42; }
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("answer", &answer); }
"""

BUILD = r"""
import sys
from pathlib import Path
from splat.render.native import build_extension
mod = build_extension("tiny", ["tiny.cpp"], ["-O0"], [], root=Path(sys.argv[1]))
print("answer", mod.answer(), flush=True)
"""


@pytest.mark.slow
def test_a_killed_build_does_not_block_the_next(tmp_path):
    """A build killed part-way (its whole process group, as a closed terminal or a scheduler
    does) leaves torch's lock file; the next build must notice and build, not wait for ever."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "tiny.cpp").write_text(TINY)
    env = {**os.environ, "SPLAT_CACHE": str(tmp_path / "cache")}
    first = subprocess.Popen([sys.executable, "-P", "-c", BUILD, str(src)], env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "cache").glob("splat_tiny_*/lock")):
        assert first.poll() is None and time.monotonic() < deadline, "the first build never took torch's lock"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert list((tmp_path / "cache").glob("splat_tiny_*/lock")), "the kill should leave torch's lock behind"
    second = subprocess.run([sys.executable, "-P", "-c", BUILD, str(src)], env=env, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "answer 42" in second.stdout
    assert "left by a build that was killed" in second.stderr


@pytest.mark.slow
def test_a_build_waits_for_another_and_says_so(tmp_path):
    import fcntl

    src = tmp_path / "src"
    src.mkdir()
    (src / "tiny.cpp").write_text(TINY)
    env = {**os.environ, "SPLAT_CACHE": str(tmp_path / "cache")}
    first = subprocess.run([sys.executable, "-P", "-c", BUILD, str(src)], env=env, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    lock = next((tmp_path / "cache").glob("splat_tiny_*.lock"))
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as another process building it would
    try:
        waiting = subprocess.Popen([sys.executable, "-P", "-c", BUILD, str(src)], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        time.sleep(5)
        assert waiting.poll() is None
    finally:
        os.close(fd)
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0 and "answer 42" in out
    assert "waiting for another process" in err and "tiny backend" in err


def test_the_viewer_builds_its_backend_before_it_serves(monkeypatch):
    """The page stays blank while a backend compiles: the viewer must build it before the
    server answers, and refuse an unknown backend before listening."""
    pytest.importorskip("viser")
    import viser

    from conftest import random_store
    from splat.errors import SplatError
    from splat.viewer import Viewer

    with pytest.raises(SplatError, match="backend 'foo' is unknown"):
        Viewer(random_store(20, 0), backend="foo", port=0)
    built_first = []
    real = viser.ViserServer

    def server(*a, **kw):
        built_first.append("cpu" in native._loaded)
        return real(*a, **kw)

    monkeypatch.setattr(viser, "ViserServer", server)
    v = Viewer(random_store(20, 0), backend="cpu", port=0)
    v.close()
    assert built_first == [True]


def test_a_taken_port_is_said_and_the_last_one_is_an_error(capsys, tmp_path):
    import socket

    from conftest import random_store, run_cli
    from splat import save_ply
    from splat.viewer.server import free_port

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        assert free_port("127.0.0.1", taken) != taken
        pytest.importorskip("viser")
        from splat.viewer import Viewer

        v = Viewer(random_store(20, 0), backend="torch", port=taken)
        v.close()
        assert f"port {taken} is taken; serving on {v.port}" in capsys.readouterr().err
    save_ply(random_store(20, 0), tmp_path / "a.ply")
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 65535))
        except OSError:
            pytest.skip("port 65535 is in use here")
        s.listen()
        code, _, err = run_cli(capsys, "view", tmp_path / "a.ply", "--port", 65535, "--seconds", 1)
    assert code == 1 and "no free port at 127.0.0.1 from 65535" in err and err.count("\n") == 1, err
