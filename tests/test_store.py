import pytest
import torch

import splat
from splat import GaussianStore, SplatError
from conftest import random_store


def test_empty_store_has_all_fields():
    s = GaussianStore.empty(sh_degree=2)
    assert len(s) == 0 and s.sh_degree == 2
    s.validate()
    assert s.scales.shape == (0, 3) and s.opacities.shape == (0,) and s.rgb.shape == (0, 3)


def test_activated_views():
    s = random_store(10, 1)
    assert torch.allclose(s.scales, s.log_scales.exp())
    assert torch.allclose(s.unit_quats.norm(dim=-1), torch.ones(10))
    assert torch.allclose(s.opacities, torch.sigmoid(s.opacity_logits))
    assert torch.allclose(s.rgb, s.sh[:, 0] * 0.28209479177387814 + 0.5)


def test_from_activated_roundtrips_values():
    rgb = torch.rand(5, 3)
    s = GaussianStore.from_activated(torch.zeros(5, 3), torch.full((5, 3), 0.1), torch.tensor([[1.0, 0, 0, 0]]).repeat(5, 1),
                                     torch.full((5,), 0.3), rgb, sh_degree=3)
    assert s.sh_degree == 3
    assert torch.allclose(s.rgb, rgb, atol=1e-6)
    assert torch.allclose(s.opacities, torch.full((5,), 0.3))


def test_select_mask_indices_and_extras_travel():
    s = random_store(6, 2)
    s.extras["labels"] = torch.arange(6)
    s.extras["feat"] = torch.randn(6, 4)
    a = s.select(torch.tensor([True, False, True, False, False, True]))
    b = s.select([0, 2, 5])
    for name, t in a.fields().items():
        assert torch.equal(t, b.fields()[name]), name
    assert a.labels.tolist() == [0, 2, 5]
    assert a.extras["feat"].shape == (3, 4)
    with pytest.raises(SplatError, match="mask has shape"):
        s.select(torch.tensor([True, False]))
    with pytest.raises(SplatError, match="out of range"):
        s.select([7])


def test_concat_pads_sh_and_fills_missing_extras():
    a = random_store(3, 0)
    b = random_store(4, 2, seed=1)
    b.extras["labels"] = torch.tensor([1, 2, 3, 4])
    c = GaussianStore.concat(a, b)
    assert len(c) == 7 and c.sh_degree == 2
    assert torch.equal(c.sh[:3, 1:], torch.zeros(3, 8, 3))
    assert torch.equal(c.sh[:3, :1], a.sh)
    assert c.labels.tolist() == [-1, -1, -1, 1, 2, 3, 4]
    assert len(GaussianStore.concat(GaussianStore.empty(), a)) == 3


def test_to_moves_and_converts_floats_only():
    s = random_store(3)
    s.extras["labels"] = torch.tensor([0, 1, 2])
    d = s.to("cpu", dtype=torch.float64)
    assert d.means.dtype == torch.float64 and d.labels.dtype == torch.int64


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: setattr(s, "means", torch.zeros(4, 2)), "field means: shape"),
        (lambda s: setattr(s, "quats", torch.zeros(5, 3)), "field quats: shape"),
        (lambda s: setattr(s, "sh", torch.zeros(5, 5, 3)), "field sh: shape"),
        (lambda s: s.log_scales.__setitem__((2, 1), float("nan")), "field log_scales: 1 non-finite values \\(NaN\\), first at Gaussian 2"),
        (lambda s: s.opacity_logits.__setitem__(4, float("inf")), "field opacity_logits: 1 non-finite values \\(Inf\\)"),
        (lambda s: setattr(s, "opacity_logits", torch.zeros(5, dtype=torch.float64)), "field opacity_logits: dtype"),
        (lambda s: setattr(s, "means", torch.zeros(5, 3, dtype=torch.int64)), "field means: dtype"),
        (lambda s: s.extras.__setitem__("labels", torch.zeros(3)), "extra field labels: shape"),
        (lambda s: s.quats.__setitem__(0, 0.0), "zero-length quaternion"),
    ],
)
def test_validate_names_field_and_problem(mutate, message):
    s = random_store(5)
    mutate(s)
    with pytest.raises(SplatError, match=message):
        s.validate()


def test_public_api_names():
    for name in ("GaussianStore", "load_ply", "save_ply", "Camera", "SplatError"):
        assert hasattr(splat, name)
    assert callable(splat.render.rasterize)
