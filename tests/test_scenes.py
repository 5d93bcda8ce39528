"""The synthetic scene generator: layout, determinism, ground truth consistent with the cameras."""

import json

import numpy as np
import pytest

from splat import SplatError
from splat.cli import main
from splat.data import load_dataset
from splat.scenes import generate, recipe_names


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return generate("default", tmp_path_factory.mktemp("gen") / "default", size=96, views=10)


def test_recipes_are_found():
    assert {"default", "object", "room", "wild"} <= set(recipe_names())


def test_layout(scene):
    meta = json.loads((scene / "transforms.json").read_text())
    assert len(meta["frames"]) == 10 and meta["w"] == meta["h"] == 96
    for f in meta["frames"]:
        for key in ("file_path", "depth_file_path", "instance_file_path"):
            assert (scene / f[key]).is_file()
    assert (scene / "mesh.ply").read_bytes().startswith(b"ply\n")
    assert [o["id"] for o in meta["splat_scene"]["objects"]] == list(range(1, 7))


def test_deterministic(scene, tmp_path):
    again = generate("default", tmp_path / "again", size=96, views=10)
    for name in ("images/0003.png", "instances/0003.png", "depth/0003.npy", "mesh.ply", "transforms.json"):
        assert (scene / name).read_bytes() == (again / name).read_bytes(), name


def _mesh_vertices(path):
    data = path.read_bytes()
    header, _, body = data.partition(b"end_header\n")
    n = int(header.split(b"element vertex ")[1].split(b"\n")[0])
    dt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1"), ("id", "<i4")])
    v = np.frombuffer(body, dt, n)
    return np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64), v["id"]


def test_mesh_projects_onto_instance_and_depth_maps(scene):
    """The loader's OpenGL -> OpenCV conversion, checked with ground truth: mesh vertices
    that are visible land on pixels of their own object, at the rendered depth."""
    import imageio.v3 as iio

    ds = load_dataset(scene, normalize=False)
    pts, ids = _mesh_vertices(scene / "mesh.ply")
    checked = agree = 0
    for i, cam in enumerate(ds.cameras):
        inst = iio.imread(ds.extras["instance"][i])
        depth = np.load(ds.extras["depth"][i])
        V, K = cam.viewmat.numpy(), cam.K.numpy()
        pc = pts @ V[:3, :3].T + V[:3, 3]
        z = pc[:, 2]
        uv = pc[:, :2] / z[:, None] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
        px = np.floor(uv).astype(int)
        ok = (z > 0) & (px[:, 0] >= 0) & (px[:, 0] < cam.width) & (px[:, 1] >= 0) & (px[:, 1] < cam.height)
        d = depth[px[ok, 1], px[ok, 0]]
        visible = np.abs(d - z[ok]) < 0.02 * z[ok]  # not hidden behind something else
        checked += int(visible.sum())
        agree += int((inst[px[ok, 1], px[ok, 0]][visible] == ids[ok][visible]).sum())
    assert checked > 500
    # the rest are vertices on contact edges (a sphere resting on the ground) and at silhouettes
    assert agree / checked > 0.95, (agree, checked)


def test_refuses_a_non_empty_folder_and_unknown_recipe(scene, tmp_path):
    with pytest.raises(SplatError, match="not empty"):
        generate("default", scene, size=32, views=2)
    with pytest.raises(SplatError, match="unknown"):
        generate("no-such-recipe", tmp_path / "x", size=32, views=2)
    assert not (tmp_path / "x").exists()


def test_cli(tmp_path, capsys):
    assert main(["scene", "generate", "object", str(tmp_path / "obj"), "--size", "32", "--views", "3"]) == 0
    assert len(list((tmp_path / "obj" / "images").iterdir())) == 3
    assert main(["scene", "generate", "object", str(tmp_path / "obj"), "--size", "32"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "not empty" in err[-1]
    assert main(["scene", "generate", "object", str(tmp_path / "o2"), "--size", "2"]) == 1


def test_wild_recipe_occludes_a_third_and_keeps_held_out_views_clean(tmp_path):
    """Recipe ``wild``: about a third of the training views carry occluders that really cover
    part of the picture (the true mask), every training view has its own exposure within the
    recipe's ranges, and the held-out views are exactly the tame tabletop's."""
    import json

    import numpy as np

    from splat.data.loaders import load_transforms
    from splat.io.images import load_image

    wild = generate("wild", tmp_path / "wild", size=64, views=24)
    tame = generate("default", tmp_path / "tame", size=64, views=24)
    frames = json.loads((wild / "transforms.json").read_text())["frames"]
    train = [f for i, f in enumerate(frames) if i % 8]
    busy = [f for f in train if f["transient_coverage"] > 0]
    assert len(busy) == round(0.34 * len(train))
    for f in busy:
        mask = load_image(wild / f["transient_mask_file_path"])
        assert 0.005 < f["transient_coverage"] < 0.8 and abs((mask > 0.5).mean() - f["transient_coverage"]) < 1e-3
    for f in train:
        g = np.asarray(f["exposure"]["gain"])
        assert ((0.6 <= g) & (g <= 1.6)).all() and 0.85 <= f["exposure"]["gamma"] <= 1.15
    assert len({tuple(f["exposure"]["gain"]) for f in train}) == len(train)
    for i in range(0, 24, 8):
        assert "exposure" not in frames[i] and "transient_mask_file_path" not in frames[i]
        assert (wild / f"images/{i:04d}.png").read_bytes() == (tame / f"images/{i:04d}.png").read_bytes()
    # a busy view differs from the tame one most where the mask is
    i = next(k for k, f in enumerate(frames) if f.get("transient_coverage", 0) > 0.02)
    mask = load_image(wild / frames[i]["transient_mask_file_path"]) > 0.5
    mask = mask if mask.ndim == 2 else mask[..., 0]
    diff = np.abs(load_image(wild / f"images/{i:04d}.png") - load_image(tame / f"images/{i:04d}.png")).mean(-1)
    assert diff[mask].mean() > 2 * diff[~mask].mean()
    # the true masks are for scoring only: the loader gives training no mask
    assert "mask" not in load_transforms(wild / "transforms.json").extras


@pytest.mark.parametrize("recipe,objects,touching", [
    ("stacked", 9, [(2, 3), (3, 4), (5, 6)]),  # box on box, ball on the box, two cylinders side by side
    ("furnished", 9, [(2, 3), (7, 8)]),  # pot on the cabinet, box on a box
])
def test_segmentation_recipes_have_touching_objects(tmp_path, recipe, objects, touching):
    """The segmentation benchmarks' recipes: objects that touch, seen touching in the views."""
    import imageio.v3 as iio

    out = generate(recipe, tmp_path / recipe, size=64, views=8)
    meta = json.loads((out / "transforms.json").read_text())
    assert len(meta["splat_scene"]["objects"]) == objects
    maps = [iio.imread(out / f["instance_file_path"]) for f in meta["frames"]]
    for a, b in touching:
        adjacent = any(((m[:, :-1] == a) & (m[:, 1:] == b)).any() or ((m[:-1] == a) & (m[1:] == b)).any()
                       or ((m[:, :-1] == b) & (m[:, 1:] == a)).any() or ((m[:-1] == b) & (m[1:] == a)).any()
                       for m in maps)
        assert adjacent, (recipe, a, b)
