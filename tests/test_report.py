"""What a user looks at on a long job: progress lines, the run's curves and contact sheet."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from splat.progress import Progress


class _Pipe(io.StringIO):
    def isatty(self):
        return False


def test_progress_on_a_pipe_writes_whole_lines_with_an_eta():
    out = _Pipe()
    bar = Progress("sfm: SIFT features", 10, stream=out, every=0.0)
    for i in range(1, 6):
        bar.update(i)
    bar.close("done")
    lines = out.getvalue().splitlines()
    assert len(lines) == 6 and "\r" not in out.getvalue()
    assert lines[0].startswith("sfm: SIFT features [") and " 1/10 " in lines[0] and "eta " in lines[0]
    assert " 10/10 " in lines[-1] and lines[-1].endswith("done")
    bar.update(7)  # after close: nothing more
    assert len(out.getvalue().splitlines()) == 6


def test_progress_close_can_end_short_of_the_total():
    out = _Pipe()
    bar = Progress("sfm: mapping", 24, stream=out, every=100.0)
    bar.update(3)
    bar.close("20 placed", done=20)
    assert " 20/24 " in out.getvalue().splitlines()[-1]


def _fake_run(tmp_path, views=3):
    from splat.io.images import save_image

    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    rows = [{"step": s, "loss": 1 / s, "psnr": 10 + s / 100, "gaussians": 1000 + s, "elapsed": s * 0.05,
             "tile_pairs_per_pixel": 3.0 + s / 1000} for s in range(10, 1010, 10)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 10')  # a cut line
    entries = []
    for i in range(views):
        img = torch.rand(30, 40, 3)
        save_image(img, run / "eval" / f"{i:04d}_gt.png")
        save_image(img * 0.9, run / "eval" / f"{i:04d}_render.png")
        entries.append({"index": i, "name": f"v{i}.png", "psnr": 20.0 + i, "ssim": 0.9})
    (run / "eval.json").write_text(json.dumps({"psnr": 21.0, "ssim": 0.9, "views": entries}))
    return run, entries


def test_curves_and_contact_sheet_are_pictures(tmp_path):
    from PIL import Image

    from splat.train.report import SHEET_WIDTH, write_contact_sheet, write_curves

    run, views = _fake_run(tmp_path)
    curves = write_curves(run)
    with Image.open(curves) as im:
        assert im.format == "PNG" and im.width >= 800
        assert np.asarray(im.convert("L")).std() > 10  # something is drawn
    sheet = write_contact_sheet(run, views)
    with Image.open(sheet) as im:
        assert im.size == (2 * SHEET_WIDTH, 3 * (16 + 240))  # 40x30 views scaled to 320 wide, a label row each
        px = np.asarray(im.convert("RGB"), dtype=float)
    left, right = px[16:256, :SHEET_WIDTH], px[16:256, SHEET_WIDTH:]
    assert right.mean() == pytest.approx(0.9 * left.mean(), rel=0.05)  # render beside its ground truth


def test_a_run_without_metrics_draws_nothing(tmp_path):
    from splat.train.report import write_contact_sheet, write_curves

    assert write_curves(tmp_path) is None
    assert write_contact_sheet(tmp_path, [{"index": 0, "name": "a", "psnr": 1.0}]) is None
    assert not any(tmp_path.iterdir())
