#!/usr/bin/env python3
"""CLI test of `gfsim verify` on the closed-form example, and of analysis/plot_laws.py."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

EXE = os.environ.get("GFSIM_EXE", "build/gfsim")
SRC = os.environ.get("GFSIM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


class VerifyCli(unittest.TestCase):
    def test_closed_form_verify_and_plots(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "cf.h5")
            # No --t-end: both flows run to the model's time.t_end (1e100), reported as "t_end".
            proc = subprocess.run([EXE, "verify", os.path.join(SRC, "models", "verify_closed_form.toml"),
                                   "-o", out, "-q"], capture_output=True, text=True, timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertIn("rho_slope_gd", proc.stdout)
            with open(os.path.join(tmp, "cf.json")) as f:
                report = json.load(f)
            self.assertAlmostEqual(report["gamma"], 1.0, places=10)
            self.assertEqual(report["t_end"], 1e100)
            self.assertEqual(report["gd"]["status"], "success")
            self.assertGreater(report["gd"]["t_final"], 1e99)
            laws = {law["law"]: law for law in report["laws"]}
            self.assertEqual(laws["rho_slope_gd"]["verdict"], "holds")
            self.assertLess(laws["rho_slope_gd"]["rel_error"], 1e-3)
            self.assertEqual(laws["direction_gd"]["verdict"], "holds")
            self.assertLess(laws["direction_gd"]["rel_error"], 0.01)
            for name in ("cf_gd.h5", "cf_wn.h5"):
                self.assertTrue(os.path.exists(os.path.join(tmp, name)))
            import h5py
            with h5py.File(os.path.join(tmp, "cf_gd.h5"), "r") as f:
                self.assertEqual(f["verify/laws/rho_slope_gd"].attrs["verdict"], "holds")
            figs = os.path.join(tmp, "figs")
            proc = subprocess.run([sys.executable, os.path.join(SRC, "analysis", "plot_laws.py"),
                                   os.path.join(tmp, "cf_gd.h5"), "--out", figs],
                                  capture_output=True, text=True, timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            for ext in ("png", "pdf"):
                path = os.path.join(figs, f"cf_laws.{ext}")
                self.assertTrue(os.path.getsize(path) > 1000, path)

    def run_and_plot(self, tmp, model, stem, extra, codes=(0,)):
        out = os.path.join(tmp, f"{stem}.h5")
        proc = subprocess.run([EXE, "verify", os.path.join(SRC, "models", model), "-o", out, "-q"] + extra,
                              capture_output=True, text=True, timeout=120)
        self.assertIn(proc.returncode, codes, proc.stderr)
        figs = os.path.join(tmp, "figs")
        proc = subprocess.run([sys.executable, os.path.join(SRC, "analysis", "plot_laws.py"),
                               os.path.join(tmp, f"{stem}_gd.h5"), "--out", figs],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for ext in ("png", "pdf"):
            path = os.path.join(figs, f"{stem}_laws.{ext}")
            self.assertTrue(os.path.exists(path) and os.path.getsize(path) > 1000, path)
        with open(os.path.join(tmp, f"{stem}.json")) as f:
            return json.load(f)

    def test_deep_linear_kkt_panel(self):
        """K = 2 linear net on the closed-form data: KKT residual stored and plotted, falling to ~0."""
        import h5py
        with tempfile.TemporaryDirectory() as tmp:
            report = self.run_and_plot(tmp, "verify_closed_form.toml", "dl",
                                       ["--t-end", "1e40", "--set", "network.hidden=[3]",
                                        "--set", "network.init_scale=0.5"])
            self.assertEqual(report["K"], 2)
            kkt = report["gd"]["kkt"]
            self.assertGreater(len(kkt["log_t"]), 20)
            self.assertLess(kkt["residual_end"], 0.05)
            with h5py.File(os.path.join(tmp, "dl_gd.h5"), "r") as f:
                self.assertIn("verify/gd/kkt/stationarity", f)
                self.assertIn("verify/gd/rho_2", f)
                self.assertIn("verify/wn/stationary/distance", f)

    def test_relu_with_a_stopped_flow_plots(self):
        """2-layer ReLU net: no reference, the wn flow may stop at a kink; the figures are drawn anyway."""
        with tempfile.TemporaryDirectory() as tmp:
            report = self.run_and_plot(tmp, "verify_relu.toml", "relu",
                                       ["--t-end", "1e6", "--set", "data.n=60"], codes=(0, 1))
            self.assertFalse(report["has_reference"])
            # Exit code 1 (a numerical failure) exactly when a flow did not reach t_end.
            if report["wn"]["status"] != "success":
                for law in report["laws"]:
                    if law["law"].endswith("_wn"):
                        self.assertTrue(law["verdict"].startswith("not measured"), law)

    def test_non_separable_exit_2(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "d.csv"), "w") as f:
                f.write("1,1,0\n-1,1,0\n")
            model = os.path.join(tmp, "m.toml")
            with open(model, "w") as f:
                f.write('[data]\nkind = "csv"\npath = "d.csv"\n')
            proc = subprocess.run([EXE, "verify", model, "--t-end", "1e6", "-o", os.path.join(tmp, "x.h5")],
                                  capture_output=True, text=True, timeout=60)
            self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
            self.assertIn("separable", proc.stderr)


if __name__ == "__main__":
    unittest.main()
