"""The ``splat`` command line. It only parses arguments and calls library functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from .errors import NothingToDo, SplatError
from .interrupts import KEPT, Interrupted, signal_name
from .interrupts import raising as interrupts_raise
from .numbers import parse_numbers

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


@app.command()
def info(
    file: Path = typer.Argument(..., help="A scene (.ply, .compressed.ply, .splat, .spz, .sog, .ksplat) or a training run folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
):
    """Count, SH degree, bounds, opacity and scale statistics, extra fields, non-finite rows."""
    from .inspect import describe, format_description

    if not file.exists():
        raise SplatError(f"{file}: no such file")
    d = describe(_scene_and_cameras(file, check=False)[0])
    typer.echo(json.dumps(d, indent=1, allow_nan=False) if as_json else format_description(d))


def _scene_and_cameras(path: Path, check: bool = True):
    """(store, cameras or None) of a scene file (any format) or a training run folder. With
    ``check`` a scene with NaN or Inf is refused, naming how many Gaussians hold them."""
    from .io.scene_files import load_scene
    from .train.run import Run, scene_file_of

    cams = Run(path).cameras() if path.is_dir() else None
    path = scene_file_of(path)
    store = load_scene(path)
    bad = store.non_finite_rows()
    if check and bad.any():
        raise SplatError(f"{path}: {int(bad.sum())} of {len(store)} Gaussians hold NaN or Inf (first: row "
                         f"{int(bad.nonzero()[0, 0])}); splat edit clean drops them")
    return store, cams


@app.command()
def render(
    file: Path = typer.Argument(..., help="A scene (.ply, .compressed.ply, .splat, .spz, .sog, .ksplat) or a training run folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image (.png/.jpg) or video (.mp4/.gif)."),
    path: str = typer.Option("orbit", help="Video camera path: orbit, spiral or dataset (a run's cameras)."),
    frames: int = typer.Option(90, help="Video frames (orbit and spiral)."),
    fps: int = typer.Option(30, help="Video frames per second."),
    camera: Optional[Path] = typer.Option(None, help="cameras.json; default: an orbit camera at the scene centre."),
    index: int = typer.Option(0, help="Which camera of --camera to use."),
    width: Optional[int] = typer.Option(None, help="Image width (default 512, or the camera's)."),
    height: Optional[int] = typer.Option(None, help="Image height (default 512, or the camera's)."),
    backend: str = typer.Option("auto", help="auto, torch, cpu, cuda or gsplat."),
    sh_degree: Optional[int] = typer.Option(None, help="SH degree to use (default: all)."),
    background: str = typer.Option("0,0,0", help="Background colour R,G,B in [0, 1]."),
    mode: str = typer.Option("classic", help="classic or antialiased."),
    output: str = typer.Option("color", help="color, depth or alpha."),
):
    """Render a PLY or a run to an image, or along a camera path to a video."""
    from .camera import load_cameras_json
    from .io.images import save_image
    from .io.video import VIDEO_SUFFIXES
    from .render import rasterize
    from .render.views import default_cameras
    from .train.run import Run

    for name, v in (("--width", width), ("--height", height)):
        if v is not None and not 1 <= v <= 16384:
            raise SplatError(f"{name} {v} must be in 1..16384")
    if output not in ("color", "depth", "alpha"):
        raise SplatError(f"--output '{output}' must be color, depth or alpha")
    bg = parse_numbers(background, "--background", (3,))
    if not file.exists():
        raise SplatError(f"{file}: no such file or folder")
    store, run_cams = _scene_and_cameras(file)
    from .io.atomic import check_writable

    check_writable(out)  # before the frames are rendered
    if out.suffix.lower() in VIDEO_SUFFIXES:
        from .render.paths import camera_path
        from .render.video import render_video

        if not 1 <= fps <= 240:
            raise SplatError(f"--fps {fps} must be in 1..240")
        cams = run_cams or (load_cameras_json(camera) if camera else None)
        if cams is None:
            if path == "dataset":
                raise SplatError("--path dataset needs a run folder or --camera")
            cams = default_cameras(store, frames, width or height or 512, height or width or 512)
            if path == "spiral":
                cams = camera_path("spiral", cams, frames, width, height)
        else:
            cams = camera_path(path, cams, frames, width, height)
        render_video(store, cams, out, fps=fps, backend=backend, background=bg,
                     progress=lambda k, n: print(f"\rrendering frames {k}/{n}", end="" if k < n else "\n",
                                                 file=sys.stderr, flush=True))
        typer.echo(f"wrote {out} ({len(cams)} frames, {cams[0].width}x{cams[0].height})")
        return
    if camera is not None or run_cams is not None:
        cams = load_cameras_json(camera) if camera is not None else run_cams
        src = camera if camera is not None else Run(file).cameras_path
        if not 0 <= index < len(cams):
            raise SplatError(f"--index {index} out of range: {src} has {len(cams)} cameras")
        cam = cams[index]
        if width or height:  # one of the two keeps the camera's aspect
            w = width or max(1, round(height * cam.width / cam.height))
            h = height or max(1, round(width * cam.height / cam.width))
            cam = cam.resized(w, h)
    else:
        cam = default_cameras(store, 1, width or height or 512, height or width or 512)[0]  # one size: square
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
def view(
    scene: Path = typer.Argument(..., help="A scene (.ply, .compressed.ply, .splat, .spz, .sog, .ksplat) or a training run folder."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback unless you say otherwise)."),
    port: int = typer.Option(8080, help="Port (the next free one if taken)."),
    backend: str = typer.Option("auto", help="auto, cpu, cuda or torch."),
    client_side: bool = typer.Option(False, "--client-side", help="Send splats to the browser instead of frames."),
    seconds: Optional[float] = typer.Option(None, help="Stop after this many seconds (default: until Ctrl-C)."),
):
    """Open the scene in the web viewer (viser) and serve until interrupted. A click on an object
    selects it (highlighted); buttons delete it, keep only it, or save it."""
    import time

    from .train.run import Run
    from .viewer import Viewer
    from .viewer.select import SelectionTool

    store, cams = _scene_and_cameras(scene)
    viewer = Viewer(store, cams, host=host, port=port, backend=backend, client_side=client_side)
    SelectionTool(viewer, cams, cache=Run(scene).segments_path if scene.is_dir() else None)
    print(f"viewer: {viewer.url}  (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        end = time.monotonic() + seconds if seconds is not None else float("inf")
        while time.monotonic() < end:
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
    except Interrupted as e:
        raise Interrupted(f"viewer stopped ({signal_name(e.signum)})", e.signum) from None
    finally:
        viewer.close()


@app.command("eval")
def eval_(
    run: Path = typer.Argument(..., help="A finished training run folder."),
    backend: Optional[str] = typer.Option(None, help="Backend (default: the run's)."),
):
    """PSNR and SSIM on the held-out views: prints JSON and writes RUN/eval.json and RUN/eval/."""
    from .train import evaluate

    result = evaluate(run, backend=backend)
    typer.echo(json.dumps(result, indent=1))


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), help="Output folder (scene/ and run/ inside)."),
    backend: str = typer.Option("auto", help="auto, cpu, cuda, torch or gsplat."),
    steps: Optional[int] = typer.Option(None, help="Training steps (default: the demo's schedule, 1100)."),
    size: int = typer.Option(200, help="Scene image size in pixels."),
    views: int = typer.Option(56, help="Scene views (every 8th held out)."),
):
    """The main job: generate the default scene, train it, evaluate, write the PLY and an orbit video."""
    from .demo import run_demo

    if steps is not None and steps < 1:
        raise SplatError(f"--steps {steps} must be positive")
    if not 16 <= size <= 4096 or not 2 <= views <= 10000:
        raise SplatError("--size must be in 16..4096 and --views in 2..10000")
    run_demo(out, backend=backend, steps=steps, size=size, views=views, log=typer.echo)


@app.command()
def mesh(
    run: Path = typer.Argument(..., help="A finished training run folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output mesh (.ply or .obj)."),
    voxel: Optional[float] = typer.Option(None, help="TSDF voxel size in the dataset's input units "
                                          "(default: 1.5 pixels at the camera distance)."),
    depth: str = typer.Option("median", help="Depth to fuse: median (where the transmittance falls to 0.5) "
                              "or expected."),
    views: str = typer.Option("train", help="Cameras to fuse: train (the training views) or orbit."),
    backend: str = typer.Option("auto", help="auto, cpu, cuda or torch."),
):
    """A triangle mesh from the splats: depth maps fused in a TSDF volume (open3d)."""
    from .mesh import DEPTH_MODES, extract_mesh, mesh_cameras, save_mesh
    from .train.run import Run

    if depth not in DEPTH_MODES:
        raise SplatError(f"--depth '{depth}' is unknown (use {', '.join(DEPTH_MODES)})")
    if voxel is not None and not voxel > 0:
        raise SplatError(f"--voxel {voxel} must be positive")
    if out.suffix.lower() not in (".ply", ".obj"):
        raise SplatError(f"{out}: mesh must end in .ply or .obj")
    from .io.atomic import check_writable, refuse_inputs

    refuse_inputs(out, Run(run).inputs, "choose another --out (a mesh is not a run's file)")
    config, dataset, store = Run(run).load()
    check_writable(out)  # before the depth maps are fused
    cams = mesh_cameras(views, dataset.cameras, dataset.train)
    scale = float(np.linalg.norm(dataset.transform[:3, 0]))  # input -> normalised scale factor
    m = extract_mesh(store, cams, voxel=None if voxel is None else voxel * scale, backend=backend,
                     transform=dataset.transform, depth_mode=depth,
                     progress=lambda k, n: print(f"\rfusing depth {k}/{n}", end="" if k < n else "\n",
                                                 file=sys.stderr, flush=True))
    save_mesh(m, out)
    typer.echo(f"wrote {out} ({len(m.vertices)} vertices, {len(m.triangles)} triangles)")


from .cli_edit import edit_app  # noqa: E402
from .cli_train import register as register_train  # noqa: E402

register_train(app)

app.add_typer(edit_app, name="edit")

segment_app = typer.Typer(no_args_is_help=True, help="Segmentation: lift label masks to Gaussians, select objects by clicks.")
app.add_typer(segment_app, name="segment")


def _labelled(run: Path, out: Optional[Path], solve):
    """Run ``solve()`` -> (store, ...) and write its store to ``out`` or, by default, over
    RUN/scene.ply under the file's update lock (the labels are a read-modify-write of it).
    Returns (target, what solve returned)."""
    from .io.atomic import locked, refuse_inputs
    from .io.scene_files import save_scene
    from .train.run import Run

    layout = Run(run)
    target = out if out is not None else layout.scene_path
    if out is not None:
        refuse_inputs(out, [p for p in layout.inputs if p != layout.scene_path])
    with locked(target):
        result = solve()
        save_scene(result[0], target)
    return target, result


@segment_app.command("masks")
def segment_masks(
    run: Path = typer.Argument(..., help="A training run folder."),
    masks: Path = typer.Option(..., "--masks", help="Folder of label images named like the dataset's images (PNG or .npy; 0 = background)."),
    bias: float = typer.Option(0.0, help="Added to the background score of each Gaussian (negative favours objects)."),
    views: str = typer.Option("train", help="train or all: the views whose masks are lifted."),
    backend: str = typer.Option("auto", help="auto, cpu, cuda or torch."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write here instead of updating RUN/scene.ply."),
):
    """Lift per-view label masks to per-Gaussian labels (stored in the PLY's 'labels')."""
    from .segment.runs import lift_run_masks

    target, (store, n) = _labelled(run, out, lambda: lift_run_masks(run, masks, bias, views, backend))
    counts = {int(k): int(c) for k, c in zip(*store.labels.unique(return_counts=True))}
    typer.echo(json.dumps({"views": n, "labels": counts, "wrote": str(target)}))


@segment_app.command("prepare")
def segment_prepare(
    run: Path = typer.Argument(..., help="A training run folder."),
    backend: str = typer.Option("auto", help="auto, cpu, cuda or torch."),
):
    """Compute the scene's clusters for clicks (objects, their parts, groups) into RUN/segments.pt."""
    from .progress import Progress
    from .segment.runs import prepare_run
    from .train.run import Run

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        bar = bar or Progress("segment: views", total)
        bar.update(done)

    clusters = prepare_run(run, backend, progress=progress)
    if bar:
        bar.close()
    typer.echo(json.dumps({"views": clusters.views, "clusters": clusters.counts(),
                           "seconds": round(clusters.seconds, 2), "wrote": str(Run(run).segments_path)}))


@segment_app.command("click")
def segment_click(
    run: Path = typer.Argument(..., help="A training run folder."),
    view: int = typer.Option(..., "--view", help="Index of the clicked view in RUN/cameras.json."),
    pixel: list[str] = typer.Option(..., "--pixel", help="X,Y in that view's pixels; repeatable."),
    group: bool = typer.Option(False, "--group", help="Pick the whole group (objects that touch with no step between them: a stack)."),
    part: bool = typer.Option(False, "--part", help="Pick the part of the object (a piece of one colour: a box's face, a ball's stripe)."),
    method: str = typer.Option("clusters", help="clusters (the prepared clusters) or grow (region growing, slower)."),
    label: Optional[int] = typer.Option(None, "--label", help="Label for the object (default: the next free one)."),
    bias: float = typer.Option(0.0, help="Background bias of the solve (grow)."),
    backend: str = typer.Option("auto", help="auto, cpu, cuda or torch."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write here instead of updating RUN/scene.ply."),
):
    """Select the object under the clicked pixel(s) and store it as a label.

    The clusters come from RUN/segments.pt (``splat segment prepare``); when it is missing or
    the scene changed, they are prepared first."""
    from .segment.runs import click_level, click_run, parse_pixel

    pixels = [parse_pixel(p) for p in pixel]
    announce = lambda text: typer.echo(text, err=True)  # noqa: E731
    level = click_level(group, part)
    target, (store, k, n) = _labelled(run, out, lambda: click_run(run, view, pixels, label, bias, backend,
                                                                  method=method, level=level, announce=announce))
    typer.echo(json.dumps({"label": k, "selected": n, "gaussians": len(store), "wrote": str(target)}))


scene_app = typer.Typer(no_args_is_help=True, help="Synthetic scenes with exact ground truth.")
app.add_typer(scene_app, name="scene")


@scene_app.command("generate")
def scene_generate(
    recipe: str = typer.Argument(..., help="A built-in recipe (default, object, room, wild, stacked, furnished) or a recipe .json."),
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
    camera_model: str = typer.Option("SIMPLE_RADIAL", "--camera-model",
                                     help="COLMAP camera model shared by all photos: SIMPLE_PINHOLE, PINHOLE, "
                                          "SIMPLE_RADIAL, RADIAL or OPENCV."),
):
    """Photos -> camera poses with pycolmap (SIFT, matching, mapping, undistortion)."""
    from .data.sfm import run_sfm

    run_sfm(photos, out, log=lambda m: print(m, file=sys.stderr, flush=True), camera_model=camera_model)


@scene_app.command("list")
def scene_list():
    """The built-in recipes."""
    from .scenes import load_recipe, recipe_names

    for name in recipe_names():
        typer.echo(f"{name}: {load_recipe(name).get('description', '')}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: every user error becomes one line on stderr and a non-zero exit; Ctrl-C and
    SIGTERM exit 130 with one line that says what was kept."""
    try:
        with interrupts_raise():
            code = app(args=argv, standalone_mode=False)
    except NothingToDo as e:
        print(f"splat: {e}", file=sys.stderr)
        return 0
    except SplatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(("\n" if sys.stderr.isatty() else "") + str(e), file=sys.stderr)  # past a progress line
        return 130
    except _ABORT:
        print("error: aborted", file=sys.stderr)
        return 130
    except _CLICK_ERROR as e:
        print(f"error: {e.format_message()}".splitlines()[0], file=sys.stderr)
        return 2
    except OSError as e:  # a write or read the command did not foresee: still one line, naming the file
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # only where no handler could be installed (not the main thread)
        print(f"interrupted; {KEPT}", file=sys.stderr)
        return 130
    if code == 130:  # typer turned a KeyboardInterrupt it caught into this status
        print(f"interrupted; {KEPT}", file=sys.stderr)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
