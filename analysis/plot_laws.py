#!/usr/bin/env python3
"""Figures of the asymptotic laws checked by `gfsim verify` (docs/equations.md section 6).

    /usr/bin/python3 analysis/plot_laws.py RUN_gd.h5 [RUN_wn.h5] [--out DIR]

RUN_gd.h5 is the GD file written by `gfsim verify` (it holds the /verify group: gamma, v*, the
verdicts); RUN_wn.h5 defaults to the sibling file with _gd replaced by _wn. Writes DIR/STEM_laws.png
and .pdf (DIR defaults to the folder of RUN_gd.h5), six panels:
  rho against log t with the 1/gamma slope line; eps = ||v - v*|| against 1/log t for GD and WN
  (deep linear nets: the end-to-end vector); normalized margin against log t with gamma; the layer
  norms rho_k against log t on log-log axes with the (log t)^(1/K) law; the Lyu-Li KKT residual of the
  parameter-space max-margin problem against log t; the distance of V(t) to the fixed-rho stationary
  direction V_rho and of V_rho to v* at the sample times verify solved for it.
Without a /verify group (a plain `gfsim run` file, K = 1) gamma and v* are recomputed from the stored
data (data/X, data/y) with scipy's SLSQP on the hard-margin SVM.
"""
import argparse
import json
import os
import sys
import textwrap

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gfsim_io  # noqa: E402


def reference(path, traj):
    """(gamma, v_star) from the /verify group, or recomputed from the stored data (K = 1)."""
    with h5py.File(path, "r") as f:
        if "verify" in f and "v_star" in f["verify"]:
            return float(f["verify"].attrs["gamma"]), f["verify/v_star"][()]
    if traj.metadata.get("K", 1) != 1 or "data/y" not in traj.extra:
        return None, None
    from scipy.optimize import minimize
    y = traj.extra["data/y"]
    X = traj.data_X()
    Z = y[:, None] * X
    w0 = traj.observables["theta"]["value"][-1]
    w0 = w0 / np.min(Z @ w0)
    res = minimize(lambda w: 0.5 * w @ w, w0, jac=lambda w: w, method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda w: Z @ w - 1, "jac": lambda w: Z}])
    w = res.x
    return 1 / np.linalg.norm(w), w / np.linalg.norm(w)


