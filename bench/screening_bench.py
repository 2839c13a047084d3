#!/usr/bin/python3
"""Safe screening (issue 19, docs/equations.md section 9): screened against unscreened runs.

  GFSIM_BUILD=build nice -n 19 python3 bench/screening_bench.py [--runs 5] [--large] [--relu] [--no-linear] [--out FILE]

Linear benchmark (bench/linear_bench.toml: K = 1, exp loss, gaussian n = 1000, dim = 50) at
t_end = 1e12, 1e100, 1e300 with the default solver (auto -> CVODE dense, log clock) at the model's
tolerances: integration time (/solver/wall_seconds minus /timing/observe_seconds), median and min-max
of RUNS runs, screened and unscreened runs interleaved; the RHS count; the points kept at the end;
the distance between the screened and unscreened final weights in units of the tolerance
(max_i |a_i - b_i| / (rtol |b_i| + atol)).
--large: K = 1 with n = 1e5 and 1e6 (dim = 50, gaussian, margin 0.1) to t = 1e100, one run each way,
with the kept points over time (the /observables/kept_points samples).
--relu [--relu-n N]: bench/relu_screening.toml (20-4-1 ReLU, n = N = 1e4, exp loss, gd, kink events, to t = 1e12),
RUNS runs each way interleaved: time, RHS, kink events located, kept points, final state difference.
Timings are only meaningful on an idle machine: the script prints the load average with them.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
import h5py  # noqa: E402
import numpy as np  # noqa: E402

BUILD = os.environ.get("GFSIM_BUILD", os.path.join(ROOT, "build"))
GFSIM = os.path.join(BUILD, "gfsim")
MODEL = os.path.join(ROOT, "bench", "linear_bench.toml")
TMP = tempfile.mkdtemp(prefix="gfsim_screen_")


def run(t_end, screening, tag, extra=(), model=MODEL):
    out = os.path.join(TMP, f"{tag}.h5")
    if os.path.exists(out):
        os.remove(out)
    cmd = [GFSIM, "run", model, "-o", out, "--set", f"time.t_end={t_end:g}",
           "--set", f"solver.screening={'true' if screening else 'false'}", *extra]
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    with h5py.File(out, "r") as f:  # not gfsim_io.load: it reads data/X too (400 MB at n = 1e6)
        solver = dict(f["solver"].attrs)
        observe = float(np.asarray(f["timing/observe_seconds"][()]).ravel()[0])
        res = {"seconds": float(solver["wall_seconds"]) - observe, "rhs": int(solver["rhs_evals"]),
               "jac": int(solver.get("jacobian_evals", 0)), "theta": f["observables/theta/value"][-1]}
        res["status"] = str(solver.get("status", ""))
        if "events/summary" in f:
            ev = np.asarray(f["events/summary"][()]).ravel()
            res["events"] = int(ev[0] + ev[1] + ev[2])
        if "kept_points" in f["observables"]:
            res["kept"] = np.asarray(f["observables/kept_points/value"][()]).ravel()
            res["t"] = np.asarray(f["observables/kept_points/time"][()]).ravel()
    os.remove(out)
    return res


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def weighted(a, b, rtol, atol):
    return float(np.max(np.abs(a - b) / (rtol * np.abs(b) + atol)))


def linear(runs, lines):
    lines += ["| t_end | unscreened (ms) | screened (ms) | ratio | RHS un/scr | Jacobians un/scr | kept at end | "
              "final state difference / tol |", "|---|---|---|---|---|---|---|---|"]
    for t_end in (1e12, 1e100, 1e300):
        times = {False: [], True: []}
        last = {}
        for r in range(runs):
            for screening in (False, True):  # interleaved: a slow spell falls on both
                res = run(t_end, screening, f"lin_{screening}_{r}")
                times[screening].append(res["seconds"] * 1e3)
                last[screening] = res
        med = {k: statistics.median(v) for k, v in times.items()}
        spread = {k: f"{min(v):.2f}-{max(v):.2f}" for k, v in times.items()}
        diff = weighted(last[True]["theta"], last[False]["theta"], 1e-8, 1e-10)
        lines.append(f"| {t_end:g} | {med[False]:.2f} ({spread[False]}) | {med[True]:.2f} ({spread[True]}) | "
                     f"{med[True] / med[False]:.2f} | {last[False]['rhs']}/{last[True]['rhs']} | "
                     f"{last[False]['jac']}/{last[True]['jac']} | {int(last[True]['kept'][-1])} | {diff:.2g} |")
        print(lines[-1], flush=True)


def large(lines):
    lines += ["", "| n | unscreened (s) | screened (s) | ratio | final state difference / tol | kept points at t = "
              "1e0, 1e3, 1e6, 1e12, 1e50, 1e100 |", "|---|---|---|---|---|---|"]
    for n in (100000, 1000000):
        extra = ("--set", f"data.n={n}", "--set", "time.samples_per_decade=1", "--set", "time.t_first=1")
        res = {s: run(1e100, s, f"large_{n}_{s}", extra) for s in (False, True)}
        kept = res[True]["kept"]
        t = res[True]["t"]
        picks = [int(kept[np.argmin(np.abs(np.log10(np.maximum(t, 1e-300)) - e))]) for e in (0, 3, 6, 12, 50, 100)]
        diff = weighted(res[True]["theta"], res[False]["theta"], 1e-8, 1e-10)
        lines.append(f"| {n} | {res[False]['seconds']:.2f} | {res[True]['seconds']:.2f} | "
                     f"{res[True]['seconds'] / res[False]['seconds']:.3f} | {diff:.2g} | {', '.join(map(str, picks))} |")
        print(lines[-1], flush=True)


def relu(runs, lines, n):
    model = os.path.join(ROOT, "bench", "relu_screening.toml")
    extra = ("--set", f"data.n={n}")
    lines += ["", f"ReLU 20-4-1, n = {n}, to t = 1e12 (bench/relu_screening.toml):", "",
              "| | time (s) median (range) | RHS | kink events located | kept at end | "
              "final state difference / tol |", "|---|---|---|---|---|---|"]
    times = {False: [], True: []}
    last = {}
    for r in range(runs):
        for screening in (False, True):
            res = run(1e12, screening, f"relu_{screening}_{r}", extra, model=model)
            if res["status"] not in ("success", "0"):
                print(f"relu screening={screening}: status {res['status']}", flush=True)
            times[screening].append(res["seconds"])
            last[screening] = res
    diff = weighted(last[True]["theta"], last[False]["theta"], 1e-8, 1e-10)
    for screening in (False, True):
        v = times[screening]
        res = last[screening]
        kept = int(res["kept"][-1]) if "kept" in res else n
        lines.append(f"| {'screened' if screening else 'unscreened'} | {statistics.median(v):.2f} ({min(v):.2f}-"
                     f"{max(v):.2f}) | {res['rhs']} | {res.get('events', 0)} | {kept} | "
                     f"{diff if screening else 0:.2g} |")
        print(lines[-1], flush=True)
    lines.append(f"ratio of medians: {statistics.median(times[True]) / statistics.median(times[False]):.3f}")
    print(lines[-1], flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--large", action="store_true")
    ap.add_argument("--relu", action="store_true")
    ap.add_argument("--relu-n", type=int, default=10000, help="data points of the ReLU case")
    ap.add_argument("--no-linear", action="store_true")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    lines = [f"load average before: {load()}"]
    print(lines[0], flush=True)
    if not a.no_linear:
        linear(a.runs, lines)
    if a.large:
        large(lines)
    if a.relu:
        relu(a.runs, lines, a.relu_n)
    lines.append(f"load average after: {load()}")
    print(lines[-1])
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
