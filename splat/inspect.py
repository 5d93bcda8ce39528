"""Summaries of a store: what ``splat info`` prints."""

from __future__ import annotations

import torch

from .store import GaussianStore


def _stats(t: torch.Tensor) -> dict:
    if t.numel() == 0:
        return {}
    t = t.detach().double()
    return {
        "min": float(t.min()),
        "median": float(t.median()),
        "mean": float(t.mean()),
        "max": float(t.max()),
    }


def describe(store: GaussianStore) -> dict:
    """Count, SH degree, bounds, opacity and scale statistics, extra fields. Statistics are over
    the finite Gaussians; ``non_finite`` counts the others (``splat edit clean`` drops them)."""
    bad = store.non_finite_rows()
    info = {"count": len(store), "sh_degree": store.sh_degree, "dtype": str(store.dtype).replace("torch.", ""),
            "non_finite": int(bad.sum())}
    store = store.detach().select(~bad) if bad.any() else store
    n = len(store)
    if n:
        m = store.means.detach()
        info["bounds_min"] = m.min(0).values.tolist()
        info["bounds_max"] = m.max(0).values.tolist()
        lo, hi = torch.quantile(m.double(), torch.tensor([0.01, 0.99], dtype=torch.float64), dim=0)
        info["bounds_1_99_percent"] = [lo.tolist(), hi.tolist()]
    info["opacity"] = _stats(store.opacities)
    info["max_scale"] = _stats(store.scales.max(-1).values if n else store.scales)
    info["extras"] = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape[1:])} for k, v in store.extras.items()}
    labels = store.labels
    if labels is not None and n:
        vals, counts = torch.unique(labels, return_counts=True)
        info["labels"] = {int(v): int(c) for v, c in zip(vals, counts)}
    return info


def format_description(info: dict) -> str:
    """Human-readable lines for ``describe``'s output."""
    f3 = lambda v: "(" + ", ".join(f"{x:.4g}" for x in v) + ")"  # noqa: E731
    lines = [f"Gaussians   {info['count']}", f"SH degree   {info['sh_degree']}", f"dtype       {info['dtype']}"]
    if info.get("non_finite"):
        lines.append(f"non-finite  {info['non_finite']} Gaussians with NaN or Inf (left out below; "
                     "splat edit clean drops them)")
    if "bounds_min" in info:
        lines.append(f"bounds      {f3(info['bounds_min'])} .. {f3(info['bounds_max'])}")
        lo, hi = info["bounds_1_99_percent"]
        lines.append(f"bounds 1-99% {f3(lo)} .. {f3(hi)}")
        for key, label in (("opacity", "opacity"), ("max_scale", "max scale")):
            s = info[key]
            lines.append(f"{label:<11} min {s['min']:.4g}  median {s['median']:.4g}  mean {s['mean']:.4g}  max {s['max']:.4g}")
    if info["extras"]:
        for k, v in info["extras"].items():
            lines.append(f"extra       {k} {v['dtype']} {v['shape'] or ''}".rstrip())
    if "labels" in info:
        lines.append("labels      " + ", ".join(f"{k}: {v}" for k, v in info["labels"].items()))
    return "\n".join(lines)
