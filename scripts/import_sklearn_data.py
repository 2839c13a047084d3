#!/usr/bin/env python3
"""Write models/data/wine_0_1.csv and models/data/breast_cancer.csv from Debian's python3-sklearn.

Usage: scripts/import_sklearn_data.py [SKLEARN_DATA_DIR]
(default /usr/lib/python3/dist-packages/sklearn/datasets/data; scripts/setup installs python3-sklearn).
The files are copied value for value (the text of each number kept), with gfsim's +-1 label in the
first column and a header; gfsim itself never reads sklearn.
"""
import os
import sys

WINE_FEATURES = ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
                 "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
                 "od280_od315", "proline"]
CANCER_BASE = ["radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
               "concave_points", "symmetry", "fractal_dimension"]
CANCER_FEATURES = [f"{p}_{b}" for p in ("mean", "se", "worst") for b in CANCER_BASE]


def rows(path):
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip()]
    return [line.split(",") for line in lines[1:]]  # first line: count, features, class names


def write(path, header, body):
    with open(path, "w") as f:
        f.write(header)
        for label, features in body:
            f.write(",".join([label] + features) + "\n")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/usr/lib/python3/dist-packages/sklearn/datasets/data"
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "data")
    wine = [(r[-1], r[:-1]) for r in rows(os.path.join(src, "wine_data.csv"))]
    assert len(wine) == 178 and all(len(f) == 13 for _, f in wine)
    write(os.path.join(out, "wine_0_1.csv"),
          "# UCI Wine recognition data (Forina et al.; UCI Machine Learning Repository,\n"
          "# https://doi.org/10.24432/C5PC7J), classes class_0 (label +1, 59 points) and class_1 (label -1,\n"
          "# 71 points) of the three cultivars; class_2 dropped. Copied by scripts/import_sklearn_data.py from\n"
          "# Debian's python3-sklearn 1.2.1 (sklearn/datasets/data/wine_data.csv, BSD-3-Clause,\n"
          "# Copyright 2007-2019 Scikit-Learn Developers). Raw units: use [data] standardize = true.\n"
          "label," + ",".join(WINE_FEATURES) + "\n",
          [("1" if c == "0" else "-1", f) for c, f in wine if c in ("0", "1")])
    cancer = [(r[-1], r[:-1]) for r in rows(os.path.join(src, "breast_cancer.csv"))]
    assert len(cancer) == 569 and all(len(f) == 30 for _, f in cancer)
    write(os.path.join(out, "breast_cancer.csv"),
          "# Breast Cancer Wisconsin (Diagnostic) data (Wolberg, Street, Mangasarian; UCI Machine Learning\n"
          "# Repository, https://doi.org/10.24432/C5DW2B): 569 tumours, 30 features; label +1 benign (357),\n"
          "# -1 malignant (212). Copied by scripts/import_sklearn_data.py from Debian's python3-sklearn 1.2.1\n"
          "# (sklearn/datasets/data/breast_cancer.csv, BSD-3-Clause, Copyright 2007-2019 Scikit-Learn\n"
          "# Developers). Raw units: use [data] standardize = true.\n"
          "label," + ",".join(CANCER_FEATURES) + "\n",
          [("1" if c == "1" else "-1", f) for c, f in cancer])


if __name__ == "__main__":
    main()
