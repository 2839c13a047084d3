#!/usr/bin/env python3
"""Regenerates the golden references tests/golden/<case>.json of the golden-output regression
tests (tests/golden/golden.py, one ctest entry `golden_<case>` per json, label "golden").

    /usr/bin/python3 tests/golden/update.py [--exe build/gfsim] [CASE ...]   (default: every case)

REGENERATING IS A DELIBERATE ACT. The references pin the behaviour of `gfsim run` on every example
model: a refactor must leave them passing. Regenerate only when a change of results is intended
(a new model, a changed model file, a deliberate change of the numerics), and say in the commit
message which cases changed, by how much, and why. Never regenerate to make a failing test pass
without knowing why it failed.

What a case pins, and the bands (stored in each json with the runs that set them, so a case can
be tightened alone). Each case is run once for the reference and three times more with solver.rtol
moved by 1e-14, -1e-14 and 3e-14 relative (PERTURBATIONS: about 100 ulps of every error weight,
which is what a reordered floating-point sum does to the error estimates). The bands are set from
the spread of those runs, with a floor:
- status, exit code and final t: exact.
- /solver counters (accepted, rejected, rhs_evals, jacobian_evals, jvp_evals, lu_decompositions,
  events): |n - ref| <= max(abs, rel x ref) with abs >= 2 and rel >= 1%, widened to twice the
  spread of the perturbed runs (rel from counters >= 100, abs from smaller ones). Round-off moves
  a step or two of the explicit methods, but CVODE's order and step-size decisions make its counts
  chaotic: on the long log-clock runs a 1e-14 change of rtol moves them by up to 30% (measured,
  e.g. verify_gaussian, verify_iris_nonseparable); those cases get wide count bands and rely on
  the observables.
- kink crossings, sliding entries and exits (counted from /events/kind): exact for relu_events (the
  project rule: its event counts must stay identical), else within the count band. Note: the
  perturbed runs of relu_events move them by 2 (recorded in its json): the exact rule holds only
  while the floating-point operations of the run are unchanged.
- final observables rho (per layer), log_loss, margin, grad_norm: |x - ref| <= rel |ref| + abs with
  rel = max(OBS_RTOL_FACTOR x solver.rtol, OBS_SPREAD_FACTOR x the spread of the perturbed runs):
  10 rtol is the size of the global error of a correct integration, so a change of the field, the
  data or the method fails, while round-off does not (measured spread <= 3 rtol except verify_relu,
  whose kink events move). Measured when the references were written: solver.rtol x 2 fails 18 of
  the 23 cases, x 10 fails 20 (square_loss_rkf78, verify_gaussian and verify_iris_nonseparable
  pass: stability-limited rkf78 steps, and wide CVODE count bands on runs whose end state does
  not depend on the path). abs = 0, except grad_norm in cases that
  converge to a stationary point (square loss, fixed rho, non-separable data), where the final
  gradient is round-off: abs = GRAD_FLOOR_FACTOR x the largest |grad| of the run.
The references belong to one build: Release, -march=native, GCC 12 on the x86-64 machine that
wrote them. Another CPU (AVX2 against AVX-512, FMA contraction) or compiler changes the last bits
and, like the perturbed runs, may move the relu_events counts by a few: the references record the
build's target (the files' `build_target`: compiler, SIMD extensions and the CPU model tuned for; an
Intel Xeon and an AMD EPYC with the same extensions moved relu_events by 4 / 3 / 3 events), and a build for another
target compares relu_events' counts within the count band instead, and every case's solver
counters within golden.CROSS_TARGET_REL (50%; golden.py says so when it does): three round-off
perturbations of one build underestimate what another SIMD width does to the step-size decisions
(rejected steps 77 -> 96 and 1964 -> 1210 on two cases between AVX2 and AVX-512, observables
within their bands). References written before build_target existed count as another target.
Cases with long horizons use --set overrides (stored in the json) to keep the whole golden suite
under about 60 s on 2 cores (measured: 35 s of CPU for the 24 tests, relu_events alone 27 s);
the extra cases beyond one per model cover the flows, losses, solvers and kink modes that no
example model uses.
"""
import argparse
import json
import os
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OBS_RTOL_FACTOR = 10      # the narrowest observable band, in units of the case's solver.rtol
OBS_SPREAD_FACTOR = 4     # the band is at least this many times the spread of the perturbed runs
GRAD_FLOOR_FACTOR = 1e-9
COUNT_BAND = {"rel": 0.01, "abs": 2}  # the narrowest count band
# Round-off-sized perturbations: solver.rtol moved by 1e-14 relative (about 100 ulps of every error
# weight), up and down. They stand for what a reordered sum does to the error estimates.
PERTURBATIONS = [("solver.rtol x (1 + 1e-14)", lambda rtol: f"solver.rtol={rtol * (1 + 1e-14)!r}"),
                 ("solver.rtol x (1 - 1e-14)", lambda rtol: f"solver.rtol={rtol * (1 - 1e-14)!r}"),
                 ("solver.rtol x (1 + 3e-14)", lambda rtol: f"solver.rtol={rtol * (1 + 3e-14)!r}")]

