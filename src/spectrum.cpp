#include "gfsim/spectrum.hpp"

#include <Spectra/SymEigsShiftSolver.h>
#include <Spectra/SymEigsSolver.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "gfsim/minres.hpp"

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

// Spectra's shift-invert operator: y = (H - sigma I)^{-1} x by MINRES (H - sigma I is symmetric and
// indefinite in general). The inner tolerance must be well below the outer one: Lanczos on an
// inexact inverse converges to eigenpairs of the perturbed operator.
class InverseOp {
 public:
  using Scalar = double;
  InverseOp(const SymOperator& op, double inner_rtol, Index& matvecs, Index& solves)
      : op_(op), rtol_(inner_rtol), matvecs_(matvecs), solves_(solves) {}
  Index rows() const { return op_.n; }
  Index cols() const { return op_.n; }
  void set_shift(double sigma) { sigma_ = sigma; }
  void perform_op(const double* in, double* out) const {
    const Vec b = Eigen::Map<const Vec>(in, op_.n);
    const MinresResult r = minres(
        [&](const Vec& v, Vec& Av) {
          Av.resize(op_.n);
          op_.apply(v.data(), Av.data());
          Av -= sigma_ * v;
          ++matvecs_;
        },
        b, {.rtol = rtol_, .max_iterations = 20 * op_.n});
    ++solves_;
    Eigen::Map<Vec>(out, op_.n) = r.x;
  }

 private:
  const SymOperator& op_;
  double rtol_, sigma_ = 0;
  Index& matvecs_;
  Index& solves_;
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

  // Smallest end, first estimate: largest of (sigma I - H), sigma = lambda_max (PSD, no inverse).
  const double lmax = r.largest.size() ? r.largest.maxCoeff() : 0.0;
  const double lscale = r.largest.size() ? r.largest.cwiseAbs().maxCoeff() : 1.0;
  r.shift = lmax;
  ShiftedOp flipped(op, -1.0, lmax, r.matvecs);
  Spectra::SymEigsSolver<ShiftedOp> bottom(flipped, nev, ncv);
  bottom.init();
  const bool forced = options.smallest == SmallestMethod::shift_invert;
  // Forced shift-invert needs only a rough lower end here (it fixes sigma).
  bottom.compute(Spectra::SortRule::LargestAlge, forced ? std::min<Index>(options.max_iterations, 50) : options.max_iterations,
                 forced ? std::max(options.tol, 1e-6) : options.tol, Spectra::SortRule::LargestAlge);
  r.info_smallest = info_name(bottom.info());
  r.iterations_smallest = bottom.num_iterations();
  if (bottom.eigenvalues().size() > 0) {
    // mu = sigma - lambda, sorted descending in mu -> ascending in lambda.
    r.smallest = (lmax - bottom.eigenvalues().array()).matrix();
    r.smallest_vectors = bottom.eigenvectors();
  }
  // automatic: shift-invert where the flipped Lanczos did not converge, or where it found a
  // repeated eigenvalue (two values within cluster_rel * max|lambda|): single-vector Lanczos may
  // have missed further copies of it.
  bool cluster = false;
  for (Index i = 0; i + 1 < r.smallest.size(); ++i)
    cluster = cluster || std::abs(r.smallest[i + 1] - r.smallest[i]) <= options.cluster_rel * lscale;
  if (options.smallest == SmallestMethod::flip ||
      (options.smallest == SmallestMethod::automatic && bottom.info() == Spectra::CompInfo::Successful && !cluster))
    return r;
  r.used_shift_invert = true;

  // Shift-invert: the eigenvalues of H nearest sigma, just below the estimated lower end, become
  // the largest of (H - sigma I)^{-1}, separated by their distance to sigma relative to the gap,
  // not relative to the whole spectral width: clusters (zero-mode blocks) converge, with their
  // multiplicities, where the plain Lanczos stalls.
  const double lower = r.smallest.size() ? r.smallest.minCoeff() : -lscale;
  const double sigma = lower - options.shift_offset * lscale;
  r.sigma = sigma;
  InverseOp inv(op, options.inner_rtol, r.matvecs, r.inner_solves);
  Spectra::SymEigsShiftSolver<InverseOp> si(inv, nev, ncv, sigma);
  si.init();
  si.compute(Spectra::SortRule::LargestMagn, options.max_iterations, options.tol, Spectra::SortRule::SmallestAlge);
  r.info_smallest = info_name(si.info());
  r.iterations_smallest += si.num_iterations();
  if (si.eigenvalues().size() > 0) {
    r.smallest = si.eigenvalues();
    r.smallest_vectors = si.eigenvectors();
  }
  return r;
}

}  // namespace gfsim
