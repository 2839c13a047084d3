#pragma once
// Max-margin reference for K = 1: the homogeneous hard-margin SVM
//   w_hat = argmin ||w||^2 / 2  s.t.  z_n . w >= 1   (z_n = y_n x_n),
// solved through its dual  max_a  sum a - ||Z^T a||^2 / 2,  a >= 0, never from a trajectory.
// gamma = 1/||w_hat|| is the normalized margin, v* = w_hat/||w_hat||.
//
//   auto mm = gfsim::max_margin(ds.signed_points());
//   if (mm.kkt.max_residual() > 1e-10) ...;   // certificate
//   double gamma = mm.gamma;
#include <vector>

#include "gfsim/types.hpp"

namespace gfsim {

struct KktCertificate {
  double primal_infeasibility = 0;  ///< max_n max(0, 1 - z_n.w_hat)
  double dual_infeasibility = 0;    ///< max_n max(0, -alpha_n)
  double complementarity = 0;       ///< max_n alpha_n |z_n.w_hat - 1| / max_m alpha_m (relative: alpha
                                    ///< scales like 1/|Z|^2)
  double stationarity = 0;          ///< ||w_hat - Z^T alpha|| / ||w_hat||
  double duality_gap = 0;           ///< |primal - dual| / primal, primal = ||w_hat||^2/2,
                                    ///< dual = sum alpha - ||Z^T alpha||^2/2
  double max_residual() const;      ///< the largest of the five
};

struct MaxMarginResult {
  Vec w_hat;
  double gamma = 0;                 ///< 1/||w_hat||
  Vec direction;                    ///< v* = w_hat / ||w_hat||
  Vec alpha;                        ///< dual multipliers (n); zero off the final active set. Not unique
                                    ///< for degenerate data: then one vertex of the optimal dual set.
  std::vector<Index> support;       ///< ascending indices with alpha_n > tol * max alpha
  std::vector<Index> on_margin;     ///< ascending indices with z_n.w_hat - 1 <= 1e3 tol. More points than
                                    ///< in `support` means degenerate data (margin points without weight,
                                    ///< or more margin points than dimensions)
  Vec margins;                      ///< z_n . v*  (>= gamma, = gamma on the support)
  KktCertificate kkt;
  int iterations = 0;               ///< active-set steps (each adds or drops one constraint)
};

/// Exact up to round-off (a finite active-set method, see src/max_margin.cpp); `tol` (relative) only sets
/// which round-off-sized violations are ignored and the `support` / `on_margin` thresholds.
/// Throws SpecError when a point is zero or non-finite, or when the data are not linearly separable through
/// the origin; the message then gives the certificate: nonnegative weights c_n with sum_n c_n z_n = 0.
MaxMarginResult max_margin(const Mat& Z, double tol = 1e-12);

}  // namespace gfsim
