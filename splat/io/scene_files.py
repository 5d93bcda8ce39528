"""Scene files by suffix: every command that reads or writes a scene comes through here.

===================  ====  =====  ==============================================
suffix               read  write  what
===================  ====  =====  ==============================================
``.ply``             yes   yes    3DGS layout, lossless (a compressed PLY under
                                  this name is read as one)
``.compressed.ply``  yes   yes    SuperSplat's chunked 16 B/Gaussian + SH bytes
``.splat``           yes   yes    antimatter15's 32 B records, no SH
``.spz``             yes   yes    Niantic's SPZ, version 4 written, 2-4 read
``.sog``             yes   yes    PlayCanvas SOG bundle (WebP images + meta.json)
``meta.json``        yes   no     an unbundled SOG
``.ksplat``          yes   no     GaussianSplats3D's format
===================  ====  =====  ==============================================
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SplatError
from ..store import GaussianStore, num_sh_bases
from .web_columns import Dropped, checked_sh_degree

READ_FORMATS = ("ply", "compressed.ply", "splat", "spz", "sog", "meta.json", "ksplat")
WRITE_FORMATS = ("ply", "compressed.ply", "splat", "spz", "sog")
FORMATS = READ_FORMATS  # every name a --format option accepts


def scene_format(path: str | os.PathLike, fmt: str | None = None, write: bool = False) -> str:
    """``fmt`` if given, else the format named by the file's suffix (``write``: one we write)."""
    name = Path(path).name.lower()
    if fmt is None:
        if name == "meta.json":
            fmt = "meta.json"
        elif name.endswith(".compressed.ply"):
            fmt = "compressed.ply"
        else:
            fmt = Path(name).suffix.lstrip(".")
    fmt = fmt.lower().lstrip(".")
    known = WRITE_FORMATS if write else READ_FORMATS
    if fmt not in known:
        listed = ", ".join("." + f if f != "meta.json" else f for f in known)
        if fmt in READ_FORMATS:
            raise SplatError(f"{path}: scene format '{fmt}' can be read but not written (use {listed})")
        raise SplatError(f"{path}: unknown scene format '{fmt}' (use {listed})")
    return fmt


def load_scene(path: str | os.PathLike) -> GaussianStore:
    """Read a scene in any format of :data:`READ_FORMATS`, chosen by its suffix."""
    fmt = scene_format(path)
    if fmt == "ply":
        from .compressed_ply import columns_from_elements, is_compressed
        from .ply import read_elements, store_from_elements

        elements = read_elements(Path(path))
        if is_compressed(elements):  # SuperSplat's layout under a plain .ply name
            return columns_from_elements(Path(path), elements).to_store()
        return store_from_elements(Path(path), elements)
    if fmt == "compressed.ply":
        from .compressed_ply import load_compressed_ply

        return load_compressed_ply(path)
    if fmt == "splat":
        from .splat_format import load_splat

        return load_splat(path)
    if fmt == "spz":
        from .spz import load_spz

        return load_spz(path)
    if fmt == "ksplat":
        from .ksplat import load_ksplat

        return load_ksplat(path)
    from .sog import load_sog

    return load_sog(path)


def _with_degree(store: GaussianStore, sh_degree: int | None) -> GaussianStore:
    if sh_degree is None:
        return store
    sh_degree = checked_sh_degree(store, sh_degree)
    return GaussianStore(store.means, store.log_scales, store.quats, store.opacity_logits,
                         store.sh[:, : num_sh_bases(sh_degree)], dict(store.extras))


def save_scene(store: GaussianStore, path: str | os.PathLike, fmt: str | None = None,
               sh_degree: int | None = None) -> Dropped:
    """Write ``store`` atomically as ``fmt`` (default: from the suffix), SH cut to ``sh_degree``.

    Returns what the writer left out: the web formats (``.spz``, ``.compressed.ply``,
    ``.sog``) drop NaN/Inf rows and alpha below 1/255; ``.ply`` and ``.splat`` write every
    Gaussian of a valid store (and refuse an invalid one).
    """
    fmt = scene_format(path, fmt, write=True)
    if fmt == "ply":
        from .ply import save_ply

        save_ply(_with_degree(store, sh_degree), path)
        return Dropped()
    if fmt == "splat":
        from .splat_format import save_splat

        save_splat(_with_degree(store, sh_degree), path)
        return Dropped()
    if fmt == "spz":
        from .spz import save_spz

        return save_spz(store, path, sh_degree)
    if fmt == "compressed.ply":
        from .compressed_ply import save_compressed_ply

        return save_compressed_ply(store, path, sh_degree)
    from .sog import save_sog

    return save_sog(store, path, sh_degree)