# name -> (model file, --set overrides, why the case exists). Every models/*.toml has a case named
# after it (checked by golden_coverage).
CASES = {
    "deep_linear": ("models/deep_linear.toml", [], "K = 3 linear, exp, gd, cvode dense, log clock"),
    "fixed_rho": ("models/fixed_rho.toml", [], "fixed_rho flow, cvode dense, t clock"),
    "linear_exp": ("models/linear_exp.toml", [], "reference model, to t = 1e12"),
    "linear_logistic_wn": ("models/linear_logistic_wn.toml", [], "wn flow, logistic loss"),
    "one_point_exact": ("models/one_point_exact.toml", [], "csv data, exact-solution model"),
    "relu_events": ("models/relu_events.toml", [], "ReLU kinks as events (dopri5), event counts exact"),
    "relu_two_layer": ("models/relu_two_layer.toml", [], "ReLU events, clock auto"),
    "square_loss": ("models/square_loss.toml", [], "square loss, finite minimizer"),
    "verify_closed_form": ("models/verify_closed_form.toml", [], "to t = 1e100"),
    "verify_deep_linear": ("models/verify_deep_linear.toml", [], "K = 2 linear to t = 1e100"),
    "verify_gaussian": ("models/verify_gaussian.toml", [], "n = 1000, dim = 50, to 1e100"),
    "verify_gaussian_logistic": ("models/verify_gaussian_logistic.toml", [], "logistic to 1e100"),
    "verify_iris": ("models/verify_iris.toml", [], "csv data with a bias feature"),
    "verify_iris_nonseparable": ("models/verify_iris_nonseparable.toml", [], "non-separable data"),
    "verify_relu": ("models/verify_relu.toml", [], "ReLU events in the log clock to 1e100"),
    "nm_square_min_norm": ("models/nm_square_min_norm.toml", [], "nm flow, square loss, n < dim: minimum-norm limit"),
    "nm_exp_path": ("models/nm_exp_path.toml", [], "nm flow, exp loss, regularization path to 1e12"),
    "rho_schedule_staircase": ("models/rho_schedule_staircase.toml", [], "rho_schedule staircase (dopri5, t clock)"),
    "normalized_linear": ("models/normalized_linear.toml", [], "loss-normalized flow to 1e6"),
    "rho_schedule_normalized_staircase": ("models/rho_schedule_normalized_staircase.toml", [],
                                          "loss-normalized fixed-radius phases, staircase rho (cvode, t clock)"),
    "compare_gaussian": ("models/compare_gaussian.toml", [], "the compare model run as gd"),
    "compare_iris_relu": ("models/compare_iris_relu.toml", [], "the 2-layer ReLU compare model run as gd (events)"),
    # Paths no example model takes.
    "gd_polar_logistic": ("models/linear_logistic_wn.toml", ["flow.kind=gd_polar"], "gd_polar flow"),
    "square_loss_rkf78": ("models/square_loss.toml", ["solver.method=rkf78"], "rkf78"),
    "fixed_rho_cash_karp": ("models/fixed_rho.toml", ["solver.method=cash_karp", "time.t_end=100"],
                            "cash_karp (explicit on a stiffening flow: shorter horizon)"),
    "deep_linear_rosenbrock4": ("models/deep_linear.toml", ["solver.method=rosenbrock4"], "rosenbrock4"),
    "relu_events_smooth_cvode": ("models/relu_events.toml",
                                 ["dynamics.kinks=smooth", "solver.method=cvode", "time.t_end=100"],
                                 "softplus-smoothed ReLU; cvode matrix-free GMRES (P = 704 > 400)"),
    "relu_two_layer_cvode_events": ("models/relu_two_layer.toml", ["solver.method=cvode", "time.t_end=100"],
                                    "kink events located on CVODE's interpolant"),
    "relu_two_layer_rosenbrock4_events": ("models/relu_two_layer.toml",
                                          ["solver.method=rosenbrock4", "time.t_end=100"],
                                          "kink events with rosenbrock4"),
    "nm_polar_exp": ("models/nm_exp_path.toml", ["flow.kind=nm_polar", "time.t_end=1e6"], "nm in polar form"),
    "relu_two_layer_ignore": ("models/relu_two_layer.toml", ["dynamics.kinks=ignore"],
                              "kinks ignored: cvode stalls at a kink (exit 1, status stalled_at_kink)"),
}


