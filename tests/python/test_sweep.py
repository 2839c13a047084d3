"""`gfsim sweep` (issue 16, docs/sweeps.md): the smallest sweep file of the issue works as written;
every index row equals what its run file says; --jobs 2 gives the same index as --jobs 1; bad sweep
files fail with one line naming the key, exit 2, before any run; a sweep killed with SIGKILL midway
and run again does every run exactly once (complete files are not rewritten) and loses nothing.
The model is models/relu_two_layer.toml (well under a second per run).
Run by ctest with GFSIM_EXE, GFSIM_SOURCE_DIR and PYTHONPATH=analysis set."""
import csv
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import h5py
import numpy as np

import gfsim_io
from cli_env import gfsim_exe, model_path

SMALLEST = """base = "model.toml"            # relative to the sweep file
[grid]                         # every combination of these values
"network.init_scale" = [0.1, 0.5]
"network.seed" = [1, 2, 3]
"""

TIMING_COLUMNS = ("wall_seconds", "process_seconds")


class SweepTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gfsim_sweep_")
        self.addCleanup(shutil.rmtree, self.dir)
        shutil.copy(model_path("relu_two_layer.toml"), os.path.join(self.dir, "model.toml"))

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def sweep(self, sweep_file, out, *args, check=True):
        result = subprocess.run([gfsim_exe(), "sweep", sweep_file, "--out", out, "--quiet", *args],
                                capture_output=True, text=True)
        if check:
            self.assertEqual(result.returncode, 0, result.stderr)
        return result

    def test_index_rows_equal_their_run_files(self):
        out = os.path.join(self.dir, "out")
        self.sweep(self.write("sweep.toml", SMALLEST), out)
        table = gfsim_io.load_index(os.path.join(out, "index.h5"))
        self.assertEqual(len(table), 6)
        self.assertEqual(len(set(table["id"])), 6)
        # grid order: the first key varies slowest
        np.testing.assert_array_equal(table["network.init_scale"], [0.1, 0.1, 0.1, 0.5, 0.5, 0.5])
        np.testing.assert_array_equal(table["network.seed"], [1, 2, 3, 1, 2, 3])
        for row in table:
            run = gfsim_io.load(os.path.join(out, row["file"]))
            self.assertTrue(run.complete)
            self.assertEqual(row["status"], run.solver["status"])
            self.assertEqual(row["t_final"], run.solver["t_final"])
            for counter in ("steps", "accepted", "rejected", "rhs_evals", "kink_crossings", "sliding_exits"):
                self.assertEqual(row[counter], run.solver[counter], counter)
            for name in ("log_loss", "margin", "grad_norm"):
                self.assertEqual(row[name], run.observables[name]["value"][-1], name)
            self.assertAlmostEqual(row["rho"], np.prod(run.observables["rho"]["value"][-1]), delta=1e-12 * row["rho"])
            model = run.metadata["model_toml"]
            self.assertIn(f"init_scale = {row['network.init_scale']}", model)
            self.assertIn(f"seed = {int(row['network.seed'])}", model)
        # the CSV copy holds the same rows
        with open(os.path.join(out, "index.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([r["id"] for r in rows], list(table["id"]))
        for r, row in zip(rows, table):
            self.assertEqual(r["status"], row["status"])
            self.assertEqual(float(r["log_loss"]), row["log_loss"])

    def test_ids_do_not_depend_on_where_runs_are_written_or_on_jobs(self):
        sweep_file = self.write("sweep.toml", SMALLEST)
        one, two = os.path.join(self.dir, "one"), os.path.join(self.dir, "two")
        self.sweep(sweep_file, one, "--jobs", "1")
        self.sweep(sweep_file, two, "--jobs", "2")
        a = gfsim_io.load_index(os.path.join(one, "index.h5"))
        b = gfsim_io.load_index(os.path.join(two, "index.h5"))
        for name in a.dtype.names:
            if name not in TIMING_COLUMNS:
                np.testing.assert_array_equal(a[name], b[name], name)
        # the same runs in another order ([[runs]] form) get the same ids
        runs = "".join(f'[[runs]]\n"network.init_scale" = {s}\n"network.seed" = {k}\n'
                       for s in (0.5, 0.1) for k in (3, 2, 1))
        three = os.path.join(self.dir, "three")
        self.sweep(self.write("table.toml", 'base = "model.toml"\n' + runs), three)
        c = gfsim_io.load_index(os.path.join(three, "index.h5"))
        self.assertEqual(sorted(c["id"]), sorted(a["id"]))
        by_id = {row["id"]: row for row in a}
        for row in c:
            self.assertEqual(row["log_loss"], by_id[row["id"]]["log_loss"])

    def test_zip_and_seeds_expand(self):
        out = os.path.join(self.dir, "out")
        text = ('base = "model.toml"\nseeds = 2\n[set]\n"time.t_end" = 10.0\n'
                '[zip]\n"network.init_scale" = [0.2, 0.3, 0.4]\n"data.n" = [20, 30, 40]\n')
        self.sweep(self.write("zip.toml", text), out)
        table = gfsim_io.load_index(os.path.join(out, "index.h5"))
        np.testing.assert_array_equal(table["network.init_scale"], [0.2, 0.2, 0.3, 0.3, 0.4, 0.4])
        np.testing.assert_array_equal(table["data.n"], [20, 20, 30, 30, 40, 40])
        np.testing.assert_array_equal(table["network.seed"], [1, 2, 1, 2, 1, 2])
        np.testing.assert_array_equal(table["t_final"], 10.0)

    def test_shards_partition_the_runs(self):
        sweep_file = self.write("sweep.toml", SMALLEST)
        out = os.path.join(self.dir, "out")
        shards = []
        for i in range(4):
            self.sweep(sweep_file, out, "--shard", f"{i}/4")
            shards.append(gfsim_io.load_index(os.path.join(out, f"index_shard{i}of4.h5")))
        result = self.sweep(sweep_file, out)
        self.assertIn("0 run now, 6 complete before", result.stdout)
        whole = gfsim_io.load_index(os.path.join(out, "index.h5"))
        for i, shard in enumerate(shards):  # run r belongs to shard r % 4
            np.testing.assert_array_equal(shard["id"], whole["id"][i::4])
            np.testing.assert_array_equal(shard["log_loss"], whole["log_loss"][i::4])
        bad = self.sweep(sweep_file, out, "--shard", "4/4", check=False)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--shard", bad.stderr)

    def test_bad_sweep_files_fail_before_any_run(self):
        cases = {
            "unknown sweep key": ('base = "model.toml"\ngird = 1\n', "gird"),
            "empty list": ('base = "model.toml"\n[grid]\n"network.seed" = []\n', "network.seed"),
            "no such model key": ('base = "model.toml"\n[grid]\n"network.width" = [1, 2]\n', "network.width"),
            "zip lengths": ('base = "model.toml"\n[zip]\n"network.seed" = [1, 2]\n"data.n" = [10, 20, 30]\n',
                            "data.n"),
            "varied twice": ('base = "model.toml"\nseeds = 2\n[grid]\n"network.seed" = [1, 2]\n', "network.seed"),
            "bad value": ('base = "model.toml"\n[grid]\n"network.init_scale" = [0.1, -1.0]\n', "init_scale"),
            "no base": ('[grid]\n"network.seed" = [1, 2]\n', "base"),
            "output varies": ('base = "model.toml"\n[grid]\n"output.path" = ["a.h5", "b.h5"]\n', "output.path"),
        }
        for name, (text, key) in cases.items():
            with self.subTest(name):
                out = os.path.join(self.dir, "bad")
                result = self.sweep(self.write("bad.toml", text), out, check=False)
                self.assertEqual(result.returncode, 2, result.stderr)
                lines = result.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, result.stderr)
                self.assertIn(key, lines[0])
                self.assertFalse(os.path.exists(out), "a run started despite the bad sweep file")

    def test_sigkill_midway_then_resume_does_every_run_once(self):
        text = 'base = "model.toml"\nseeds = 8\n[set]\n"output.flush_interval" = 1e-9\n'
        sweep_file = self.write("kill.toml", text)
        out = os.path.join(self.dir, "out")
        proc = subprocess.Popen([gfsim_exe(), "sweep", sweep_file, "--out", out, "--quiet", "--jobs", "2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        index = os.path.join(out, "index.h5")
        deadline = time.monotonic() + 60
        done = 0
        while time.monotonic() < deadline and done < 3:  # kill once a few runs are complete
            time.sleep(0.05)
            if os.path.exists(index):
                try:
                    done = int(np.sum(gfsim_io.load_index(index)["status"] == "success"))
                except (OSError, KeyError, ValueError):
                    pass  # never: the index is renamed into place (a failure shows below)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.assertGreaterEqual(done, 3)
        before = gfsim_io.load_index(index)
        self.assertLess(np.sum(before["status"] == "success"), 8, "the sweep finished before the kill")
        complete = {}
        for row in before:
            path = os.path.join(out, row["file"])
            if row["status"] == "success":
                with h5py.File(path, "r") as f:
                    complete[row["id"]] = (os.stat(path).st_ino, f.attrs["created"])
        time.sleep(1.1)  # a rewritten file would carry a later `created` second
        result = self.sweep(sweep_file, out, "--jobs", "2")
        # A run in flight at the kill may have completed its file after the last index write: it
        # counts as complete too. Every run the index had as complete is skipped (checked below).
        counts = re.search(r"(\d+) run now, (\d+) complete before", result.stdout)
        self.assertIsNotNone(counts, result.stdout)
        self.assertEqual(int(counts.group(1)) + int(counts.group(2)), 8, result.stdout)
        self.assertGreaterEqual(int(counts.group(2)), len(complete), result.stdout)
        after = gfsim_io.load_index(index)
        self.assertEqual(sorted(after["id"]), sorted(before["id"]))
        self.assertTrue(np.all(after["status"] == "success"))
        for row in after:
            path = os.path.join(out, row["file"])
            if row["id"] in complete:
                with h5py.File(path, "r") as f:
                    self.assertEqual((os.stat(path).st_ino, f.attrs["created"]), complete[row["id"]])
                self.assertTrue(np.isnan(row["process_seconds"]))
        self.assertEqual(int(np.sum(~np.isnan(after["process_seconds"]))), int(counts.group(1)))
        # every file equals an uninterrupted sweep's
        fresh = os.path.join(self.dir, "fresh")
        self.sweep(sweep_file, fresh, "--jobs", "2")
        reference = gfsim_io.load_index(os.path.join(fresh, "index.h5"))
        # A run killed after a flushed sample is continued by `gfsim run --resume` (docs/sweeps.md):
        # its results equal the uninterrupted run's to the solver tolerance, its counters count
        # the continuation. Every other row is bit for bit the fresh sweep's.
        resumed = np.zeros(len(after), dtype=bool)
        for i, row in enumerate(after):
            with h5py.File(os.path.join(out, row["file"]), "r") as f:
                resumed[i] = "resumed_from_t" in f.attrs
        self.assertTrue(np.all(after["id"] == reference["id"]))
        for name in reference.dtype.names:
            if name in TIMING_COLUMNS:
                continue
            np.testing.assert_array_equal(after[name][~resumed], reference[name][~resumed], name)
            if reference.dtype[name].kind == "f" and name in ("t_final", "rho", "log_loss", "margin", "grad_norm"):
                np.testing.assert_allclose(after[name][resumed], reference[name][resumed], rtol=1e-6, err_msg=name)
            elif reference.dtype[name].kind != "f":
                np.testing.assert_array_equal(after[name][resumed], reference[name][resumed], name)
        self.assertEqual(sorted(os.listdir(out)), sorted(os.listdir(fresh)))


if __name__ == "__main__":
    unittest.main()
