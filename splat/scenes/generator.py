"""Synthetic scenes with exact ground truth, rendered by open3d's CPU ray casting.

A recipe (``scenes/NAME.json``) lists textured objects, a light, a background
and a camera rig. ``generate`` writes a dataset folder that the transforms.json
loader reads like any other:

    OUT/transforms.json      OpenGL camera-to-world poses and intrinsics (nerfstudio layout)
    OUT/images/NNNN.png      Lambertian + ambient shading of procedural textures
    OUT/depth/NNNN.npy       float32 camera-space z per pixel (0 = background)
    OUT/instances/NNNN.png   object id per pixel (0 = background, objects 1..K in recipe order)
    OUT/mesh.ply             the ground-truth mesh: vertex colours and an object_id per vertex
    OUT/points3d.ply         sparse surface points with colours (the initial points, as SfM gives)

Deterministic for a recipe, size, view count and seed.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np

from ..camera import Camera
from ..errors import SplatError
from ..io.atomic import write_bytes_atomic, write_text_atomic
from ..io.images import save_image
from ..io.ply import save_point_cloud
from . import wild
from .textures import texture_color

SHAPES = ("plane", "sphere", "box", "torus", "cylinder")
RIGS = ("hemisphere", "orbit", "inside")


# -- recipes ---------------------------------------------------------------------------
def recipe_names() -> list[str]:
    """Names of the built-in recipes (the .json files of scenes/)."""
    return sorted(p.name[:-5] for p in resources.files("splat.scenes").joinpath("recipes").iterdir() if p.name.endswith(".json"))


def load_recipe(name_or_path: str) -> dict:
    """A built-in recipe by name, or a recipe file by path."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        text = path.read_text()
    else:
        entry = resources.files("splat.scenes").joinpath("recipes", f"{name_or_path}.json")
        if not entry.is_file():
            raise SplatError(f"scene recipe '{name_or_path}' is unknown (built in: {', '.join(recipe_names())})")
        text = entry.read_text()
    try:
        recipe = json.loads(text)
    except json.JSONDecodeError as e:
        raise SplatError(f"scene recipe {name_or_path}: invalid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(recipe, dict) or not recipe.get("objects"):
        raise SplatError(f"scene recipe {name_or_path}: needs a non-empty 'objects' list")
    return recipe


def _open3d():
    """open3d, or a one-line error that says what is missing."""
    try:
        import open3d
    except ImportError as e:
        hint = " (install the system library: apt-get install libusb-1.0-0)" if "libusb" in str(e) else ""
        raise SplatError(f"open3d cannot be imported: {e}{hint}") from None
    return open3d


# -- geometry ----------------------------------------------------------------------------
def _rotation(obj: dict) -> np.ndarray:
    """[3, 3] object-to-world rotation from rotation_x_deg then rotation_z_deg."""
    ax, az = math.radians(obj.get("rotation_x_deg", 0.0)), math.radians(obj.get("rotation_z_deg", 0.0))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ rx


def _object_mesh(obj: dict):
    """(open3d legacy mesh in world coordinates, smooth shading?) for one recipe object."""
    o3d = _open3d()

    shape = obj.get("shape")
    g = o3d.geometry.TriangleMesh
    if shape == "plane":
        sx, sy = obj.get("size", [2.0, 2.0])
        m = g()
        m.vertices = o3d.utility.Vector3dVector(np.array([[-sx / 2, -sy / 2, 0], [sx / 2, -sy / 2, 0], [sx / 2, sy / 2, 0], [-sx / 2, sy / 2, 0]]))
        m.triangles = o3d.utility.Vector3iVector(np.array([[0, 1, 2], [0, 2, 3]]))
        smooth = False
    elif shape == "sphere":
        m, smooth = g.create_sphere(radius=float(obj.get("radius", 0.3)), resolution=40), True
    elif shape == "box":
        sx, sy, sz = obj.get("size", [0.5, 0.5, 0.5])
        m = g.create_box(sx, sy, sz).translate((-sx / 2, -sy / 2, -sz / 2))
        smooth = False
    elif shape == "torus":
        m = g.create_torus(torus_radius=float(obj.get("radius", 0.3)), tube_radius=float(obj.get("tube", 0.1)),
                           radial_resolution=48, tubular_resolution=24)
        smooth = True
    elif shape == "cylinder":
        m = g.create_cylinder(radius=float(obj.get("radius", 0.2)), height=float(obj.get("height", 0.5)), resolution=48, split=1)
        smooth = True
    else:
        raise SplatError(f"scene object shape '{shape}' is unknown (known: {', '.join(SHAPES)})")
    m.rotate(_rotation(obj), center=(0, 0, 0))
    m.translate(np.asarray(obj.get("center", [0, 0, 0]), dtype=np.float64))
    m.compute_vertex_normals()
    m.compute_triangle_normals()
    return m, smooth


# -- cameras -------------------------------------------------------------------------------
def rig_cameras(rig: dict, views: int, width: int, height: int) -> list[Camera]:
    """Cameras of a recipe's rig: hemisphere / orbit looking at the target, or inside looking out."""
    kind = rig.get("kind", "hemisphere")
    if kind not in RIGS:
        raise SplatError(f"camera rig '{kind}' is unknown (known: {', '.join(RIGS)})")
    target = np.asarray(rig.get("target", [0, 0, 0]), dtype=np.float64)
    radius = float(rig.get("radius", 3.0))
    lo, hi = rig.get("elevation_deg", [20, 50])
    fov = float(rig.get("fov_deg", 50))
    cams = []
    for i in range(views):
        # golden-angle azimuths with evenly spread elevations: even coverage for any count
        az = math.radians(137.50776 * i) if kind != "orbit" else 2 * math.pi * i / views
        el = math.radians(lo + (hi - lo) * (i + 0.5) / views) if kind != "orbit" else math.radians((lo + hi) / 2)
        d = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        if kind == "inside":  # near the target, looking outwards
            eye = target + radius * np.array([math.cos(az + 1.3), math.sin(az + 1.3), 0.0])
            cams.append(Camera.look_at(eye, eye + d, (0, 0, 1), fov, width, height))
        else:
            cams.append(Camera.look_at(target + radius * d, target, (0, 0, 1), fov, width, height))
    return cams


# -- rendering ---------------------------------------------------------------------------------
class _Scene:
    """The recipe's meshes in one open3d RaycastingScene, with what shading needs."""

    def __init__(self, recipe: dict, seed: int):
        o3d = _open3d()

        self.recipe, self.seed = recipe, seed
        self.raycast = o3d.t.geometry.RaycastingScene()
        self.meshes, self.smooth = [], []
        for obj in recipe["objects"]:
            m, smooth = _object_mesh(obj)
            gid = self.raycast.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(m))
            assert gid == len(self.meshes)  # ids are 0..K-1 in order: instance id = gid + 1
            self.meshes.append(m)
            self.smooth.append(smooth)
        light = recipe.get("light", {})
        L = np.asarray(light.get("direction", [0.4, -0.3, 0.85]), dtype=np.float64)
        self.light = L / np.linalg.norm(L)
        self.ambient = float(light.get("ambient", 0.35))

    def surface_color(self, k: int, points: np.ndarray, normals: np.ndarray, view_dirs: np.ndarray,
                      footprint: np.ndarray | None = None) -> np.ndarray:
        """Shaded colour [M, 3] of object k at world points with normals (turned towards the viewer);
        ``footprint`` [M] is the world size of a pixel there (the texture's band limit)."""
        obj = self.recipe["objects"][k]
        local = (points - np.asarray(obj.get("center", [0, 0, 0]))) @ _rotation(obj)  # world -> object frame
        albedo = texture_color(obj.get("texture", {"kind": "checks"}), local, self.seed + 1000 * k, footprint)
        n = np.where((np.sum(normals * view_dirs, 1) > 0)[:, None], -normals, normals)
        lambert = np.clip(n @ self.light, 0.0, 1.0)
        return albedo * (self.ambient + (1 - self.ambient) * lambert)[:, None]

    def _cast(self, cam: Camera, dx: float, dy: float):
        """Cast one ray per pixel through (x + dx, y + dy). Returns the hit record and ray data."""
        o3d = _open3d()

        W, H = cam.width, cam.height
        K = cam.K.numpy()
        R, t = cam.viewmat[:3, :3].numpy(), cam.viewmat[:3, 3].numpy()
        u, v = np.meshgrid(np.arange(W) + dx, np.arange(H) + dy)
        d_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1).reshape(-1, 3)
        d_world = d_cam @ R  # R^T d; z = 1 in camera space, so t_hit is the camera-space depth
        origin = np.broadcast_to(-R.T @ t, d_world.shape)
        rays = o3d.core.Tensor(np.concatenate([origin, d_world], 1).astype(np.float32))
        return self.raycast.cast_rays(rays), origin, d_world, v

    def _shade(self, cam: Camera, dx: float, dy: float) -> np.ndarray:
        """[H * W, 3] colour of the rays through (x + dx, y + dy) of every pixel."""
        hit, origin, d_world, v = self._cast(cam, dx, dy)
        H = cam.height
        t_hit = hit["t_hit"].numpy()
        gids = hit["geometry_ids"].numpy()
        top, bottom = (np.asarray(self.recipe.get("background", {}).get(k, [1, 1, 1]), dtype=np.float64) for k in ("top", "bottom"))
        row = (v.reshape(-1) / H)[:, None]
        image = top[None] * (1 - row) + bottom[None] * row
        hits = np.nonzero(np.isfinite(t_hit))[0]
        hits = hits[np.argsort(gids[hits], kind="stable")]  # grouped by object
        bounds = np.searchsorted(gids[hits], np.arange(len(self.meshes) + 1))
        prim, uvs, flat = hit["primitive_ids"].numpy(), hit["primitive_uvs"].numpy(), hit["primitive_normals"].numpy()
        for k, mesh in enumerate(self.meshes):
            sel = hits[bounds[k]:bounds[k + 1]]
            if len(sel) == 0:
                continue
            points = origin[sel] + t_hit[sel, None].astype(np.float64) * d_world[sel]
            if self.smooth[k]:  # interpolate vertex normals with the hit's barycentrics
                tri = np.asarray(mesh.triangles)[prim[sel]]
                vn = np.asarray(mesh.vertex_normals)
                b1, b2 = uvs[sel, 0:1].astype(np.float64), uvs[sel, 1:2].astype(np.float64)
                normals = (1 - b1 - b2) * vn[tri[:, 0]] + b1 * vn[tri[:, 1]] + b2 * vn[tri[:, 2]]
                normals /= np.linalg.norm(normals, axis=1, keepdims=True).clip(min=1e-12)
            else:
                normals = flat[sel].astype(np.float64)
            # a pixel's footprint on the surface: depth / focal, stretched at grazing angles
            # (geometric mean of the two axes, like isotropic mip-mapping)
            d = d_world[sel]
            cos = np.abs(np.sum(normals * d, 1)) / np.linalg.norm(d, axis=1)
            footprint = t_hit[sel].astype(np.float64) / float(cam.K[0, 0]) / np.sqrt(np.maximum(cos, 0.05))
            image[sel] = self.surface_color(k, points, normals, d, footprint)
        return image

    def render(self, cam: Camera, supersample: int = 2):
        """(image [H, W, 3] float, depth [H, W] float32 (0 = none), instances [H, W] uint8).

        The colour is the mean of ``supersample`` x ``supersample`` rays spread over each
        pixel, as a camera integrates light over its pixel area (one ray per pixel makes
        fine textures alias into patterns that change from view to view); depth and
        instance ids are those of the pixel centre.
        """
        W, H = cam.width, cam.height
        n = max(1, int(supersample))
        offsets = (np.arange(n) + 0.5) / n
        image = sum(self._shade(cam, dx, dy) for dy in offsets for dx in offsets) / (n * n)
        depth, instances = self.truth(cam)
        return np.clip(image, 0, 1).reshape(H, W, 3), depth, instances

    def truth(self, cam: Camera) -> tuple[np.ndarray, np.ndarray]:
        """(depth [H, W] float32, 0 = none; instance ids [H, W] uint8) at the pixel centres."""
        hit, *_ = self._cast(cam, 0.5, 0.5)
        t_hit = hit["t_hit"].numpy()
        ok = np.isfinite(t_hit)
        gids = hit["geometry_ids"].numpy().astype(np.int64)
        depth = np.where(ok, t_hit, 0.0).astype(np.float32).reshape(cam.height, cam.width)
        return depth, np.where(ok, gids + 1, 0).astype(np.uint8).reshape(cam.height, cam.width)

    def mesh_ply(self) -> bytes:
        """The ground-truth mesh as binary PLY: x y z, red green blue (texture at the vertex), object_id."""
        verts, cols, ids, faces, base = [], [], [], [], 0
        for k, m in enumerate(self.meshes):
            v = np.asarray(m.vertices)
            obj = self.recipe["objects"][k]
            local = (v - np.asarray(obj.get("center", [0, 0, 0]))) @ _rotation(obj)
            verts.append(v)
            cols.append(texture_color(obj.get("texture", {"kind": "checks"}), local, self.seed + 1000 * k))
            ids.append(np.full(len(v), k + 1))
            faces.append(np.asarray(m.triangles) + base)
            base += len(v)
        v, c, ids, f = np.concatenate(verts), np.concatenate(cols), np.concatenate(ids), np.concatenate(faces)
        vdt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("object_id", "<i4")])
        vert = np.empty(len(v), vdt)
        vert["x"], vert["y"], vert["z"] = v[:, 0], v[:, 1], v[:, 2]
        rgb = np.clip(np.round(c * 255), 0, 255).astype(np.uint8)
        vert["red"], vert["green"], vert["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        vert["object_id"] = ids
        fdt = np.dtype([("n", "u1"), ("i", "<i4", (3,))])
        face = np.empty(len(f), fdt)
        face["n"], face["i"] = 3, f
        header = (
            "ply\nformat binary_little_endian 1.0\n"
            f"element vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
            "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty int object_id\n"
            f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
        )
        return header.encode() + vert.tobytes() + face.tobytes()


def _surface_samples(cam: Camera, image: np.ndarray, depth: np.ndarray, count: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random visible surface points of one view with their pixel colours, as the
    sparse points of structure-from-motion would be: ([P, 3] world, [P, 3] colours)."""
    v, u = np.nonzero(depth > 0)
    if len(u) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    pick = rng.choice(len(u), size=min(count, len(u)), replace=False)
    v, u = v[pick], u[pick]
    K = cam.K.numpy()
    z = depth[v, u].astype(np.float64)
    p_cam = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0] * z, (v + 0.5 - K[1, 2]) / K[1, 1] * z, z], 1)
    R, t = cam.viewmat[:3, :3].numpy(), cam.viewmat[:3, 3].numpy()
    return (p_cam - t) @ R, image[v, u]


def _wild_plan(recipe: dict, cams: list[Camera], seed: int) -> dict[int, dict]:
    """Per training view of a wild recipe: its occluders (maybe none) and its exposure. Held-out
    views (every 8th, as the dataset splits) stay clean."""
    spec = wild.settings(recipe)
    if spec is None:
        return {}
    rng = np.random.default_rng(seed + 7919)
    target = recipe.get("cameras", {}).get("target", [0, 0, 0])
    train = [i for i in range(len(cams)) if i % 8]
    busy = set(rng.choice(train, int(round(spec["transient_fraction"] * len(train))), replace=False).tolist())
    plan = {}
    for i in train:
        extra = wild.occluders(cams[i], target, rng, spec) if i in busy else []
        plan[i] = {"occluders": extra, "exposure": wild.exposure(rng, spec)}
    return plan


def _render_view(scene: "_Scene", recipe: dict, seed: int, cam: Camera, plan: dict | None):
    """(image, depth, instances, clean image, transient mask or None) of one view: depth,
    instances and the clean image are the static scene's; the image has the view's occluders
    and exposure when ``plan`` gives them."""
    clean, depth, inst = scene.render(cam)
    if plan is None:
        return clean, depth, inst, clean, None
    image, transient = clean, np.zeros(depth.shape, bool)
    if plan["occluders"]:
        busy = _Scene({**recipe, "objects": recipe["objects"] + plan["occluders"]}, seed)
        image, _, seen = busy.render(cam)
        transient = seen > len(recipe["objects"])
    return wild.apply_exposure(image, plan["exposure"]), depth, inst, clean, transient


def generate(recipe_name: str, out_dir: str | os.PathLike, size: int = 200, views: int = 56, seed: int = 0,
             progress=None, points: int = 20_000) -> Path:
    """Render a recipe into a dataset folder (see the module docstring).

    Args:
        recipe_name: a built-in recipe name or a recipe .json path.
        out_dir: the folder to create; it must not exist or be empty. It appears
            complete or not at all (written beside it, then renamed).
        size: image width and height in pixels.
        views: number of cameras.
        seed: texture noise seed.
        progress: optional callable(done, total).
        points: how many surface points (with colours) to write as ``points3d.ply``,
            the initial points of training, as SfM gives for photos.
    Returns:
        The dataset folder.
    """
    out = Path(out_dir)
    if size < 8 or views < 1:
        raise SplatError(f"scene size {size} must be >= 8 and views {views} >= 1")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SplatError(f"output folder {out} already exists and is not empty")
    recipe = load_recipe(recipe_name)
    scene = _Scene(recipe, seed)
    cams = rig_cameras(recipe.get("cameras", {}), views, size, size)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise SplatError(f"{out}: cannot create the dataset folder ({e.strerror})") from None
    try:
        for sub in ("images", "depth", "instances"):
            (tmp / sub).mkdir()
        frames, cloud = [], []
        rng = np.random.default_rng(seed)
        plan = _wild_plan(recipe, cams, seed)
        if plan:
            (tmp / "transients").mkdir()
        # views render on a few threads (numpy and open3d release the GIL); results stay in order
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            renders = pool.map(lambda i: _render_view(scene, recipe, seed, cams[i], plan.get(i)), range(len(cams)))
        for i, (cam, (image, depth, inst, clean, transient)) in enumerate(zip(cams, renders)):
            cloud.append(_surface_samples(cam, clean, depth, max(1, points // len(cams)), rng))
            save_image(image, tmp / "images" / f"{i:04d}.png")
            buf = io.BytesIO()
            np.save(buf, depth)
            write_bytes_atomic(tmp / "depth" / f"{i:04d}.npy", buf.getvalue())
            save_image(inst, tmp / "instances" / f"{i:04d}.png")
            frames.append({
                "file_path": f"images/{i:04d}.png",
                "depth_file_path": f"depth/{i:04d}.npy",
                "instance_file_path": f"instances/{i:04d}.png",
                "transform_matrix": cam.opengl_c2w().tolist(),
            })
            if transient is not None:  # the truth of a wild view: for scoring, never read by training
                save_image(transient.astype(np.uint8) * 255, tmp / "transients" / f"{i:04d}.png")
                frames[-1]["transient_mask_file_path"] = f"transients/{i:04d}.png"
                frames[-1]["exposure"] = plan[i]["exposure"]
                frames[-1]["transient_coverage"] = round(float(transient.mean()), 4)
            if progress:
                progress(i + 1, len(cams))
        write_bytes_atomic(tmp / "mesh.ply", scene.mesh_ply())
        save_point_cloud(tmp / "points3d.ply", np.concatenate([p for p, _ in cloud]), np.concatenate([c for _, c in cloud]))
        K = cams[0].K
        meta = {
            "camera_model": "PINHOLE",
            "fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
            "w": size, "h": size,
            "camera_angle_x": 2 * math.atan(0.5 * size / float(K[0, 0])),
            "splat_scene": {
                "recipe": recipe_name, "seed": seed, "description": recipe.get("description", ""),
                "objects": [{"id": k + 1, "shape": o["shape"]} for k, o in enumerate(recipe["objects"])],
                **({"wild": wild.settings(recipe)} if plan else {}),
            },
            "ply_file_path": "points3d.ply",
            "frames": frames,
        }
        write_text_atomic(tmp / "transforms.json", json.dumps(meta, indent=1))
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
