"""``splat edit``: the editing commands. They only parse arguments and call ``splat.edit``."""

import functools
import inspect
from pathlib import Path
from typing import List, Optional

import typer

from .errors import SplatError
from .numbers import parse_numbers

edit_app = typer.Typer(no_args_is_help=True, help="Select, crop, delete, transform, recolour, clean, merge, export.")

ORDER_NOTE = "kinds are combined in the order box, sphere, frustum, label, colour, opacity, scale"

# Selection options shared by every command that takes a selection.
_SELECTION_PARAMS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
    for name, ann, default in [
        ("box", Optional[List[str]], typer.Option(None, "--box", help="cx,cy,cz,sx,sy,sz[,qw,qx,qy,qz]: centres inside the box (full side lengths, optional rotation); repeatable.")),
        ("sphere", Optional[List[str]], typer.Option(None, "--sphere", help="cx,cy,cz,r: centres within r; repeatable.")),
        ("frustum", Optional[List[str]], typer.Option(None, "--frustum", help="CAMERAS.json:INDEX (or RUN:INDEX): centres that camera sees; repeatable.")),
        ("label", Optional[List[int]], typer.Option(None, "--label", help="Gaussians with this label; repeatable.")),
        ("color", Optional[str], typer.Option(None, "--color", help="R,G,B in 0..1 or #rrggbb: DC colour within --tol.")),
        ("tol", float, typer.Option(0.1, "--tol", help="Colour distance for --color (RGB, 0..1 scale).")),
        ("opacity_below", Optional[float], typer.Option(None, "--opacity-below", help="Opacity below this value.")),
        ("scale_above", Optional[float], typer.Option(None, "--scale-above", help="Largest axis scale above this (world units).")),
        ("combine", str, typer.Option("union", "--combine", help=f"union | intersection | difference (first minus the rest; {ORDER_NOTE}).")),
        ("invert", bool, typer.Option(False, "--invert", help="Select what the options above do not.")),
    ]
]

_OUTPUT_PARAMS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
    for name, ann, default in [
        ("out", Optional[Path], typer.Option(None, "--out", "-o", help="Output scene (.ply, .compressed.ply, .splat, .spz or .sog).")),
        ("in_place", bool, typer.Option(False, "--in-place", help="Overwrite the input (atomically).")),
        ("dry_run", bool, typer.Option(False, "--dry-run", help="Print what would change; write nothing.")),
    ]
]


def _rgb(text: str) -> tuple[float, ...]:
    t = text.strip()
    if t.startswith("#"):
        if len(t) != 7:
            raise SplatError(f"--color: '{text}' is not #rrggbb")
        try:
            return tuple(int(t[i:i + 2], 16) / 255 for i in (1, 3, 5))
        except ValueError:
            raise SplatError(f"--color: '{text}' is not #rrggbb") from None
    return parse_numbers(t, "--color", (3,))


def _frustum_camera(spec: str):
    from .camera import load_cameras_json

    path, sep, index = spec.rpartition(":")
    if not sep or not index.lstrip("-").isdigit():
        raise SplatError(f"--frustum: '{spec}' is not CAMERAS.json:INDEX")
    from .train.run import Run

    p = Path(path)
    cams = load_cameras_json(Run(p).cameras_path if p.is_dir() else p)
    i = int(index)
    if not 0 <= i < len(cams):
        raise SplatError(f"--frustum: camera {i} is out of range 0..{len(cams) - 1}")
    return cams[i]


def build_selection(box=None, sphere=None, frustum=None, label=None, color=None, tol=0.1,
                    opacity_below=None, scale_above=None, combine="union", invert=False):
    """The Selection the options describe, or None when no option selects anything."""
    from . import edit

    parts = []
    for b in box or []:
        v = parse_numbers(b, "--box", (6, 10))
        parts.append(edit.Box(v[:3], v[3:6], v[6:] if len(v) == 10 else (1, 0, 0, 0)))
    for s in sphere or []:
        v = parse_numbers(s, "--sphere", (4,))
        parts.append(edit.Sphere(v[:3], v[3]))
    parts += [edit.Frustum(_frustum_camera(f)) for f in frustum or []]
    parts += [edit.Label(k) for k in label or []]
    if color is not None:
        parts.append(edit.ColorNear(_rgb(color), tol))
    if opacity_below is not None:
        parts.append(edit.OpacityBelow(opacity_below))
    if scale_above is not None:
        parts.append(edit.ScaleAbove(scale_above))
    if not parts:
        return ~edit.All() if invert else None
    sel = edit.combine(parts, combine)
    return ~sel if invert else sel


