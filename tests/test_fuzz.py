"""Property-based fuzzing of every parser a user feeds (bounded examples for CI; the long
atheris runs are tools/fuzz/run_atheris.py). Each mutated input must parse or raise our
one-line SplatError: never another exception, a hang or a huge allocation."""

import base64
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "fuzz"))
from mutate import KINDS, mutate  # noqa: E402
from targets import TARGETS, seeds_cached  # noqa: E402

from splat.errors import SplatError  # noqa: E402

SCRATCH = Path(tempfile.mkdtemp(prefix="splat-fuzz-"))


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(data=st.data())
def test_parser_survives_mutations(name, data):
    seed = seeds_cached(SCRATCH)[name]
    draw = lambda n: data.draw(st.integers(0, max(n - 1, 0)))  # noqa: E731
    blob = mutate(seed, draw, KINDS[name])
    try:
        TARGETS[name](blob, SCRATCH)
    except SplatError as e:
        assert "\n" not in str(e)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_valid_seed_parses(name):
    TARGETS[name](seeds_cached(SCRATCH)[name], SCRATCH)


# Inputs the fuzzers found that once escaped as other exceptions; each must now be one line.
REGRESSIONS = [
    # hypothesis: transforms.json with values of the wrong type (list as focal length, "x" as
    # width, infinite size, a null frame, non-UTF-8 bytes)
    ("transforms_json", b'{"fl_x": [1], "w": 8, "h": 6, "frames": [{"file_path": "images/0000.png", "transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}'),
    ("transforms_json", b'{"fl_x": 5, "w": "x", "h": 6, "frames": [{"file_path": "images/0000.png", "transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}'),
    ("transforms_json", b'{"fl_x": 5, "w": Infinity, "h": 6, "frames": [{"file_path": "images/0000.png", "transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}'),
    ("transforms_json", b'{"frames": [null]}'),
    ("transforms_json", b'\xff{"frames": []}'),
    ("transforms_json", b'{"fl_x": 5, "w": 8, "h": 6, "frames": [{"file_path": "' + b"x" * 5000 + b'", "transform_matrix": []}]}'),
    # hypothesis: COLMAP points3D.txt with a colour of -1
    ("colmap_txt_points3D", b"1 0.0 0.0 0.0 -1 128 128 0.0\n"),
    # atheris: a PLY property line with one word; a COLMAP image name longer than a file name may be
    ("ply", base64.b64decode("cGx5CmZvcm1hdCBiaW5hcnlfbGl0dGxlX2VuZGlhbiAxLjAKZWxlbWVudCB2ZXJ0ZXggNQpwcm9wZXJ0eSBmbG9hdCB4CnByb3BlcnR5CnBybylwZXJ0eSBmbG9hdCB6CnByb3CWcnRoYXIgcmVk")),
    ("colmap_txt_images", base64.b64decode("MSAxLjAgMC4wIDAuMCAwLjAgMC4wIDAuMCA1LjAgMiAwMDAxLnBuZwoKMiAxLjAgMC4wIDAuMCAwLjAgMC4wIDAuMCA2LjAgMSAwMDAyLnBuZwoKMyAxLjAgMC4wIDAuMCAwLjAgMC4wIDAuMCA3LjAgMiAwMDAzLnBuZ///////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////Cgo=")),
]


@pytest.mark.parametrize("name,blob", REGRESSIONS)
def test_found_inputs_give_one_line(name, blob):
    with pytest.raises(SplatError) as e:
        TARGETS[name](blob, SCRATCH)
    assert "\n" not in str(e.value)


def test_forged_counts_fail_fast_without_allocating():
    """Counts far beyond the file's size are refused from the size alone."""
    import time
    import tracemalloc

    seeds = seeds_cached(SCRATCH)
    ply = seeds["ply"].replace(b"element vertex 6", b"element vertex 4000000000")
    cams = bytearray(seeds["colmap_bin_cameras"])
    cams[:8] = (2**62).to_bytes(8, "little")
    tracemalloc.start()
    t0 = time.perf_counter()
    for name, blob in (("ply", ply), ("colmap_bin_cameras", bytes(cams))):
        with pytest.raises(SplatError, match="truncated|more than the file holds"):
            TARGETS[name](blob, SCRATCH)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - t0 < 5 and peak < 50e6
