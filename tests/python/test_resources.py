#!/usr/bin/env python3
"""Resource limits of `gfsim run` (issue 18 item 3): a model too large for the machine or for
solver.max_memory is refused before anything large is allocated, with exit 2 and a one-line message
naming the keys that set its size (it used to end in `internal error: std::bad_alloc`)."""
import os
import subprocess
import tempfile
import time
import unittest

EXE = os.environ["GFSIM_EXE"]


def gfsim(*args):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120)


class ResourcesTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def model(self, text):
        path = os.path.join(self.tmp.name, "m.toml")
        with open(path, "w") as f:
            f.write(text + f'\n[output]\npath = "{os.path.join(self.tmp.name, "o.h5")}"\n')
        return path

    def error_line(self, r):
        lines = [line for line in r.stderr.splitlines() if line.startswith("gfsim: error:")]
        self.assertEqual(len(lines), 1, r.stderr)
        return lines[0]

    def test_data_larger_than_memory_is_refused_within_a_second(self):
        path = self.model('[data]\nkind = "gaussian"\nn = 100000000\ndim = 3000\n')
        start = time.monotonic()
        r = gfsim("run", "-q", path)
        elapsed = time.monotonic() - start
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertLess(elapsed, 1.0)
        line = self.error_line(r)
        self.assertNotIn("bad_alloc", r.stderr)
        self.assertIn("memory: the run needs about 7.2 TB", line)
        self.assertIn("data.n = 100000000, data.dim = 3000", line)
        self.assertIn("MemAvailable", line)
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "o.h5")))

    def test_max_memory_limits_a_run_the_machine_could_do(self):
        # 2000 points through a 400-unit hidden layer: ~9 doubles per point and unit, about 58 MB.
        text = '[data]\nn = 2000\ndim = 5\n[network]\nactivation = "relu"\nhidden = [400]\n[time]\nt_end = 1\n'
        r = gfsim("run", "-q", self.model(text), "--set", "solver.max_memory=10000000")
        self.assertEqual(r.returncode, 2, r.stderr)
        line = self.error_line(r)
        self.assertIn("more than solver.max_memory = 10000000", line)
        self.assertIn("network workspace", line)
        self.assertIn("network.hidden = [400]", line)

    def test_run_within_the_limit_proceeds(self):
        text = '[data]\nn = 20\ndim = 3\n[time]\nt_end = 1\n[solver]\nmax_memory = 100000000\n'
        r = gfsim("run", "-q", self.model(text))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.tmp.name, "o.h5")))

    def test_negative_max_memory_is_a_spec_error(self):
        r = gfsim("run", "-q", self.model("[solver]\nmax_memory = -1\n"))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("solver.max_memory = -1: must be >= 0", self.error_line(r))


if __name__ == "__main__":
    unittest.main()