def _command(name: str, selection: bool = True, output: bool = True):
    """Register ``fn`` under ``splat edit NAME`` with the shared selection and output options
    appended; ``fn`` receives ``selection`` (a Selection or None) and ``write(store, input)``."""

    def deco(fn):
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.name not in ("selection", "write")]
        extra = (_SELECTION_PARAMS if selection else []) + (_OUTPUT_PARAMS if output else [])

        @functools.wraps(fn)
        def wrapper(**kw):
            from .io.atomic import locked

            sel_kw = {p.name: kw.pop(p.name) for p in _SELECTION_PARAMS if p.name in kw}
            out_kw = {p.name: kw.pop(p.name) for p in _OUTPUT_PARAMS if p.name in kw}
            if selection:
                kw["selection"] = build_selection(**sel_kw)
            if output:
                kw["write"] = functools.partial(_write, **out_kw)
            source = kw.get("input")
            if out_kw.get("in_place") and isinstance(source, Path) and not out_kw.get("dry_run"):
                with locked(_input_file(source)):  # read, edit and write back as one step
                    return fn(**kw)
            return fn(**kw)

        params = own + extra
        wrapper.__signature__ = sig.replace(parameters=params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return edit_app.command(name)(wrapper)

    return deco


def _load(path: Path):
    from .io.scene_files import load_scene
    from .train.run import scene_file_of

    return load_scene(scene_file_of(path))


def _input_file(path: Path) -> Path:
    from .train.run import Run

    return Run(path).scene_path if path.is_dir() else path


def _write(store, before: int, source: Optional[Path], selected: Optional[int] = None, out: Optional[Path] = None,
           in_place: bool = False, dry_run: bool = False, inputs: tuple = ()) -> None:
    """Print the summary; unless ``dry_run``, write ``store`` to --out or over the input.
    ``inputs``: further files the command read (merge), which --out must not name either."""
    from .io.atomic import refuse_inputs
    from .io.scene_files import save_scene, scene_format

    sel = f"{selected} of {before} Gaussians selected; " if selected is not None else ""
    if in_place and out is not None:
        raise SplatError("give either --out or --in-place, not both")
    if in_place and source is None:
        raise SplatError("--in-place needs a single input scene; give --out")
    if not dry_run and not in_place and out is None:
        raise SplatError("no output: give --out FILE (or --in-place to overwrite the input)")
    target = _input_file(source) if in_place else out
    if target is not None and not in_place:
        refuse_inputs(target, ([_input_file(source)] if source is not None else []) + [_input_file(p) for p in inputs],
                      "pass --in-place to overwrite it" if source is not None else "choose another --out")
    if target is not None:
        scene_format(target, write=True)
    if dry_run:
        typer.echo(f"dry run: {sel}{before} -> {len(store)} Gaussians; nothing written")
        return
    if len(store) == 0:
        raise SplatError(f"{sel}the result has no Gaussians; nothing written")
    dropped = save_scene(store, target).describe()
    typer.echo(f"{sel}{before} -> {len(store)} Gaussians; wrote {target}" + (f" ({dropped})" if dropped else ""))


def _similarity(translate, rotate, quat, scale, pivot, store=None, selection=None):
    from .edit import Similarity, euler_to_quat

    if rotate is not None and quat is not None:
        raise SplatError("give either --rotate (Euler degrees) or --quat, not both")
    rot = (1.0, 0.0, 0.0, 0.0)
    if rotate is not None:
        rot = euler_to_quat(parse_numbers(rotate, "--rotate", (3,)))
    if quat is not None:
        rot = parse_numbers(quat, "--quat", (4,))
    piv = (0.0, 0.0, 0.0)
    if pivot == "center":
        m = (selection.mask(store) if selection is not None else None)
        pts = store.means if m is None else store.means[m]
        if len(pts) == 0:
            raise SplatError("--pivot center: the selection is empty")
        piv = tuple(float(v) for v in pts.double().mean(0))
    elif pivot is not None:
        piv = parse_numbers(pivot, "--pivot", (3,))
    t = parse_numbers(translate, "--translate", (3,)) if translate is not None else (0.0, 0.0, 0.0)
    return Similarity(t, rot, scale, piv)


_XF_HELP = dict(
    translate=typer.Option(None, "--translate", help="tx,ty,tz."),
    rotate=typer.Option(None, "--rotate", help="rx,ry,rz degrees about world x, then y, then z."),
    quat=typer.Option(None, "--quat", help="Rotation as a quaternion w,x,y,z."),
    scale=typer.Option(1.0, "--scale", help="Uniform scale factor."),
    pivot=typer.Option(None, "--pivot", help="x,y,z or 'center' (of the selection): fixed point of rotation and scale; default the origin."),
)


def _count(selection, store) -> int:
    return int(selection.mask(store).sum()) if selection is not None else len(store)


def _require(selection, command: str):
    if selection is None:
        raise SplatError(f"{command}: give a selection (--box, --sphere, --frustum, --label, --color, --opacity-below, --scale-above)")
    return selection


@_command("crop")
def crop_cmd(input: Path = typer.Argument(..., help="Scene (.ply, .splat or a run folder)."), selection=None, write=None):
    """Keep only the selected Gaussians."""
    from . import edit

    store = _load(input)
    sel = _require(selection, "crop")
    write(edit.crop(store, sel), len(store), input, _count(sel, store))


@_command("delete")
def delete_cmd(input: Path = typer.Argument(..., help="Scene (.ply, .splat or a run folder)."), selection=None, write=None):
    """Remove the selected Gaussians."""
    from . import edit

    store = _load(input)
    sel = _require(selection, "delete")
    write(edit.delete(store, sel), len(store), input, _count(sel, store))


@_command("transform")
def transform_cmd(input: Path = typer.Argument(..., help="Scene (.ply, .splat or a run folder)."),
                  translate: Optional[str] = _XF_HELP["translate"], rotate: Optional[str] = _XF_HELP["rotate"],
                  quat: Optional[str] = _XF_HELP["quat"], scale: float = _XF_HELP["scale"],
                  pivot: Optional[str] = _XF_HELP["pivot"], selection=None, write=None):
    """Translate, rotate and scale the selection (everything without one); SH bands rotate too."""
    from . import edit

    store = _load(input)
    xf = _similarity(translate, rotate, quat, scale, pivot, store, selection)
    write(edit.transform(store, xf, selection), len(store), input, _count(selection, store))


@_command("color")
def color_cmd(input: Path = typer.Argument(..., help="Scene (.ply, .splat or a run folder)."),
              brightness: float = typer.Option(0.0, help="Added to R, G, B (-1..1)."),
              contrast: float = typer.Option(1.0, help="Factor around mid-grey (1 = unchanged)."),
              saturation: float = typer.Option(1.0, help="0 = grey, 1 = unchanged."),
              temperature: float = typer.Option(0.0, help="-1 cooler .. 1 warmer."),
              tint: float = typer.Option(0.0, help="-1 greener .. 1 more magenta."),
              selection=None, write=None):
    """Colour-grade the selection (everything without one)."""
    from . import edit

    store = _load(input)
    grade = edit.ColorGrade(brightness, contrast, saturation, temperature, tint)
    write(edit.color(store, grade, selection), len(store), input, _count(selection, store))


@_command("duplicate")
def duplicate_cmd(input: Path = typer.Argument(..., help="Scene (.ply, .splat or a run folder)."),
                  translate: Optional[str] = _XF_HELP["translate"], rotate: Optional[str] = _XF_HELP["rotate"],
                  quat: Optional[str] = _XF_HELP["quat"], scale: float = _XF_HELP["scale"],
                  pivot: Optional[str] = _XF_HELP["pivot"], selection=None, write=None):
    """Append a moved copy of the selection."""
    from . import edit

    store = _load(input)
    sel = _require(selection, "duplicate")
    xf = _similarity(translate, rotate, quat, scale, pivot, store, sel)
    write(edit.duplicate(store, sel, xf), len(store), input, _count(sel, store))


@_command("clean", selection=False)
def clean_cmd(input: Path = typer.Argument(..., help="Scene (.ply, .splat or a run folder)."),
              min_opacity: float = typer.Option(1 / 255, help="Drop opacity below this."),
              max_scale: Optional[float] = typer.Option(None, help="Drop Gaussians with an axis above this; default the scene's 1-99% diagonal."),
              outliers: bool = typer.Option(True, "--outliers/--no-outliers", help="Statistical outlier removal (open3d)."),
              neighbors: int = typer.Option(20, help="Neighbours for the outlier test."),
              std_ratio: float = typer.Option(3.0, help="Outlier threshold in standard deviations."),
              write=None):
    """Drop NaN/Inf, nearly transparent, huge and outlying Gaussians."""
    from . import edit

    store = _load(input)
    masks = edit.clean_masks(store, min_opacity, max_scale, outliers, neighbors, std_ratio)
    typer.echo("; ".join(f"{k.replace('_', '-')}: {int(m.sum())}" for k, m in masks.items()))
    keep = ~functools.reduce(lambda a, b: a | b, masks.values())
    write(store.detach().select(keep), len(store), input)


@_command("sh-degree", selection=False)
def sh_degree_cmd(input: Path = typer.Argument(..., help="Scene (.ply, .splat or a run folder)."),
                  degree: int = typer.Argument(..., help="Keep SH bands 0..DEGREE."), write=None):
    """Truncate the SH bands."""
    from . import edit

    store = _load(input)
    write(edit.truncate_sh(store, degree), len(store), input)


@_command("merge", selection=False)
def merge_cmd(inputs: List[str] = typer.Argument(..., help="Scenes, each optionally FILE@t=x,y,z;r=rx,ry,rz;q=w,x,y,z;s=k;p=x,y,z."),
              write=None):
    """Concatenate scenes, each with an optional transform."""
    from . import edit

    stores, xfs, paths = [], [], []
    for spec in inputs:
        path, xf = Path(spec), None
        if not path.exists() and "@" in spec:
            head, _, tail = spec.rpartition("@")
            path, xf = Path(head), edit.Similarity.parse(tail)
        stores.append(_load(path))
        xfs.append(xf)
        paths.append(path)
    merged = edit.merge(stores, xfs)
    write(merged, sum(len(s) for s in stores), None, inputs=tuple(paths))


@_command("export", selection=False, output=False)
def export_cmd(input: Path = typer.Argument(..., help="Scene (any readable format) or a run folder."),
               output: Path = typer.Argument(..., help="Output file: .ply, .compressed.ply, .splat, .spz or .sog."),
               fmt: Optional[str] = typer.Option(None, "--format", help="ply | compressed.ply | splat | spz | sog (default: from the output's suffix)."),
               sh_degree: Optional[int] = typer.Option(None, "--sh-degree", help="Keep SH bands up to this degree (0-3; default: all the scene has)."),
               drop_invalid: bool = typer.Option(True, "--drop-invalid/--keep-invalid", help="Drop NaN/Inf and opacity < 1/255 first, as viewers expect (the web formats always do).")):
    """Write a scene in another format (reads every format: this is also the import)."""
    from . import edit
    from .io.scene_files import save_scene, scene_format

    fmt = scene_format(output, fmt, write=True)
    store = _load(input)
    from .io.atomic import refuse_inputs

    refuse_inputs(output, [_input_file(input)])
    before = len(store)
    if drop_invalid:
        store = edit.clean(store, outliers=False, max_scale=float("inf"))
    if len(store) == 0:
        raise SplatError(f"{input}: no Gaussians to export (after dropping invalid ones); nothing written")
    dropped = save_scene(store, output, fmt, sh_degree)
    kept = len(store) - dropped.non_finite - dropped.transparent
    note = f"; dropped {before - kept} invalid or transparent" if before != kept else ""
    typer.echo(f"wrote {kept} Gaussians to {output} ({fmt}, {output.stat().st_size / max(kept, 1):.1f} bytes each){note}")
