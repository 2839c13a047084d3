#!/usr/bin/env python3
"""The paper's Figure 2 from a sweep index (issue 17, docs/sweeps.md): test against training loss at
the end of each run, of the raw network (left: the mean loss (1/n) sum l(y f(W; x)), log axes) and of
the normalized network V_k = W_k / ||W_k|| at rho = 1 (right), with the diagonal, the least-squares
line, the slope-1 line test = train + b, and the runs on random labels marked apart.

    python3 analysis/plot_generalization.py OUT/index.h5 -o docs/figures/generalization_wine
        [--noise-key data.label_noise] [--random-key data.random_labels] [--json FIT.json]

Writes OUT.png and OUT.pdf and prints the fits: slope, intercept and Pearson r of test vs training
loss, normalized and raw (raw on log L), over the runs on true or partly flipped labels (the random
label runs are drawn, not fitted). Rows whose status is not `success` are left out (counted). Needs
numpy, h5py and matplotlib (Debian: python3-matplotlib).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gfsim_io  # noqa: E402  (next to this script)


def fit_line(x, y):
    """Least squares y = slope x + intercept, the slope-1 offset mean(y - x), and Pearson r."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    slope, intercept = np.polyfit(x, y, 1)
    r = float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 and np.std(x) > 0 and np.std(y) > 0 else float("nan")
    return {"slope": float(slope), "intercept": float(intercept), "offset_slope1": float(np.mean(y - x)),
            "pearson_r": r, "runs": int(len(x))}


def column(table, name, default):
    return table[name] if name in table.dtype.names else np.full(len(table), default)


def generalization_fits(table, noise_key="data.label_noise", random_key="data.random_labels"):
    """(rows used, random-label mask, fits) of the successful rows of a sweep index."""
    for name in ("train_nloss", "test_nloss", "train_log_mean_loss", "test_log_mean_loss"):
        if name not in table.dtype.names:
            raise ValueError(f"the index has no column {name!r}: not a gfsim sweep with generalization observables")
    ok = table[(table["status"] == "success") & np.isfinite(table["test_nloss"])]
    random = column(ok, random_key, "false")
    random = np.array([str(v).lower() in ("true", "1", "1.0") for v in random])
    fitted = ok[~random]
    fits = {"normalized": fit_line(fitted["train_nloss"], fitted["test_nloss"]),
            "raw_log": fit_line(fitted["train_log_mean_loss"], fitted["test_log_mean_loss"]),
            "left_out": int(len(table) - len(ok)), "random_label_runs": int(np.count_nonzero(random))}
    if np.any(random):
        fits["random_labels"] = {"train_nloss": float(np.mean(ok[random]["train_nloss"])),
                                 "test_nloss": float(np.mean(ok[random]["test_nloss"])),
                                 "test_error": float(np.mean(ok[random]["test_error"])),
                                 "train_error": float(np.mean(ok[random]["train_error"]))}
    return ok, random, fits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("index", help="a sweep index, DIR/index.h5")
    parser.add_argument("-o", "--output", required=True, help="output stem: writes STEM.png and STEM.pdf")
    parser.add_argument("--noise-key", default="data.label_noise", help="column colouring the runs")
    parser.add_argument("--random-key", default="data.random_labels", help="column marking random-label runs")
    parser.add_argument("--json", help="also write the fits to this JSON file")
    args = parser.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        table = gfsim_io.load_index(args.index)
        ok, random, fits = generalization_fits(table, args.noise_key, args.random_key)
    except (OSError, ValueError, KeyError) as error:
        print(f"plot_generalization.py: {args.index}: {error}", file=sys.stderr)
        return 2
    if len(ok) - np.count_nonzero(random) < 3:
        print(f"plot_generalization.py: {args.index}: fewer than 3 successful runs on true labels", file=sys.stderr)
        return 2
    noise = np.asarray(column(ok, args.noise_key, 0.0), dtype=float)
    levels = sorted(set(noise[~random].tolist()))
    colours = plt.cm.viridis(np.linspace(0, 0.85, max(len(levels), 1)))

    fig, (ax_raw, ax_norm) = plt.subplots(1, 2, figsize=(10.5, 4.6))
    panels = ((ax_raw, np.exp(ok["train_log_mean_loss"]), np.exp(ok["test_log_mean_loss"]), "raw network, mean loss"),
              (ax_norm, ok["train_nloss"], ok["test_nloss"], "normalized network (rho = 1), mean loss"))
    for ax, train, test, title in panels:
        for level, colour in zip(levels, colours):
            mask = (~random) & (noise == level)
            ax.scatter(train[mask], test[mask], s=22, color=colour, label=f"label noise {level:g}")
        if np.any(random):
            ax.scatter(train[random], test[random], s=110, marker="*", color="crimson", label="random labels")
        ax.set_xlabel("training loss")
        ax.set_ylabel("test loss")
        ax.set_title(title, fontsize=10)
    ax_raw.set_xscale("log")
    ax_raw.set_yscale("log")
    lo = min(np.min(np.exp(ok["train_log_mean_loss"])), np.min(np.exp(ok["test_log_mean_loss"])))
    hi = max(np.max(np.exp(ok["train_log_mean_loss"])), np.max(np.exp(ok["test_log_mean_loss"])))
    ax_raw.plot([lo, hi], [lo, hi], "k:", lw=1, label="test = train")
    raw = fits["raw_log"]
    ax_raw.text(0.03, 0.97, f"log-log fit: slope {raw['slope']:.3g}, r = {raw['pearson_r']:.3f}",
                transform=ax_raw.transAxes, va="top", fontsize=8)

    x = np.asarray(ok["train_nloss"], float)
    y = np.asarray(ok["test_nloss"], float)
    span = np.array([min(x.min(), y.min()), max(x.max(), y.max())])
    pad = 0.05 * (span[1] - span[0] + 1e-12)
    grid = np.array([span[0] - pad, span[1] + pad])
    norm = fits["normalized"]
    ax_norm.plot(grid, grid, "k:", lw=1, label="test = train")
    ax_norm.plot(grid, grid + norm["offset_slope1"], "C1--", lw=1.2,
                 label=f"slope 1: test = train + {norm['offset_slope1']:.3g}")
    ax_norm.plot(grid, norm["slope"] * grid + norm["intercept"], "C0-", lw=1,
                 label=f"fit: {norm['slope']:.3g} train {'-' if norm['intercept'] < 0 else '+'} "
                       f"{abs(norm['intercept']):.3g} (r = {norm['pearson_r']:.3f})")
    ax_norm.set_xlim(grid)
    ax_norm.set_ylim(min(grid[0], y.min() - pad), max(grid[1], y.max() + pad))
    for ax in (ax_raw, ax_norm):
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"test vs training loss at the end of {len(ok)} runs ({os.path.basename(args.index)})", fontsize=10)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(f"{args.output}.{ext}", dpi=150)
    print(json.dumps(fits, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(fits, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
