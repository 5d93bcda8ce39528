"""The ``splat`` command line. It only parses arguments and calls library functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import SplatError

# click's base error class, reached through typer's public BadParameter (typer
# vendors click in recent releases, so the class is not importable by name)
_CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_ABORT = typer.Abort

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="3D Gaussian Splatting: train, view, edit and segment scenes.",
)


def _parse_floats(text: str, n: int, name: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SplatError(f"{name}: '{text}' is not {n} comma-separated numbers") from None
    if len(vals) != n:
        raise SplatError(f"{name}: expected {n} comma-separated numbers, got {len(vals)}")
    return vals


@app.command()
def info(
    file: Path = typer.Argument(..., help="A 3DGS .ply file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
):
    """Count, SH degree, bounds, opacity and scale statistics, extra fields."""
    from .inspect import describe, format_description
    from .io.ply import load_ply

    d = describe(load_ply(file))
    typer.echo(json.dumps(d, indent=1) if as_json else format_description(d))


@app.command()
def render(
    file: Path = typer.Argument(..., help="A 3DGS .ply file."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image (.png or .jpg)."),
    camera: Optional[Path] = typer.Option(None, help="cameras.json; default: an orbit camera at the scene centre."),
    index: int = typer.Option(0, help="Which camera of --camera to use."),
    width: Optional[int] = typer.Option(None, help="Image width (default 512, or the camera's)."),
    height: Optional[int] = typer.Option(None, help="Image height (default 512, or the camera's)."),
    backend: str = typer.Option("auto", help="auto, torch, cpu or cuda."),
    sh_degree: Optional[int] = typer.Option(None, help="SH degree to use (default: all)."),
    background: str = typer.Option("0,0,0", help="Background colour R,G,B in [0, 1]."),
    mode: str = typer.Option("classic", help="classic or antialiased."),
    output: str = typer.Option("color", help="color, depth or alpha."),
):
    """Render one view of a PLY to an image."""
    from .camera import load_cameras_json
    from .io.images import save_image
    from .io.ply import load_ply
    from .render import rasterize
    from .render.views import default_cameras

    for name, v in (("--width", width), ("--height", height)):
        if v is not None and not 1 <= v <= 16384:
            raise SplatError(f"{name} {v} must be in 1..16384")
    if output not in ("color", "depth", "alpha"):
        raise SplatError(f"--output '{output}' must be color, depth or alpha")
    bg = _parse_floats(background, 3, "--background")
    store = load_ply(file)
    if camera is not None:
        cams = load_cameras_json(camera)
        if not 0 <= index < len(cams):
            raise SplatError(f"--index {index} out of range: {camera} has {len(cams)} cameras")
        cam = cams[index]
        if width or height:
            cam = cam.resized(width or cam.width, height or cam.height)
    else:
        cam = default_cameras(store, 1, width or 512, height or 512)[0]
    res = rasterize(store, cam, backend=backend, sh_degree=sh_degree, background=bg, mode=mode)
    if output == "color":
        img = res.color[0]
    elif output == "alpha":
        img = res.alpha[0]
    else:  # depth, normalised to [0, 1] over the pixels that have any
        d = res.depth[0]
        valid = res.alpha[0] > 0.5
        lo, hi = (float(d[valid].min()), float(d[valid].max())) if valid.any() else (0.0, 1.0)
        img = ((d - lo) / max(hi - lo, 1e-9)).clamp(0, 1) * valid
    save_image(img, out)
    typer.echo(f"wrote {out} ({cam.width}x{cam.height}, {len(store)} Gaussians)")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), help="Output folder."),
    views: int = typer.Option(8, help="Number of orbit views."),
    size: int = typer.Option(256, help="Image size in pixels."),
    backend: str = typer.Option("auto", help="auto, torch, cpu or cuda."),
):
    """The main job on the built-in scene: build it, save it, render an orbit."""
    from .demo import run_demo

    if views < 1 or not 16 <= size <= 4096:
        raise SplatError("--views must be >= 1 and --size in 16..4096")
    run_demo(out, views=views, size=size, backend=backend, log=typer.echo)


scene_app = typer.Typer(no_args_is_help=True, help="Synthetic scenes with exact ground truth.")
app.add_typer(scene_app, name="scene")


@scene_app.command("generate")
def scene_generate(
    recipe: str = typer.Argument(..., help="A built-in recipe (default, object, room) or a recipe .json."),
    out: Path = typer.Argument(..., help="Dataset folder to create (must not exist or be empty)."),
    size: int = typer.Option(200, help="Image width and height in pixels."),
    views: int = typer.Option(56, help="Number of cameras."),
    seed: int = typer.Option(0, help="Texture noise seed."),
):
    """Render a recipe into a dataset: images, depth, instance maps, mesh, transforms.json."""
    import time

    from .scenes import generate

    if not 8 <= size <= 4096 or not 1 <= views <= 10000:
        raise SplatError("--size must be in 8..4096 and --views in 1..10000")
    t0 = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if done == total or time.perf_counter() - last[0] > 1.0:
            last[0] = time.perf_counter()
            print(f"\rrendering views {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    path = generate(recipe, out, size=size, views=views, seed=seed, progress=progress)
    typer.echo(f"wrote {path} ({views} views, {size}x{size}) in {time.perf_counter() - t0:.1f} s")


@app.command()
def sfm(
    photos: Path = typer.Argument(..., help="Folder of photos (.jpg/.png)."),
    out: Path = typer.Argument(..., help="Dataset folder to create (COLMAP layout)."),
):
    """Photos -> camera poses with pycolmap (SIFT, matching, mapping, undistortion)."""
    from .data.sfm import run_sfm

    run_sfm(photos, out, log=lambda m: print(m, file=sys.stderr, flush=True))


@scene_app.command("list")
def scene_list():
    """The built-in recipes."""
    from .scenes import load_recipe, recipe_names

    for name in recipe_names():
        typer.echo(f"{name}: {load_recipe(name).get('description', '')}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: every user error becomes one line on stderr and a non-zero exit."""
    try:
        app(args=argv, standalone_mode=False)
    except SplatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except _ABORT:
        print("error: aborted", file=sys.stderr)
        return 130
    except _CLICK_ERROR as e:
        print(f"error: {e.format_message()}".splitlines()[0], file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
