#pragma once
// Dataset: N labelled points. X is n x d (one point per row), y in {-1,+1}.
//
//   auto ds = gfsim::make_dataset(spec.data, model_dir);
//   Mat Z = ds.signed_points();   // rows z_n = y_n x_n
#include <string>

#include "gfsim/model_spec.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

struct Dataset {
  Mat X;  ///< n x d
  Vec y;  ///< n, entries +-1
  Index n() const { return X.rows(); }
  Index dim() const { return X.cols(); }
  Mat signed_points() const { return y.asDiagonal() * X; }
};

/// Build the data set of a spec. `base_dir` resolves a relative csv path. Throws SpecError with
/// file:line:column for malformed CSV, and for generators whose parameters cannot be met.
Dataset make_dataset(const DataSpec& spec, const std::string& base_dir = ".");

/// Separable Gaussian data: x ~ N(0, I_dim), y = sign(w_true . x) for a random unit w_true, and
/// every point pushed along w_true so that |w_true . x| >= margin. Optional constant-1 feature.
Dataset gaussian_dataset(int n, int dim, double margin, bool bias, std::uint64_t seed);
/// Labels from a random 2-layer ReLU teacher with `hidden` units; x ~ N(0, I_dim).
Dataset teacher_dataset(int n, int dim, int hidden, bool bias, std::uint64_t seed);
/// CSV: first column the label in {-1,+1}, then the features; '#' comment lines and one optional
/// header line (non-numeric first field) are skipped.
Dataset read_csv_dataset(const std::string& path, bool bias);

}  // namespace gfsim
