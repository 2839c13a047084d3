#!/usr/bin/python3
"""The issue-5 large ReLU case with smoothed kinks, and what the smoothing costs in accuracy.

bench/relu_large_smooth.toml is bench/relu_large.toml (2-layer ReLU 100-1000-1, P = 101000,
n = 1000 teacher points, exp loss, CVODE BDF + SPGMR on exact J v, rtol 1e-6) with
dynamics.kinks = "smooth": ReLU -> eps log(1 + e^{z/eps}). The exact run (kinks = "events") cannot
get past t ~ 1e-3 in minutes (docs/relu_large_crossings.md); the smoothed one is a smooth flow.

1. The large net to t_end = 1e12 at eps = 1e-2, 1e-3 (the file's value) and 1e-4: cost, and the
   distance between consecutive eps. The smoothed flow tends to the Filippov solution at first
   order in eps (tests/test_events.cpp, ReluSmooth), so the error of eps is about the distance
   to eps/10 times 10/9; the ratio of consecutive distances checks the order on this net.
2. Against the exact solution: narrower copies of the same net (hidden 4 and 8, same data), where
   kinks = "events" is affordable up to t_end = 1, integrated both ways at rtol 1e-8.
3. With --copies H,H,..: narrower copies against the exact solution over the whole run (to
   --copies-t-end, default 1e12): exact = events, dopri5, rtol 1e-10 / atol 1e-12 (checked against
   1e-8 / 1e-10 on the first copy); smoothed = cvode at --copies-smooth-rtol (default 1e-8, atol
   rtol / 100; the first eps of the first copy also at 1e-10, to measure its own error) for each of
   --copies-eps, each capped at --copies-wall seconds; distances of theta, of the direction V and of
   the normalized margin at common samples (2 per decade from t = 1e-2). One thread, one gfsim
   process at a time. (rtol 1e-10 for every smoothed run was the plan; it costs about twice the
   steps of 1e-8 and the two agree to 4e-7, below the smoothing distances.)

Writes docs/relu_large_smooth.md. Without --copies: parts 1 and 2, and the section of part 3 is kept
from the existing doc. With --copies: part 3 only; everything above its section is kept, and so is
what is written by hand below its marker line.
Usage: GFSIM_BUILD=build /usr/bin/python3 bench/relu_large_smooth.py
       GFSIM_BUILD=build /usr/bin/python3 bench/relu_large_smooth.py --copies 8,16,32 [--copies-t-end 1e12]
           [--copies-eps 1e-3,1e-4,1e-5] [--copies-wall 600] [--copies-ref-wall 1800]
           [--copies-smooth-rtol 1e-8] [--copies-drop 32:1e-5] [--copies-dir DIR]
       (--copies-dir keeps the runs' files and reuses the finished ones: rerunning the same command
       rewrites the section from them without integrating again)
Environment: BENCH_LARGE_WALL (cap per large run, default 900 s), BENCH_LARGE_THREADS (the largest
value is used, default 2).
"""
import argparse
import datetime
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_bench as rb  # noqa: E402

sys.path.insert(0, os.path.join(rb.ROOT, "analysis"))
import gfsim_io  # noqa: E402

SMOOTH = os.path.join(rb.ROOT, "bench", "relu_large_smooth.toml")
EPS = [1e-2, 1e-3, 1e-4]
NARROW = [4, 8]
NARROW_T_END = 1.0
DOC = os.path.join(rb.ROOT, "docs", "relu_large_smooth.md")
# The section of --copies starts at COPIES_MARKER; below KEEP_MARKER it is written by hand.
COPIES_MARKER = "<!-- section of bench/relu_large_smooth.py --copies: regenerated only with that option -->"
KEEP_MARKER = "<!-- written by hand from here on: kept by bench/relu_large_smooth.py --copies -->"
REPORT_TIMES = [0.1, 1.0, 10.0, 1e3, 1e6, 1e9, 1e12]


