"""SIGINT and SIGTERM stop an event-dense run promptly (issue 18): the run records status
`interrupted`, closes its file normally (complete, readable, samples up to the signal) and exits 1.
Before the one integration loop, event handling never looked at the flag and such a run ignored both
signals for more than 25 s. Run by ctest with GFSIM_EXE, GFSIM_SOURCE_DIR and PYTHONPATH=analysis set."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import gfsim_io
from cli_env import gfsim_exe, model_path


class SignalTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gfsim_signals_")
        self.addCleanup(shutil.rmtree, self.dir)

    def stop_with(self, sig):
        out = os.path.join(self.dir, f"run_{int(sig)}.h5")
        # relu_events to an unreachable horizon: thousands of kink events, never finishes by itself.
        run = subprocess.Popen([gfsim_exe(), "run", model_path("relu_events.toml"), "--set", "time.t_end=1e30",
                                "--set", "output.flush_interval=0.05", "-o", out, "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.addCleanup(run.kill)
        deadline = time.monotonic() + 60
        while not os.path.exists(out) and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.02)
        self.assertIsNone(run.poll(), "the run ended before it could be signalled")
        time.sleep(0.5)  # well inside the event-dense phase
        run.send_signal(sig)
        try:
            # A hang guard, not a timing test: a run that stops at all stops within milliseconds.
            _, err = run.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.fail(f"signal {sig.name} did not stop the run within 20 s")
        self.assertEqual(run.returncode, 1, err)
        result = gfsim_io.load(out)
        self.assertTrue(result.complete)
        self.assertEqual(result.solver["status"], "interrupted")
        self.assertGreater(result.solver["t_final"], 0.0)
        self.assertLess(result.solver["t_final"], 1e30)
        # Every observable was sampled up to the signal and no further.
        sampled = [name for name, obs in result.observables.items() if len(obs["time"]) >= 1]
        self.assertTrue(sampled, "no observable was sampled before the signal")
        for name, obs in result.observables.items():
            if len(obs["time"]) == 0:
                continue  # a series with its own axis (e.g. spectrum samples) may have none yet
            self.assertLessEqual(obs["time"][-1], result.solver["t_final"], name)

    def test_sigint(self):
        self.stop_with(signal.SIGINT)

    def test_sigterm(self):
        self.stop_with(signal.SIGTERM)


if __name__ == "__main__":
    unittest.main()
