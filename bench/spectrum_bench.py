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
dense route above it.
"""
import datetime
import math
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("GFSIM_BUILD", os.path.join(ROOT, "build-bench"))
BENCH = os.path.join(BUILD, "bench", "bench_spectrum")
MODEL = os.path.join(ROOT, "bench", "spectrum_large.toml")
OUT = os.path.join(ROOT, "docs", "spectrum_benchmarks.md")
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
DIMS = [int(x) for x in os.environ.get("BENCH_SPECTRUM_DIMS", "30,45,70,100").split(",")]
DENSE_MAX = int(os.environ.get("BENCH_SPECTRUM_DENSE_MAX", "11000"))
DENSE_RUNS = os.environ.get("BENCH_SPECTRUM_DENSE_RUNS")
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
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    keep = ("Model name", "CPU(s):", "Thread(s) per core", "L2 cache", "L3 cache", "CPU max MHz")
    cpu = [l.strip() for l in lscpu.splitlines() if l.strip().startswith(keep)]
    mem = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.splitlines()[1]
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return cpu, " ".join(mem.split()), commit + ("-dirty" if dirty else "")


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


def crossover(rows):
    """P where Spectra and the dense route take equal time, log-log interpolated between sizes."""
    pts = [(r["P"], r["spectra_s"] / r["dense_s"]) for r in rows if r.get("dense_s")]
    for (p0, q0), (p1, q1) in zip(pts, pts[1:]):
        if (q0 - 1) * (q1 - 1) <= 0 and q0 != q1:
            f = math.log(q0) / (math.log(q0) - math.log(q1))
            return math.exp(math.log(p0) + f * (math.log(p1) - math.log(p0)))
    return None


def main():
    t_start = time.time()
    rows = []
    for d in DIMS:
        sets = ["--set", f"data.dim={d}", "--set", f"network.hidden=[{d}]"]
        direction = os.path.join(TMP, f"V_{d}.bin")
        a, a_kb, a_wall = run([*sets, "--routes", "stationary,kernels,spectra", "--runs", str(RUNS), "--k", str(K),
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
    write_markdown(rows, time.time() - t_start)


def write_markdown(rows, seconds):
    cpu, mem, commit = machine()
    dims = ",".join(str(r["d"]) for r in rows)
    L = ["# Stationary-point spectrum benchmark", "",
         f"Generated by `scripts/bench` (bench/spectrum_bench.py) on "
         f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, git commit `{commit}`, 1 thread "
         f"(OMP_NUM_THREADS=1), Release build. Total benchmark time {seconds:.0f} s. "
         "Linked from [benchmarks.md](benchmarks.md).", "",
         "Machine: " + "; ".join(cpu) + f". Memory: `{mem}`.", "",
         "Reproduce (all sizes; about the total time above):", "",
         "```sh",
         "cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench -j2 --target bench_spectrum",
         f"GFSIM_BUILD=build-bench OMP_NUM_THREADS=1 BENCH_RUNS={RUNS} BENCH_SPECTRUM_DIMS={dims} "
         "/usr/bin/python3 bench/spectrum_bench.py",
         "# one size by hand: stationary point, kernels, Spectra; then the dense route at the saved point",
         "build-bench/bench/bench_spectrum bench/spectrum_large.toml --routes stationary,kernels,spectra "
         "--runs 5 --direction /tmp/V.bin",
         "build-bench/bench/bench_spectrum bench/spectrum_large.toml --routes dense --dense-runs 1 --direction /tmp/V.bin",
         "```", "",
         "Problem: bench/spectrum_large.toml, a 2-layer linear network d-d-1 (P = d^2 + d), n = 1000 "
         "separable Gaussian points in R^d (margin 0.1), exp loss, fixed-rho flow at rho = 10; the size is set by "
         "`--set data.dim=d --set network.hidden=[d]`. The stationary point is found from the model's initial "
         "direction by `locate_stationary` with the defaults of `gfsim stationary` (flow phase in the log clock "
         "until |grad| <= 1e-6 rho L, then Riemannian Newton, MINRES on Hessian products above tangent dimension "
         "600, until |grad| <= 1e-14 rho L or round-off). Spectrum: the k = 10 smallest and 10 largest eigenvalues "
         "of the Riemannian Hessian on the tangent space (dimension m = P - 2), in the implicit orthonormal basis "
         "B (TangentBasis).", "",
         "- **Spectra (matrix-free)**: `extreme_eigenvalues` on y -> B^T Hess B y with the options of "
         "`gfsim stationary` (tol 1e-12, automatic low end: Lanczos on lambda_max I - H, then shift-invert with "
         "MINRES inner solves when it finds a repeated eigenvalue). Wall = median of "
         f"{RUNS} runs in one process; HVPs = Riemannian Hessian products of one run.",
         "- **Dense**: B^T Hess B by m products (`tangent_hessian_matrix`, O(m^2) memory), then Eigen "
         "`SelfAdjointEigenSolver` (eigenvalues only, no BLAS/LAPACK). Median of the runs shown (the dense route "
         "is slow: 3 runs up to P = 5000, 1 run above).",
         "- **Agreement**: largest end max_i |lambda_i(Spectra) - lambda_i(dense)| / |lambda_i(dense)|; smallest end "
         "(zeros there) max_i |difference| / max|lambda|.",
         "- **Peak RSS**: /usr/bin/time of each process (process 1: stationary point + Spectra; process 2: dense "
         "route, reading the point from process 1).", "",
         "## Stationary point", "",
         "| d | P | time | flow phase | flow steps | Newton steps | MINRES iterations (= Hessian products) per step "
         "| rel. gradient after each step | log F |",
         "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r["a"]
        L.append(f"| {r['d']} | {r['P']} | {float(a['stationary_seconds']):.2f} s | {a['flow_status']} | "
                 f"{a['flow_steps']} | {a['newton_iterations']} | {a['newton_minres_per_step'] or '-'} | "
                 f"{a['newton_grad_rel'].replace(',', ', ')} | {float(a['log_loss']):.6g} |")
    L += ["", "## One product (median-free: repeated for >= 0.3 s, mean per call)", "",
          "| P | Euclidean gradient | Euclidean HVP | Riemannian Hessian product | tangent operator B^T Hess B y |",
          "|---|---|---|---|---|"]
    for r in rows:
        a = r["a"]
        L.append(f"| {r['P']} | {float(a['gradient_seconds']) * 1e3:.3f} ms | {float(a['hvp_seconds']) * 1e3:.3f} ms | "
                 f"{float(a['riemannian_hvp_seconds']) * 1e3:.3f} ms | {float(a['tangent_op_seconds']) * 1e3:.3f} ms |")
    L += ["", "The Riemannian product is the Euclidean HVP plus one Euclidean gradient (SphereProblem::hessian "
          "recomputes the per-layer multiplier <V_k, grad_k F> at every call) plus projections.", "",
          "## Extreme eigenvalues: Spectra vs dense", "",
          "| P | Spectra wall | HVPs | inner MINRES solves | low end | info (small, large) | max residual / max|lambda| "
          "| peak RSS | dense: assemble | dense: eigensolver | dense total | runs | peak RSS | Spectra / dense "
          "| agreement largest | agreement smallest |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r["a"]
        low = "shift-invert" if a["spectra_shift_invert"] == "1" else "flip"
        line = (f"| {r['P']} | {r['spectra_s']:.3g} s | {a['spectra_hvps']} | {a['spectra_inner_solves']} | {low} | "
                f"{a['spectra_info'].replace(' ', ', ')} | {float(a['spectra_max_rel_residual']):.1e} | "
                f"{r['a_kb'] / 1024:.0f} MB |")
        if "b" in r:
            b = r["b"]
            line += (f" {float(b['dense_assemble_seconds']):.3g} s | {float(b['dense_eig_seconds']):.3g} s | "
                     f"{r['dense_s']:.3g} s | {b['dense_runs']} | {r['b_kb'] / 1024:.0f} MB | "
                     f"{r['spectra_s'] / r['dense_s']:.2g} | {r['agree_hi']:.1e} | {r['agree_lo']:.1e} |")
        else:
            line += f" skipped (P > BENCH_SPECTRUM_DENSE_MAX = {DENSE_MAX}) | | | | | | | |"
        L.append(line)
    cross = crossover(rows)
    L += ["", ("Crossover (Spectra and dense equally fast, log-log interpolation between the measured sizes): "
               f"P ~ {cross:.0f}." if cross else
               "No crossover within the measured sizes (the same route is faster at every size measured)."), "",
          "## Spectrum at the stationary point (dense route)", "",
          "| P | m | lambda_min | lambda_max | zero eigenvalues (<= 1e-8 max) | smallest nonzero | largest block of "
          "equal eigenvalues (value) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "b" not in r:
            a = r["a"]
            L.append(f"| {r['P']} | {r['m']} | {floats(a['spectra_smallest'])[0]:.6g} (Spectra) | "
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
