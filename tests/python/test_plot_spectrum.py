#!/usr/bin/env python3
"""analysis/plot_spectrum.py on tiny files: a `gfsim stationary --rho-sweep` file (2-layer linear,
so with a zero mode) and a `gfsim run` file with a [spectrum] section."""
import os
import subprocess
import sys
import tempfile
import unittest

EXE = os.environ.get("GFSIM_EXE", "build/gfsim")
SRC = os.environ.get("GFSIM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PLOT = os.path.join(SRC, "analysis", "plot_spectrum.py")

MODEL = """
[data]
kind = "gaussian"
n = 20
dim = 3
[network]
activation = "linear"
hidden = [2]
init_scale = 0.5
[flow]
rho = 2.0
[time]
t_end = 100.0
samples_per_decade = 2
[spectrum]
samples_per_decade = 1
k = 2
[output]
path = "{out}"
"""


class PlotSpectrum(unittest.TestCase):
    def check_figures(self, folder, stem):
        for ext in ("png", "pdf"):
            path = os.path.join(folder, f"{stem}_spectrum.{ext}")
            self.assertTrue(os.path.exists(path) and os.path.getsize(path) > 1000, path)

    def test_sweep_and_run_files(self):
        import h5py
        with tempfile.TemporaryDirectory() as tmp:
            run_out = os.path.join(tmp, "run.h5")
            model = os.path.join(tmp, "m.toml")
            with open(model, "w") as f:
                f.write(MODEL.format(out=run_out))
            stat_out = os.path.join(tmp, "sweep.h5")
            proc = subprocess.run([EXE, "stationary", model, "--rho-sweep", "1:8:4", "-o", stat_out, "-q"],
                                  capture_output=True, text=True, timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            with h5py.File(stat_out, "r") as f:
                ev = f["stationary/sweep/eigenvalues"][()]
                self.assertEqual(ev.shape, (4, 8 - 2))  # P = 6 + 2, K = 2
                self.assertEqual(int(f["stationary/sweep/n_zero"][0]), 1)  # d_1 - 1 orthogonal mode
            figs = os.path.join(tmp, "figs")
            proc = subprocess.run([sys.executable, PLOT, stat_out, "--out", figs, "--rho", "3"],
                                  capture_output=True, text=True, timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.check_figures(figs, "sweep")

            proc = subprocess.run([EXE, "run", model, "-q"], capture_output=True, text=True, timeout=120, cwd=tmp)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            with h5py.File(run_out, "r") as f:
                v = f["observables/hessian_eigs/value"][()]
                t = f["observables/hessian_eigs/time"][()]
                self.assertEqual(v.shape, (len(t), 4))
                self.assertEqual(list(t[:2]), [0.0, 0.01])  # log-spaced from time.t_first
            proc = subprocess.run([sys.executable, PLOT, run_out, "--out", figs], capture_output=True, text=True,
                                  timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.check_figures(figs, "run")

    def test_other_file_exit_2(self):
        import h5py
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "x.h5")
            with h5py.File(path, "w") as f:
                f["a"] = [1.0]
            proc = subprocess.run([sys.executable, PLOT, path], capture_output=True, text=True, timeout=60)
            self.assertEqual(proc.returncode, 2)
            self.assertIn("neither", proc.stderr)


if __name__ == "__main__":
    unittest.main()
