"""What makes a capture "in the wild": passers-by seen in one photo only, and an auto-exposure
camera. Used by recipes with a ``wild`` block (``wild.json``):

* ``transient_fraction`` of the training views get 1..``max_occluders`` occluders: people-sized
  boxes and cylinders standing on the ground, or floating blobs, with textures of their own,
  placed between the camera and the scene, somewhere else in every view;
* every training view gets its own exposure and white balance: a per-channel gain in
  ``gain`` (a global exposure times a white-balance factor), an offset in ±``offset`` and a
  gamma in ``gamma``, applied as ``clip(gain · c + offset)^gamma``.

Held-out views stay clean and at the reference exposure (gain 1, offset 0, gamma 1).
"""

from __future__ import annotations

import numpy as np

from ..camera import Camera

DEFAULTS = {"transient_fraction": 0.34, "max_occluders": 2, "gain": [0.6, 1.6], "white_balance": 0.1,
            "offset": 0.04, "gamma": [0.85, 1.15]}
_KINDS = ("checks", "stripes", "noise")


def settings(recipe: dict) -> dict | None:
    """The recipe's wild settings over the defaults, or None for a tame recipe."""
    spec = recipe.get("wild")
    return None if spec is None else {**DEFAULTS, **spec}


def occluders(cam: Camera, target, rng: np.random.Generator, spec: dict) -> list[dict]:
    """1..max occluder objects (recipe object dicts) between ``cam`` and ``target``."""
    eye = cam.center.numpy().astype(np.float64)
    target = np.asarray(target, np.float64)
    ground = np.array([target[0] - eye[0], target[1] - eye[1]])
    dist = float(np.linalg.norm(ground)) or 1.0
    forward, side = ground / dist, np.array([-ground[1], ground[0]]) / dist
    out = []
    for _ in range(int(rng.integers(1, spec["max_occluders"] + 1))):
        at = eye[:2] + forward * dist * rng.uniform(0.3, 0.6) + side * rng.uniform(-0.45, 0.45)
        colors = rng.uniform(0.05, 0.95, size=(2, 3)).round(3).tolist()
        texture = {"kind": _KINDS[int(rng.integers(len(_KINDS)))], "period": float(rng.uniform(0.04, 0.12)),
                   "colors": colors, "axis": [0.0, 0.0, 1.0]}
        kind = int(rng.integers(3))
        if kind == 0:  # a person as a box
            w, h = rng.uniform(0.25, 0.4), rng.uniform(0.9, 1.3)
            obj = {"shape": "box", "size": [w, w * rng.uniform(0.6, 1.0), h], "center": [at[0], at[1], h / 2],
                   "rotation_z_deg": float(rng.uniform(0, 180))}
        elif kind == 1:  # a person as a cylinder
            r, h = rng.uniform(0.12, 0.2), rng.uniform(0.9, 1.3)
            obj = {"shape": "cylinder", "radius": r, "height": h, "center": [at[0], at[1], h / 2]}
        else:  # a blob in the air (a bag, a balloon, a hand)
            r = rng.uniform(0.15, 0.3)
            obj = {"shape": "sphere", "radius": r, "center": [at[0], at[1], rng.uniform(0.4, 0.9)]}
        obj["center"] = [float(v) for v in obj["center"]]
        out.append({**obj, "texture": texture})
    return out


def exposure(rng: np.random.Generator, spec: dict) -> dict:
    """One view's colour change: {"gain": [3], "offset": [3], "gamma": float}."""
    lo, hi = spec["gain"]
    level = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    gain = np.clip(level * np.exp(rng.uniform(-spec["white_balance"], spec["white_balance"], 3)), lo, hi)
    return {"gain": gain.round(4).tolist(), "offset": rng.uniform(-spec["offset"], spec["offset"], 3).round(4).tolist(),
            "gamma": round(float(rng.uniform(*spec["gamma"])), 4)}


def apply_exposure(image: np.ndarray, change: dict) -> np.ndarray:
    """[H, W, 3] in [0, 1] through ``change`` (see ``exposure``)."""
    out = np.clip(image * np.asarray(change["gain"]) + np.asarray(change["offset"]), 0.0, 1.0)
    return out ** change["gamma"]
