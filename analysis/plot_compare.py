#!/usr/bin/env python3
"""Figures of a `gfsim compare` run (issue 15): which flow reaches the max-margin direction fastest.

    /usr/bin/python3 analysis/plot_compare.py STEM_compare.json [--out DIR]

Reads the JSON that `gfsim compare` writes beside its HDF5 files and writes DIR/STEM_compare.png and
.pdf (DIR defaults to the folder of the JSON): the relative margin gap (gamma - margin)/gamma against t
(left) and against wall time (right), log-log, one curve per flow, the thresholds 1e-2, 1e-3, 1e-4 as
dotted lines. Points with a gap <= 0 (margin at or above the reference) are left out of log axes.
"""
import argparse
import json
import os
import sys

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def positive(x, y):
    x = np.asarray(x, dtype=float)
    y = np.asarray([np.nan if v is None else v for v in y], dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    return x[keep], y[keep]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", help="STEM_compare.json written by gfsim compare")
    ap.add_argument("--out", help="output folder (default: the JSON's folder)")
    args = ap.parse_args(argv)
    with open(args.json) as fh:
        report = json.load(fh)
    if not report.get("flows"):
        print(f"plot_compare.py: {args.json}: no flows in the report", file=sys.stderr)
        return 2
    out = args.out or os.path.dirname(os.path.abspath(args.json))
    os.makedirs(out, exist_ok=True)
    stem = os.path.basename(args.json)
    stem = stem[: -len("_compare.json")] if stem.endswith("_compare.json") else os.path.splitext(stem)[0]

    fig, (ax_t, ax_w) = plt.subplots(1, 2, figsize=(11, 4.2))
    for f in report["flows"]:
        s = f["series"]
        t, gap = positive(s["t"], s["margin_gap"])
        ax_t.loglog(t, gap, label=f["flow"])
        w, gap_w = positive(s["wall_seconds"], s["margin_gap"])
        ax_w.loglog(w, gap_w, label=f["flow"])
    for ax in (ax_t, ax_w):
        for thr in report.get("thresholds", []):
            ax.axhline(thr, color="0.6", linestyle=":", linewidth=0.8)
        ax.set_ylabel("(gamma - margin) / gamma")
        ax.grid(True, which="major", alpha=0.3)
    ax_t.set_xlabel("t")
    ax_w.set_xlabel("wall time [s]")
    ax_t.legend(fontsize=8)
    ref = "max-margin reference" if report.get("has_reference") else "best margin reached"
    fig.suptitle(f"{report['model']}: relative margin gap (gamma = {report['gamma']:.6g}, {ref})")
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(os.path.join(out, f"{stem}_compare.{ext}"), dpi=120)
    print(os.path.join(out, f"{stem}_compare.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