def verify_data(path):
    """The series `gfsim verify` stored in /verify of the GD file: {flow: {name: array}} (empty without)."""
    out = {}
    with h5py.File(path, "r") as f:
        if "verify" not in f:
            return out
        g = f["verify"]
        for flow in ("gd", "wn"):
            if flow not in g:
                continue
            d = {}
            g[flow].visititems(lambda name, obj: d.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
            out[flow] = d
    return out


def series(traj, v_star):
    t = traj.observables["rho"]["time"]
    keep = t > 1.0
    log_t = np.log(t[keep])
    rho_k = np.abs(np.atleast_2d(traj.observables["rho"]["value"].reshape(len(t), -1)))[keep]
    margin = traj.observables["margin"]["value"][keep]
    eps = None
    theta = traj.observables["theta"]["value"][keep]
    if v_star is not None and theta.shape[1] == len(v_star):  # K = 1 (deep nets: /verify's eps)
        v = theta / np.linalg.norm(theta, axis=1, keepdims=True)
        eps = np.linalg.norm(v - v_star, axis=1)
    return log_t, rho_k, margin, eps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gd", help="RUN_gd.h5 written by gfsim verify (or any K = 1 gfsim run file)")
    ap.add_argument("wn", nargs="?", help="RUN_wn.h5 (default: sibling of the GD file)")
    ap.add_argument("--out", help="output folder (default: the GD file's folder)")
    args = ap.parse_args(argv)

    gd = gfsim_io.load(args.gd)
    wn_path = args.wn
    if wn_path is None and args.gd.endswith("_gd.h5"):
        candidate = args.gd[: -len("_gd.h5")] + "_wn.h5"
        wn_path = candidate if os.path.exists(candidate) else None
    wn = gfsim_io.load(wn_path) if wn_path else None
    gamma, v_star = reference(args.gd, gd)
    stopped = {}

    runs = [("GD", gd, "C0")] + ([("WN", wn, "C3")] if wn is not None else [])
    # A flow that stopped early (e.g. wn stalled at a ReLU kink) is named so in every legend.
    with h5py.File(args.gd, "r") as f:
        report = json.loads(f["verify"].attrs["json"]) if "verify" in f and "json" in f["verify"].attrs else {}
    for name, _, _ in runs:
        info = report.get(name.lower(), {})
        if info.get("status", "success") != "success":
            stopped[name] = f"{name} ({info['status']} at t = {info.get('t_final') or 0:.3g})"
    data = {name: series(traj, v_star) for name, traj, _ in runs}
    stored = verify_data(args.gd)
    for name, _, _ in runs:
        v = stored.get(name.lower(), {})
        if "eps" in v:  # verify's eps (end-to-end vector for deep linear nets): replaces the recomputed one
            log_t, rho_k, margin, _ = data[name]
            keep = v["log_t"] > 0
            eps = np.interp(log_t, v["log_t"][keep], v["eps"][keep])
            data[name] = (log_t, rho_k, margin, eps)
    K = gd.metadata.get("K", None) or data["GD"][1].shape[1]
    xlabel = "log t  (natural log of time; t = 1e100 is 230)"

    fig, ax = plt.subplots(2, 3, figsize=(18, 9))
    a = ax[0, 0]
    for name, _, color in runs:
        log_t, rho_k, _, _ = data[name]
        a.plot(log_t, np.prod(rho_k, axis=1), color=color, label=f"rho(t), {stopped.get(name, name)}")
    if gamma:
        log_t, rho_k, _, _ = data["GD"]
        rho = np.prod(rho_k, axis=1)
        a.plot(log_t, rho[-1] + (log_t - log_t[-1]) / gamma, "k--", lw=1,
               label=f"slope 1/gamma = {1 / gamma:.4g}")
    a.set_xlabel(xlabel)
    a.set_ylabel("rho = prod_k ||W_k||")
    a.set_title("rho grows like (1/gamma) log t")
    a.legend(fontsize=8)

    a = ax[0, 1]
    if v_star is not None:
        for name, _, color in runs:
            log_t, _, _, eps = data[name]
            late = log_t >= 2.0  # t >= e^2: the asymptotic range, 1/log t <= 0.5
            a.plot(1 / log_t[late], eps[late], color=color, label=f"eps(t), {stopped.get(name, name)}")
        a.set_xlim(0, 0.5)
        a.set_ylim(bottom=0)
        a.set_xlabel("1 / log t  (t -> infinity at 0)")
        a.set_ylabel("eps = ||v(t) - v*||")
        a.set_title("direction error: a line through 0 means eps ~ C / log t")
        a.legend(fontsize=8)
    else:
        a.text(0.5, 0.5, "no max-margin reference (ReLU network)", ha="center", transform=a.transAxes)
        a.axis("off")

    a = ax[1, 0]
    for name, _, color in runs:
        log_t, _, margin, _ = data[name]
        a.plot(log_t, margin, color=color, label=f"normalized margin, {stopped.get(name, name)}")
    if gamma:
        a.axhline(gamma, color="k", ls="--", lw=1, label=f"gamma = {gamma:.6g}")
        lo = min(np.min(data[n][2][len(data[n][2]) // 5:]) for n in data)
        a.set_ylim(lo - 0.05 * (gamma - lo), gamma + 0.1 * (gamma - lo))
    a.set_xlabel(xlabel)
    a.set_ylabel("min_n y_n f(V; x_n)")
    a.set_title("normalized margin -> gamma")
    a.legend(fontsize=8)

    a = ax[1, 1]
    for name, _, color in runs:
        log_t, rho_k, _, _ = data[name]
        late = log_t >= 1.0
        for k in range(rho_k.shape[1]):
            a.loglog(log_t[late], rho_k[late, k], color=color, ls=["-", "--", ":", "-."][k % 4],
                     label=f"rho_{k + 1}, {stopped.get(name, name)}")
    log_t, rho_k, _, _ = data["GD"]
    late = log_t >= 1.0
    if np.any(late):
        k_layers = rho_k.shape[1]
        ref = rho_k[late][-1, 0] * (log_t[late] / log_t[late][-1]) ** (1.0 / k_layers)
        a.loglog(log_t[late], ref, "k--", lw=1, label=f"(log t)^(1/K), K = {k_layers}")
    a.set_xlabel("log t  (log axis)")
    a.set_ylabel("||W_k||  (log axis)")
    a.set_title("layer norms: each grows like (log t)^(1/K)")
    a.legend(fontsize=8)

    a = ax[0, 2]
    drew = False
    for name, _, color in runs:
        kkt = stored.get(name.lower(), {})
        if "kkt/log_t" in kkt:
            res = np.maximum(kkt["kkt/stationarity"], kkt["kkt/complementarity"])
            a.semilogy(kkt["kkt/log_t"], res, color=color, label=f"KKT residual, {stopped.get(name, name)}")
            a.semilogy(kkt["kkt/log_t"], kkt["kkt/stationarity"], color=color, ls=":", lw=1,
                       label=f"stationarity part, {stopped.get(name, name)}")
            drew = True
    if drew:
        a.set_xlabel(xlabel)
        a.set_ylabel("residual (dimensionless, log axis)")
        a.set_title("Lyu-Li KKT residual of min ||theta||^2 s.t. y f(x) >= 1")
        a.legend(fontsize=8)
    else:
        a.text(0.5, 0.5, "no KKT residual stored (plain run file)", ha="center", transform=a.transAxes)
        a.axis("off")

    a = ax[1, 2]
    drew = False
    for name, _, color in runs:
        st = stored.get(name.lower(), {})
        if "stationary/t" in st and np.any(np.isfinite(st["stationary/distance"])):
            lt = np.log(st["stationary/t"])
            a.semilogy(lt, st["stationary/distance"], "o-", color=color,
                       label=f"||V(t) - V_rho||, {stopped.get(name, name)}")
            if np.any(np.isfinite(st["stationary/optimum_to_reference"])):
                a.semilogy(lt, st["stationary/optimum_to_reference"], "s--", color=color, mfc="none",
                           label=f"||V_rho - v*||, {stopped.get(name, name)}")
            drew = True
    if drew:
        a.set_xlabel(xlabel)
        a.set_ylabel("distance (log axis)")
        a.set_title("fixed-rho stationary direction V_rho at rho = rho(t)")
        a.legend(fontsize=8)
    else:
        reason = next((law["verdict"] for law in report.get("laws", []) if law["law"] == "fixed_rho_gd"),
                      "not measured")
        a.text(0.5, 0.5, textwrap.fill("fixed-rho distance (GD): " + reason, 50), ha="center", va="center",
               transform=a.transAxes, fontsize=9)
        a.axis("off")

    name = gd.metadata.get("model_name", "run")
    fig.suptitle(f"{name}: asymptotic laws" + (f" (gamma = {gamma:.6g})" if gamma else ""))
    fig.tight_layout()
    out = args.out or os.path.dirname(os.path.abspath(args.gd))
    os.makedirs(out, exist_ok=True)
    stem = os.path.basename(args.gd)
    stem = stem[: -len("_gd.h5")] if stem.endswith("_gd.h5") else os.path.splitext(stem)[0]
    written = []
    for ext in ("png", "pdf"):
        path = os.path.join(out, f"{stem}_laws.{ext}")
        fig.savefig(path, dpi=110)
        written.append(path)
    print("\n".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
