#include "gfsim/kink_surface.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

namespace gfsim {

std::vector<Index> kink_indices(const Flow& flow, const Vec& V, double rel) {
  std::vector<Index> J;
  const Vec h = flow.preactivations(V);
  if (h.size() == 0) return J;
  const double hmax = h.cwiseAbs().maxCoeff();
  for (Index j = 0; j < h.size(); ++j)
    if (std::abs(h[j]) <= rel * hmax) J.push_back(j);
  return J;
}

namespace {

// Rows: d h_j / dV applied to the columns of T (P x m), j in kinks. theta = c V, so
// dh = preactivation_tangent(c V, c xi). ReLU'(0) = 0 for the kinked entries themselves.
Mat kink_rows(const SphereProblem& sp, const Vec& V, const std::vector<Index>& kinks, const Mat& T) {
  const double c = sp.layer_scale();
  Mat C(Index(kinks.size()), T.cols());
  const Vec theta = c * V;
  for (Index j = 0; j < T.cols(); ++j) {
    const Vec dh = sp.flow().preactivation_tangent(theta, c * T.col(j));
    for (std::size_t q = 0; q < kinks.size(); ++q) C(Index(q), j) = dh[kinks[q]];
  }
  return C;
}

// Orthonormal basis of the null space of A (k x m) as m x (m - rank) columns.
Mat null_space(const Mat& A, Index& rank) {
  const Index m = A.cols();
  if (A.rows() == 0) {
    rank = 0;
    return Mat::Identity(m, m);
  }
  Eigen::JacobiSVD<Mat> svd(A, Eigen::ComputeFullV);
  const Vec& sv = svd.singularValues();
  const double tol = 1e-10 * std::max(sv.size() ? sv[0] : 0.0, 1e-300);
  rank = 0;
  for (Index i = 0; i < sv.size(); ++i)
    if (sv[i] > tol) ++rank;
  return svd.matrixV().rightCols(m - rank);
}

}  // namespace

// For first-layer kinks h is linear in V_1 and the normalization keeps h = 0, so one correction is
// exact.
Vec restore_kinks(const SphereProblem& sp, Vec V, const std::vector<Index>& kinks) {
  if (kinks.empty()) return V;
  const double c = sp.layer_scale();
  for (int it = 0; it < 5; ++it) {
    const Vec h = sp.flow().preactivations(V);
    Vec hJ(Index(kinks.size()));
    for (std::size_t q = 0; q < kinks.size(); ++q) hJ[Index(q)] = h[kinks[q]] / c;  // per unit V
    const double hmax = h.cwiseAbs().maxCoeff() / c;
    if (hJ.norm() <= 1e-15 * hmax) break;
    const Mat Bd = TangentBasis(sp.flow().network(), V).dense();
    const Mat C = kink_rows(sp, V, kinks, Bd) / c;
    const Vec d = C.completeOrthogonalDecomposition().solve(-hJ);
    V = sp.retract(V, Bd * d);
  }
  return V;
}

Mat kink_surface_basis(const SphereProblem& sp, const Vec& V, const std::vector<Index>& kinks, Index* rank) {
  const Mat Bd = TangentBasis(sp.flow().network(), V).dense();
  Index r = 0;
  const Mat Z = null_space(kink_rows(sp, V, kinks, Bd), r);
  if (rank) *rank = r;
  return Bd * Z;
}
}  // namespace gfsim
