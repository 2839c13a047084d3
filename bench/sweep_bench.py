#!/usr/bin/env python3
"""Sweep benchmark of issue 16 (docs/benchmarks.md, "Sweeps"; scripts/bench-sweep runs it on
bench/sweep_200.toml): one sweep file run with --jobs 1, --jobs 2 and `mpirun -n 2` (when an MPI
build is given), the same runs as bare `gfsim run` processes one after the other (overhead per run
= (sweep --jobs 1 - bare loop) / runs), and a --jobs 2 sweep killed with SIGKILL once half its runs
are complete, then run again: complete runs are skipped, the runs killed in flight are continued by
`gfsim run --resume` from their last flushed sample (docs/sweeps.md). The load average is printed
next to the numbers: on a shared machine they measure contention as much as the scheduler.

    GFSIM_BUILD=build [GFSIM_MPI_BUILD=build/mpi] nice -n 19 python3 bench/sweep_bench.py \\
        [models/sweeps/relu_seeds_scale_width.toml] [--dir /tmp/sweep_bench]

Parallel efficiency = T(--jobs 1) / (2 T(parallel)). Prints a markdown table.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "analysis"))
import gfsim_io  # noqa: E402


def timed(cmd, env=None):
    start = time.monotonic()
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)}: exit {result.returncode}: {result.stderr}")
    return time.monotonic() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sweep", nargs="?", default=os.path.join(root, "models/sweeps/relu_seeds_scale_width.toml"))
    parser.add_argument("--dir", default="/tmp/gfsim_sweep_bench")
    args = parser.parse_args()
    exe = os.path.join(os.environ.get("GFSIM_BUILD", os.path.join(root, "build")), "gfsim")
    mpi_build = os.environ.get("GFSIM_MPI_BUILD")
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    out = lambda name: os.path.join(args.dir, name)  # noqa: E731

    rows = []
    load_start = os.getloadavg()
    t1 = timed([exe, "sweep", args.sweep, "--out", out("j1"), "-q", "--jobs", "1"])
    index = gfsim_io.load_index(os.path.join(out("j1"), "index.h5"))
    n = len(index)
    statuses = {s: int(np.sum(index["status"] == s)) for s in sorted(set(index["status"]))}
    rows.append(("--jobs 1", t1, None))
    t2 = timed([exe, "sweep", args.sweep, "--out", out("j2"), "-q", "--jobs", "2"])
    rows.append(("--jobs 2", t2, t1 / (2 * t2)))
    if mpi_build:
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        tm = timed(["mpirun", "-n", "2", "--oversubscribe", os.path.join(mpi_build, "gfsim"), "sweep", args.sweep,
                    "--out", out("mpi"), "-q"], env=env)
        rows.append(("mpirun -n 2", tm, t1 / (2 * tm)))

    # bare `gfsim run` of the same runs, one after the other (the resolved models of the index)
    os.makedirs(out("bare"))
    bare = 0.0
    for i, row in enumerate(index):
        with gfsim_io.h5py.File(os.path.join(out("j1"), row["file"]), "r") as f:
            model = f.attrs["model_toml"]
        model = model.decode() if isinstance(model, bytes) else model
        path = out(f"bare/m{i}.toml")
        with open(path, "w") as f:
            f.write(model)
        bare += timed([exe, "run", path, "-o", out(f"bare/r{i}.h5"), "-q"])
    rows.append(("bare `gfsim run` loop", bare, None))

    # SIGKILL at half-way, then resume
    proc = subprocess.Popen([exe, "sweep", args.sweep, "--out", out("kill"), "-q", "--jobs", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    done = 0
    while done < n // 2 and proc.poll() is None:
        time.sleep(0.05)
        try:
            done = int(np.sum(gfsim_io.load_index(os.path.join(out("kill"), "index.h5"))["status"] != "pending")
                       - np.sum(gfsim_io.load_index(os.path.join(out("kill"), "index.h5"))["status"] == "running"))
        except (OSError, KeyError, ValueError):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = time.monotonic() - start
    resumed = timed([exe, "sweep", args.sweep, "--out", out("kill"), "-q", "--jobs", "2"])
    after = gfsim_io.load_index(os.path.join(out("kill"), "index.h5"))
    reference = gfsim_io.load_index(os.path.join(out("j2"), "index.h5"))
    resumed_runs = 0
    for row in after:
        with gfsim_io.h5py.File(os.path.join(out("kill"), row["file"]), "r") as f:
            resumed_runs += "resumed_from_t" in f.attrs
    # Resumed runs equal the uninterrupted ones to the solver tolerance (their counters count the
    # continuation only); the others bit for bit.
    same = all(np.array_equal(after[c], reference[c]) for c in ("id", "status")) and all(
        np.allclose(after[c], reference[c], rtol=1e-6, atol=0) for c in ("t_final", "log_loss", "margin"))

    load = os.getloadavg()
    print(f"sweep {os.path.relpath(args.sweep, root)}: {n} runs, statuses {statuses}; load average at the "
          f"start {load_start[0]:.1f}, at the end {load[0]:.1f} (1 min), {os.cpu_count()} cores\n")
    print("| configuration | wall (s) | parallel efficiency |")
    print("|---|---|---|")
    for name, t, eff in rows:
        print(f"| {name} | {t:.1f} | {'' if eff is None else f'{100 * eff:.0f}%'} |")
    print(f"\noverhead per run of `gfsim sweep --jobs 1` over bare `gfsim run`: {1000 * (t1 - bare) / n:.1f} ms")
    print(f"SIGKILL after {done} of {n} runs ({killed_at:.1f} s), resume with --jobs 2: {resumed:.1f} s, "
          f"total {killed_at + resumed:.1f} s vs {t2:.1f} s uninterrupted; {resumed_runs} runs continued by "
          f"--resume; index equal to the uninterrupted sweep's (to rtol 1e-6 for resumed runs): {same}")


if __name__ == "__main__":
    main()
