#!/usr/bin/env python3
"""Golden-output regression test of one example model (one ctest entry per tests/golden/*.json).

    golden.py check CASE.json [section.key=value ...]
                                   run the case (extra values are added as --set overrides:
                                   to show that a change fails), compare with its references
    golden.py run CASE.json OUT.h5 run the case only
    golden.py coverage DIR         every models/*.toml has a case; the cases cover every flow
                                   kind, loss, solver method and kink mode

Environment: GFSIM_EXE (the gfsim binary), GFSIM_SOURCE_DIR (the checkout); set by ctest.
The reference values, their bands and the reasons for them are in each json file and in the
header of tests/golden/update.py, which writes them.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

# Final observables compared (the last sample of /observables/<name>/value).
OBSERVABLES = ("rho", "log_loss", "margin", "grad_norm")
# /solver integer counters compared within the count band.
COUNTERS = ("accepted", "rejected", "rhs_evals", "jacobian_evals", "jvp_evals",
            "lu_decompositions", "events")
# Kink event kinds as stored in /events/kind (docs/file-format.md): crossing, sliding entry, exit.
EVENT_KINDS = {"crossings": 0, "sliding_entries": 1, "sliding_exits": 2}


def source_dir():
    return os.environ.get("GFSIM_SOURCE_DIR",
                          os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..")))


def read_results(path):
    """What the golden tests compare, read from a gfsim output file. The only place that knows the
    file layout: adapt it here when the format changes.
    Returns {"status", "t_final", "counters": {name: int}, "kink_events": {kind: int} (empty
    without events), "observables": {name: list of float}, "resolved": {flow, loss, method, kinks}}."""
    with h5py.File(path, "r") as f:
        solver = f["solver"].attrs

        def text(v):
            return v.decode() if isinstance(v, bytes) else str(v)

        out = {
            "status": text(solver["status"]),
            "t_final": float(solver["t_final"]),
            "counters": {k: int(solver[k]) for k in COUNTERS if k in solver},
            "observables": {},
            "kink_events": {},
            # compiler and SIMD extensions (provenance): exact event counts hold within one target
            "build_target": text(f.attrs.get("build_target", "")),
        }
        for name in OBSERVABLES:
            value = np.atleast_1d(np.asarray(f[f"observables/{name}/value"][-1], dtype=float))
            out["observables"][name] = [float(x) for x in value]
        if "events/kind" in f:
            kind = np.asarray(f["events/kind"][()]).astype(np.int64)
            out["kink_events"] = {k: int(np.count_nonzero(kind == code)) for k, code in EVENT_KINDS.items()}
        # Only update.py and the coverage check use these (not compared): tolerate their absence.
        attrs = f.attrs
        out["resolved"] = {"flow": text(attrs.get("flow")), "loss": text(attrs.get("loss")),
                           "method": text(solver.get("method")),
                           "kinks": text(attrs.get("kinks", "none")).split(":")[0],
                           "rtol": float(attrs.get("rtol", "nan"))}
    return out


def run_case(case, out_h5, extra_sets=()):
    """Runs `gfsim run` on the case's model with its overrides; returns the CompletedProcess."""
    exe = os.environ.get("GFSIM_EXE", os.path.join(source_dir(), "build", "gfsim"))
    cmd = [exe, "run", "-q", os.path.join(source_dir(), case["model"]), "-o", out_h5]
    for s in list(case.get("overrides", [])) + list(extra_sets):
        cmd += ["--set", s]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


# Relative band of the solver counters between builds for different targets (compare).
CROSS_TARGET_REL = 0.5


def same_target(case, got):
    """Whether this build has the target (compiler and SIMD extensions) of the build that wrote
    the case's references; False if they do not record it."""
    target = case["reference"].get("build_target", "")
    return bool(target) and target == got.get("build_target")


def exact_events(case, got):
    """Whether the case's kink-event counts are compared exactly: the case asks for it and this
    build has the target of the build that wrote the references (another CPU's SIMD width or FMA
    contraction moves the last bits and, like the perturbed runs, the counts by a few; there
    they get the count band)."""
    return case["bands"]["kink_events"] == "exact" and same_target(case, got)


