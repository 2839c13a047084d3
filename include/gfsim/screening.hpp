#pragma once
// Safe screening of negligible data points (equations.md section 9, issue 19). Late in a run only
// the near-support points carry loss weight; a screen drops the others from the right-hand side,
// the Jacobian and J v, and this certificate bounds what they would still contribute at any later
// weights theta without touching them: for a network that is positively 1-homogeneous in each
// layer and Lipschitz (linear, exact ReLU), with lambda_k = <W_k, C_k>/|C_k|^2 (C = theta at the
// screen) and theta' = (lambda_k C_k)_k,
//   y f(theta; x) >= kappa y f(C; x) - |x| c |theta - theta'|,   kappa = prod_k lambda_k > 0,
// c = sqrt(sum_k prod_{j != k} rbar_j^2), rbar_j = max(|W_j|, lambda_j |C_j|) (the Lipschitz constant
// of f on the segment from theta' to theta). So the margins of the dropped points can only fall
// as fast as the weights turn, not as fast as they grow, and their total weight is bounded in O(P).
// The dropped points are summarised in margin bands (a point of margin u gains (kappa - 1) u when
// the weights grow, so a band's smallest margin must not stand for margins far above it).
//
//   ScreeningCertificate cert;
//   cert.reset(net, theta_c, margins_c, x_norms, dropped);   // at a screen (one full pass)
//   double lm = cert.log_mass(net, theta);   // >= log sum_{dropped} |x_n| e^{-u_n(theta)}, O(P + bands)
#include <array>
#include <cstdint>
#include <vector>

#include "gfsim/network.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// sqrt(sum_k prod_{j != k} r_j^2): |d f(W; x)/dW| <= this |x| when |W_j|_F <= r_j (for a network
/// 1-Lipschitz in its activations with s(0) = 0: linear and the exact ReLU).
double output_gradient_bound(const Vec& layer_norms);

class ScreeningCertificate {
 public:
  /// A screen at weights theta_c with margins u_c (u_n = y_n f(theta_c; x_n), all points) and the
  /// input norms |x_n|: the points `dropped` (indices) leave the evaluation.
  void reset(const Network& net, const Vec& theta_c, const Vec& u_c, const Vec& x_norms,
             const std::vector<Index>& dropped);
  /// An upper bound on log sum_{n dropped} |x_n| g(u_n(theta)) for every loss weight g <= e^{-u}
  /// (exp, logistic); -inf when nothing is dropped, +inf when theta has turned too far from the
  /// screen's weights (some lambda_k <= 0) for the bound to say anything.
  double log_mass(const Network& net, const Vec& theta) const;
  /// kappa = prod_k lambda_k at theta (the growth of every margin since the screen, up to the turn);
  /// 0 when some lambda_k <= 0.
  double growth(const Network& net, const Vec& theta) const;
  Index dropped() const { return count_; }

  /// Band b holds the dropped margins in [u_min + (2^b - 1) w, u_min + (2^{b+1} - 1) w), w = kBandWidth
  /// (the last band: everything above).
  static constexpr int kBands = 16;
  static constexpr double kBandWidth = 0.5;

 private:
  struct Band {
    double u_lo = 0;      // smallest margin in the band
    double log_s = 0;     // log sum |x_n| e^{-u_n}
    double log_a = 0;     // log sum |x_n|
    double radius = 0;    // max |x_n|
    bool used = false;
  };
  Vec theta_c_;
  Vec norms2_c_;          // |C_k|^2 per layer
  Index count_ = 0;       // dropped points
  std::array<Band, kBands> bands_{};
  std::vector<int> which_;  // scratch of reset: the band of each dropped point
};

/// What the screening did along a run (Flow::screening_state).
struct ScreeningState {
  bool enabled = false;     ///< [solver] screening = true
  bool active = false;      ///< the certificate applies (homogeneous net: linear or exact ReLU; exp/logistic loss)
  Index kept = 0;           ///< points in the last evaluation
  std::int64_t screens = 0; ///< full passes that re-chose the kept set since enable_screening
  std::int64_t screens_by_bound = 0;  ///< of which forced by the certificate (the others: amortisation)
  std::int64_t evaluations = 0;       ///< certified evaluations since enable_screening
  double kept_work = 0;     ///< sum over those evaluations of kept / n (the fraction of the data work done)
  double last_bound = 0;    ///< certified bound on |rhs(all points) - rhs(kept points)| at the last evaluation
  double last_budget = 0;   ///< the budget it was held to, in the same units
};

}  // namespace gfsim
