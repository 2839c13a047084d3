"""One writer per output file (issue 18 item 4): while a `gfsim run` writes OUT, a second run onto
OUT is refused with a one-line error and exit 2, without touching OUT; OUT can be read meanwhile
(SWMR, through gfsim_io), and the first run's file is complete and readable once it stops. Run by
ctest with GFSIM_EXE, GFSIM_SOURCE_DIR and PYTHONPATH=analysis set."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import gfsim_io
from cli_env import gfsim_exe, model_path


class TwoWritersTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gfsim_writers_")
        self.addCleanup(shutil.rmtree, self.dir)

    def test_second_run_onto_a_file_being_written_is_refused(self):
        out = os.path.join(self.dir, "shared.h5")
        # A run that lasts: relu_events to an unreachable horizon, stopped by SIGINT below.
        first = subprocess.Popen([gfsim_exe(), "run", model_path("relu_events.toml"), "--set", "time.t_end=1e30",
                                  "--set", "output.flush_interval=0.05", "--set", "time.samples_per_decade=200", "-o", out, "--quiet"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.addCleanup(first.kill)
        deadline = time.monotonic() + 60
        while not os.path.exists(out) and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.02)
        self.assertTrue(os.path.exists(out), "the first run never published its file")
        time.sleep(0.3)  # a few flushes

        second = subprocess.run([gfsim_exe(), "run", model_path("linear_exp.toml"), "-o", out, "--quiet"],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(second.returncode, 2, second.stderr)
        self.assertEqual(len(second.stderr.strip().splitlines()), 1, second.stderr)
        self.assertIn("being written by another gfsim run", second.stderr)
        self.assertIn(out, second.stderr)

        # Read while written (SWMR): no /solver yet, the first run's model, and the samples as
        # they are flushed (a flush happens at the first sample 0.05 s after the previous one).
        during = gfsim_io.load(out)
        while len(during.observables["rho"]["time"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            during = gfsim_io.load(out)
        self.assertFalse(during.complete)
        self.assertEqual(during.metadata["model_name"], "relu_events")
        self.assertGreaterEqual(len(during.observables["rho"]["time"]), 2)

        self.assertIsNone(first.poll(), "the first run ended before the check: the test proves nothing")
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=60)
        self.assertEqual(first.returncode, 1, stderr)
        after = gfsim_io.load(out)
        self.assertTrue(after.complete)
        self.assertTrue(after.clean_close)
        self.assertEqual(after.solver["status"], "interrupted")
        self.assertEqual(after.metadata["model_name"], "relu_events")
        self.assertGreaterEqual(len(after.observables["rho"]["time"]), len(during.observables["rho"]["time"]))
        self.assertFalse(os.path.exists(out + ".lock"), "the lock file is removed when the run ends")

        # Once the first run has ended the path is free again.
        third = subprocess.run([gfsim_exe(), "run", model_path("linear_exp.toml"), "-o", out, "--quiet"],
                               capture_output=True, text=True, timeout=120)
        self.assertEqual(third.returncode, 0, third.stderr)
        self.assertEqual(gfsim_io.load(out).metadata["model_name"], "linear_exp")


if __name__ == "__main__":
    unittest.main(verbosity=2)
