"""Coupled kink surfaces of one hidden unit (issue 14, kinks diagnosis Case B): on the 4-6-1 ReLU net on
Iris setosa/versicolor (exp loss, gd, init 1.0, seed 74) the one-surface-at-a-time event logic cycled
between the sliding modes of two nearly parallel surfaces of unit 1 at t = 3.71 (229k events in 20 s,
no progress). Inside such a cluster of events the surfaces are now switched jointly (the
box-constrained complementarity problem of the sliding set): the run reaches t = 1e20 with a bounded
number of events and ends on the branch the smoothed flow (an independent formulation, softplus with
eps = 1e-4) also reaches. Run by ctest with GFSIM_EXE, GFSIM_SOURCE_DIR and PYTHONPATH=analysis set."""
import os
import shutil
import subprocess
import tempfile
import unittest

import gfsim_io
from cli_env import gfsim_exe


def bench_path(name):
    return os.path.join(os.environ.get("GFSIM_SOURCE_DIR", "."), "bench", name)


class KinkCycleTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gfsim_kink_cycles_")
        self.addCleanup(shutil.rmtree, self.dir)

    def run_model(self, name, *sets):
        out = os.path.join(self.dir, name + ".h5")
        args = [gfsim_exe(), "run", bench_path("relu_iris_seeds.toml"), "-o", out, "--quiet",
                "--set", "solver.max_wall_seconds=60"]
        for s in sets:
            args += ["--set", s]
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr)
        return gfsim_io.load(out)

    def assert_reaches_the_smoothed_branch(self, seed):
        """The events run of `seed` reaches t = 1e20 with success and ends where the smoothed flow (an
        independent formulation, softplus with eps = 1e-4) ends: log loss within 1e-3. Returns it."""
        exact = self.run_model(f"events_{seed}", f"network.seed={seed}")
        self.assertEqual(exact.solver["status"], "success", exact.solver["message"])
        self.assertEqual(exact.solver["t_final"], 1e20)
        smooth = self.run_model(f"smooth_{seed}", f"network.seed={seed}", "dynamics.kinks=smooth",
                                "dynamics.kink_width=1e-4")
        a = exact.observables["log_loss"]["value"][-1]
        b = smooth.observables["log_loss"]["value"][-1]
        self.assertLess(abs(a - b), 1e-3, f"seed {seed}: log loss {a} (events) vs {b} (smoothed)")
        return exact

    def test_joint_sliding_ends_the_cycle(self):
        # Seed 74 depends on rounding: the -O1 sanitizer build (no -march=native) reaches a different
        # kink at t = 0.0044 where it still chatters (stalled_at_kink; issue 14, open). Seed 67 is
        # robust in both builds.
        seeds = (67,) if os.environ.get("GFSIM_SANITIZE_BUILD") == "1" else (74, 67)
        for seed in seeds:
            exact = self.assert_reaches_the_smoothed_branch(seed)
            self.assertLess(exact.solver["events"] + exact.solver["sliding_entries"], 5000)

    def test_crossing_beside_sliding_surfaces_late_in_the_log_clock(self):
        # Seed 54 slides on two surfaces of unit 5 until, at t = 6.7e13, a third (a dead setosa
        # point's) is crossed. Switched one at a time, that crossing leaves a side whose field sends
        # the state straight back at a rate ~e^s (s = log(1+t) = 31.8) that no step of the clock can
        # resolve: the trial steps went non-finite and the run ended non_finite. The stepper's failure
        # to leave the event now switches its surfaces jointly (EventLocator::rejoin): all three slide
        # and the run ends where the smoothed flow ends.
        self.assert_reaches_the_smoothed_branch(54)

    def test_tangency_that_the_step_crosses_is_switched_one_at_a_time(self):
        # Seeds 68 and 86 cycle between the single-surface modes of two surfaces of one unit, and
        # then the joint switch keeps a hit surface on its side (its rate there zero to the solve's
        # tolerance) while the step carries the state through it again at zero distance: 65
        # zero-length restarts and stalled_at_kink at t = 1.26e6 and 7.4e5. The step now overrules
        # an unchanged joint switch (docs/events.md): both reach 1e20 on the smoothed flow's branch.
        for seed in (68, 86):
            self.assert_reaches_the_smoothed_branch(seed)

    def test_prescribed_radius_flows_pass_their_former_stalls(self):
        # models/compare_iris_relu.toml (5-8-1): rho_schedule stopped at t = 18340 and
        # rho_schedule_normalized at t = 142.7, then 349.7, each after 65 zero-length restarts.
        # At 142.7 a dead unit (weights ~1e-312) sat on a kink: units below rounding now have no kink
        # events. At 349.7 and 18340 a pair of parallel units left a sliding mode at m = 0 with h
        # drifted ~1e-12 off the surface and the exit side's field turned back at once (a fold): a
        # move of 1e-9 over the next step, far inside the integration's error, was a bounce. A surface
        # switched at an event now bounces only beyond rtol times its terms (docs/events.md). Both
        # runs pass those points and their end states converge with the tolerance.
        model = os.path.join(os.environ.get("GFSIM_SOURCE_DIR", "."), "models", "compare_iris_relu.toml")
        # The sanitizer build (-O1, instrumented, 10-30x slower) runs the rtol 1e-8 runs only.
        sanitized = os.environ.get("GFSIM_SANITIZE_BUILD") == "1"
        for kind, t_end in (("rho_schedule", 2e4), ("rho_schedule_normalized", 400.0)):
            ends = []
            for rtol in (1e-8,) if sanitized else (1e-8, 1e-10):
                out = os.path.join(self.dir, f"{kind}_{rtol}.h5")
                done = subprocess.run([gfsim_exe(), "run", model, "-o", out, "--quiet",
                                       "--set", f'flow.kind="{kind}"', "--set", f"time.t_end={t_end}",
                                       "--set", f"solver.rtol={rtol}", "--set", "solver.atol=1e-12",
                                       "--set", f"solver.max_wall_seconds={600 if sanitized else 60}"],
                                      capture_output=True, text=True, timeout=900 if sanitized else 120)
                self.assertEqual(done.returncode, 0, done.stderr)
                run = gfsim_io.load(out)
                self.assertEqual(run.solver["status"], "success", run.solver["message"])
                self.assertEqual(run.solver["t_final"], t_end)
                ends.append(run.extra["final/theta"])
            if sanitized:
                continue
            a, b = ends
            dist = sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5 / sum(y * y for y in b) ** 0.5
            self.assertLess(dist, 1e-6, f"{kind}: end states at rtol 1e-8 and 1e-10 {dist:.3g} apart")


if __name__ == "__main__":
    unittest.main()
