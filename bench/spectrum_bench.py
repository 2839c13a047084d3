#!/usr/bin/python3
"""Stationary-point spectrum benchmark of issue 5, written to docs/spectrum_benchmarks.md (scripts/bench).

bench/spectrum_large.toml (2-layer linear net d-d-1, n = 1000 Gaussian points in R^d, exp loss, fixed
rho = 10) at d = 30, 45, 70, 100 (P = d^2 + d = 930 ... 10100). Per size, two processes of
bench/bench_spectrum (build tree $GFSIM_BUILD):
  1. stationary point (flow phase + Newton/MINRES), kernel costs, Spectra extreme eigenvalues
     (k = 10 at each end, median of BENCH_RUNS runs), peak RSS;
  2. the dense route at the same point (m = P - K Hessian products into B^T Hess B, Eigen
     SelfAdjointEigenSolver), BENCH_SPECTRUM_DENSE_RUNS runs (default 3; 1 above P = 5000), peak RSS.
The agreement of the two routes on the extreme eigenvalues is computed here from both outputs.
BENCH_SPECTRUM_DIMS=30,45 selects sizes; BENCH_SPECTRUM_DENSE_MAX (P, default 11000) skips the
dense route above it; above P = 5000 Spectra is timed over min(BENCH_RUNS, BENCH_SPECTRUM_LARGE_RUNS = 3)
runs. The raw results go to $GFSIM_BUILD/spectrum_bench.json; `spectrum_bench.py --markdown FILE.json`
rewrites the markdown from such a file without running anything.
"""
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_bench  # noqa: E402  (machine description shared with the other benchmarks)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("GFSIM_BUILD", os.path.join(ROOT, "build-bench"))
BENCH = os.path.join(BUILD, "bench", "bench_spectrum")
MODEL = os.path.join(ROOT, "bench", "spectrum_large.toml")
OUT = os.path.join(ROOT, "docs", "spectrum_benchmarks.md")
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
DIMS = [int(x) for x in os.environ.get("BENCH_SPECTRUM_DIMS", "30,45,70,100").split(",")]
DENSE_MAX = int(os.environ.get("BENCH_SPECTRUM_DENSE_MAX", "11000"))
DENSE_RUNS = os.environ.get("BENCH_SPECTRUM_DENSE_RUNS")
LARGE_RUNS = min(RUNS, int(os.environ.get("BENCH_SPECTRUM_LARGE_RUNS", "3")))
JSON_OUT = os.path.join(BUILD, "spectrum_bench.json")
K = 10
TMP = tempfile.mkdtemp(prefix="gfsim_spectrum_")


def parse(text):
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        out[key] = value
    return out


def floats(text):
    return [float(x) for x in text.split(",")] if text else []


def run(args):
    """bench_spectrum under /usr/bin/time: (its key-value output, peak RSS kB, elapsed s)."""
    cmd = ["/usr/bin/time", "-f", "%M %e", BENCH, MODEL, *args]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    kb, elapsed = p.stderr.strip().splitlines()[-1].split()
    return parse(p.stdout), int(kb), float(elapsed)


def machine():
    cpu, mem, commit = run_bench.machine()
    return cpu, " ".join(mem.split()), commit


def agreement(sparse, dense):
    """Max relative difference: largest end per eigenvalue; smallest end (zeros) relative to max|lambda|."""
    s_lo, s_hi = floats(sparse["spectra_smallest"]), floats(sparse["spectra_largest"])
    d_lo, d_hi = floats(dense["dense_smallest"]), floats(dense["dense_largest"])
    if len(s_lo) != len(d_lo) or len(s_hi) != len(d_hi):
        return float("nan"), float("nan")
    scale = max(abs(x) for x in d_lo + d_hi)
    hi = max(abs(a - b) / abs(b) for a, b in zip(s_hi, d_hi))
    lo = max(abs(a - b) / scale for a, b in zip(s_lo, d_lo))
    return hi, lo


def zeros(values, dense):
    """How many of the values are zero eigenvalues (|lambda| <= 1e-8 max|lambda| of the dense spectrum)."""
    scale = max(abs(x) for x in floats(dense["dense_smallest"]) + floats(dense["dense_largest"]))
    return sum(abs(x) <= 1e-8 * scale for x in floats(values))


