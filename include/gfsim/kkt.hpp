#pragma once
// KKT residual of the parameter-space max-margin problem (Lyu & Li 2020, "Gradient descent maximizes the
// margin of homogeneous neural networks"):
//   min ||theta||^2 / 2   s.t.  q_n(theta) = y_n f(x_n; theta) >= 1,   f K-homogeneous in theta.
// At a direction theta (q_min = min_n q_n > 0) the rescaled point theta~ = theta / q_min^(1/K) is feasible
// with min margin 1. Its KKT residual uses multipliers lambda >= 0 on the near-active points
// (q_n(theta~) <= 1 + active_gap), fitted by nonnegative least squares:
//   lambda = argmin_{lambda >= 0} || theta~ - sum_n lambda_n grad q_n(theta~) ||,
//   stationarity    = that minimum / ||theta~||,
//   complementarity = sum_n lambda_n (q_n - 1) / sum_n lambda_n q_n      (0 when all used points are active).
// For ReLU points on a kink grad q_n is replaced by the Clarke subdifferential (see kkt_residual).
// Both vanish exactly at a KKT point whose support lies in the band; Lyu-Li show that gradient flow
// directions of homogeneous nets approach KKT points, so both tend to 0 along the trajectory.
//
//   KktResidual r = kkt_residual(net, data, theta, 0.05);
//   if (r.defined) std::cout << r.stationarity;
#include <algorithm>
#include <vector>

#include "gfsim/dataset.hpp"
#include "gfsim/network.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

struct NnlsResult {
  Vec x;                   ///< argmin_{x >= 0} ||A x - b||
  double residual = 0;     ///< ||A x - b||
  Vec dual;                ///< w = A^T (b - A x): <= 0 off the support, ~0 on it (the NNLS KKT conditions)
  int iterations = 0;
  bool converged = false;  ///< false only if the iteration cap (3 n + 30 outer steps) was hit
};

/// Lawson-Hanson active-set NNLS (Lawson & Hanson 1974, ch. 23): finite, each outer step adds the column
/// with the largest positive dual entry and solves least squares on the passive set (column-pivoted QR).
/// `tol` <= 0 picks 10 eps ||A||_1 max(rows, cols). Hand-written because Debian's Eigen 3.4.0 has no
/// unsupported/Eigen/NNLS (it arrived after 3.4); tests/test_kkt.cpp checks it against brute force.
NnlsResult nnls(const Mat& A, const Vec& b, double tol = 0);

/// Margins q_n = y_n f(x_n; theta) of every point.
Vec point_margins(const Network& net, const Dataset& data, const Vec& theta);

/// Rows: grad_theta q_n(theta) for the points `index` (exact backprop; ReLU'(0) = 0).
Mat margin_gradients(const Network& net, const Dataset& data, const Vec& theta, const std::vector<Index>& index);

/// End-to-end linear map beta (d_0) of a linear network: f(x) = beta . x (f evaluated at the unit vectors).
Vec end_to_end(const Network& net, const Vec& theta);

struct KktResidual {
  bool defined = false;           ///< false when q_min <= 0 (not separated yet): nothing below is set
  double q_min = 0;               ///< min_n q_n(theta)
  double stationarity = 0;        ///< ||theta~ - G^T lambda|| / ||theta~||
  double complementarity = 0;     ///< sum lambda (q - 1) / sum lambda q at theta~
  std::vector<Index> active;      ///< the near-active points used (q_n(theta~) <= 1 + active_gap)
  Vec lambda;                     ///< their multipliers (same order)
  Vec theta_tilde;                ///< theta / q_min^(1/K)
  Index kink_points = 0;          ///< ReLU: near-active points with a hidden pre-activation on a kink
  Index columns = 0;              ///< NNLS columns (gradients, or Clarke vertices for kink points)
  double residual() const { return std::max(stationarity, complementarity); }
};

/// `active_gap` >= 0: width of the near-active band in units of the minimum margin. ReLU nets: a hidden
/// pre-activation with |h| <= kink_rel max_data |h| (same layer) is on a kink (gradient flows slide there,
/// Filippov): the point's margin is not differentiable, and its Clarke subdifferential enters the fit
/// through the vertices of its mask box (every vertex for up to 4 kinks of one point; beyond that the
/// all-0 and all-1 masks and the single flips, a subset of the hull, so the residual is then an upper bound).
KktResidual kkt_residual(const Network& net, const Dataset& data, const Vec& theta, double active_gap,
                         double kink_rel = 1e-9);

}  // namespace gfsim
