"""A small real capture made at test time from the bonsai photos beside the checkout.

The photos stay where they are (``../shared/real/bonsai/photos``, or ``$SPLAT_REAL_BONSAI``);
a subset at reduced size is written into the test's temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bonsai_photos() -> Path:
    """The bonsai photos folder; skips the test when it is not on this machine."""
    where = Path(os.environ.get("SPLAT_REAL_BONSAI", ROOT.parent / "shared" / "real" / "bonsai")) / "photos"
    if not where.is_dir():
        pytest.skip(f"the real capture is not here ({where}); set SPLAT_REAL_BONSAI to its folder")
    return where


def photo_subset(out: Path, count: int = 12, step: int = 1, width: int = 400) -> list[str]:
    """Write ``count`` photos (every ``step``-th by name) at ``width`` px into ``out``; their names."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in bonsai_photos().iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    chosen = names[::step][:count]
    for name in chosen:
        with Image.open(bonsai_photos() / name) as im:
            im.convert("RGB").resize((width, round(im.height * width / im.width)), Image.LANCZOS).save(
                out / name, quality=92)
    return chosen
