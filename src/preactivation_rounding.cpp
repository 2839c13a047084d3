#include "gfsim/preactivation_rounding.hpp"

#include <limits>
#include <stdexcept>

namespace gfsim {

namespace {
constexpr double kUnitRoundoff = std::numeric_limits<double>::epsilon() / 2;  // u = 2^-53
constexpr double kEta = std::numeric_limits<double>::denorm_min();            // 2^-1074
}  // namespace

double rounding_gamma(Index d) {
  const double du = double(d) * kUnitRoundoff;
  return du / (1.0 - du);
}

double dot_rounding_bound(double abs_dot, Index d) {
  return (1.0 + rounding_gamma(d + 4)) * rounding_gamma(d + 2) * abs_dot + double(d) * kEta;
}

Vec preactivation_rounding(const Network& net, const Eigen::Ref<const Vec>& theta, const Network::Inputs& XT,
                           const std::vector<Mat>& masks, const Vec& pre) {
  const Index K = net.num_layers(), n = XT.cols();
  Vec bound(pre.size());
  if (pre.size() == 0) return bound;
  if (Index(masks.size()) + 1 < K) throw std::invalid_argument("preactivation_rounding: a mask per hidden layer");
  Mat abs_input = XT.cwiseAbs();  // |A_{k-1}| weighted as in E_k, then E_k itself for the next layer
  Mat E;
  Index o = 0;
  for (Index k = 0; k + 1 < K; ++k) {
    const Index d = net.layer_cols(k), rows = net.layer_rows(k);
    const double g = rounding_gamma(d + 2), safety = 1.0 + rounding_gamma(d + 4);
    if (k == 0) {
      E.noalias() = net.layer(theta, k).cwiseAbs() * (g * abs_input);
    } else {
      // gamma |A_{k-1}| + (1 + 2u) |M_{k-1}| E_{k-1}, A_{k-1} = M_{k-1} .* H_{k-1} (computed).
      const Mat& M = masks[std::size_t(k - 1)];
      const auto H = Eigen::Map<const Mat>(pre.data() + o - M.size(), M.rows(), n);
      abs_input = g * (M.cwiseAbs().cwiseProduct(H.cwiseAbs())) +
                  (1.0 + 2 * kUnitRoundoff) * M.cwiseAbs().cwiseProduct(E);
      E.noalias() = net.layer(theta, k).cwiseAbs() * abs_input;
    }
    E = (safety * E.array() + double(d) * kEta).matrix();
    bound.segment(o, rows * n) = Eigen::Map<const Vec>(E.data(), rows * n);
    o += rows * n;
  }
  return bound;
}

std::vector<char> entries_of_units_below_rounding(const Network& net, const Eigen::Ref<const Vec>& theta,
                                                  const Vec& pre, Index n) {
  std::vector<char> below(std::size_t(pre.size()), 0);
  const Index K = net.num_layers();
  Index o = 0;
  for (Index k = 0; k + 1 < K && n > 0; ++k) {
    const Index rows = net.layer_rows(k);
    const auto out = net.layer(theta, k + 1);  // d_{k+2} x d_{k+1}: column i leaves unit i
    const auto H = Eigen::Map<const Mat>(pre.data() + o, rows, n);
    const double out_threshold = kUnitRoundoff * out.norm();
    const double h_threshold = kUnitRoundoff * H.cwiseAbs().maxCoeff();
    for (Index i = 0; i < rows; ++i) {
      if (!(out.col(i).norm() <= out_threshold) || !(H.row(i).cwiseAbs().maxCoeff() <= h_threshold)) continue;
      for (Index p = 0; p < n; ++p) below[std::size_t(o + i + rows * p)] = 1;
    }
    o += rows * n;
  }
  return below;
}

}  // namespace gfsim
