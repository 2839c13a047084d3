#pragma once
// Dataset: N labelled points. X is n x d (one point per row), y in {-1,+1}.
//
//   auto ds = gfsim::make_dataset(spec.data, model_dir);
//   Mat Z = ds.signed_points();   // rows z_n = y_n x_n
#include <cstdint>
#include <string>

#include "gfsim/model_spec.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// Largest feature magnitude a data set may have. The flows square features (the loss Hessian and
/// the Jacobian the implicit solvers factor hold sums of x x^T times loss curvatures and layer
/// norms): above 1e100 those squares come within 1e108 of double overflow, and such data already
/// overflow the loss at t = 0 for any weights of order one. Larger data are refused up front
/// (docs/reliability.md, numerical hazards) rather than rescaled: the flow is not scale-invariant
/// (features scaled by c change the trajectory, not only its clock), so a silent rescaling would
/// integrate another experiment.
inline constexpr double kMaxFeatureMagnitude = 1e100;

struct Dataset {
  Mat X;  ///< n x d
  Vec y;  ///< n, entries +-1
  Index n() const { return X.rows(); }
  Index dim() const { return X.cols(); }
  Mat signed_points() const { return y.asDiagonal() * X; }
};

/// Build the (training) data set of a spec: make_held_out_data(spec, base_dir).train (data_split.hpp).
/// `base_dir` resolves a relative csv path. Throws SpecError with file:line:column for malformed
/// CSV, and for generators whose parameters cannot be met.
Dataset make_dataset(const DataSpec& spec, const std::string& base_dir = ".");

// Random generators draw every number from one std::mt19937_64 seeded with `seed` through one
// std::normal_distribution, in a fixed order (documented per generator). The data are reproducible
// for a seed with the same standard library; std::normal_distribution's algorithm is
// implementation-defined, so libstdc++ and libc++ give different (equally valid) data sets.

/// Separable Gaussian data: x ~ N(0, I_dim), y = sign(w_true . x) (0 -> +1) for a random unit
/// w_true, and every point shifted by y margin w_true, so that y_n w_true . x_n >= margin.
/// Draw order: w_true, then the points row by row. Optional constant-1 feature (last column;
/// (w_true, 0) still separates with the same margin). margin <= kMaxFeatureMagnitude / 2.
Dataset gaussian_dataset(int n, int dim, double margin, bool bias, std::uint64_t seed);
/// The unit separator w_true of gaussian_dataset(..., dim, ..., seed) (length dim, no bias entry).
Vec gaussian_separator(int dim, std::uint64_t seed);

/// Random 2-layer ReLU teacher f(x) = a . relu(B x), B (hidden x dim) and a with N(0,1) entries.
struct ReluTeacher {
  Mat B;
  Vec a;
  double operator()(const Vec& x) const;
};
/// The teacher of teacher_dataset(..., dim, hidden, ..., seed). Draw order: B row by row, then a.
ReluTeacher relu_teacher(int dim, int hidden, std::uint64_t seed);
/// Labels y = sign(f(x)) from relu_teacher(dim, hidden, seed); x ~ N(0, I_dim) drawn after the
/// teacher. Points where f(x) = 0 exactly (every hidden unit inactive) are redrawn, so the teacher
/// separates the data strictly: y_n f(x_n) > 0. Optional constant-1 feature (last column).
Dataset teacher_dataset(int n, int dim, int hidden, bool bias, std::uint64_t seed);
/// CSV: first column the label in {-1,+1} (0/1 labels are rejected), then the features; every row
/// has the same number of columns. Blank lines, '#' comment lines and one optional header line (the
/// first non-comment line, if its first field is not a number) are skipped; no quoting. Errors name
/// path:line:column (column = character position of the offending field); so does a feature of
/// magnitude above kMaxFeatureMagnitude.
Dataset read_csv_dataset(const std::string& path, bool bias);

}  // namespace gfsim
