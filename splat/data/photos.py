"""The photos a structure-from-motion run reads, made safe for COLMAP.

Phones and cameras store many photos sideways with an EXIF orientation tag that COLMAP does
not apply, copy the same photo twice, or leave a damaged file behind. ``stage_photos`` looks
at every photo once and makes a folder of links (copies, upright, for the rotated ones) of the
photos worth reading, and says why the others were left out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

EXIF_ORIENTATION = 0x0112


@dataclass
class StagedPhotos:
    """folder: what COLMAP reads (same file names); names: the photos kept, in name order;
    left_out: name -> why; sizes: name -> (width, height) upright; rotated: names turned upright."""

    folder: Path
    names: list[str]
    left_out: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    rotated: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line: what was kept, turned and left out (and why)."""
        dims = sorted(set(self.sizes[n] for n in self.names))
        shown = ", ".join(f"{w}x{h}" for w, h in dims[:3]) + (f" and {len(dims) - 3} more" if len(dims) > 3 else "")
        parts = [f"{len(self.names)} photos ({shown})"]
        if self.rotated:
            parts.append(f"{len(self.rotated)} turned upright from their EXIF orientation")
        if self.left_out:
            parts.append("left out: " + left_out_text(self.left_out))
        return "; ".join(parts)


def left_out_text(left_out: dict[str, str], show: int = 5) -> str:
    items = [f"{n} ({why})" for n, why in sorted(left_out.items())]
    return ", ".join(items[:show]) + (f" and {len(items) - show} more" if len(items) > show else "")


def stage_photos(photos: Path, names: list[str], folder: Path) -> StagedPhotos:
    """Look at each of ``names`` in ``photos`` and fill ``folder`` (existing, empty) with the ones to read.

    A photo is left out when Pillow cannot decode it, or when its upright pixels equal an
    earlier photo's (an exact duplicate adds no view and gives COLMAP a zero baseline).
    A photo with an EXIF orientation other than 1 is written upright (same name and format,
    JPEG at quality 95); the others are linked.
    """
    from PIL import Image, ImageOps

    staged = StagedPhotos(folder, [])
    seen: dict[bytes, str] = {}
    for name in names:
        src = photos / name
        try:
            with Image.open(src) as im:
                fmt = im.format
                orientation = im.getexif().get(EXIF_ORIENTATION, 1)
                upright = ImageOps.exif_transpose(im)
                upright.load()
        except Exception as e:  # Pillow raises many types for damaged files
            staged.left_out[name] = f"unreadable: {type(e).__name__}"
            continue
        digest = hashlib.blake2b(upright.tobytes(), digest_size=16)
        digest.update(f"{upright.mode}{upright.size}".encode())
        key = digest.digest()
        if key in seen:
            staged.left_out[name] = f"same picture as {seen[key]}"
            continue
        seen[key] = name
        staged.sizes[name] = upright.size
        if orientation not in (1, None):
            options = {"quality": 95} if fmt == "JPEG" else {}
            upright.save(folder / name, format=fmt, **options)
            staged.rotated.append(name)
        else:
            try:
                os.symlink(src.resolve(), folder / name)
            except OSError:
                shutil.copyfile(src, folder / name)
        staged.names.append(name)
    return staged
