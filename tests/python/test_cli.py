#!/usr/bin/env python3
"""End-to-end tests of the gfsim command line: example models, overrides, exact solution through
the whole pipeline (model file -> HDF5 -> reader), exit codes and error messages for bad input."""
import math
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import gfsim_io

EXE = os.environ["GFSIM_EXE"]
SRC = os.environ["GFSIM_SOURCE_DIR"]
MODELS = os.path.join(SRC, "models")


def gfsim(*args, **kw):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120, **kw)


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def out(self, name):
        return os.path.join(self.tmp.name, name)

    def write_model(self, text, name="m.toml"):
        path = self.out(name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_version_and_help(self):
        r = gfsim("--version")
        self.assertEqual(r.returncode, 0)
        self.assertIn("gfsim 0.", r.stdout)
        self.assertIn("run", gfsim("--help").stdout)

    def test_example_models_run(self):
        smooth = ["linear_exp", "linear_logistic_wn", "one_point_exact", "deep_linear", "fixed_rho", "square_loss"]
        for name in smooth:
            with self.subTest(model=name):
                h5 = self.out(name + ".h5")
                r = gfsim("run", "-q", os.path.join(MODELS, name + ".toml"), "-o", h5,
                          "--set", "time.t_end=1e4")
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn("status", r.stdout)
                traj = gfsim_io.load(h5)
                self.assertTrue(traj.complete)
                self.assertEqual(traj.solver["status"], "success")
                t = traj.observables["theta"]["time"]
                self.assertEqual(t[0], 0.0)
                self.assertEqual(t[-1], 1e4)
                self.assertTrue(np.all(np.diff(t) > 0))
                # the loss never increases along gradient flows
                self.assertTrue(np.all(np.diff(traj.observables["log_loss"]["value"]) <= 1e-9), name)

    def test_one_point_exact_solution_through_the_pipeline(self):
        h5 = self.out("one.h5")
        r = gfsim("run", "-q", os.path.join(MODELS, "one_point_exact.toml"), "-o", h5,
                  "--set", "time.t_end=1e100", "--set", "solver.rtol=1e-10")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        traj = gfsim_io.load(h5)
        z = np.array([0.6, 0.8])  # models/data/one_point.csv: label +1
        w0 = traj.extra["initial/theta"]
        q0 = w0 @ z
        t = traj.observables["theta"]["time"][1:]
        w = traj.observables["theta"]["value"][1:]
        q = np.log(t) + np.log(1.0 + np.exp(q0) / t)  # log(e^q0 + t), ||z|| = 1
        exact = w0[None, :] + np.outer(q - q0, z)
        rel = np.linalg.norm(w - exact, axis=1) / np.linalg.norm(exact, axis=1)
        self.assertLess(rel.max(), 1e-8)

    def test_overrides_and_provenance(self):
        h5 = self.out("o.h5")
        r = gfsim("run", "-q", os.path.join(MODELS, "linear_exp.toml"), "-o", h5,
                  "--set", "time.t_end=100", "--set", "flow.kind=wn", "--set", "solver.method=dopri5", "--set", "solver.clock=auto")
        self.assertEqual(r.returncode, 0, r.stderr)
        traj = gfsim_io.load(h5)
        toml = traj.metadata["model_toml"]
        self.assertIn('kind = "wn"', toml)
        self.assertIn('method = "dopri5"', toml)
        self.assertEqual(traj.solver["method"], "dopri5")
        self.assertEqual(traj.solver["clock"], "t")  # auto: t_end <= 1e3
        for key in ("gfsim_version", "git_commit", "created", "format_version"):
            self.assertIn(key, traj.metadata)
        for key in ("steps", "accepted", "rejected", "rhs_evals", "jacobian_evals", "wall_seconds"):
            self.assertIn(key, traj.solver)

    def test_bad_input_exit_code_2_names_key_value_rule(self):
        base = os.path.join(MODELS, "linear_exp.toml")
        cases = [
            (["--set", "solver.rtol=-1"], ["solver.rtol", "-1"]),
            (["--set", "data.kind=gausian"], ["data.kind", "gausian", "gaussian"]),
            (["--set", "network.hiden=[3]"], ["network.hiden"]),
            (["--set", "time.t_end=0"], ["time.t_end", "0"]),
            (["--set", "flow.kind=wn", "--set", "network.init_scale=0"], ["rho_1 = 0", "wn"]),
        ]
        for extra, needles in cases:
            with self.subTest(extra=extra):
                r = gfsim("run", "-q", base, "-o", self.out("bad.h5"), *extra)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                for n in needles:
                    self.assertIn(n, r.stderr)
        r = gfsim("run", self.out("missing.toml"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing.toml", r.stderr)
        bad_csv = self.out("bad.csv")
        with open(bad_csv, "w") as f:
            f.write("1,0.5,0.5\n2,0.1,0.2\n")
        m = self.write_model(f'[data]\nkind = "csv"\npath = "{bad_csv}"\n')
        r = gfsim("run", "-q", m, "-o", self.out("x.h5"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.csv:2", r.stderr)
        r = gfsim("run", "-q", base, "-o", "/nonexistent-dir/x.h5")
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent-dir/x.h5", r.stderr)

    def test_gd_starts_at_zero_weights(self):
        r = gfsim("run", "-q", os.path.join(MODELS, "linear_exp.toml"), "-o", self.out("z.h5"),
                  "--set", "network.init_scale=0", "--set", "time.t_end=10")
        self.assertEqual(r.returncode, 0, r.stderr)
        w0 = gfsim_io.load(self.out("z.h5")).extra["initial/theta"]
        self.assertTrue(np.all(w0 == 0))

    def test_relu_plain_integration_stops_with_a_status_naming_the_kink(self):
        r = gfsim("run", "-q", os.path.join(MODELS, "relu_two_layer.toml"), "-o", self.out("r.h5"),
                  "--set", "dynamics.kinks=ignore", "--set", "solver.method=dopri5", "--set", "solver.max_steps=200000")
        if r.returncode == 0:
            self.skipTest("this trajectory crossed its kinks without stalling")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("stalled_at_kink", r.stdout)
        self.assertIn("pre-activation of layer 1", r.stdout)
        traj = gfsim_io.load(self.out("r.h5"))
        self.assertEqual(traj.solver["status"], "stalled_at_kink")
        self.assertGreaterEqual(len(traj.observables["theta"]["time"]), 1)  # at least t = 0


if __name__ == "__main__":
    unittest.main(verbosity=1)
