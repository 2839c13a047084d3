#include "gfsim/screening.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gfsim {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

double output_gradient_bound(const Vec& r) {
  // sum_k prod_{j != k} r_j^2 without dividing by a possibly zero r_k.
  double sum = 0;
  for (Index k = 0; k < r.size(); ++k) {
    double prod = 1;
    for (Index j = 0; j < r.size(); ++j)
      if (j != k) prod *= r[j] * r[j];
    sum += prod;
  }
  return std::sqrt(sum);
}

void ScreeningCertificate::reset(const Network& net, const Vec& theta_c, const Vec& u_c, const Vec& x_norms,
                                 const std::vector<Index>& dropped) {
  theta_c_ = theta_c;
  const Index K = net.num_layers();
  norms2_c_.resize(K);
  for (Index k = 0; k < K; ++k) norms2_c_[k] = theta_c.segment(net.layer_offset(k), net.layer_size(k)).squaredNorm();
  count_ = Index(dropped.size());
  u_min_ = kInf;
  radius_ = 0;
  for (Index n : dropped) {
    u_min_ = std::min(u_min_, u_c[n]);
    radius_ = std::max(radius_, x_norms[n]);
  }
  // log sum e^{-u}, shifted by the smallest margin (the largest term): no overflow or underflow.
  double sum = 0;
  for (Index n : dropped) sum += std::exp(u_min_ - u_c[n]);
  log_sum_ = count_ > 0 ? -u_min_ + std::log(sum) : -kInf;
}

double ScreeningCertificate::log_mass(const Network& net, const Vec& theta) const {
  if (count_ == 0) return -kInf;
  if (radius_ == 0) return -kInf;  // dropped points at the origin contribute nothing
  const Index K = net.num_layers();
  Vec rbar(K);
  double kappa = 1, delta2 = 0;
  for (Index k = 0; k < K; ++k) {
    const Index o = net.layer_offset(k), m = net.layer_size(k);
    const auto W = theta.segment(o, m), C = theta_c_.segment(o, m);
    if (!(norms2_c_[k] > 0)) return kInf;
    const double lambda = W.dot(C) / norms2_c_[k];
    if (!(lambda > 0)) return kInf;
    kappa *= lambda;
    delta2 += (W - lambda * C).squaredNorm();
    rbar[k] = std::max(W.norm(), lambda * std::sqrt(norms2_c_[k]));
  }
  // sum_n e^{-kappa u_n} <= count e^{-kappa u_min}; for kappa >= 1 also
  // <= e^{-(kappa - 1) u_min} sum_n e^{-u_n} (every dropped u_n >= u_min).
  double log_sum = std::log(double(count_)) - kappa * u_min_;
  if (kappa >= 1) log_sum = std::min(log_sum, log_sum_ - (kappa - 1) * u_min_);
  const double drift = radius_ * output_gradient_bound(rbar) * std::sqrt(delta2);
  return std::log(radius_) + log_sum + drift;
}

}  // namespace gfsim
