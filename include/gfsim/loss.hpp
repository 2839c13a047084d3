#pragma once
// Per-point losses l(u) of the margin u = y f(x), all evaluated in log form so that nothing
// overflows or underflows spuriously at t = 1e300 (equations.md sections 1 and 5).
//
//   Loss loss(LossKind::exp);
//   double w = loss.weight(u, s);      // e^s * g(u), g = -l'(u), formed as exp(s + log g(u))
//   double c = loss.curvature(u, s);   // e^s * l''(u)
#include <span>

#include "gfsim/enums.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// softplus(x) = log(1 + e^x), exact for all finite x.
double softplus(double x);

class Loss {
 public:
  explicit Loss(LossKind kind) : kind_(kind) {}
  LossKind kind() const { return kind_; }

  /// log l(u); -inf where l(u) = 0 (square loss at u = 1).
  double log_value(double u) const;
  /// e^{log_scale} * g(u) with g = -l'(u) (exp: e^{-u}; logistic: 1/(1+e^u); square: 2(1-u)).
  double weight(double u, double log_scale = 0.0) const;
  /// e^{log_scale} * l''(u) = -e^{log_scale} g'(u).
  double curvature(double u, double log_scale = 0.0) const;
  /// Vectorised weight()/curvature() over all margins (the flows' hot path: Eigen's SIMD exp,
  /// no allocation; w and c must already have u's size).
  void weights(const Vec& u, double log_scale, Vec& w) const;
  void curvatures(const Vec& u, double log_scale, Vec& c) const;
  /// log sum_n l(u_n), by log-sum-exp.
  double log_total(std::span<const double> margins) const;

 private:
  LossKind kind_;
};

}  // namespace gfsim
