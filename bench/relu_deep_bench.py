#!/usr/bin/python3
"""Deep ReLU nets with kinks as events (issue 14; docs/relu_deep.md).

bench/relu_deep.toml (20-16-8-1 ReLU, gd_polar, logistic loss, Gaussian data n = 300, t_end = 1e30)
and its deeper copies network.hidden = [8,8,8] and [8,8,8,8], each run with `gfsim run` at one
Eigen thread (solver.threads = 1: Eigen's threading makes the step and RHS counts vary). Reports
status, the time reached, CPU seconds (user + sys, median of RUNS runs), accepted steps, RHS
evaluations, kink events, and the cost of the run's average field evaluation (sliding solves and
event functions included) relative to one smooth field evaluation of the same net
(bench_rhs rhs_seconds: Flow::rhs at the initial state).

With --baseline DIR the same runs are made with DIR/gfsim (e.g. a build of main) interleaved with
the build under test, round by round, so that machine load drifts hit both alike.

Usage: GFSIM_BUILD=build /usr/bin/python3 bench/relu_deep_bench.py [--baseline DIR] [--runs N] [--nice N]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "bench", "relu_deep.toml")
CASES = [("[16,8] gd_polar", "[16, 8]"), ("[8,8,8] gd_polar", "[8, 8, 8]"), ("[8,8,8,8] gd_polar", "[8, 8, 8, 8]")]
TMP = tempfile.mkdtemp(prefix="gfsim_deep_")


def attr(s, key, default=None):
    v = s.get(key, default)
    return v.decode() if isinstance(v, bytes) else v


def run(build, hidden, tag, nice, wall):
    out = os.path.join(TMP, f"{tag}.h5")
    if os.path.exists(out):
        os.remove(out)
    cmd = ["nice", "-n", str(nice), "/usr/bin/time", "-f", "%U %S", os.path.join(build, "gfsim"), "run", "-q", MODEL,
           "-o", out, "--set", f"network.hidden={hidden}", "--set", "solver.threads=1",
           "--set", f"solver.max_wall_seconds={wall}", "--set", "solver.max_steps=100000000"]
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    user, sys_ = p.stderr.strip().splitlines()[-1].split()
    with h5py.File(out, "r") as f:
        s = dict(f["solver"].attrs)
        summary = f["events/summary"][:] if "events/summary" in f else np.zeros(4)
    return dict(status=attr(s, "status"), t=float(attr(s, "t_final", float("nan"))), cpu=float(user) + float(sys_),
                steps=int(s["accepted"]), rhs=int(s["rhs_evals"]), crossings=int(summary[0]), entries=int(summary[1]),
                exits=int(summary[2]))


def smooth_rhs_seconds(build, hidden):
    """One smooth field evaluation of the net (bench_rhs at the initial state, one thread)."""
    p = subprocess.run([os.path.join(build, "bench", "bench_rhs"), MODEL, "--set", f"network.hidden={hidden}",
                        "--set", "solver.threads=1", "--set", "time.t_end=0.02"], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        k, _, v = line.partition(" ")
        if k == "rhs_seconds":
            return float(v)
    raise RuntimeError(f"bench_rhs printed no rhs_seconds: {p.stderr.strip()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="build directory of the version to compare with (its gfsim, bench/bench_rhs)")
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "3")))
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--wall", type=float, default=600.0, help="solver.max_wall_seconds of each run")
    args = ap.parse_args()
    builds = [("this", os.environ.get("GFSIM_BUILD", os.path.join(ROOT, "build")))]
    if args.baseline:
        builds.insert(0, ("baseline", args.baseline))
    results = {(b, c): [] for b, _ in builds for c, _ in CASES}
    for r in range(args.runs):
        for case, hidden in CASES:
            for name, build in builds:
                res = run(build, hidden, f"{name}_{r}", args.nice, args.wall)
                results[(name, case)].append(res)
                print(f"round {r} {case} {name}: {res['status']} t = {res['t']:.4g} cpu {res['cpu']:.2f} s "
                      f"steps {res['steps']} rhs {res['rhs']}", file=sys.stderr)
    smooth = {(b, c): smooth_rhs_seconds(build, hidden) for b, build in builds for c, hidden in CASES}
    print("| net | build | status | t reached | CPU s (median) | steps | RHS | crossings / entries / exits "
          "| CPU per RHS / smooth RHS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case, _ in CASES:
        for name, _ in builds:
            rs = results[(name, case)]
            first = rs[0]
            cpu = statistics.median(x["cpu"] for x in rs)
            same = all((x["steps"], x["rhs"], x["crossings"]) == (first["steps"], first["rhs"], first["crossings"])
                       for x in rs)
            ratio = cpu / max(first["rhs"], 1) / smooth[(name, case)]
            runs = ", ".join(f"{x['cpu']:.1f}" for x in rs)
            print(f"| {case} | {name} | {first['status']} | {first['t']:.4g} | {cpu:.2f} "
                  f"({runs}) | {first['steps']} | {first['rhs']}"
                  f"{'' if same else ' (varies)'} | {first['crossings']} / {first['entries']} / {first['exits']} "
                  f"| {ratio:.2f} |")


if __name__ == "__main__":
    main()
