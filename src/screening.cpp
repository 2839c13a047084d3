#include "gfsim/screening.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gfsim {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

// log(e^a + e^b) without overflow; -inf is the empty sum.
double log_add(double a, double b) {
  if (a < b) std::swap(a, b);
  if (b == -kInf) return a;
  return a + std::log1p(std::exp(b - a));
}
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
  bands_.fill(Band{});
  if (count_ == 0) return;
  double u_min = kInf;
  for (Index n : dropped) u_min = std::min(u_min, u_c[n]);
  auto band_of = [&](double u) {
    // (2^b - 1) w <= u - u_min: b = floor(log2((u - u_min)/w + 1)); geometric widths keep the
    // count of bands fixed whatever the spread of the margins.
    const double b = std::floor(std::log2((u - u_min) / kBandWidth + 1.0));
    return int(std::clamp(b, 0.0, double(kBands - 1)));
  };
  for (Band& b : bands_) b.u_lo = kInf;
  std::array<double, kBands> sum_s{}, sum_a{};
  std::vector<int>& which = which_;
  which.resize(dropped.size());
  for (std::size_t i = 0; i < dropped.size(); ++i) {
    const Index n = dropped[i];
    Band& b = bands_[std::size_t(which[i] = band_of(u_c[n]))];
    b.used = true;
    b.u_lo = std::min(b.u_lo, u_c[n]);
    b.radius = std::max(b.radius, x_norms[n]);
    sum_a[std::size_t(which[i])] += x_norms[n];
  }
  // Each band's sum shifted by its smallest margin (its largest e^{-u}): no overflow, and terms
  // that underflow are below 1e-300 of the band's largest.
  for (std::size_t i = 0; i < dropped.size(); ++i) {
    const Index n = dropped[i];
    const std::size_t b = std::size_t(which[i]);
    sum_s[b] += x_norms[n] * std::exp(bands_[b].u_lo - u_c[n]);
  }
  for (std::size_t b = 0; b < bands_.size(); ++b) {
    if (!bands_[b].used) continue;
    bands_[b].log_s = -bands_[b].u_lo + std::log(sum_s[b]);
    bands_[b].log_a = std::log(sum_a[b]);
  }
}

double ScreeningCertificate::growth(const Network& net, const Vec& theta) const {
  double kappa = 1;
  for (Index k = 0; k < net.num_layers(); ++k) {
    const Index o = net.layer_offset(k), m = net.layer_size(k);
    if (!(norms2_c_[k] > 0)) return 0;
    const double lambda = theta.segment(o, m).dot(theta_c_.segment(o, m)) / norms2_c_[k];
    if (!(lambda > 0)) return 0;
    kappa *= lambda;
  }
  return kappa;
}

double ScreeningCertificate::log_mass(const Network& net, const Vec& theta) const {
  if (count_ == 0) return -kInf;
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
  const double turn = output_gradient_bound(rbar) * std::sqrt(delta2);
  // Per band, with every margin u_n >= kappa u_c,n - |x_n| turn:
  //   kappa >= 1: sum |x_n| e^{-kappa u_c,n} <= e^{-(kappa - 1) u_lo} sum |x_n| e^{-u_c,n};
  //   kappa < 1:  Hoelder with exponents 1/(1 - kappa), 1/kappa on |x_n|^{1-kappa} (|x_n| e^{-u_c,n})^kappa:
  //               sum |x_n| e^{-kappa u_c,n} <= (sum |x_n|)^{1-kappa} (sum |x_n| e^{-u_c,n})^kappa;
  // the turn multiplies every term by at most e^{radius turn}.
  double total = -kInf;
  for (const Band& b : bands_) {
    if (!b.used) continue;
    const double grown = kappa >= 1 ? b.log_s - (kappa - 1) * b.u_lo : (1 - kappa) * b.log_a + kappa * b.log_s;
    total = log_add(total, grown + b.radius * turn);
  }
  return total;
}

}  // namespace gfsim
