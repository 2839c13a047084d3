#!/usr/bin/env python3
"""Plot one column of a sweep index (docs/sweeps.md) against another, one series per value of a
grouping column (typically a varied key):

    python3 analysis/plot_sweep.py OUT/index.h5 --x network.init_scale --y margin \\
        --group network.hidden -o margin.png [--logx] [--logy]

Rows whose status is not `success` are left out (their count is printed). Needs numpy, h5py and
matplotlib (Debian: python3-matplotlib).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gfsim_io  # noqa: E402  (next to this script)


def grouped_series(table, x, y, group=None):
    """[(group value or None, x values, y values)] of the successful rows, each sorted by x."""
    for name in (x, y) + ((group,) if group else ()):
        if name not in table.dtype.names:
            raise ValueError(f"no column {name!r} in the index (columns: {', '.join(table.dtype.names)})")
    ok = table[table["status"] == "success"]
    groups = [None] if not group else sorted(set(ok[group].tolist()), key=lambda v: (str(type(v)), v))
    series = []
    for value in groups:
        rows = ok if value is None else ok[ok[group] == value]
        order = np.argsort(rows[x], kind="stable")
        series.append((value, rows[x][order], rows[y][order]))
    return series


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("index", help="a sweep index, DIR/index.h5")
    parser.add_argument("--x", required=True, help="column on the horizontal axis")
    parser.add_argument("--y", required=True, help="column on the vertical axis")
    parser.add_argument("--group", help="one series per value of this column")
    parser.add_argument("--logx", action="store_true")
    parser.add_argument("--logy", action="store_true")
    parser.add_argument("-o", "--output", required=True, help="image file (png, pdf, svg)")
    args = parser.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        table = gfsim_io.load_index(args.index)
        series = grouped_series(table, args.x, args.y, args.group)
    except (OSError, ValueError) as error:
        print(f"plot_sweep: {error}", file=sys.stderr)
        return 2
    left_out = int(np.sum(table["status"] != "success"))
    if left_out:
        print(f"plot_sweep: {left_out} run(s) without status success left out", file=sys.stderr)
    fig, ax = plt.subplots(figsize=(6, 4))
    for value, xs, ys in series:
        ax.plot(xs, ys, "o-", label=None if value is None else f"{args.group} = {value}")
    ax.set_xlabel(args.x)
    ax.set_ylabel(args.y)
    if args.logx:
        ax.set_xscale("log")
    if args.logy:
        ax.set_yscale("log")
    if args.group:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
