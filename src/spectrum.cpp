#include "gfsim/spectrum.hpp"

#include <Spectra/SymEigsSolver.h>
#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace gfsim {

namespace {

const char* info_name(Spectra::CompInfo info) {
  switch (info) {
    case Spectra::CompInfo::Successful: return "successful";
    case Spectra::CompInfo::NotComputed: return "not_computed";
    case Spectra::CompInfo::NotConverging: return "not_converging";
    case Spectra::CompInfo::NumericalIssue: return "numerical_issue";
  }
  return "unknown";
}

// Spectra's matrix-free operator: y = scale * H x + shift * x.
class ShiftedOp {
 public:
  using Scalar = double;
  ShiftedOp(const SymOperator& op, double scale, double shift, Index& count)
      : op_(op), scale_(scale), shift_(shift), count_(count) {}
  Index rows() const { return op_.n; }
  Index cols() const { return op_.n; }
  void perform_op(const double* in, double* out) const {
    op_.apply(in, out);
    ++count_;
    if (scale_ != 1.0 || shift_ != 0.0)
      for (Index i = 0; i < op_.n; ++i) out[i] = scale_ * out[i] + shift_ * in[i];
  }

 private:
  const SymOperator& op_;
  double scale_, shift_;
  Index& count_;
};

}  // namespace

ExtremeEigs extreme_eigenvalues(const SymOperator& op, Index nev, const ExtremeEigsOptions& options) {
  if (nev < 1 || nev >= op.n - 1)
    throw std::invalid_argument(fmt::format("extreme_eigenvalues: nev = {} must be in [1, n - 2] (n = {})", nev, op.n));
  const Index ncv = std::min(op.n, options.ncv > 0 ? options.ncv : std::max<Index>(2 * nev + 1, 40));
  ExtremeEigs r;

  // Largest end.
  ShiftedOp plain(op, 1.0, 0.0, r.matvecs);
  Spectra::SymEigsSolver<ShiftedOp> top(plain, nev, ncv);
  top.init();
  top.compute(Spectra::SortRule::LargestAlge, options.max_iterations, options.tol, Spectra::SortRule::SmallestAlge);
  r.info_largest = info_name(top.info());
  r.iterations_largest = top.num_iterations();
  if (top.info() == Spectra::CompInfo::Successful || top.eigenvalues().size() > 0) {
    r.largest = top.eigenvalues();
    r.largest_vectors = top.eigenvectors();
  }

  // Smallest end: largest of (sigma I - H), sigma = lambda_max (so sigma I - H is PSD).
  const double lmax = r.largest.size() ? r.largest.maxCoeff() : 0.0;
  r.shift = lmax;
  ShiftedOp flipped(op, -1.0, lmax, r.matvecs);
  Spectra::SymEigsSolver<ShiftedOp> bottom(flipped, nev, ncv);
  bottom.init();
  bottom.compute(Spectra::SortRule::LargestAlge, options.max_iterations, options.tol, Spectra::SortRule::LargestAlge);
  r.info_smallest = info_name(bottom.info());
  r.iterations_smallest = bottom.num_iterations();
  if (bottom.eigenvalues().size() > 0) {
    // mu = sigma - lambda, sorted descending in mu -> ascending in lambda.
    r.smallest = (lmax - bottom.eigenvalues().array()).matrix();
    r.smallest_vectors = bottom.eigenvectors();
  }
  return r;
}

}  // namespace gfsim