def converges_to_stationary_point(results):
    return results["resolved"]["loss"] == "square" or results["resolved"]["flow"] == "fixed_rho" \
        or results["observables"]["log_loss"][0] > 0


def largest_gradient(path):
    with h5py.File(path, "r") as f:
        return float(np.max(f["observables/grad_norm/value"][()]))


def counts_of(results):
    counts = dict(results["counters"])
    counts.update({"kink_" + k: v for k, v in results["kink_events"].items()})
    return counts


def measured_bands(case, reference, grad_floor):
    """The count and observable bands of a case from its spread under round-off-sized
    perturbations (module doc)."""
    rtol = reference["resolved"]["rtol"]
    ref_counts = counts_of(reference)
    rel, absolute, runs = 0.0, 0.0, []
    spread = {k: 0.0 for k in reference["observables"]}
    for label, override in PERTURBATIONS:
        with tempfile.TemporaryDirectory() as tmp:
            out_h5 = os.path.join(tmp, "out.h5")
            golden.run_case(case, out_h5, [override(rtol)])
            results = golden.read_results(out_h5)
        got = counts_of(results)
        diffs = {k: got[k] - v for k, v in ref_counts.items() if got.get(k) != v}
        run_spread = {}
        for k, ref in reference["observables"].items():
            floor = grad_floor if k == "grad_norm" else 0.0
            run_spread[k] = max((abs(a - b) / abs(b) for a, b in zip(results["observables"][k], ref)
                                 if abs(a - b) > floor), default=0.0)
            spread[k] = max(spread[k], run_spread[k])
        runs.append({"perturbation": label, "count_differences": diffs,
                     "observables_relative_difference": run_spread})
        for k, d in diffs.items():
            if ref_counts[k] >= 100:
                rel = max(rel, abs(d) / ref_counts[k])
            else:
                absolute = max(absolute, abs(d))
    count_band = {"rel": max(COUNT_BAND["rel"], float(f"{2 * rel:.2g}")),
                  "abs": max(COUNT_BAND["abs"], int(2 * absolute))}
    observable_bands = {k: {"rel": max(OBS_RTOL_FACTOR * rtol, float(f"{OBS_SPREAD_FACTOR * v:.2g}")),
                            "abs": grad_floor if k == "grad_norm" else 0.0}
                        for k, v in spread.items()}
    return count_band, observable_bands, runs


def make_case(name, exe):
    model, overrides, why = CASES[name]
    case = {"model": model, "overrides": overrides, "why": why}
    with tempfile.TemporaryDirectory() as tmp:
        out_h5 = os.path.join(tmp, "out.h5")
        proc = golden.run_case(case, out_h5)
        results = golden.read_results(out_h5)
        grad_max = largest_gradient(out_h5)
    grad_floor = GRAD_FLOOR_FACTOR * grad_max if converges_to_stationary_point(results) else 0.0
    count_band, observable_bands, runs = measured_bands(case, results, grad_floor)
    bands = {
        "counts": count_band,
        "kink_events": "exact" if name == "relu_events" else "counts",
        "observables": observable_bands,
        "why": (f"counts: |n - ref| <= max(abs, rel x ref), at least max({COUNT_BAND['abs']}, "
                f"{COUNT_BAND['rel']:.0%}) and twice the spread of the perturbed runs below; "
                f"observables: |x - ref| <= rel |ref| + abs, rel at least {OBS_RTOL_FACTOR:g} x "
                f"solver.rtol and {OBS_SPREAD_FACTOR:g} x the spread of the perturbed runs; "
                "see the header of tests/golden/update.py"),
        "perturbed_runs": runs,
    }
    case["resolved"] = results.pop("resolved")
    case["reference"] = dict(exit_code=proc.returncode, **results)
    case["bands"] = bands
    return case


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exe", default=os.path.join(golden.source_dir(), "build", "gfsim"))
    parser.add_argument("cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    os.environ["GFSIM_EXE"] = os.path.abspath(args.exe)
    for name in args.cases:
        case = make_case(name, args.exe)
        with open(os.path.join(HERE, name + ".json"), "w") as f:
            json.dump(case, f, indent=1)
            f.write("\n")
        print(f"{name}: {case['reference']['status']}, {case['reference']['counters']['accepted']} steps")


if __name__ == "__main__":
    main()