def crossover(rows):
    """P where Spectra and the dense route take equal time, log-log interpolated between sizes."""
    pts = [(r["P"], r["spectra_s"] / r["dense_s"]) for r in rows if r.get("dense_s")]
    for (p0, q0), (p1, q1) in zip(pts, pts[1:]):
        if (q0 - 1) * (q1 - 1) <= 0 and q0 != q1:
            f = math.log(q0) / (math.log(q0) - math.log(q1))
            return math.exp(math.log(p0) + f * (math.log(p1) - math.log(p0)))
    return None


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--markdown":
        with open(sys.argv[2]) as f:
            rep = json.load(f)
        write_markdown(rep)
        return
    t_start = time.time()
    rows = []
    rep = {"load_start": loadavg(), "runs": RUNS, "large_runs": LARGE_RUNS, "date": datetime.datetime.now().strftime(
        "%Y-%m-%d %H:%M")}
    for d in DIMS:
        sets = ["--set", f"data.dim={d}", "--set", f"network.hidden=[{d}]"]
        direction = os.path.join(TMP, f"V_{d}.bin")
        runs = RUNS if d * d + d <= 5000 else LARGE_RUNS
        a, a_kb, a_wall = run([*sets, "--routes", "stationary,kernels,spectra", "--runs", str(runs), "--k", str(K),
                               "--direction", direction])
        P = int(a["P"])
        row = {"d": d, "P": P, "m": int(a["tangent_dim"]), "n": int(a["n"]), "a": a, "a_kb": a_kb, "a_wall": a_wall,
               "spectra_s": float(a["spectra_seconds"])}
        print(f"d = {d} (P = {P}): stationary {float(a['stationary_seconds']):.1f} s, "
              f"spectra {row['spectra_s']:.2f} s at {time.time() - t_start:.0f} s", file=sys.stderr)
        if P <= DENSE_MAX:
            dense_runs = int(DENSE_RUNS) if DENSE_RUNS else (3 if P <= 5000 else 1)
            b, b_kb, b_wall = run([*sets, "--routes", "dense", "--dense-runs", str(dense_runs), "--k", str(K),
                                   "--direction", direction])
            row.update(b=b, b_kb=b_kb, b_wall=b_wall,
                       dense_s=float(b["dense_assemble_seconds"]) + float(b["dense_eig_seconds"]))
            row["agree_hi"], row["agree_lo"] = agreement(a, b)
            print(f"  dense {row['dense_s']:.1f} s at {time.time() - t_start:.0f} s", file=sys.stderr)
        rows.append(row)
        rep.update(rows=rows, load_end=loadavg(), seconds=time.time() - t_start)
        with open(JSON_OUT, "w") as f:  # after every size: a partial run still leaves its results
            json.dump(rep, f, indent=1)
    rep["machine"] = machine()
    with open(JSON_OUT, "w") as f:
        json.dump(rep, f, indent=1)
    write_markdown(rep)


def summary(rows):
    """The largest size in one paragraph (from the tables below)."""
    r = max(rows, key=lambda x: x["P"])
    a = r["a"]
    total, accepted = int(a["newton_hvps"]), int(a["minres_iterations"])
    text = (f"Summary at P = {r['P']} (tangent dimension {r['m']}): the stationary point takes "
            f"{float(a['stationary_seconds']):.3g} s ({float(a['flow_seconds']):.3g} s flow phase, "
            f"{float(a['newton_seconds']):.3g} s Newton, {total} Hessian products of which {total - accepted} in the "
            f"rejected round-off step); one Riemannian Hessian product {float(a['riemannian_hvp_seconds']) * 1e3:.3g} ms; "
            f"the 2 x {K} extreme eigenvalues by Spectra {r['spectra_s']:.3g} s ({a['spectra_hvps']} products, peak "
            f"RSS {r['a_kb'] / 1024:.0f} MB)")
    if "b" in r:
        text += (f"; by the dense route {r['dense_s']:.3g} s ({float(r['b']['dense_assemble_seconds']):.3g} s for "
                 f"the {r['m']} products, {float(r['b']['dense_eig_seconds']):.3g} s eigensolver, peak RSS "
                 f"{r['b_kb'] / 1024:.0f} MB): Spectra is {r['dense_s'] / r['spectra_s']:.2g}x faster, agreeing to "
                 f"{max(r['agree_hi'], r['agree_lo']):.1e}")
    return [text + "."]