def compare(case, got):
    """List of differences between a run's results and the case's references (empty = pass)."""
    ref, bands, errors = case["reference"], case["bands"], []
    if got["status"] != ref["status"]:
        errors.append(f"status {got['status']!r}, expected {ref['status']!r}")
    if not math.isclose(got["t_final"], ref["t_final"], rel_tol=1e-12, abs_tol=0.0):
        errors.append(f"t_final {got['t_final']!r}, expected {ref['t_final']!r}")
    count_rel, count_abs = bands["counts"]["rel"], bands["counts"]["abs"]
    event_rel = count_rel  # kink events keep the case's band on every target
    # Another build target (or references that do not record theirs): the solver counters are
    # compared within CROSS_TARGET_REL. Three round-off perturbations of one build do not sample
    # what another SIMD width does to the error estimates: unchanged code moved the rejected steps
    # of normalized_linear from 77 to 96 and of rho_schedule_staircase from 1964 to 1210 between
    # an AVX2 and an AVX-512 build, with the observables within their bands.
    if not same_target(case, got):
        count_rel = max(count_rel, CROSS_TARGET_REL)
    for name, expected in ref["counters"].items():
        value = got["counters"].get(name)
        allowed = max(count_abs, count_rel * expected)
        if value is None or abs(value - expected) > allowed:
            errors.append(f"solver counter {name} = {value}, expected {expected} +- {allowed:g}")
    events_exact = exact_events(case, got)
    for name, expected in ref["kink_events"].items():
        value = got["kink_events"].get(name)
        allowed = 0 if events_exact else max(count_abs, event_rel * expected)
        if value is None or abs(value - expected) > allowed:
            errors.append(f"kink events {name} = {value}, expected {expected} +- {allowed:g}")
    for name, expected in ref["observables"].items():
        tol = bands["observables"][name]
        value = got["observables"].get(name, [])
        if len(value) != len(expected):
            errors.append(f"observable {name} has {len(value)} components, expected {len(expected)}")
            continue
        for i, (v, e) in enumerate(zip(value, expected)):
            allowed = tol["rel"] * abs(e) + tol["abs"]
            if not abs(v - e) <= allowed:  # also catches NaN
                errors.append(f"final {name}[{i}] = {v!r}, expected {e!r} +- {allowed:.3g}")
    return errors


# What the cases together must exercise (the enums of models/README.md).
MUST_COVER = {"flow": {"gd", "gd_polar", "wn", "fixed_rho", "nm", "nm_polar", "rho_schedule", "normalized", "rho_schedule_normalized"}, "loss": {"exp", "logistic", "square"},
              "method": {"dopri5", "rkf78", "cash_karp", "rosenbrock4", "cvode"},
              "kinks": {"events", "ignore", "smooth"}}


def coverage(folder):
    cases = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as f:
                cases[name[:-len(".json")]] = json.load(f)
    errors = []
    models = sorted(n[:-len(".toml")] for n in os.listdir(os.path.join(source_dir(), "models"))
                    if n.endswith(".toml"))
    for model in models:
        case = cases.get(model)
        if case is None or case["model"] != f"models/{model}.toml":
            errors.append(f"models/{model}.toml has no golden case tests/golden/{model}.json "
                          "(add it to CASES in tests/golden/update.py and run update.py)")
    for key, needed in MUST_COVER.items():
        missing = needed - {c["resolved"][key] for c in cases.values()}
        if missing:
            errors.append(f"no golden case has {key} = {', '.join(sorted(missing))}")
    for e in errors:
        print(e)
    if not errors:
        print(f"{len(cases)} golden cases cover {len(models)} models and " +
              "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in MUST_COVER.items()))
    return 1 if errors else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "coverage":
        return coverage(argv[2])
    if len(argv) == 4 and argv[1] == "run":
        with open(argv[2]) as f:
            proc = run_case(json.load(f), argv[3])
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        return proc.returncode
    if len(argv) < 3 or argv[1] != "check":
        sys.exit(__doc__)
    with open(argv[2]) as f:
        case = json.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        out_h5 = os.path.join(tmp, "out.h5")
        proc = run_case(case, out_h5, argv[3:])  # extra --set values: to show the test can fail
        if proc.returncode != case["reference"]["exit_code"]:
            print(f"gfsim exited with {proc.returncode}, expected {case['reference']['exit_code']}:\n"
                  f"{proc.stdout}{proc.stderr}")
            return 1
        got = read_results(out_h5)
        errors = compare(case, got)
    name = os.path.basename(argv[2])
    if not same_target(case, got):
        print(f"{name}: solver counters within {CROSS_TARGET_REL:.0%} and kink events within the count band: "
              f"the references were written by a build for "
              f"{case['reference'].get('build_target') or 'an unrecorded target'}, this one is for "
              f"{got['build_target'] or 'an unrecorded target'}")
    if errors:
        print(f"{name}: {len(errors)} difference(s) from the golden output "
              f"(regenerate with tests/golden/update.py only for a deliberate change):")
        for e in errors:
            print("  " + e)
        return 1
    print(f"{name}: matches the golden output")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
