"""Score a mesh against a ground-truth mesh: Chamfer distance both ways and F-score.

    python tools/eval_mesh.py MESH.ply GT.ply [--samples 200000] [--tau 0.01]

Both meshes are sampled uniformly (area-weighted). Distances are reported as fractions of
the ground truth's bounding-box diagonal; the F-score uses tau x diagonal (default 1%).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def score(mesh_path: str, gt_path: str, samples: int = 200_000, tau: float = 0.01, seed: int = 0) -> dict:
    import open3d as o3d

    from splat.errors import SplatError

    meshes = []
    for p in (mesh_path, gt_path):
        m = o3d.io.read_triangle_mesh(p)
        if len(m.triangles) == 0:
            raise SplatError(f"{p}: no triangles")
        meshes.append(m)
    pred, gt = meshes
    diag = float(np.linalg.norm(gt.get_max_bound() - gt.get_min_bound()))
    o3d.utility.random.seed(seed)
    pp = pred.sample_points_uniformly(samples)
    gp = gt.sample_points_uniformly(samples)
    d_pred = np.asarray(pp.compute_point_cloud_distance(gp)) / diag  # accuracy: predicted -> truth
    d_gt = np.asarray(gp.compute_point_cloud_distance(pp)) / diag  # completeness: truth -> predicted
    precision, recall = float((d_pred < tau).mean()), float((d_gt < tau).mean())
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "chamfer_pred_to_gt": float(d_pred.mean()), "chamfer_gt_to_pred": float(d_gt.mean()),
        "chamfer": float(0.5 * (d_pred.mean() + d_gt.mean())), "precision": precision, "recall": recall,
        "fscore": f, "tau": tau, "diagonal": diag, "samples": samples,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mesh")
    ap.add_argument("gt")
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--tau", type=float, default=0.01)
    args = ap.parse_args()
    from splat.errors import SplatError

    try:
        print(json.dumps(score(args.mesh, args.gt, args.samples, args.tau), indent=1))
    except SplatError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