def write_markdown(rep):
    rows, seconds = rep["rows"], rep["seconds"]
    cpu, mem, commit = rep.get("machine") or machine()
    dims = ",".join(str(r["d"]) for r in rows)
    L = ["# Stationary-point spectrum benchmark", "",
         f"Generated by `scripts/bench` (bench/spectrum_bench.py) on {rep['date']}, git commit `{commit}`, 1 thread "
         f"(OMP_NUM_THREADS=1), Release build. Total benchmark time {seconds:.0f} s. Load average (1, 5, 15 min) "
         f"at the start {rep['load_start']}, at the end {rep['load_end']} (the 2 cores are shared: wall times above "
         "a load of 2 are inflated). Linked from [benchmarks.md](benchmarks.md).", "",
         "Machine: " + "; ".join(cpu) + f". Memory: `{mem}`.", "",
         "Reproduce:", "",
         "```sh",
         "cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench -j2 --target bench_spectrum",
         f"GFSIM_BUILD=build-bench OMP_NUM_THREADS=1 BENCH_RUNS={rep['runs']} BENCH_SPECTRUM_DIMS={dims} "
         "/usr/bin/python3 bench/spectrum_bench.py",
         "# one size by hand (d = 100, P = 10100): stationary point, kernels, Spectra; then the dense route there",
         "OMP_NUM_THREADS=1 build-bench/bench/bench_spectrum bench/spectrum_large.toml --routes stationary,kernels,spectra "
         "--runs 3 --direction /tmp/V.bin",
         "OMP_NUM_THREADS=1 build-bench/bench/bench_spectrum bench/spectrum_large.toml --routes dense --dense-runs 1 "
         "--direction /tmp/V.bin",
         "```", "",
         "Problem: bench/spectrum_large.toml, a 2-layer linear network d-d-1 (P = d^2 + d), n = 1000 "
         "separable Gaussian points in R^d (margin 0.1), exp loss, fixed-rho flow at rho = 10; the size is set by "
         "`--set data.dim=d --set network.hidden=[d]`. Spectrum: the k = 10 smallest and 10 largest eigenvalues "
         "of the Riemannian Hessian on the tangent space (dimension m = P - 2), in the implicit orthonormal basis "
         "B (TangentBasis). At the stationary point it has a (d-1)-fold zero (orthogonal symmetry), a "
         "(d-1)^2-fold eigenvalue (sphere curvature along directions that leave f unchanged) and 2(d-1) data "
         "eigenvalues (model file header; counts in the last table).", "",
         "- **Stationary point**: `locate_stationary` with the defaults of `gfsim stationary`, timed in its two "
         "phases: the flow phase (fixed-rho flow in normalized time, dopri5 above 400 states, until |grad| <= "
         "1e-6 rho L), then Riemannian Newton from its end (MINRES on Hessian products above tangent dimension 600, "
         "forcing term = relative gradient, until |grad| <= 1e-14 rho L or a step no longer decreases |grad|).",
         "- **Spectra (matrix-free)**: `extreme_eigenvalues` on y -> B^T Hess B y with the options of "
         "`gfsim stationary` (tol 1e-12, automatic low end: Lanczos on lambda_max I - H, then shift-invert with "
         f"MINRES inner solves when it finds a repeated eigenvalue). Wall = median of {rep['runs']} runs in one "
         f"process ({rep['large_runs']} above P = 5000); HVPs = Riemannian Hessian products of one run. 'flip only' "
         "= the first stage alone (one run), which does not resolve the multiplicity of the zero block.",
         "- **Dense**: B^T Hess B by m products (`tangent_hessian_matrix`, O(m^2) memory: B is not formed), then "
         "Eigen `SelfAdjointEigenSolver` (eigenvalues only; Eigen's own kernels, no LAPACK). Median of the runs "
         "shown (slow: 3 runs up to P = 5000, 1 above).",
         "- **Agreement**: largest end max_i |lambda_i(Spectra) - lambda_i(dense)| / |lambda_i(dense)|; smallest end "
         "(zeros there) max_i |difference| / max|lambda|.",
         "- **Peak RSS**: /usr/bin/time of each process (process 1: stationary point + kernels + Spectra; process 2: "
         "dense route at the point saved by process 1).", "",
         *summary(rows), "",
         "## Stationary point", "",
         "| d | P | flow phase | flow steps | Newton | accepted steps (MINRES iterations each) | Hessian products in "
         "Newton | of which in rejected steps | rel. gradient: flow end, after each accepted step |",
         "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r["a"]
        accepted = int(a["minres_iterations"])
        total = int(a["newton_hvps"])
        L.append(f"| {r['d']} | {r['P']} | {float(a['flow_seconds']):.3g} s ({a['flow_status']}) | {a['flow_steps']} | "
                 f"{float(a['newton_seconds']):.3g} s | {a['newton_iterations']} ({a['newton_minres_per_step'] or '-'}) | "
                 f"{total} | {total - accepted} ({100 * (total - accepted) / max(total, 1):.1f} %) | "
                 f"{a['newton_grad_rel'].replace(',', ', ')} |")
    L += ["", "Rejected steps: once the relative gradient is at round-off (<= 1e-11 counts as converged, but the "
          "loop continues down to newton_tol = 1e-14), the next step's MINRES forcing term is at its floor 1e-12, "
          "which MINRES does not reach (the round-off gradient has components in the null space of the zero "
          "block, which no step removes): it runs to its cap of 4m iterations and "
          "the safeguard then rejects the step (the gradient does not decrease).", "",
          "## One product (repeated for >= 0.3 s, mean per call)", "",
          "| P | fixed-rho RHS | Flow::diagnostics (flow phase: once per RHS and per step) | Euclidean gradient | Euclidean HVP | Riemannian Hessian "
          "product | tangent operator B^T Hess B y |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r["a"]
        ms = [float(a[k]) * 1e3 for k in ("rhs_seconds", "diagnostics_seconds", "gradient_seconds", "hvp_seconds",
                                          "riemannian_hvp_seconds", "tangent_op_seconds")]
        L.append(f"| {r['P']} | " + " | ".join(f"{x:.3g} ms" for x in ms) + " |")
    L += ["", "The Riemannian product is the Euclidean HVP plus one Euclidean gradient (SphereProblem::hessian "
          "recomputes the per-layer multiplier <V_k, grad_k F> at every call) plus projections.", "",
          "## Extreme eigenvalues: Spectra vs dense", "",
          "| P | Spectra wall | runs | HVPs | inner MINRES solves | low end | flip only: wall, HVPs | max residual / "
          "max abs lambda | peak RSS | dense: assemble | dense: eigensolver | dense total | runs | peak RSS | "
          "Spectra / dense | agreement largest | agreement smallest | zeros among the k smallest: Spectra, flip only, "
          "dense |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r["a"]
        low = "shift-invert" if a["spectra_shift_invert"] == "1" else "flip"
        line = (f"| {r['P']} | {r['spectra_s']:.3g} s | {a['spectra_runs']} | {a['spectra_hvps']} | "
                f"{a['spectra_inner_solves']} | {low} | {float(a['flip_seconds']):.3g} s, {a['flip_hvps']} | "
                f"{float(a['spectra_max_rel_residual']):.1e} | {r['a_kb'] / 1024:.0f} MB |")
        if "b" in r:
            b = r["b"]
            line += (f" {float(b['dense_assemble_seconds']):.3g} s | {float(b['dense_eig_seconds']):.3g} s | "
                     f"{r['dense_s']:.3g} s | {b['dense_runs']} | {r['b_kb'] / 1024:.0f} MB | "
                     f"{r['spectra_s'] / r['dense_s']:.2g} | {r['agree_hi']:.1e} | {r['agree_lo']:.1e} | "
                     f"{zeros(a['spectra_smallest'], b)}, {zeros(a['flip_smallest'], b)}, "
                     f"{min(K, int(b['dense_zero_count']))} |")
        else:
            line += " skipped | | | | | | | | |"
        L.append(line)
    cross = crossover(rows)
    missed = [r["P"] for r in rows if "b" in r and zeros(r["a"]["spectra_smallest"], r["b"]) < min(K, int(
        r["b"]["dense_zero_count"]))]
    if missed:
        L += ["", "Spectra's low end misses copies of the repeated zero eigenvalue at P = "
              + ", ".join(str(p) for p in missed) + " (reported 'successful'): fewer zeros among its k smallest than "
              "the dense spectrum has (single-vector Lanczos, also after shift-invert, cannot guarantee "
              "multiplicities; spectrum.hpp)."]
    flip_missed = [r["P"] for r in rows if "b" in r and zeros(r["a"]["flip_smallest"], r["b"]) < min(K, int(
        r["b"]["dense_zero_count"]))]
    if flip_missed:
        L += ["", "The flipped Lanczos alone (no shift-invert) misses copies of the zero eigenvalue at P = "
              + ", ".join(str(p) for p in flip_missed) + ": its k smallest then include nonzero eigenvalues."]
    L += ["", ("Crossover (Spectra and dense equally fast, log-log interpolation of Spectra/dense between the measured "
               f"sizes): P ~ {cross:.0f}." if cross else
               "No crossover within the measured sizes (the same route is faster at every size measured)."), "",
          "## Spectrum at the stationary point (dense route)", "",
          "| P | m | lambda_min | lambda_max | zero eigenvalues (<= 1e-8 max) | smallest nonzero | largest block of "
          "equal eigenvalues (value) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "b" not in r:
            a = r["a"]
            L.append(f"| {r['P']} | {r['m']} | {floats(a['spectra_smallest'])[0]:.3g} (Spectra) | "
                     f"{floats(a['spectra_largest'])[-1]:.6g} (Spectra) | - | - | - |")
            continue
        b = r["b"]
        L.append(f"| {r['P']} | {r['m']} | {floats(b['dense_smallest'])[0]:.3g} | {floats(b['dense_largest'])[-1]:.6g} | "
                 f"{b['dense_zero_count']} | {float(b['dense_lambda_min_nonzero']):.6g} | {b['dense_largest_block']} "
                 f"({float(b['dense_largest_block_value']):.6g}) |")
    L.append("")
    with open(OUT, "w") as f:
        f.write("\n".join(L))
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
