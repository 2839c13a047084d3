#!/usr/bin/env python3
"""`gfsim compare` from the command line: bad --flows names exit 2 naming the flag, a comparison of two
flows writes one HDF5 file per flow and the JSON, and analysis/plot_compare.py draws it."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

from cli_env import gfsim_exe, model_path

SRC = os.environ.get("GFSIM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PLOT = os.path.join(SRC, "analysis", "plot_compare.py")


class CompareCli(unittest.TestCase):
    def test_unknown_flow_is_bad_input(self):
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run([gfsim_exe(), "compare", model_path("one_point_exact.toml"), "--flows", "gd,sgd",
                                "-o", os.path.join(tmp, "c.h5")], capture_output=True, text=True)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("--flows", r.stderr)
            self.assertIn('unknown flow "sgd"', r.stderr)
            self.assertEqual(os.listdir(tmp), [])

    def test_two_flows_files_and_figure(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "c.h5")
            r = subprocess.run([gfsim_exe(), "compare", model_path("one_point_exact.toml"), "--flows", "gd,wn",
                                "--set", "time.t_end=1e8", "-q", "-o", out], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("< 1e-3", r.stdout)
            for name in ("c_gd.h5", "c_wn.h5", "c_compare.json"):
                self.assertTrue(os.path.exists(os.path.join(tmp, name)), name)
            with open(os.path.join(tmp, "c_compare.json")) as fh:
                report = json.load(fh)
            self.assertEqual([f["flow"] for f in report["flows"]], ["gd", "wn"])
            self.assertEqual(report["thresholds"], [1e-2, 1e-3, 1e-4])
            for f in report["flows"]:
                self.assertEqual(f["status"], "success")
                self.assertEqual(len(f["series"]["t"]), len(f["series"]["margin_gap"]))
                reached = [x["t"] for x in f["direction_reach"] if x["reached"]]
                self.assertEqual(reached, sorted(reached))  # a lower threshold is never reached earlier
            p = subprocess.run([sys.executable, PLOT, os.path.join(tmp, "c_compare.json")], capture_output=True,
                               text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            for ext in ("png", "pdf"):
                path = os.path.join(tmp, f"c_compare.{ext}")
                self.assertTrue(os.path.exists(path) and os.path.getsize(path) > 1000, path)


if __name__ == "__main__":
    unittest.main()
