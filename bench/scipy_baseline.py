#!/usr/bin/python3
"""scipy solve_ivp baselines on exactly the problem of a gfsim output file (K = 1 linear, exp loss, gd flow).

usage: scipy_baseline.py REFERENCE.h5 RUNS  -> JSON on stdout

Data (data/X, data/y), initial point (initial/theta) and the reference trajectory (theta at
the sample times) come from the gfsim file, via analysis/gfsim_io.py. Methods: DOP853, LSODA and
BDF (the implicit two with the analytic Jacobian), each in physical time t and in the log clock
s = log(1 + t) (dw/ds = e^s F(w)). For each, the loosest rtol of a ladder that reaches 1e-6 relative at
every sample (atol = 1e-2 rtol), then the median wall time of RUNS solves (1 run when a solve takes
more than 2 s; none past a 15 s budget per solve). bench/baselines.py uses `LinearProblem` directly.
"""
import json
import os
import statistics
import sys
import time

import numpy as np
from scipy.integrate import solve_ivp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "analysis"))
import gfsim_io  # noqa: E402

TARGET = 1e-6
# Half decades: a decade ladder can cost a solver up to 10x in tolerance (~1.6x in work at order 5).
LADDER = [1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 3e-7, 1e-7, 3e-8, 1e-8, 3e-9, 1e-9, 3e-10, 1e-10, 3e-11, 1e-11]
BUDGET = 8.0


class OverBudget(Exception):
    pass


class LinearProblem:
    """The gradient flow dw/dt = Z^T exp(-Z w) (Z = y * X) of a gfsim file, with its reference
    trajectory; `solve` integrates it with one scipy method in the clock t or log(1 + t)."""

    def __init__(self, path):
        traj = gfsim_io.load(path)
        y = np.asarray(traj.extra["data/y"]).ravel()
        self.Z = y[:, None] * traj.data_X()
        self.w0 = np.asarray(traj.extra["initial/theta"]).ravel()
        self.t_ref = np.asarray(traj.observables["theta"]["time"])
        self.w_ref = np.asarray(traj.observables["theta"]["value"])
        self.t_end = float(self.t_ref[-1])

    def solve(self, method, clock, rtol, budget=BUDGET):
        """(solution at the reference's sample times, wall seconds); raises OverBudget past `budget` s."""
        Z, log = self.Z, clock == "log"
        deadline = time.perf_counter() + budget

        def f(s, w):
            if time.perf_counter() > deadline:
                raise OverBudget
            return Z.T @ np.exp((s if log else 0.0) - Z @ w)

        def jac(s, w):
            return -(Z.T * np.exp((s if log else 0.0) - Z @ w)) @ Z

        tau_end = np.log1p(self.t_end) if log else self.t_end
        tau_eval = np.log1p(self.t_ref) if log else self.t_ref.copy()
        tau_eval[-1] = tau_end
        kw = {} if method == "DOP853" else {"jac": jac}
        if not log:
            kw["first_step"] = 1e-4  # the automatic first step fails for huge horizons
        t0 = time.perf_counter()
        sol = solve_ivp(f, (0.0, tau_end), self.w0, method=method, t_eval=tau_eval, rtol=rtol, atol=rtol * 1e-2,
                        **kw)
        return sol, time.perf_counter() - t0

    def errors(self, sol):
        """(error of the final state, largest error over the samples), relative to the reference;
        inf for a solve that did not reach every sample."""
        if not sol.success or sol.y.shape[1] != len(self.t_ref):
            return float("inf"), float("inf")
        err = np.linalg.norm(sol.y.T - self.w_ref, axis=1) / np.linalg.norm(self.w_ref, axis=1)
        return float(err[-1]), float(err.max())


def main():
    path, runs = sys.argv[1], int(sys.argv[2])
    problem = LinearProblem(path)
    rows = []
    for method in ("DOP853", "LSODA", "BDF"):
        for clock in ("t", "log"):
            label = f"{method}, {'log clock' if clock == 'log' else 'clock t'}" + (
                ", analytic Jacobian" if method != "DOP853" else "")
            row = {"label": label}
            try:
                chosen = None
                for rtol in LADDER:
                    sol, wall = problem.solve(method, clock, rtol)
                    err = problem.errors(sol)[1]
                    if err <= TARGET:
                        chosen = (rtol, err, sol, wall)
                        break
                if chosen is None:
                    row["note"] = "no rtol in the ladder reached 1e-6"
                else:
                    rtol, err, sol, wall = chosen
                    n = runs if wall < 2.0 else 1
                    walls = [wall] if n == 1 else [problem.solve(method, clock, rtol)[1] for _ in range(n)]
                    row.update(rtol=rtol, err=err, wall=statistics.median(walls), runs=n, nfev=int(sol.nfev),
                               njev=int(sol.njev), nlu=int(sol.nlu))
            except OverBudget:
                row["note"] = f"a single solve exceeded {BUDGET:g} s (stopped)"
            rows.append(row)
    json.dump({"rows": rows}, sys.stdout)


if __name__ == "__main__":
    main()
