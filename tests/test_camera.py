import json
import math

import pytest
import torch

from splat import Camera, SplatError, load_cameras_json, save_cameras_json
from splat.camera import orbit_cameras


def project(cam: Camera, p):
    pc = cam.viewmat[:3, :3] @ torch.as_tensor(p, dtype=torch.float64) + cam.viewmat[:3, 3]
    uv = cam.K @ (pc / pc[2])
    return uv[:2], pc[2]


def test_look_at_puts_target_at_principal_point_in_front():
    cam = Camera.look_at((3, -2, 1), (0.5, 0.5, 0.2), (0, 0, 1), 60, 320, 200)
    uv, z = project(cam, (0.5, 0.5, 0.2))
    assert torch.allclose(uv, torch.tensor([160.0, 100.0], dtype=torch.float64))
    assert z > 0
    assert torch.allclose(cam.center, torch.tensor([3.0, -2, 1], dtype=torch.float64))
    # world up appears above the target in the image (y down)
    uv_up, _ = project(cam, (0.5, 0.5, 1.2))
    assert uv_up[1] < 100
    # vertical field of view
    assert math.isclose(cam.K[1, 1].item(), 100 / math.tan(math.radians(30)))


def test_opengl_conversion_roundtrip_and_convention():
    cam = Camera.look_at((1, 2, 3), (0, 0, 0), (0, 0, 1), 40, 64, 48)
    c2w = cam.opengl_c2w()
    # OpenGL camera looks down its -z axis
    forward = -c2w[:3, 2]
    assert torch.allclose(forward, -torch.tensor([1.0, 2, 3], dtype=torch.float64) / math.sqrt(14))
    back = Camera.from_opengl_c2w(c2w, cam.K, 64, 48)
    assert torch.allclose(back.viewmat, cam.viewmat, atol=1e-12)
    assert torch.allclose(Camera.from_opengl_c2w(c2w[:3], cam.K, 64, 48).viewmat, cam.viewmat, atol=1e-12)


def test_resized_scales_intrinsics():
    cam = Camera.look_at((0, -3, 0), (0, 0, 0), (0, 0, 1), 50, 100, 80)
    half = cam.resized(50, 40)
    assert torch.allclose(half.K[:2], cam.K[:2] / 2)


def test_json_roundtrip(tmp_path):
    cams = orbit_cameras((0, 0, 0), 3.0, 4, width=32, height=24)
    save_cameras_json(cams, tmp_path / "c.json")
    back = load_cameras_json(tmp_path / "c.json")
    assert len(back) == 4
    for a, b in zip(cams, back):
        assert torch.equal(a.K, b.K) and torch.equal(a.viewmat, b.viewmat) and (a.width, a.height) == (b.width, b.height)
    # a bare list also works
    (tmp_path / "l.json").write_text(json.dumps([cams[0].to_dict()]))
    assert len(load_cameras_json(tmp_path / "l.json")) == 1


@pytest.mark.parametrize(
    "content, message",
    [
        ("{", "invalid JSON"),
        ("[]", "non-empty list"),
        ('{"cameras": [{"K": [[1,0,0],[0,1,0],[0,0,1]], "width": 4, "height": 4}]}', "missing 'viewmat'"),
        ('[{"K": [[1,0],[0,1]], "viewmat": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]], "width": 4, "height": 4}]', "K: shape"),
        ('[{"K": [[1,0,0],[0,1,0],[0,0,1]], "viewmat": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]], "width": 4.5, "height": 4}]', "integers"),
        ('[{"K": "x", "viewmat": 1, "width": 4, "height": 4}]', "bad value"),
    ],
)
def test_bad_camera_json(tmp_path, content, message):
    p = tmp_path / "c.json"
    p.write_text(content)
    with pytest.raises(SplatError, match=message) as e:
        load_cameras_json(p)
    assert "\n" not in str(e.value)


def test_bad_camera_arguments():
    with pytest.raises(SplatError, match="same point"):
        Camera.look_at((0, 0, 0), (0, 0, 0))
    with pytest.raises(SplatError, match="parallel"):
        Camera.look_at((0, 0, 5), (0, 0, 0), (0, 0, 1))
    with pytest.raises(SplatError, match="near"):
        Camera(torch.eye(3), torch.eye(4), 4, 4, near=0)
