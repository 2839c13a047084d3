"""`gfsim run --resume FILE` (issue 16 item 4, docs/sweeps.md "Resuming one run"): a finished run
resumed to a later t_end equals the uninterrupted run to the solver tolerance (linear model, a
one-hidden-layer ReLU net with kink events, the wn flow whose ODE state is not theta); a run killed
with SIGKILL and resumed equals the uninterrupted run; gfsim_io reads a resumed file as one
trajectory; bad input is refused with one line and exit 2 (not a run file, a newer format version,
t_end not beyond the stored t, a key the resume may not change, a file still being written).
Run by ctest with GFSIM_EXE, GFSIM_SOURCE_DIR and PYTHONPATH=analysis set."""
import os
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

# The runs' rtol is 1e-8: two integrations of one trajectory, one restarted at a sample, agree
# to a small multiple of it (the global error of each). A restart from a wrong state or time
# differs by orders of magnitude more.
TOLERANCE = 1e-6


def gfsim(*args, check=True):
    result = subprocess.run([gfsim_exe(), *args], capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"gfsim {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def observable(path, name):
    with h5py.File(path, "r") as f:
        return f[f"observables/{name}/time"][()], f[f"observables/{name}/value"][()]


def cut_back(path, samples):
    """Makes `path` what a run killed right after flushing sample `samples` leaves: no /solver or
    end datasets, every sampled dataset `samples` rows, series rows up to that time. Returns t."""
    with h5py.File(path, "a") as f:
        t = float(f["observables/theta/time"][samples - 1])
        for name in ("solver", "final", "timing", "events/summary"):
            if name in f:
                del f[name]
        for name, group in f["observables"].items():
            for key in ("step", "time", "value"):
                if key in group and group[key].shape[0] > samples:
                    group[key].resize(samples, axis=0)
        if "events" in f:
            rows = int(np.searchsorted(f["events/time"][()], t, side="right"))
            for column in f["events"].values():
                column.resize(rows, axis=0)
    return t


class ResumeTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gfsim_resume_")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def assert_same_trajectory(self, full, resumed, names=("theta", "rho", "log_loss", "margin")):
        """Every sample time of the uninterrupted run is in the resumed file (which may hold one
        more: the earlier t_end) with the same values to TOLERANCE (relative, floor 1)."""
        t_full, _ = observable(full, "theta")
        t_resumed, _ = observable(resumed, "theta")
        common = np.intersect1d(t_full, t_resumed)
        self.assertEqual(len(common), len(t_full), "a sample time of the uninterrupted run is missing")
        self.assertTrue(np.all(np.diff(t_resumed) > 0), "the resumed file's times are not increasing")
        for name in names:
            tf, vf = observable(full, name)
            tr, vr = observable(resumed, name)
            a, b = vf[np.searchsorted(tf, common)], vr[np.searchsorted(tr, common)]
            err = np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a)))
            self.assertLess(err, TOLERANCE, f"{name}: resumed differs from the uninterrupted run by {err:.3g}")

    def finished_then_resumed(self, model, t_mid, t_end, *sets):
        full, part = self.path("full.h5"), self.path("part.h5")
        gfsim("run", model_path(model), "-q", "-o", full, "--set", f"time.t_end={t_end}", *sets)
        gfsim("run", model_path(model), "-q", "-o", part, "--set", f"time.t_end={t_mid}", *sets)
        gfsim("run", "--resume", part, "-q", "--set", f"time.t_end={t_end}")
        return full, part

    def test_linear_finished_run_resumed_equals_uninterrupted(self):
        full, part = self.finished_then_resumed("linear_exp.toml", "1e3", "1e6")
        self.assert_same_trajectory(full, part)
        with h5py.File(part, "r") as f:
            self.assertEqual(f["solver"].attrs["status"], "success")
            self.assertEqual(f["solver"].attrs["t_final"], 1e6)
            self.assertEqual(f.attrs["resumed_from_t"], 1e3)
            self.assertEqual(f.attrs["t_end"], 1e6)
            self.assertIn("resumed from t = 1000 ", f.attrs["resumes"])
            self.assertTrue(f.attrs["original_created"])

    def test_relu_events_resumed_equals_uninterrupted(self):
        full, part = self.finished_then_resumed("relu_two_layer.toml", "30", "1e3")
        self.assert_same_trajectory(full, part)
        with h5py.File(full, "r") as a, h5py.File(part, "r") as b:
            # The same events before and after the restart: the discrete state re-derived there
            # (settle_on_kinks) continues the stored one; the summary counts the whole file.
            ea, eb = a["events/time"][()], b["events/time"][()]
            self.assertLessEqual(abs(len(ea) - len(eb)), 2)
            self.assertTrue(np.all(np.diff(eb) >= 0))
            sa, sb = a["events/summary"][()], b["events/summary"][()]
            self.assertLessEqual(np.max(np.abs(sa[:3] - sb[:3])), 1)
            kinds = b["events/kind"][()]
            self.assertEqual(sb[0], np.count_nonzero(kinds == 0))

    def test_wn_flow_state_is_stored_and_resumed(self):
        full, part = self.finished_then_resumed("linear_logistic_wn.toml", "30", "1e5")
        self.assert_same_trajectory(full, part)
        with h5py.File(part, "r") as f:
            state, theta = f["observables/state/value"], f["observables/theta/value"]
            self.assertEqual(state.shape[0], theta.shape[0])
            self.assertNotEqual(state.shape[1], theta.shape[1])  # (V, g): not theta itself

    def test_sigkill_then_resume_equals_uninterrupted(self):
        sets = ["--set", "time.t_end=1e8", "--set", "data.n=300", "--set", "network.hidden=[32]",
                "--set", "time.samples_per_decade=20"]
        full, killed = self.path("full.h5"), self.path("killed.h5")
        gfsim("run", model_path("relu_two_layer.toml"), "-q", "-o", full, *sets)
        proc = subprocess.Popen([gfsim_exe(), "run", model_path("relu_two_layer.toml"), "-q", "-o", killed,
                                 *sets, "--set", "output.flush_interval=1e-3"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples = 0
        deadline = time.monotonic() + 120
        while samples < 40 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
            try:
                with h5py.File(killed, "r", swmr=True) as f:
                    samples = f["observables/theta/step"].shape[0]
            except (OSError, KeyError):
                pass
        self.assertIsNone(proc.poll(), "the run ended before it could be killed")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with h5py.File(killed, "r", swmr=True) as f:
            self.assertNotIn("solver", f)
            stored = f["observables/theta/step"].shape[0]
        self.assertGreaterEqual(stored, 40)
        gfsim("run", "--resume", killed, "-q")  # to the stored t_end
        self.assert_same_trajectory(full, killed)
        run = gfsim_io.load(killed)  # one trajectory: complete, times increasing, steps increasing
        self.assertTrue(run.complete)
        t, _ = observable(killed, "theta")
        with h5py.File(killed, "r") as f:
            steps = f["observables/theta/step"][()]
            self.assertEqual(f["solver"].attrs["status"], "success")
            self.assertEqual(f.attrs["resumed_from_t"], t[stored - 1])  # from the last flushed sample
        self.assertTrue(np.all(np.diff(t) > 0) and np.all(np.diff(steps) >= 0))
        np.testing.assert_array_equal(run.observables["theta"]["time"], t)

    def test_run_killed_during_its_final_write_is_finished(self):
        """A SIGKILL after the last sample but before /solver is written leaves every sample up to
        t_end: a resume to the same t_end integrates nothing and writes the end, equal to the
        uninterrupted run's; a second resume of the finished file needs a later t_end."""
        full, cut = self.path("full.h5"), self.path("cut.h5")
        gfsim("run", model_path("relu_two_layer.toml"), "-q", "-o", full)
        shutil.copy(full, cut)
        with h5py.File(full, "r") as f:
            samples = f["observables/theta/time"].shape[0]
        cut_back(cut, samples)
        gfsim("run", "--resume", cut, "-q")
        self.assert_same_trajectory(full, cut)
        with h5py.File(full, "r") as a, h5py.File(cut, "r") as b:
            self.assertEqual(b["solver"].attrs["status"], "success")
            self.assertEqual(b["solver"].attrs["t_final"], a["solver"].attrs["t_final"])
            np.testing.assert_array_equal(a["events/summary"][()], b["events/summary"][()])
            np.testing.assert_array_equal(a["final/theta"][()], b["final/theta"][()])
        again = gfsim("run", "--resume", cut, "-q", check=False)
        self.assertEqual(again.returncode, 2)
        self.assertIn("is not beyond the stored t", again.stderr)

    def test_sweep_resumes_an_intact_incomplete_run(self):
        """A run file cut back to what a SIGKILL at its 30th sample leaves (no /solver, datasets
        shorter, events up to that time) is continued by the next sweep, not rerun from t = 0;
        a cut file whose model differs from the run's is rerun from t = 0."""
        shutil.copy(model_path("relu_two_layer.toml"), self.path("model.toml"))
        with open(self.path("s.toml"), "w") as f:
            f.write('base = "model.toml"\n[grid]\n"network.seed" = [1, 2]\n')
        out, fresh = self.path("out"), self.path("fresh")
        for d in (out, fresh):
            subprocess.run([gfsim_exe(), "sweep", self.path("s.toml"), "--out", d, "--quiet"], check=True,
                           capture_output=True, timeout=300)
        reference = gfsim_io.load_index(os.path.join(fresh, "index.h5"))
        files = [os.path.join(out, name) for name in reference["file"]]
        cut_t = cut_back(files[0], 30)
        cut_back(files[1], 30)
        with h5py.File(files[1], "a") as f:  # another model under this run's name: not intact
            f.attrs["model_toml"] = f.attrs["model_toml"].replace("init_scale = 0.5", "init_scale = 0.25")
        result = subprocess.run([gfsim_exe(), "sweep", self.path("s.toml"), "--out", out, "--quiet"],
                                capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("2 run now, 0 complete before", result.stdout)
        with h5py.File(files[0], "r") as f:
            self.assertEqual(f.attrs["resumed_from_t"], cut_t)
        with h5py.File(files[1], "r") as f:
            self.assertNotIn("resumed_from_t", f.attrs)
            self.assertIn("init_scale = 0.5", f.attrs["model_toml"])
        for name in [n.replace(".h5", "") for n in reference["file"]]:
            self.assert_same_trajectory(os.path.join(fresh, name + ".h5"), os.path.join(out, name + ".h5"))
        after = gfsim_io.load_index(os.path.join(out, "index.h5"))
        np.testing.assert_allclose(after["log_loss"], reference["log_loss"], rtol=TOLERANCE)

    def test_refusals_are_one_line_exit_2(self):
        done = self.path("done.h5")
        gfsim("run", model_path("linear_exp.toml"), "-q", "-o", done, "--set", "time.t_end=100")

        def refused(path, *sets, needle):
            result = gfsim("run", "--resume", path, "-q", *sets, check=False)
            self.assertEqual(result.returncode, 2, result.stderr)
            lines = result.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, result.stderr)
            self.assertIn(needle, lines[0])

        refused(done, needle="is not beyond the stored t = 100")
        refused(done, "--set", "time.t_end=50", needle="is not beyond")
        refused(done, "--set", "network.seed=3", "--set", "time.t_end=1e4", needle="network.seed")
        text = self.path("notes.txt")
        with open(text, "w") as f:
            f.write("not hdf5\n")
        refused(text, "--set", "time.t_end=1e4", needle="not an HDF5 file")
        other = self.path("other.h5")
        with h5py.File(other, "w") as f:
            f.attrs["file_type"] = "gfsim-sweep-index"
        refused(other, "--set", "time.t_end=1e4", needle="not a gfsim run file")
        newer = self.path("newer.h5")
        shutil.copy(done, newer)
        with h5py.File(newer, "a") as f:
            f.attrs["format_version"] = 999
        refused(newer, "--set", "time.t_end=1e4", needle="format_version 999 is newer")
        # A file a live run is writing: its lock is held.
        busy = self.path("busy.h5")
        proc = subprocess.Popen([gfsim_exe(), "run", model_path("relu_events.toml"), "-q", "-o", busy],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not os.path.exists(busy) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertIsNone(proc.poll())
            refused(busy, "--set", "time.t_end=1e4", needle="still open by a writer")
        finally:
            proc.kill()
            proc.wait()
        # The refused files are as they were.
        with h5py.File(done, "r") as f:
            self.assertEqual(f["solver"].attrs["t_final"], 100)


if __name__ == "__main__":
    unittest.main()
