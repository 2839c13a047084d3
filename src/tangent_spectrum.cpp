#include "gfsim/tangent_spectrum.hpp"

#include <fmt/format.h>

#include <Eigen/Dense>
#include <cmath>
#include <limits>

#include "gfsim/spectrum.hpp"

namespace gfsim {

std::vector<Index> TangentSpectrum::classify(double threshold) {
  zero_threshold = threshold;
  n_negative = n_zero = n_positive = 0;
  std::vector<Index> zero;
  for (Index i = 0; i < eigenvalues.size(); ++i) {
    const double l = eigenvalues[i];
    if (std::abs(l) <= threshold) {
      ++n_zero;
      zero.push_back(i);
    } else if (l < 0) {
      ++n_negative;
    } else {
      ++n_positive;
    }
  }
  curvature = n_negative > 0 ? Curvature::saddle : n_zero > 0 ? Curvature::degenerate : Curvature::hyperbolic;
  return zero;
}

void TangentSpectrum::describe(bool partial) {
  std::string expl;
  for (const auto& mech : mechanisms) expl += fmt::format("{} {}, ", mech.explained, mech.name);
  expl += fmt::format("{} unexplained", unexplained);
  const std::string atleast = partial ? "at least " : "";
  switch (curvature) {
    case Curvature::saddle:
      verdict = fmt::format("not a minimum: {}{} negative modes", atleast, n_negative);
      if (n_zero > 0) verdict += fmt::format(", {}{} zero modes (explained: {})", atleast, n_zero, expl);
      return;
    case Curvature::degenerate:
      verdict = fmt::format("not hyperbolic: {}{} zero modes (explained: {})", atleast, n_zero, expl);
      return;
    case Curvature::hyperbolic:
      verdict = "hyperbolic";
      return;
  }
}

Mat tangent_hessian_matrix(const SphereProblem& sp, const Vec& V) {
  const TangentBasis B(sp.flow().network(), V);
  const Index m = B.cols();
  Mat Ht(m, m);
  Vec e = Vec::Zero(m);
  for (Index j = 0; j < m; ++j) {
    e[j] = 1;
    Ht.col(j) = B.apply_transpose(sp.hessian(V, B.apply(e)));
    e[j] = 0;
  }
  // Symmetric in exact arithmetic; averaging removes the round-off asymmetry (in place, no copy).
  for (Index j = 0; j < m; ++j)
    for (Index i = j + 1; i < m; ++i) Ht(i, j) = Ht(j, i) = 0.5 * (Ht(i, j) + Ht(j, i));
  return Ht;
}

Vec tangent_extreme_eigenvalues(const SphereProblem& sp, const Vec& V0, Index k, Index dense_max, Index* hvps) {
  const Vec V = sp.normalize(V0);
  const Index m = sp.tangent_dim();
  Vec out = Vec::Constant(2 * k, std::numeric_limits<double>::quiet_NaN());
  const TangentBasis B(sp.flow().network(), V);
  if (m <= dense_max || k >= m - 2) {
    const Mat Ht = tangent_hessian_matrix(sp, V);
    if (hvps) *hvps += m;
    const Vec lam = Eigen::SelfAdjointEigenSolver<Mat>(Ht, Eigen::EigenvaluesOnly).eigenvalues();
    for (Index i = 0; i < k && i < m; ++i) out[i] = lam[i];
    for (Index i = 0; i < k; ++i)
      if (m - k + i >= 0) out[k + i] = lam[m - k + i];
    return out;
  }
  SymOperator op{m, [&](const double* in, double* o) {
                   Eigen::Map<Vec>(o, m) = B.apply_transpose(sp.hessian(V, B.apply(Eigen::Map<const Vec>(in, m))));
                 }};
  const ExtremeEigs e = extreme_eigenvalues(op, k);
  if (hvps) *hvps += e.matvecs;
  for (Index i = 0; i < e.smallest.size(); ++i) out[i] = e.smallest[i];
  for (Index i = 0; i < e.largest.size(); ++i) out[k + i] = e.largest[i];
  return out;
}
}  // namespace gfsim
