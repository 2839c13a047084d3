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
  double complementarity = 0;       ///< max_n alpha_n |z_n.w_hat - 1|
  double stationarity = 0;          ///< ||w_hat - Z^T alpha|| / ||w_hat||
  double duality_gap = 0;           ///< |primal - dual| / primal
  double max_residual() const;
};

struct MaxMarginResult {
  Vec w_hat;
  double gamma = 0;                 ///< 1/||w_hat||
  Vec direction;                    ///< v* = w_hat / ||w_hat||
  Vec alpha;                        ///< dual multipliers (n)
  std::vector<Index> support;       ///< indices with alpha_n > 0 (or margin == 1 within tol)
  Vec margins;                      ///< z_n . v*  (>= gamma, = gamma on the support)
  KktCertificate kkt;
  int iterations = 0;
};

/// Throws SpecError (data not linearly separable through the origin) with a clear message.
MaxMarginResult max_margin(const Mat& Z, double tol = 1e-12);

}  // namespace gfsim
