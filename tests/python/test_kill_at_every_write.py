"""A kill at every write of a run (issue 18 item 5, the deterministic companion of
test_kill_anywhere.py): strace injects SIGKILL when `gfsim run` enters its n-th file-changing system
call (pwrite64, write, rename, copy_file_range, sendfile, ftruncate, fsync, fdatasync, unlink), for
every n from the first to the last of an uninterrupted run. Each file left behind must open with
gfsim_io and hold an exact prefix of the uninterrupted run's samples and kink events, or be that run
complete; a prefix killed after its last sample is finished by `gfsim run --resume`.

Random kills (test_kill_anywhere.py) rarely land in the ~1 ms end write. Here every one of its writes
is hit: before the end was written on a copy (recorder.cpp), each of the 64 writes that create
/solver, /final and the end datasets in place left a file h5py cannot read ("address of object past
end of allocation"); CI stop 25 met one by chance.

Needs strace (scripts/setup installs it) and permission to trace a child process; without them the
test is skipped, saying why. Run by ctest with GFSIM_EXE, GFSIM_SOURCE_DIR and PYTHONPATH=analysis set."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import gfsim_io
from cli_env import gfsim_exe, model_path
from run_prefix import assert_prefix, check_killed_file

WRITE_CALLS = ["pwrite64", "write", "rename", "renameat", "renameat2", "copy_file_range", "sendfile",
               "ftruncate", "fsync", "fdatasync", "unlink", "unlinkat"]


def strace_usable():
    strace = shutil.which("strace")
    if strace is None:
        return "strace is not installed (scripts/setup installs it)"
    probe = subprocess.run([strace, "-qq", "-o", os.devnull, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"strace cannot trace here: {probe.stderr.strip()[:200]}"
    return None


SKIP_REASON = strace_usable()


def traced_env():
    """LeakSanitizer refuses to run under ptrace (it exits 1 at the end of a traced run): in the
    sanitizer build the traced runs check everything but leaks, which the other tests cover."""
    env = dict(os.environ)
    if env.get("GFSIM_SANITIZE_BUILD", "").upper() in ("1", "ON", "TRUE"):
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS", ""), "detect_leaks=0"]))
    return env


@unittest.skipIf(SKIP_REASON is not None, SKIP_REASON or "")
class KillAtEveryWriteTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gfsim_killwrite_")
        self.addCleanup(shutil.rmtree, self.dir)

    def command(self, out):
        # No flush by the wall clock (it would make the number of writes depend on the machine's
        # speed: the sanitizer build flushed more often): samples go to disk when the file is
        # finished, so the prefixes are the layout alone, then everything; the kills inside the end
        # write are the point.
        return [gfsim_exe(), "run", model_path("relu_two_layer.toml"), "--set", "output.flush_interval=1e9",
                "-o", out, "--quiet"]

    def traced_writes(self, out):
        """The file-changing system calls of an uninterrupted run, in order, as (name, count so far)."""
        log = os.path.join(self.dir, "trace.txt")
        subprocess.run(["strace", "-qq", "-o", log, "-e", "trace=" + ",".join(WRITE_CALLS), *self.command(out)],
                       check=True, stdout=subprocess.DEVNULL, env=traced_env())
        calls, seen = [], {}
        with open(log) as trace:
            for line in trace:
                match = re.match(r"(\w+)\(", line)
                if match and match.group(1) in WRITE_CALLS:
                    name = match.group(1)
                    seen[name] = seen.get(name, 0) + 1
                    calls.append((name, seen[name]))
        return calls

    def test_a_kill_at_any_write_leaves_a_readable_prefix(self):
        reference_path = os.path.join(self.dir, "reference.h5")
        calls = self.traced_writes(reference_path)
        reference = gfsim_io.load(reference_path)
        self.assertTrue(reference.complete)
        self.assertGreater(len(calls), 20, f"too few writes traced to test: {calls}")

        outcomes = {"no file": 0, "prefix": 0, "complete": 0}
        last_prefix = None
        for index, (name, nth) in enumerate(calls):
            out = os.path.join(self.dir, f"killed_{index}.h5")
            label = f"kill at {name} #{nth} (write {index + 1} of {len(calls)})"
            inject = f"inject={name}:signal=KILL:when={nth}"
            result = subprocess.run(["strace", "-qq", "-o", os.devnull, "-e", f"trace={name}", "-e", inject,
                                     *self.command(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True, env=traced_env())
            self.assertNotEqual(result.returncode, 0, f"{label}: the run was not killed")
            outcome, _ = check_killed_file(self, out, reference, label)
            outcomes[outcome] += 1
            if outcome == "prefix":
                last_prefix = out
        print(f"{len(calls)} kills, one at each write: {outcomes}")
        # The kills must leave prefixes (creation done, end not yet on disk), or the test is vacuous.
        self.assertGreater(outcomes["prefix"], 0, outcomes)
        self.assertGreater(outcomes["no file"], 0, outcomes)

        # The last prefix holds every sample: --resume writes the end without integrating.
        result = subprocess.run([gfsim_exe(), "run", "--resume", last_prefix, "--quiet"], capture_output=True,
                                text=True, timeout=120)
        self.assertEqual(result.returncode, 0, f"--resume {last_prefix}: {result.stderr}")
        resumed = gfsim_io.load(last_prefix)
        self.assertTrue(resumed.complete)
        self.assertEqual(resumed.solver.get("status"), reference.solver.get("status"))
        assert_prefix(self, resumed, reference, "resumed")
        self.assertEqual(len(resumed.observables["rho"]["step"]), len(reference.observables["rho"]["step"]))


if __name__ == "__main__":
    unittest.main()
