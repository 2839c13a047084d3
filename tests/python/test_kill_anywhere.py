"""Kill anywhere (issue 18 item 5): `gfsim run` is killed with SIGKILL at random moments (process
start, model parsing, file creation, kink-event handling, sample flushes, the final write) and every
file it leaves must open with gfsim_io (format check included) and hold an exact prefix of the
samples and kink events of an uninterrupted run of the same model (the runs are deterministic, so
"exact" is bitwise). The output is created as OUT.partial and renamed onto OUT once its layout is on
disk, so a kill during creation leaves no OUT at all, never a file without an HDF5 signature; the
OFD lock on OUT.lock dies with the process, so the next run onto OUT is not refused.

The model is models/relu_two_layer.toml (a ReLU net with kink crossings and sliding, well under a
second) with output.flush_interval = 1e-9 s, so every recorded sample is flushed when it is written.
GFSIM_KILL_COUNT (default 30 in the suite; 100 and more by hand) sets the number of kills;
GFSIM_KILL_SEED the random moments. Every killed file that holds samples but is incomplete is then
continued with `gfsim run --resume` (GFSIM_RESUME_COUNT of them, default 6 in the suite, -1 for all)
and must equal the uninterrupted run at every sample to the solver tolerance.
Run by ctest with GFSIM_EXE, GFSIM_SOURCE_DIR and PYTHONPATH=analysis set."""
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import numpy as np

import gfsim_io
from cli_env import gfsim_exe, model_path
from run_prefix import check_killed_file

MODEL_OVERRIDES = ["--set", "output.flush_interval=1e-9"]
# As in test_resume.py: the run's rtol is 1e-8, a restarted integration agrees with the
# uninterrupted one to a small multiple of it; a restart from a wrong state differs by far more.
RESUME_TOLERANCE = 1e-6


class KillAnywhereTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gfsim_kill_")
        self.addCleanup(shutil.rmtree, self.dir)

    def command(self, out):
        return [gfsim_exe(), "run", model_path("relu_two_layer.toml"), *MODEL_OVERRIDES, "-o", out, "--quiet"]

    def test_every_killed_file_is_a_readable_prefix(self):
        reference_path = os.path.join(self.dir, "reference.h5")
        start = time.monotonic()
        subprocess.run(self.command(reference_path), check=True, stdout=subprocess.DEVNULL)
        duration = time.monotonic() - start
        reference = gfsim_io.load(reference_path)
        self.assertTrue(reference.complete)
        reference_events = reference.events()
        self.assertGreater(len(reference_events["time"]), 5, "the reference run has too few kink events")
        samples = len(reference.observables["rho"]["step"])
        self.assertGreater(samples, 5, "the reference run records too few samples to test prefixes")

        count = int(os.environ.get("GFSIM_KILL_COUNT", "30"))
        rng = random.Random(int(os.environ.get("GFSIM_KILL_SEED", "20261204")))
        outcomes = {"no file": 0, "prefix": 0, "complete": 0}
        last_killed = None
        prefixes = []
        for i in range(count):
            out = os.path.join(self.dir, f"killed_{i}.h5")
            delay = rng.uniform(0.0, 1.2 * duration)  # up to past the end: kills in the final write
            proc = subprocess.Popen(self.command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            last_killed = out
            outcome, run = check_killed_file(self, out, reference, f"kill {i} after {delay:.3f} s")
            outcomes[outcome] += 1
            if outcome == "prefix" and len(run.observables["theta"]["step"]) > 0:
                prefixes.append(out)
        print(f"{count} kills over 0..{1.2 * duration:.2f} s: {outcomes}")
        resumed = self.resume_and_compare(prefixes, reference)
        print(f"{resumed} of {len(prefixes)} killed files with samples resumed to the end: all equal the reference")
        # A killed run's stale lock file and partial file do not block the next run onto its path.
        subprocess.run(self.command(last_killed), check=True, stdout=subprocess.DEVNULL)
        self.assertTrue(gfsim_io.load(last_killed).complete)
        # The kills must land inside runs as well as before and after them, or the test is vacuous.
        self.assertGreater(outcomes["prefix"], 0, outcomes)

    def resume_and_compare(self, prefixes, reference):
        """`gfsim run --resume` continues each killed file to the stored t_end; every sample time of the
        reference is then in the file with the same values to RESUME_TOLERANCE (the samples before the
        kill are bitwise those of the reference, those after come from a restarted integration)."""
        limit = int(os.environ.get("GFSIM_RESUME_COUNT", "6"))
        chosen = prefixes if limit < 0 else prefixes[:limit]
        for path in chosen:
            result = subprocess.run([gfsim_exe(), "run", "--resume", path, "--quiet"],
                                    capture_output=True, text=True, timeout=120)
            self.assertEqual(result.returncode, 0, f"--resume {path}: {result.stderr}")
            run = gfsim_io.load(path)
            self.assertTrue(run.complete, path)
            self.assertEqual(run.solver.get("status"), reference.solver.get("status"), path)
            for name in ("theta", "rho", "log_loss"):
                expected, got = reference.observables[name], run.observables[name]
                common, ie, ig = np.intersect1d(expected["time"], got["time"], return_indices=True)
                self.assertEqual(len(common), len(expected["time"]), f"{path}: a sample time of {name} is missing")
                a, b = np.asarray(expected["value"])[ie], np.asarray(got["value"])[ig]
                err = np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a)))
                self.assertLess(err, RESUME_TOLERANCE, f"{path}: {name} differs from the reference by {err:.3g}")
        return len(chosen)


if __name__ == "__main__":
    unittest.main()
