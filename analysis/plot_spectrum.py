#!/usr/bin/env python3
"""Figures of the tangent-space Hessian spectrum (docs/equations.md section 7).

    /usr/bin/python3 analysis/plot_spectrum.py FILE.h5 [--rho R] [--out DIR]

FILE.h5 is a `gfsim stationary` file (group /stationary; with --rho-sweep also /stationary/sweep),
or a `gfsim run` file with a [spectrum] section (/observables/hessian_eigs). Writes DIR/STEM_spectrum.png
and .pdf (DIR defaults to the folder of FILE.h5):
  stationary file: left, the eigenvalues against rho (every sweep row; symlog scale, the zero band
  |lambda| <= zero_threshold shaded, smallest nonzero eigenvalue highlighted); right, the spectrum at
  one rho (--rho picks the nearest sweep row; default the file's final rho), with the kink-surface
  spectrum when the point sits on ReLU kinks.
  run file: the sampled extreme eigenvalues against time.
"""
import argparse
import os
import sys

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _linthresh(values, fallback):
    v = np.abs(np.asarray(values, dtype=float))
    v = v[np.isfinite(v) & (v > 0)]
    return max(float(v.min()) if v.size else fallback, fallback)


def plot_stationary(f, ax_rho, ax_one, rho_pick):
    g = f["stationary"]
    zero_thr = float(g.attrs.get("zero_threshold", 0.0))
    lam_final = g["eigenvalues"][()]
    rho_final = float(g.attrs["rho"])
    lam, rho_one, title = lam_final, rho_final, "final"
    if "sweep" in g and "eigenvalues" in g["sweep"]:
        s = g["sweep"]
        rho = s["rho"][()]
        ev = s["eigenvalues"][()].reshape(len(rho), -1)
        for j in range(ev.shape[1]):
            ax_rho.plot(rho, ev[:, j], color="0.55", lw=0.7)
        lnz = s["lambda_min_nonzero"][()]
        ax_rho.plot(rho, lnz, "o-", color="C3", label="smallest nonzero")
        ax_rho.plot(rho, s["lambda_max"][()], "s-", color="C0", label="largest")
        ax_rho.set_xscale("log")
        ax_rho.set_yscale("symlog", linthresh=_linthresh(lnz, 1e-12))
        if zero_thr > 0:
            ax_rho.axhspan(-zero_thr, zero_thr, color="C2", alpha=0.25, label="zero band")
        ax_rho.set_xlabel("rho")
        ax_rho.set_ylabel("tangent Hessian eigenvalues")
        fit = s.attrs.get("fit", "")
        if isinstance(fit, bytes):
            fit = fit.decode()
        ax_rho.set_title("continuation in rho", fontsize=9)
        if fit:
            ax_rho.text(0.02, 0.02, fit, transform=ax_rho.transAxes, fontsize=6, wrap=True)
        ax_rho.legend(fontsize=7)
        if rho_pick is not None:
            i = int(np.argmin(np.abs(np.log(rho) - np.log(rho_pick))))
            lam, rho_one, title = ev[i], float(rho[i]), "sweep row"
    else:
        ax_rho.text(0.5, 0.5, "no --rho-sweep in this file", ha="center", va="center", transform=ax_rho.transAxes)
        ax_rho.set_axis_off()
    idx = np.arange(len(lam))
    ax_one.plot(idx, lam, "o", ms=3, color="C0", label="spheres' tangent space")
    kg = g.get("kinks")
    if kg is not None and "surface_eigenvalues" in kg and kg["surface_eigenvalues"].shape[0] > 0 and rho_one == rho_final:
        lk = kg["surface_eigenvalues"][()]
        ax_one.plot(np.arange(len(lk)), lk, "x", ms=4, color="C1", label="kink-surface tangent space")
    ax_one.set_yscale("symlog", linthresh=_linthresh(lam, 1e-12))
    if zero_thr > 0:
        ax_one.axhspan(-zero_thr, zero_thr, color="C2", alpha=0.25, label="zero band")
    verdict = g.attrs.get("verdict", "")
    if isinstance(verdict, bytes):
        verdict = verdict.decode()
    ax_one.set_title(f"spectrum at rho = {rho_one:.4g} ({title})\n{verdict}", fontsize=8)
    ax_one.set_xlabel("index (ascending)")
    ax_one.set_ylabel("eigenvalue")
    ax_one.legend(fontsize=7)


def plot_run(f, ax):
    g = f["observables/hessian_eigs"]
    t = g["time"][()]
    v = g["value"][()].reshape(len(t), -1)
    k = v.shape[1] // 2
    tt = np.where(t > 0, t, np.nan)
    for j in range(k):
        ax.plot(tt, v[:, j], "o-", color="C3", ms=3, lw=0.8, label="smallest" if j == 0 else None)
        ax.plot(tt, v[:, k + j], "s-", color="C0", ms=3, lw=0.8, label="largest" if j == 0 else None)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=_linthresh(v, 1e-12))
    ax.set_xlabel("t")
    ax.set_ylabel("tangent Hessian eigenvalues at (V(t), rho(t))")
    ax.legend(fontsize=7)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--rho", type=float, default=None, help="spectrum at the sweep rho nearest this value")
    ap.add_argument("--out", default=None, help="output folder (default: the file's folder)")
    args = ap.parse_args(argv)
    out = args.out or os.path.dirname(os.path.abspath(args.file))
    os.makedirs(out, exist_ok=True)
    stem = os.path.splitext(os.path.basename(args.file))[0]
    with h5py.File(args.file, "r") as f:
        if "stationary" in f:
            fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
            plot_stationary(f, a, b, args.rho)
        elif "observables/hessian_eigs" in f:
            fig, a = plt.subplots(1, 1, figsize=(6, 4.2))
            plot_run(f, a)
        else:
            print(f"{args.file}: neither a /stationary group nor /observables/hessian_eigs", file=sys.stderr)
            return 2
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(os.path.join(out, f"{stem}_spectrum.{ext}"), dpi=120)
    print(os.path.join(out, f"{stem}_spectrum.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