def run(model, out, sets):
    """gfsim run with /usr/bin/time: (solver dict, sample times, theta samples, final margin, peak KiB, cpu s)."""
    args = [rb.GFSIM, "run", "-q", model, "-o", out]
    for s in sets:
        args += ["--set", s]
    kb, cpu, _ = rb.timev(args)
    traj = gfsim_io.load(out)
    th = traj.observables["theta"]
    margin = np.asarray(traj.observables["margin"]["value"]).ravel()
    return dict(traj.solver), np.asarray(th["time"]), np.asarray(th["value"]), float(margin[-1]), kb, cpu


def distance(a, b):
    """max over common samples and at the last one of ||theta_a - theta_b|| / ||theta_b||."""
    (ta, va), (tb, vb) = a, b
    n = min(len(ta), len(tb))
    if n == 0 or not np.allclose(ta[:n], tb[:n]):
        return float("nan"), float("nan")
    d = np.linalg.norm(va[:n] - vb[:n], axis=1) / np.maximum(np.linalg.norm(vb[:n], axis=1), 1e-300)
    return float(d.max()), float(d[-1])


def main():
    started = datetime.datetime.now()
    wall = float(os.environ.get("BENCH_LARGE_WALL", "900"))
    threads = max(rb.LARGE_THREADS)
    large = []
    for eps in EPS:
        out = os.path.join(rb.TMP, f"smooth_{eps:g}.h5")
        s, t, v, margin, kb, cpu = run(SMOOTH, out, [f"dynamics.kink_width={eps:g}", f"solver.threads={threads}",
                                                     f"solver.max_wall_seconds={wall:g}"])
        large.append(dict(eps=eps, s=s, traj=(t, v), margin=margin, kb=kb, cpu=cpu))
        print(f"eps {eps:g}: {s['status']} t = {s['t_final']:.3g} in {s['wall_seconds']:.1f} s", file=sys.stderr)
    narrow = []
    for h in NARROW:
        common = [f"network.hidden=[{h}]", f"time.t_end={NARROW_T_END:g}", "time.samples_per_decade=4",
                  "solver.rtol=1e-8", "solver.atol=1e-10", "solver.threads=1", f"solver.max_wall_seconds={wall:g}"]
        ex = run(rb.LARGE, os.path.join(rb.TMP, f"narrow_ev_{h}.h5"),
                 common + ["dynamics.kinks=events", "solver.method=auto"])
        row = dict(hidden=h, exact=ex, smooth=[])
        for eps in EPS:
            sm = run(SMOOTH, os.path.join(rb.TMP, f"narrow_sm_{h}_{eps:g}.h5"),
                     common + [f"dynamics.kink_width={eps:g}"])
            row["smooth"].append((eps, sm, distance((sm[1], sm[2]), (ex[1], ex[2]))))
        narrow.append(row)
        print(f"hidden {h}: exact {ex[0]['status']} in {ex[0]['wall_seconds']:.1f} s", file=sys.stderr)

    cpu, mem, commit = rb.machine()
    L = ["# The large ReLU case with smoothed kinks (issue 5)", "",
         f"Generated by `bench/relu_large_smooth.py` (run by `scripts/bench`) on {started:%Y-%m-%d %H:%M}, git commit "
         f"`{commit}`. Machine: {cpu}. Memory: `{mem}`.", "",
         "bench/relu_large_smooth.toml: the net, data and solver of bench/relu_large.toml (2-layer ReLU "
         "100-1000-1, P = 101000, n = 1000 teacher points, exp loss, gd flow, log clock, CVODE BDF + SPGMR on exact "
         "J v, rtol 1e-6, atol 1e-8, t_end = 1e12) with `dynamics.kinks = \"smooth\"`: the ReLU becomes "
         "eps log(1 + e^{z/eps}), a smooth flow that tends to the Filippov solution at first order in eps "
         "(models/README.md). The exact run (`kinks = \"events\"`) stops at each of its ~1e6 kink crossings and "
         "reaches t ~ 3e-4 in 150 s (docs/benchmarks.md, docs/relu_large_crossings.md).", "",
         f"## The large net to t = 1e12 ({threads} threads, at most {wall:g} s per run)", "",
         "| eps | status | t reached | steps | RHS | J v | wall (solver) | process time | peak RSS | "
         "normalized margin at the end | distance to eps/10: max over samples, at the end |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(large):
        s = r["s"]
        d = distance(r["traj"], large[i + 1]["traj"]) if i + 1 < len(large) else None
        dtext = f"{d[0]:.2e}, {d[1]:.2e}" if d else ""
        L.append(f"| {r['eps']:g} | {s['status']} | {s['t_final']:.3g} | {s['steps']} | {s['rhs_evals']} | "
                 f"{s['jvp_evals']} | {s['wall_seconds']:.1f} s | {r['cpu']:.1f} s | {r['kb'] / 1024:.0f} MiB | "
                 f"{r['margin']:.6f} | {dtext} |")
    d = [distance(large[i]["traj"], large[i + 1]["traj"])[0] for i in range(len(large) - 1)]
    if len(d) == 2 and d[1] > 0:
        ratio = d[0] / d[1]
        if 5 <= ratio <= 20:
            L += ["", f"Ratio of consecutive distances: {ratio:.1f} (first order in eps: 10). Estimated error of "
                  f"eps = 1e-3 against the exact (eps -> 0) trajectory: {d[1] * 10 / 9:.1e} of ||theta|| (distance "
                  "to eps = 1e-4 times 10/9)."]
        else:
            L += ["", f"Ratio of consecutive distances: {ratio:.1f}, not the 10 of first order in eps: on this net "
                  "eps = 1e-3 is not yet in the asymptotic regime, so the distance to eps = 1e-4 is not an error "
                  "estimate for either. The final normalized margins agree to "
                  f"{abs(large[1]['margin'] - large[2]['margin']) / abs(large[2]['margin']):.1e} (relative)."]
    L += ["", f"## Against the exact solution: narrower copies to t = {NARROW_T_END:g}", "",
          "Same data and initialization, hidden 4 and 8 (P = 404, 808), rtol 1e-8, atol 1e-10, 4 samples per decade. "
          "Exact = `kinks = \"events\"` (default solver); smoothed = `kinks = \"smooth\"` (cvode). Distance = max over "
          "the samples of ||theta_smooth - theta_exact|| / ||theta_exact||, and at t = 1.", "",
          "| hidden | exact: status, wall, RHS, kink events | eps | smoothed: status, wall, RHS | distance: max, at the end |",
          "|---|---|---|---|---|"]
    for row in narrow:
        es = row["exact"][0]
        for eps, sm, (dmax, dend) in row["smooth"]:
            ss = sm[0]
            L.append(f"| {row['hidden']} | {es['status']}, {es['wall_seconds']:.1f} s, {es['rhs_evals']}, "
                     f"{es.get('events', '')} | {eps:g} | {ss['status']}, {ss['wall_seconds']:.2f} s, "
                     f"{ss['rhs_evals']} | {dmax:.2e}, {dend:.2e} |")
    # The section of --copies (and what is written by hand under it) is kept from the existing doc.
    old = open(DOC).read() if os.path.exists(DOC) else ""
    L.append("")
    if COPIES_MARKER in old:
        L.append(old[old.index(COPIES_MARKER):].rstrip("\n"))
    rb.write_doc("relu_large_smooth.md", L)


# ---- 3. --copies: narrower copies against the exact solution over the whole run ----

def run_copy(out, model, sets, reuse):
    """One gfsim run (skipped when `reuse` and `out` holds a finished run): its samples and counters."""
    if not (reuse and os.path.exists(out) and gfsim_io.load(out).complete):
        if os.path.exists(out):
            os.remove(out)
        args = [rb.GFSIM, "run", "-q", model, "-o", out]
        for s in sets:
            args += ["--set", s]
        rb.timev(args)
    traj = gfsim_io.load(out)
    obs = traj.observables
    # Points at y f = 0 at the last sample, f of the exact ReLU net of the run's weights (one hidden layer).
    W1, W2 = traj.weights(-1)
    yf = np.asarray(traj.extra["data/y"]).ravel() * (W2 @ np.maximum(W1 @ traj.data_X().T, 0.0)).ravel()
    zero = tuple(np.flatnonzero(np.abs(yf) <= 1e-6 * np.abs(yf).max()))
    return dict(zero=zero, t=np.asarray(obs["theta"]["time"]), theta=np.asarray(obs["theta"]["value"]),
                V=np.asarray(obs["direction"]["value"]), margin=np.asarray(obs["margin"]["value"]).ravel(),
                solver=dict(traj.solver or {}), events=len(traj.events()["time"]), path=out)


def compare(a, b):
    """Distances of run a from run b at their common samples: relative in theta and in the direction V
    (||a - b|| / ||b||), absolute in the normalized margin."""
    n = min(len(a["t"]), len(b["t"]))
    if n == 0 or not np.allclose(a["t"][:n], b["t"][:n], rtol=1e-12, atol=0):
        raise RuntimeError(f"{a['path']} and {b['path']} do not share their sample times")

    def rel(x, y):
        return np.linalg.norm(x[:n] - y[:n], axis=1) / np.maximum(np.linalg.norm(y[:n], axis=1), 1e-300)
    return dict(t=a["t"][:n], theta=rel(a["theta"], b["theta"]), V=rel(a["V"], b["V"]),
                margin=np.abs(a["margin"][:n] - b["margin"][:n]))


def at(t, values, when):
    """values at the sample t = when (NaN when the run has no such sample)."""
    i = np.flatnonzero(np.isclose(t, when, rtol=1e-9, atol=0))
    return float(values[i[0]]) if len(i) else float("nan")


def fmt(x, spec=".1e"):
    return "-" if not np.isfinite(x) else format(x, spec)


def run_copies(args):
    started = datetime.datetime.now()
    hidden = [int(h) for h in args.copies.split(",")]
    eps_list = [float(e) for e in args.copies_eps.split(",")]
    drop = {(int(h), float(e)) for h, e in (x.split(":") for x in args.copies_drop.split(",") if x)}
    t_end, tol = args.copies_t_end, ["solver.rtol=1e-10", "solver.atol=1e-12"]
    srtol = args.copies_smooth_rtol
    stol = [f"solver.rtol={srtol:g}", f"solver.atol={srtol * 1e-2:g}"]
    out_dir = args.copies_dir or rb.TMP
    os.makedirs(out_dir, exist_ok=True)
    reuse = bool(args.copies_dir)
    rows = []  # per hidden: dict(hidden, exact, check, smooth=[(eps, run)], smooth_check)
    for i, h in enumerate(hidden):
        common = [f"network.hidden=[{h}]", f"time.t_end={t_end:g}", "time.t_first=1e-2", "time.samples_per_decade=2",
                  "solver.threads=1"]
        exact_sets = common + ["dynamics.kinks=events", "solver.method=dopri5",
                               f"solver.max_wall_seconds={args.copies_ref_wall:g}"]
        row = dict(hidden=h, smooth=[], check=None, smooth_check=None)
        row["exact"] = run_copy(os.path.join(out_dir, f"copy_{h}_events_1e-10.h5"), rb.LARGE, exact_sets + tol, reuse)
        print(f"hidden {h} exact: {row['exact']['solver'].get('status')} t = {row['exact']['solver'].get('t_final')}"
              f" in {row['exact']['solver'].get('wall_seconds', 0):.0f} s", file=sys.stderr)
        if i == 0:  # the reference's own error: the same run at rtol 1e-8, atol 1e-10
            row["check"] = run_copy(os.path.join(out_dir, f"copy_{h}_events_1e-8.h5"), rb.LARGE,
                                    exact_sets + ["solver.rtol=1e-8", "solver.atol=1e-10"], reuse)
        for eps in eps_list:
            if (h, eps) in drop:
                continue
            smooth_sets = common + ["solver.method=cvode", f"dynamics.kink_width={eps:g}",
                                    f"solver.max_wall_seconds={args.copies_wall:g}"]
            sm = run_copy(os.path.join(out_dir, f"copy_{h}_smooth_{eps:g}_rtol{srtol:g}.h5"), SMOOTH,
                          smooth_sets + stol, reuse)
            row["smooth"].append((eps, sm))
            print(f"hidden {h} eps {eps:g}: {sm['solver'].get('status')} t = {sm['solver'].get('t_final')} in "
                  f"{sm['solver'].get('wall_seconds', 0):.0f} s", file=sys.stderr)
            if i == 0 and eps == eps_list[0] and srtol > 1e-10:  # the smoothed run's own error
                row["smooth_check"] = (eps, run_copy(os.path.join(out_dir, f"copy_{h}_smooth_{eps:g}_rtol1e-10.h5"),
                                                     SMOOTH, smooth_sets + tol, reuse))
        rows.append(row)
    write_copies_section(rows, args, started)


def write_copies_section(rows, args, started):
    cpu, mem, commit = rb.machine()
    times = [t for t in REPORT_TIMES if t <= args.copies_t_end * (1 + 1e-12)]
    hs = ", ".join(str(r["hidden"]) for r in rows)
    L = [COPIES_MARKER, "",
         f"## Against the exact solution over the whole run: copies with hidden {hs} to t = {args.copies_t_end:g}", "",
         f"Generated by `bench/relu_large_smooth.py {' '.join(sys.argv[1:])}` on {started:%Y-%m-%d %H:%M}, git commit `{commit}`; gfsim `{rb.GFSIM}`. "
         "Machine: " + "; ".join(cpu) + ". One thread per run (`solver.threads=1`), one run at a time; wall times "
         "are those of one thread, with other processes (builds) on the machine's cores at times.", "",
         "bench/relu_large.toml with `network.hidden=[H]` (same data, same initialization of the first H units), "
         "2 samples per decade from t = 1e-2 to the end (and t = 0), the same in every run. Exact = "
         "`kinks = \"events\"`, dopri5, rtol 1e-10, atol 1e-12 (its own error: the row \"events at rtol 1e-8\", "
         "the same run at rtol 1e-8, atol 1e-10). Smoothed = bench/relu_large_smooth.toml with the same H, "
         f"`kink_width` = eps, cvode (BDF + GMRES on exact J v), rtol {args.copies_smooth_rtol:g}, atol "
         f"{args.copies_smooth_rtol * 1e-2:g}, at most {args.copies_wall:g} s each (its own error: the row \"(own "
         "error)\", the first eps of the first copy against the same at rtol 1e-10, atol 1e-12, over the samples "
         "that run reached). Distances against the exact run at the same sample: ||theta_s - theta_e|| "
         "/ ||theta_e||, the same for the direction V = (W_k / ||W_k||)_k (observable `direction`), and "
         "|margin_s - margin_e| for the normalized margin (observable `margin`; for the smoothed run that of its "
         "softplus net). max: over all samples t > 0, with the t where it is reached.", "",
         "### Runs", "",
         "| hidden | run | status | t reached | steps | RHS | J v | kink events | wall (solver) | normalized margin at the last sample "
         "| points at y f = 0 at the last sample (ReLU of its weights; +: not at 0 in the exact run at its end, -: only there) |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]

    def cost_row(h, name, r, exact):
        s = r["solver"]
        plus, minus = sorted(set(r["zero"]) - set(exact["zero"])), sorted(set(exact["zero"]) - set(r["zero"]))
        diff = "; ".join(f"{sign} {', '.join(map(str, pts))}" for sign, pts in (("+", plus), ("-", minus)) if pts)
        zero = f"{len(r['zero'])}" + (f" ({diff})" if diff else "")
        return (f"| {h} | {name} | {s.get('status', 'unfinished')} | {s.get('t_final', float('nan')):.3g} | "
                f"{s.get('steps', '')} | {s.get('rhs_evals', '')} | {s.get('jvp_evals', '')} | {r['events']} | "
                f"{s.get('wall_seconds', float('nan')):.1f} s | {r['margin'][-1]:.3g} | {zero} |")
    comparisons = []  # (hidden, label, comparison against exact)
    for row in rows:
        h = row["hidden"]
        L.append(cost_row(h, "exact: events, rtol 1e-10", row["exact"], row["exact"]))
        if row["check"]:
            L.append(cost_row(h, "events at rtol 1e-8", row["check"], row["exact"]))
            comparisons.append((h, "events at rtol 1e-8", compare(row["check"], row["exact"])))
        for eps, sm in row["smooth"]:
            L.append(cost_row(h, f"smooth, eps = {eps:g}", sm, row["exact"]))
            comparisons.append((h, f"smooth, eps = {eps:g}", compare(sm, row["exact"])))
        if row["smooth_check"]:
            eps, chk = row["smooth_check"]
            L.append(cost_row(h, f"smooth, eps = {eps:g}, rtol 1e-10", chk, row["exact"]))
            sm = dict(row["smooth"])[eps]
            comparisons.append((h, f"(own error) smooth, eps = {eps:g}: rtol {args.copies_smooth_rtol:g} against "
                                   "rtol 1e-10", compare(sm, chk)))
    titles = {"theta": "Relative distance of theta to the exact run",
              "V": "Relative distance of the direction V to the exact run",
              "margin": "Normalized margin: |margin_s - margin_e| (first rows of each hidden: the exact margin itself)"}
    for key in ("theta", "V", "margin"):
        L += ["", f"### {titles[key]}", "",
              "| hidden | run | " + " | ".join(f"t = {t:g}" for t in times) + " | max (at t) |",
              "|---|---|" + "---|" * len(times) + "---|"]
        for row in rows:
            if key == "margin":
                e = row["exact"]
                L.append(f"| {row['hidden']} | exact margin | " +
                         " | ".join(fmt(at(e["t"], e["margin"], t), ".3g") for t in times) + " | |")
            for h, label, c in comparisons:
                if h != row["hidden"]:
                    continue
                v = c[key][1:]  # t > 0
                j = int(np.nanargmax(v)) if len(v) and np.isfinite(v).any() else None
                mx = f"{v[j]:.1e} ({c['t'][1 + j]:.3g})" if j is not None else "-"
                L.append(f"| {h} | {label} | " + " | ".join(fmt(at(c["t"], c[key], t)) for t in times) + f" | {mx} |")
    L += ["", "### Ratio of the distances in theta of consecutive eps (first order in eps: 10)", "",
          "| hidden | eps | " + " | ".join(f"t = {t:g}" for t in times) + " | of the max over their common samples |",
          "|---|---|" + "---|" * len(times) + "---|"]
    for row in rows:
        cs = [(label, c) for h, label, c in comparisons if h == row["hidden"] and label.startswith("smooth")]
        for (la, a), (lb, b) in zip(cs, cs[1:]):
            ratios = [at(a["t"], a["theta"], t) / at(b["t"], b["theta"], t) for t in times]
            n = min(len(a["theta"]), len(b["theta"]))
            # a run stopped before its first sample after t = 0 has nothing to compare
            of_max = np.nanmax(a['theta'][1:n]) / np.nanmax(b['theta'][1:n]) if n > 1 else float("nan")
            L.append(f"| {row['hidden']} | {la[len('smooth, eps = '):]} / {lb[len('smooth, eps = '):]} | " +
                     " | ".join(fmt(r, ".1f") for r in ratios) + f" | {fmt(of_max, '.1f')} |")
    old = open(DOC).read() if os.path.exists(DOC) else ""
    head = old[:old.index(COPIES_MARKER)] if COPIES_MARKER in old else old.rstrip("\n") + "\n\n"
    keep = old[old.index(KEEP_MARKER):].rstrip("\n") if KEEP_MARKER in old else KEEP_MARKER
    rb.write_doc("relu_large_smooth.md", [head.rstrip("\n"), ""] + L + ["", keep])


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", help="hidden widths of the copies, e.g. 8,16,32: run part 3 only")
    ap.add_argument("--copies-t-end", type=float, default=1e12)
    ap.add_argument("--copies-eps", default="1e-3,1e-4,1e-5", help="kink widths of the smoothed runs")
    ap.add_argument("--copies-wall", type=float, default=600.0, help="cap (s) per smoothed run")
    ap.add_argument("--copies-smooth-rtol", type=float, default=1e-8,
                    help="rtol of the smoothed runs (atol = rtol / 100); the first eps of the first copy is also "
                         "run at 1e-10 to measure its own error")
    ap.add_argument("--copies-ref-wall", type=float, default=1800.0, help="cap (s) per exact run")
    ap.add_argument("--copies-drop", default="", help="runs left out, hidden:eps pairs, e.g. 32:1e-5")
    ap.add_argument("--copies-dir", help="keep the runs' files here and reuse finished ones")
    return ap.parse_args()


if __name__ == "__main__":
    cli = parse_args()
    if cli.copies:
        run_copies(cli)
    else:
        main()
