#!/usr/bin/env python3
"""Do different starts reach the same solution? (issue 15, item 3: seed 004 says norm-minimizing
descent reaches minimum-norm minimizers "independently of initial conditions"; for deep nets a
claim to measure, not to assume.)

    GFSIM_BUILD=build /usr/bin/python3 bench/nm_starts.py [--model M] [--flows gd,nm]
        [--seeds 1-12] [--set key=value ...]

Runs each flow from each network seed (`network.seed`, the initial weights; the data are fixed)
and compares the solutions where they can be compared whatever the hidden units' order: the
normalized predictor on the training points, q_n = y_n f(x_n) / prod_k |W_k|_F (its minimum is the
normalized margin). Two runs reach the same solution when their q agree to 1e-4 (max over points);
the report groups the seeds so, with each group's margin (a margin of 0: the network ends unable to
separate the classes, e.g. every surviving unit's output weight of one sign)."""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "analysis"))
import gfsim_io  # noqa: E402


def seeds_of(text):
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def normalized_predictor(run):
    X = run.data_X()
    y = np.asarray(run.extra["data/y"])
    Ws = gfsim_io.layer_matrices(np.asarray(run.extra["final/theta"]), run.metadata["widths"])
    a = X.T
    for k, W in enumerate(Ws):
        a = W @ a
        if k + 1 < len(Ws):
            a = np.maximum(a, 0.0)
    scale = np.prod([np.linalg.norm(W) for W in Ws])
    return a.ravel() * y / scale if scale > 0 else np.zeros_like(y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "compare_iris_relu.toml"))
    ap.add_argument("--flows", default="gd,nm")
    ap.add_argument("--seeds", default="1-12")
    ap.add_argument("--set", action="append", default=[], help="a model override, as gfsim run --set")
    a = ap.parse_args()
    exe = os.path.join(os.environ.get("GFSIM_BUILD", os.path.join(ROOT, "build")), "gfsim")
    seeds = seeds_of(a.seeds)
    sets = [x for s in a.set for x in ("--set", s)]
    print(f"model {a.model}, seeds {a.seeds}, overrides {a.set}")
    with tempfile.TemporaryDirectory(prefix="gfsim_nm_starts_") as tmp:
        for flow in a.flows.split(","):
            q = {}
            for seed in seeds:
                path = os.path.join(tmp, f"{flow}_{seed}.h5")
                done = subprocess.run([exe, "run", a.model, "-o", path, "--quiet", "--set", f'flow.kind="{flow}"',
                                       "--set", f"network.seed={seed}"] + sets, capture_output=True, text=True)
                if not os.path.exists(path):
                    print(f"{flow} seed {seed}: no output ({done.stderr.strip()})")
                    continue
                run = gfsim_io.load(path)
                q[seed] = normalized_predictor(run)
                print(f"{flow} seed {seed}: {run.solver['status']} at t = {run.solver['t_final']:.3g}, "
                      f"margin {q[seed].min():.6f}", flush=True)
            remaining, groups = list(q), []
            while remaining:
                s0 = remaining.pop(0)
                group = [s0] + [s for s in remaining if np.abs(q[s] - q[s0]).max() < 1e-4]
                remaining = [s for s in remaining if s not in group]
                spread = max((np.abs(q[s] - q[s0]).max() for s in group), default=0.0)
                groups.append((q[s0].min(), group, spread))
            groups.sort(key=lambda g: -g[0])
            print(f"{flow}: {len(groups)} distinct solutions from {len(q)} starts")
            for margin, group, spread in groups:
                print(f"  margin {margin:.6f}: seeds {group}, max |q_a - q_b| within {spread:.2g}")


if __name__ == "__main__":
    main()
