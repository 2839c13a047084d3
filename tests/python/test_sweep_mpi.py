"""`mpirun -n 2 gfsim sweep` (issue 16 item 3; gfsim built with -DGFSIM_MPI=ON, which scripts/test
does in build-mpi/): the index equals that of `--jobs 1` in every column but the timings, only
rank 0 reports, and a second mpirun finds every run complete. Skipped in builds without GFSIM_MPI.
Run by ctest with GFSIM_EXE, GFSIM_SOURCE_DIR, GFSIM_MPI_BUILD and PYTHONPATH=analysis set."""
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

import gfsim_io
from cli_env import gfsim_exe, model_path

SWEEP = """base = "model.toml"
seeds = 3
[grid]
"time.t_end" = [10.0, 1000.0]
"""


@unittest.skipUnless(os.environ.get("GFSIM_MPI_BUILD") in ("1", "ON", "TRUE"), "gfsim built without GFSIM_MPI")
@unittest.skipUnless(shutil.which("mpirun"), "no mpirun")
class SweepMpiTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gfsim_sweep_mpi_")
        self.addCleanup(shutil.rmtree, self.dir)
        shutil.copy(model_path("relu_two_layer.toml"), os.path.join(self.dir, "model.toml"))
        self.sweep_file = os.path.join(self.dir, "sweep.toml")
        with open(self.sweep_file, "w") as f:
            f.write(SWEEP)

    def mpirun(self, out):
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMPI_MCA_rmaps_base_oversubscribe="1")
        return subprocess.run(["mpirun", "-n", "2", "--oversubscribe", gfsim_exe(), "sweep", self.sweep_file,
                               "--out", out, "--quiet"], capture_output=True, text=True, env=env, timeout=600)

    def test_mpirun_gives_the_index_of_jobs_1(self):
        serial, parallel = os.path.join(self.dir, "serial"), os.path.join(self.dir, "mpi")
        subprocess.run([gfsim_exe(), "sweep", self.sweep_file, "--out", serial, "--quiet", "--jobs", "1"],
                       check=True, capture_output=True)
        result = self.mpirun(parallel)
        self.assertEqual(result.returncode, 0, result.stderr + result.stdout)
        self.assertIn("6 run now, 0 complete before", result.stdout)
        self.assertEqual(result.stdout.count("sweep: 6 runs"), 1, "only rank 0 reports")
        a = gfsim_io.load_index(os.path.join(serial, "index.h5"))
        b = gfsim_io.load_index(os.path.join(parallel, "index.h5"))
        for name in a.dtype.names:
            if name not in ("wall_seconds", "process_seconds"):
                np.testing.assert_array_equal(a[name], b[name], name)
        again = self.mpirun(parallel)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("0 run now, 6 complete before", again.stdout)


if __name__ == "__main__":
    unittest.main()
