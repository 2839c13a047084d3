#include "gfsim/loss.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gfsim {

double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

namespace {
constexpr double kMinusInf = -std::numeric_limits<double>::infinity();

// sign(a) * exp(log_scale + log|a|): a scaled number that stays finite while the product is.
double scaled(double a, double log_scale) {
  if (a == 0.0) return 0.0;
  return std::copysign(std::exp(log_scale + std::log(std::abs(a))), a);
}
}  // namespace

double Loss::log_value(double u) const {
  switch (kind_) {
    case LossKind::exp:
      return -u;
    case LossKind::logistic: {
      // log(softplus(-u)); for large u, softplus(-u) = e^{-u}(1 - e^{-u}/2 + ...).
      if (u > 30.0) return -u + std::log1p(-0.5 * std::exp(-u));
      return std::log(softplus(-u));
    }
    case LossKind::square:
      return u == 1.0 ? kMinusInf : 2.0 * std::log(std::abs(1.0 - u));
  }
  return 0.0;
}

double Loss::weight(double u, double log_scale) const {
  switch (kind_) {
    case LossKind::exp:
      return std::exp(log_scale - u);
    case LossKind::logistic:
      return std::exp(log_scale - softplus(u));
    case LossKind::square:
      return scaled(2.0 * (1.0 - u), log_scale);
  }
  return 0.0;
}

double Loss::curvature(double u, double log_scale) const {
  switch (kind_) {
    case LossKind::exp:
      return std::exp(log_scale - u);
    case LossKind::logistic:  // sigma(u) sigma(-u)
      return std::exp(log_scale - softplus(u) - softplus(-u));
    case LossKind::square:
      return std::exp(log_scale + std::log(2.0));
  }
  return 0.0;
}

void Loss::weights(const Vec& u, double log_scale, Vec& w) const {
  switch (kind_) {
    case LossKind::exp:
      w.array() = (log_scale - u.array()).exp();
      return;
    case LossKind::logistic:  // softplus(u) = max(u, 0) + log1p(e^{-|u|}), exact for all finite u
      w.array() = (log_scale - u.array().max(0.0) - (-u.array().abs()).exp().log1p()).exp();
      return;
    case LossKind::square:
      for (Index i = 0; i < u.size(); ++i) w[i] = weight(u[i], log_scale);
      return;
  }
}

void Loss::curvatures(const Vec& u, double log_scale, Vec& c) const {
  switch (kind_) {
    case LossKind::exp:
      c.array() = (log_scale - u.array()).exp();
      return;
    case LossKind::logistic:  // softplus(u) + softplus(-u) = |u| + 2 log1p(e^{-|u|})
      c.array() = (log_scale - u.array().abs() - 2.0 * (-u.array().abs()).exp().log1p()).exp();
      return;
    case LossKind::square:
      c.setConstant(std::exp(log_scale + std::log(2.0)));
      return;
  }
}

double Loss::log_total(std::span<const double> margins) const {
  if (kind_ == LossKind::exp && !margins.empty()) {  // log sum e^{-u}, vectorised (sample recording)
    const Eigen::Map<const Eigen::ArrayXd> u(margins.data(), Index(margins.size()));
    const double top = -u.minCoeff();
    if (!std::isfinite(top)) return top;
    return top + std::log((-u - top).exp().sum());
  }
  double top = kMinusInf;
  for (double u : margins) top = std::max(top, log_value(u));
  if (!std::isfinite(top)) return top;
  double sum = 0.0;
  for (double u : margins) sum += std::exp(log_value(u) - top);
  return top + std::log(sum);
}

}  // namespace gfsim
