"""Agreement of a native backend with the torch reference: outputs and every gradient.

float64: a native backend agrees with the float64 reference to 1e-10 (relative
to each tensor's largest magnitude) on every output and gradient: the math is
the same, only rounding differs.

float32: both float32 implementations are measured against the float64 reference
on the same parameters. The backend must be within the stated tolerance, or
no worse than twice the float32 reference's own error where float32 rounding
alone exceeds it (gradients are long sums with cancellation, and a pixel whose
transmittance lands within a rounding step of the 1e-4 stop may stop one
Gaussian earlier or later: pixels with transmittance below 1e-2 are held to
1e-2 instead). Tolerances: colour, alpha, contributions 1e-5;
depth 2e-5 (it divides by alpha, and 1 - T loses digits where alpha is small);
every gradient 1e-4.
"""

import torch

from splat.render import rasterize

FWD_TOL = {"color": 1e-5, "alpha": 1e-5, "depth": 2e-5, "contributions": 1e-5}
GRAD_TOL = 1e-4


def run(store, cams, backend, mode="classic", background=None, labels=None, seed=0, device="cpu"):
    """Render with ``backend`` on ``device`` and backpropagate a fixed random loss; every output and gradient on the CPU."""
    s = store.clone().to(device=device).requires_grad_()
    bg = torch.as_tensor(background if background is not None else [0.1, 0.2, 0.3], dtype=store.dtype)
    bg = bg.to(device).clone().requires_grad_()
    if labels is not None:
        labels = labels.to(device)
    r = rasterize(s, cams, backend=backend, background=bg, mode=mode, labels=labels)
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.device, store.dtype) for t in (r.color, r.alpha, r.depth)]
    loss = sum((t * w).sum() for t, w in zip((r.color, r.alpha, r.depth), weights))
    loss.backward()
    out = {
        "color": r.color, "alpha": r.alpha, "depth": r.depth, "contributions": r.contributions,
        "radii": r.radii, "means2d.grad": r.means2d.grad, "background.grad": bg.grad,
    }
    for name in ("means", "log_scales", "quats", "opacity_logits", "sh"):
        out[name + ".grad"] = getattr(s, name).grad
    if labels is not None:
        out["label_contributions"] = r.label_contributions
    return {k: v.detach().cpu() for k, v in out.items()}


def rel_err(a, b):
    return ((a - b).abs().max() / a.abs().max().clamp(min=1e-12)).item() if a.numel() else 0.0


IMAGES = ("color", "alpha", "depth")
# A pixel whose transmittance falls below 1e-2 can meet the 1e-4 stop; float32
# rounding may end it one Gaussian earlier or later, which moves its colour,
# alpha and depth by at most that Gaussian's weight (< 1e-2 of the largest value).
SATURATED_T = 1e-2


def assert_agree(ref, got, float64=False, ref32=None, factor=2.0):
    """ref: float64 reference; got: the backend under test; ref32: a float32 run
    whose error against ref sets the bar (``factor`` times it, or the tolerance)."""
    saturated = (1 - ref["alpha"]) <= SATURATED_T  # [C, H, W, 1]
    for name, a in ref.items():
        b = got[name]
        assert a.shape == b.shape, name
        assert not torch.isnan(b).any(), f"{name}: NaN (unwritten output?)"
        if a.dtype == torch.int32:
            assert torch.equal(a, b), name
            continue
        b = b.to(a.dtype)
        if float64:
            err = rel_err(a, b)
            assert err <= 1e-10, f"{name}: relative error {err:.2e} > 1e-10"
            continue
        c = ref32[name].to(a.dtype)
        if name in IMAGES and not float64:
            scale = a.abs().max().clamp(min=1e-12)
            stop = saturated.expand_as(a)
            flip = ((a - b).abs() / scale)[stop].max().item() if stop.any() else 0.0
            assert flip <= SATURATED_T, f"{name}: relative error {flip:.2e} at saturated pixels > {SATURATED_T}"
            a, b, c = (torch.where(stop, torch.zeros_like(t), t) for t in (a, b, c))
        err = rel_err(a, b)
        tol = FWD_TOL.get(name.replace("label_contributions", "contributions"), GRAD_TOL)
        ref_err = rel_err(a, c)
        assert err <= max(tol, factor * ref_err), (
            f"{name}: relative error {err:.2e} > {tol:g} (float32 reference: {ref_err:.2e})")


def check_float32(store, cams, mode="classic", backend="cpu", device="cpu", factor=2.0, **kw):
    """``backend`` in float32 against the float64 reference, allowed ``factor`` times the float32 reference's own error."""
    ref64 = run(store.to(dtype=torch.float64), cams, "torch", mode, **kw)
    ref32 = run(store, cams, "torch", mode, **kw)
    assert_agree(ref64, run(store, cams, backend, mode, device=device, **kw), ref32=ref32, factor=factor)


SCENES = {
    # name: (N, sh degree, spread, scale range, image size)
    "few": (5, 0, 0.6, (0.1, 0.4), (45, 37)),
    "many_small": (400, 3, 1.0, (0.01, 0.08), (64, 48)),
    "heavy_overlap": (150, 1, 0.15, (0.2, 0.5), (33, 70)),
    "odd_size": (200, 2, 1.2, (0.03, 0.2), (17, 91)),
    # long thin Gaussians at all angles: the ellipse-tile test drops most of their boxes' tiles
    "needles": (80, 1, 0.8, (0.004, 0.7), (70, 50)),
}
