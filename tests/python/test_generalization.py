"""Generalization observables (issue 17, docs/file-format.md): the train_/test_/gap_ observables a run
stores equal a direct numpy computation on the weights and data stored in the same file; the held-out
data are stored as the model made them (split disjoint and reproducible, labels flipped exactly as
stated, standardized with the training statistics); the summary and the sweep index carry them.
Run by ctest with GFSIM_EXE, GFSIM_SOURCE_DIR and PYTHONPATH=analysis set."""
import os
import shutil
import subprocess
import tempfile
import unittest

import h5py
import numpy as np

import gfsim_io
from cli_env import gfsim_exe, model_path

# A small deep ReLU net on standardized wine data with a held-out split, 20% label noise and a
# chosen rho; the ReLU smoothed at eps = 0.01 (the label noise makes event runs slide for long), to t = 100.
MODEL = """
[data]
kind = "csv"
path = "{data}"
test_fraction = 0.3
standardize = true
label_noise = 0.2
seed = 4
[network]
activation = "relu"
hidden = [6, 4]
init_scale = 1.0
seed = 3
[loss]
kind = "logistic"
[time]
t_end = 100
samples_per_decade = 3
[dynamics]
kinks = "smooth"
kink_width = 0.01
[generalization]
rho = 5.0
"""


def loss(kind, u):
    return {"exp": np.exp(-u), "logistic": np.logaddexp(0, -u), "square": (1 - u) ** 2}[kind]


def forward(weights, X, activation):
    a = X.T
    for k, W in enumerate(weights):
        a = W @ a
        if k + 1 < len(weights) and activation == "relu":
            a = np.maximum(a, 0)
        elif k + 1 < len(weights) and activation == "smooth":
            # eps log(1 + e^{z/eps}), eps = 0.01, in the network's own form max(z, 0) - eps log(1/(1 + E)),
            # E = e^{-|z|/eps}: where every unit is far off, f is 0 or a tiny number by the form, and
            # the sign of y f (the error) follows it.
            a = np.maximum(a, 0) - 0.01 * np.log(1 / (1 + np.exp(-np.abs(a) / 0.01)))
    return a[0]


def measures(weights, X, y, kind, activation, rho):
    u = y * forward(weights, X, activation)
    normalized = [W / np.linalg.norm(W) for W in weights]
    un = y * forward(normalized, X, activation)
    return {"error": np.mean(u <= 0), "log_mean_loss": np.log(np.mean(loss(kind, u))),
            "nloss": np.mean(loss(kind, un)), "nloss_rho": np.mean(loss(kind, rho * un))}


class GeneralizationTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gfsim_gen_")
        self.addCleanup(shutil.rmtree, self.dir)
        self.model = os.path.join(self.dir, "model.toml")
        with open(self.model, "w") as f:
            f.write(MODEL.format(data=model_path("data/wine_0_1.csv")))

    def run_gfsim(self, out, *sets):
        cmd = [gfsim_exe(), "run", self.model, "-o", out]
        for s in sets:
            cmd += ["--set", s]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result

    def test_observables_equal_numpy_on_the_stored_weights(self):
        out = os.path.join(self.dir, "a.h5")
        result = self.run_gfsim(out)
        run = gfsim_io.load(out)
        X, y = run.data_X(), run.extra["data/y"]
        Xt, yt = run.extra["data/X_test"], run.extra["data/y_test"]
        self.assertEqual(len(y) + len(yt), 130)
        samples = len(run.observables["theta"]["time"])
        self.assertGreater(samples, 5)
        checked_nonzero_gap = False
        for s in range(samples):
            weights = run.weights(s)
            train = measures(weights, X, y, "logistic", "smooth", 5.0)
            test = measures(weights, Xt, yt, "logistic", "smooth", 5.0)
            for q in ("error", "log_mean_loss", "nloss", "nloss_rho"):
                got = {side: run.observables[f"{side}_{q}"]["value"][s] for side in ("train", "test", "gap")}
                for side, want in (("train", train[q]), ("test", test[q]), ("gap", test[q] - train[q])):
                    self.assertLessEqual(abs(got[side] - want), 1e-12 * max(1.0, abs(want)),
                                         f"{side}_{q} at sample {s}: {got[side]} vs numpy {want}")
                checked_nonzero_gap |= abs(got["gap"]) > 1e-3
        self.assertTrue(checked_nonzero_gap)
        # the summary prints the final values
        final = run.observables["test_nloss"]["value"][-1]
        self.assertIn("test_nloss", result.stdout)
        self.assertIn(f"{final:.6g}", result.stdout)

    def test_stored_data_are_the_split_the_model_asks_for(self):
        out_a, out_b = os.path.join(self.dir, "a.h5"), os.path.join(self.dir, "b.h5")
        self.run_gfsim(out_a, "time.t_end=0.1")
        self.run_gfsim(out_b, "time.t_end=0.1")
        a, b = gfsim_io.load(out_a), gfsim_io.load(out_b)
        for name in ("data/X", "data/y", "data/X_test", "data/y_test", "data/y_clean", "data/corrupted_rows"):
            np.testing.assert_array_equal(a.extra[name], b.extra[name], name)  # reproducible
        # raw rows of the CSV: every point in exactly one set (after undoing the standardization)
        with open(model_path("data/wine_0_1.csv")) as f:
            lines = [line for line in f if line.strip() and not line.startswith("#")][1:]  # no header
        raw = np.array([[float(v) for v in line.split(",")] for line in lines])
        mean, scale = a.extra["data/feature_mean"], a.extra["data/feature_scale"]
        train_raw = a.data_X() * scale + mean
        test_raw = a.extra["data/X_test"] * scale + mean
        np.testing.assert_allclose(train_raw.mean(axis=0), mean, rtol=1e-10)
        np.testing.assert_allclose(train_raw.std(axis=0), scale, rtol=1e-10)
        keys = lambda rows: {tuple(np.round(r, 6)) for r in rows}
        self.assertEqual(len(keys(train_raw) & keys(test_raw)), 0)  # disjoint
        self.assertEqual(keys(train_raw) | keys(test_raw), keys(raw[:, 1:]))  # complete
        # labels: exactly round(0.2 n_train) flipped, at the stored rows; test labels clean
        y, clean, rows = a.extra["data/y"], a.extra["data/y_clean"], a.extra["data/corrupted_rows"]
        self.assertEqual(len(rows), round(0.2 * len(y)))
        np.testing.assert_array_equal(np.flatnonzero(y != clean), rows.astype(int))
        lookup = {tuple(np.round(r[1:], 6)): r[0] for r in raw}
        np.testing.assert_array_equal([lookup[k] for k in map(lambda r: tuple(np.round(r, 6)), test_raw)],
                                      a.extra["data/y_test"])
        np.testing.assert_array_equal([lookup[tuple(np.round(r, 6))] for r in train_raw], clean)
        # another seed, another split
        out_c = os.path.join(self.dir, "c.h5")
        self.run_gfsim(out_c, "time.t_end=0.1", "data.seed=5")
        self.assertFalse(np.array_equal(gfsim_io.load(out_c).extra["data/y_test"], a.extra["data/y_test"]) and
                         np.array_equal(gfsim_io.load(out_c).extra["data/X_test"], a.extra["data/X_test"]))

    def test_sweep_index_carries_the_generalization_columns(self):
        with open(os.path.join(self.dir, "sweep.toml"), "w") as f:
            f.write('base = "model.toml"\n[set]\n"time.t_end" = 1.0\n[grid]\n"data.label_noise" = [0.1, 0.3]\n')
        out = os.path.join(self.dir, "out")
        result = subprocess.run([gfsim_exe(), "sweep", os.path.join(self.dir, "sweep.toml"), "--out", out, "--quiet"],
                                capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr)
        table = gfsim_io.load_index(os.path.join(out, "index.h5"))
        self.assertEqual(len(table), 2)
        for row in table:
            run = gfsim_io.load(os.path.join(out, row["file"]))
            for side in ("train", "test", "gap"):
                for q in ("error", "log_mean_loss", "nloss", "nloss_rho"):
                    name = f"{side}_{q}"
                    self.assertEqual(row[name], run.observables[name]["value"][-1], name)

    def test_runs_without_test_data_record_the_training_side_only(self):
        out = os.path.join(self.dir, "plain.h5")
        subprocess.run([gfsim_exe(), "run", model_path("linear_exp.toml"), "-o", out, "--set", "time.t_end=1",
                        "-q"], check=True, capture_output=True)
        with h5py.File(out, "r") as f:
            names = set(f["observables"])
            self.assertIn("train_nloss", names)
            self.assertNotIn("test_nloss", names)
            self.assertNotIn("train_nloss_rho", names)
            self.assertNotIn("data/X_test", f)


if __name__ == "__main__":
    unittest.main()
