#include "gfsim/flow.hpp"

#include <Eigen/LU>

#include <fmt/format.h>

#include "gfsim/errors.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace gfsim {

Flow::Flow(Network network, const Dataset& data, LossKind loss, FlowKind kind, double fixed_rho)
    : net_(std::move(network)), XT_(data.X.transpose()), y_(data.y), loss_(loss), kind_(kind),
      fixed_rho_(fixed_rho) {
  if (data.dim() != net_.widths().front())
    throw std::invalid_argument(fmt::format("Flow: data dimension {} != network input width {}", data.dim(),
                                            net_.widths().front()));
  if (kind_ == FlowKind::fixed_rho && !(fixed_rho_ > 0))
    throw DomainError(fmt::format("the fixed-rho flow needs rho > 0, got {}", fixed_rho_));
  const Index n = data.n(), P = num_params();
  u_.resize(n);
  a_.resize(n);
  da_.resize(n);
  du_.resize(n);
  grad_.resize(P);
  dgrad_.resize(P);
}

Index Flow::state_size() const { return is_polar() ? num_layers() + num_params() : num_params(); }

void Flow::margins_and_weights(double rho, double log_scale, Vec& a) const {
  // u_n = rho y_n f~_n,  a_n = y_n e^{log_scale} g(u_n): the coefficient of df~_n/dV in -dL/dV / rho.
  u_.array() = rho * y_.array() * ws_.f.array();
  loss_.weights(u_, log_scale, a);
  a.array() *= y_.array();
}

void Flow::forward(const Eigen::Ref<const Vec>& theta) const {
  // Bitwise equality: the cache must never change a result. Only without a pattern, whose entries
  // (sliding masks) change under the same weights.
  if (!ws_.pattern && forward_valid_ && forward_theta_.size() == theta.size() &&
      std::memcmp(forward_theta_.data(), theta.data(), sizeof(double) * std::size_t(theta.size())) == 0)
    return;
  net_.forward(theta, XT_, ws_);
  forward_valid_ = !ws_.pattern;
  if (forward_valid_) forward_theta_ = theta;
}

namespace {
// Tangent-space projection with the exact projector X - V <V,X>/<V,V> (equations.md section 2).
struct Projection {
  double n2, c;
};
}  // namespace

void Flow::rhs(const Vec& y, double log_scale, Vec& dy) const {
  const Index K = num_layers(), P = num_params();
  dy.resize(state_size());
  if (kind_ == FlowKind::gd) {
    forward(y);
    margins_and_weights(1.0, log_scale, a_);
    net_.backward(y, a_, XT_, ws_, dy);  // -dL/dtheta = sum_n g_n y_n df_n/dtheta
    return;
  }
  const Index off = is_polar() ? K : 0;
  const auto V = y.segment(off, P);
  double rho = fixed_rho_;
  if (is_polar()) rho = y.head(K).prod();
  forward(V);
  margins_and_weights(rho, log_scale, a_);
  net_.backward(V, a_, XT_, ws_, grad_);  // G_k
  if (is_polar()) {
    const double S = a_.dot(ws_.f);
    for (Index k = 0; k < K; ++k) dy[k] = rho / y[k] * S;
  }
  for (Index k = 0; k < K; ++k) {
    const Index o = net_.layer_offset(k), m = net_.layer_size(k);
    const auto Vk = V.segment(o, m);
    const auto Gk = grad_.segment(o, m);
    double alpha = rho;                                         // wn, fixed_rho
    if (kind_ == FlowKind::gd_polar) alpha = rho / (y[k] * y[k]);  // unconstrained GD in polar form
    const double c = Vk.dot(Gk) / Vk.squaredNorm();
    dy.segment(off + o, m) = alpha * (Gk - c * Vk);
  }
}

void Flow::jvp(const Vec& y, double log_scale, const Vec& v, Vec& jv) const {
  const Index K = num_layers(), P = num_params();
  jv.resize(state_size());
  if (kind_ == FlowKind::gd) {
    forward(y);
    net_.forward_tangent(y, v, XT_, ws_);
    margins_and_weights(1.0, log_scale, a_);
    loss_.curvatures(u_, log_scale, da_);
    da_.array() *= -y_.array().square() * ws_.df.array();  // -y c(u) du, du = y df
    net_.backward_tangent(y, v, a_, da_, XT_, ws_, grad_, jv, /*with_grad=*/false);
    return;
  }
  const Index off = is_polar() ? K : 0;
  const auto V = y.segment(off, P);
  const auto dV = v.segment(off, P);
  double rho = fixed_rho_, drho = 0.0;
  if (is_polar()) {
    rho = y.head(K).prod();
    for (Index k = 0; k < K; ++k) drho += v[k] / y[k];
    drho *= rho;
  }
  forward(V);
  net_.forward_tangent(V, dV, XT_, ws_);
  margins_and_weights(rho, log_scale, a_);
  loss_.curvatures(u_, log_scale, da_);
  da_.array() *= -y_.array().square() * (drho * ws_.f.array() + rho * ws_.df.array());  // -y c(u) du
  net_.backward_tangent(V, dV, a_, da_, XT_, ws_, grad_, dgrad_);
  if (is_polar()) {
    const double S = a_.dot(ws_.f);
    const double dS = da_.dot(ws_.f) + a_.dot(ws_.df);
    for (Index k = 0; k < K; ++k)
      jv[k] = (drho / y[k] - rho * v[k] / (y[k] * y[k])) * S + rho / y[k] * dS;
  }
  for (Index k = 0; k < K; ++k) {
    const Index o = net_.layer_offset(k), m = net_.layer_size(k);
    const auto Vk = V.segment(o, m);
    const auto dVk = dV.segment(o, m);
    const auto Gk = grad_.segment(o, m);
    const auto dGk = dgrad_.segment(o, m);
    double alpha = rho, dalpha = drho;
    if (kind_ == FlowKind::gd_polar) {
      const double r2 = y[k] * y[k];
      alpha = rho / r2;
      dalpha = drho / r2 - 2.0 * rho * v[k] / (r2 * y[k]);
    }
    const double n2 = Vk.squaredNorm();
    const double c = Vk.dot(Gk) / n2;
    const double dc = (dVk.dot(Gk) + Vk.dot(dGk)) / n2 - 2.0 * c * Vk.dot(dVk) / n2;
    jv.segment(off + o, m) = dalpha * (Gk - c * Vk) + alpha * (dGk - dc * Vk - c * dVk);
  }
}

void Flow::jacobian(const Vec& y, double log_scale, Mat& J) const {
  const Index m = state_size();
  if (kind_ == FlowKind::gd && num_layers() == 1) {
    // Linear model: J = -sum_n e^{log_scale} l''(u_n) x_n x_n^T, one rank-n update.
    forward(y);
    margins_and_weights(1.0, log_scale, a_);
    // Symmetric: SYRK-style rank updates of the lower triangle (half the flops of a GEMM) on
    // preallocated buffers, l'' >= 0 for every loss so the square root is real. In blocks of
    // 32 points: Eigen's packing buffers then fit its stack limit (a depth-1000 product
    // heap-allocates ~200 KB per call, which costs more page faults than the product: 13x), and
    // the first call touches few fresh pages (a first touch costs ~25 us on the benchmark VM:
    // 128-point blocks cost 27 more faults, ~0.7 ms, in a whole default run).
    // The scaled block X_b^T diag(sqrt(l'')) lives in a cache-resident d x 32 buffer.
    loss_.curvatures(u_, log_scale, da_);
    da_ = da_.cwiseSqrt();  // once per point, not once per matrix entry
    constexpr Index kBlock = 32;
    const Index n = XT_.cols();
    jac_scaled_.resize(XT_.rows(), std::min(kBlock, n));
    J.setZero(m, m);
    for (Index c = 0; c < n; c += kBlock) {
      const Index w = std::min(kBlock, n - c);
      auto block = jac_scaled_.leftCols(w);
      block.noalias() = XT_.middleCols(c, w) * da_.segment(c, w).asDiagonal();
      J.selfadjointView<Eigen::Lower>().rankUpdate(block, -1.0);
    }
    J.triangularView<Eigen::StrictlyUpper>() = J.transpose();
    return;
  }
  J.resize(m, m);
  Vec e = Vec::Zero(m), col(m);
  for (Index j = 0; j < m; ++j) {
    e[j] = 1.0;
    jvp(y, log_scale, e, col);
    J.col(j) = col;
    e[j] = 0.0;
  }
}

void Flow::loss_gradient(const Vec& theta, Vec& grad) const {
  grad.resize(num_params());
  forward(theta);
  margins_and_weights(1.0, 0.0, a_);
  net_.backward(theta, a_, XT_, ws_, grad);
  grad = -grad;
}

void Flow::loss_hvp(const Vec& theta, const Vec& v, Vec& hv) const {
  hv.resize(num_params());
  forward(theta);
  net_.forward_tangent(theta, v, XT_, ws_);
  margins_and_weights(1.0, 0.0, a_);
  loss_.curvatures(u_, 0.0, da_);
  da_.array() *= -y_.array().square() * ws_.df.array();
  net_.backward_tangent(theta, v, a_, da_, XT_, ws_, grad_, hv);
  hv = -hv;
}

Vec Flow::initial_state(const Vec& theta) const {
  if (theta.size() != num_params())
    throw DomainError(fmt::format("initial weights: {} numbers given, the network {} has P = {} parameters",
                                theta.size(), net_.describe(), num_params()));
  if (kind_ == FlowKind::gd) return theta;
  const Index K = num_layers();
  const Vec rho = net_.layer_norms(theta);
  for (Index k = 0; k < K; ++k)
    if (!(rho[k] > 0))
      throw DomainError(fmt::format("the {} flow needs every layer norm rho_k > 0: layer {} of the initial "
                                    "weights is zero (rho_{} = 0)", to_string(kind_), k + 1, k + 1));
  const Index off = is_polar() ? K : 0;
  Vec y(state_size());
  if (is_polar()) y.head(K) = rho;
  for (Index k = 0; k < K; ++k) {
    const Index o = net_.layer_offset(k), m = net_.layer_size(k);
    y.segment(off + o, m) = theta.segment(o, m) / rho[k];
  }
  return y;
}

Vec Flow::theta(const Vec& y) const {
  if (kind_ == FlowKind::gd) return y;
  const Index K = num_layers(), P = num_params();
  const Index off = is_polar() ? K : 0;
  Vec theta = y.segment(off, P);
  const double equal_rho = std::pow(fixed_rho_, 1.0 / double(K));
  for (Index k = 0; k < K; ++k)
    theta.segment(net_.layer_offset(k), net_.layer_size(k)) *= is_polar() ? y[k] : equal_rho;
  return theta;
}

Vec Flow::direction(const Vec& y) const {
  if (kind_ != FlowKind::gd) return y.segment(is_polar() ? num_layers() : 0, num_params());
  Vec V = y;
  for (Index k = 0; k < num_layers(); ++k) {
    auto seg = V.segment(net_.layer_offset(k), net_.layer_size(k));
    const double r = seg.norm();
    if (r > 0) seg /= r;
  }
  return V;
}

Vec Flow::layer_norms(const Vec& y) const {
  if (kind_ == FlowKind::gd) return net_.layer_norms(y);
  if (is_polar()) return y.head(num_layers());
  return Vec::Constant(num_layers(), std::pow(fixed_rho_, 1.0 / double(num_layers())));
}

FlowDiagnostics Flow::diagnostics(const Vec& y) const {
  FlowDiagnostics d;
  const Vec theta = this->theta(y);
  forward(theta);
  margins_and_weights(1.0, 0.0, a_);
  d.log_loss = loss_.log_total(std::span<const double>(u_.data(), std::size_t(u_.size())));
  // Normalized margin of the actual weights: min_n y_n f(W; x_n) / prod_k ||W_k||.
  const double prod_norm = net_.layer_norms(theta).prod();
  d.margin = prod_norm > 0 ? u_.minCoeff() / prod_norm : 0.0;
  if (kind_ == FlowKind::fixed_rho) {
    Vec dy;
    rhs(y, 0.0, dy);
    d.grad_norm = dy.norm();
  } else {
    net_.backward(theta, a_, XT_, ws_, grad_);
    d.grad_norm = grad_.norm();
  }
  return d;
}

Flow::NearestKink Flow::nearest_kink(const Vec& y) const {
  NearestKink best;
  if (!net_.has_kinks()) return best;
  const Vec theta = this->theta(y);
  forward(theta);
  double smallest = std::numeric_limits<double>::infinity();
  for (Index k = 0; k + 1 < num_layers(); ++k) {
    const Mat& H = ws_.pre[k];
    for (Index p = 0; p < H.cols(); ++p)
      for (Index i = 0; i < H.rows(); ++i)
        if (std::abs(H(i, p)) < smallest) {
          smallest = std::abs(H(i, p));
          best = {k + 1, i, p, H(i, p)};
        }
  }
  return best;
}

}  // namespace gfsim

namespace gfsim {

Index Flow::num_preactivations() const {
  Index count = 0;
  if (!net_.has_kinks()) return 0;
  for (Index k = 0; k + 1 < num_layers(); ++k) count += net_.layer_rows(k) * y_.size();
  return count;
}

Vec Flow::preactivations(const Vec& y) const {
  Vec h(num_preactivations());
  if (h.size() == 0) return h;
  const Vec theta = this->theta(y);
  forward(theta);
  Index o = 0;
  for (Index k = 0; k + 1 < num_layers(); ++k) {
    h.segment(o, ws_.pre[k].size()) = Eigen::Map<const Vec>(ws_.pre[k].data(), ws_.pre[k].size());
    o += ws_.pre[k].size();
  }
  return h;
}

Vec Flow::preactivation_tangent(const Vec& theta, const Vec& dtheta) const {
  Vec dh(num_preactivations());
  if (dh.size() == 0) return dh;
  forward(theta);
  net_.forward_tangent(theta, dtheta, XT_, ws_);
  Index o = 0;
  for (Index k = 0; k + 1 < num_layers(); ++k) {
    dh.segment(o, ws_.dpre[k].size()) = Eigen::Map<const Vec>(ws_.dpre[k].data(), ws_.dpre[k].size());
    o += ws_.dpre[k].size();
  }
  return dh;
}

Vec Flow::theta_tangent(const Vec& y, const Vec& v) const {
  // d theta(y + e v)/de at e = 0: W_k = rho_k V_k (polar), rho^(1/K) V_k (fixed_rho).
  if (kind_ == FlowKind::gd) return v;
  const Index K = num_layers(), off = is_polar() ? K : 0;
  Vec dtheta = v.segment(off, num_params());
  const double equal_rho = std::pow(fixed_rho_, 1.0 / double(K));
  for (Index k = 0; k < K; ++k) {
    const Index o = net_.layer_offset(k), m = net_.layer_size(k);
    if (is_polar())
      dtheta.segment(o, m) = v[k] * y.segment(off + o, m) + y[k] * v.segment(off + o, m);
    else
      dtheta.segment(o, m) *= equal_rho;
  }
  return dtheta;
}

void Flow::use_pattern(const std::vector<Mat>* masks) {
  ws_.pattern = masks;
  forward_valid_ = false;
}

Flow::NearestKink Flow::kink_of(Index j) const {
  // Entry j of the concatenated (layer, column-major d_k x n) pre-activation vector.
  for (Index k = 0; k + 1 < num_layers(); ++k) {
    const Index rows = net_.layer_rows(k), size = rows * y_.size();
    if (j < size) return {k + 1, j % rows, j / rows, 0.0};
    j -= size;
  }
  throw std::out_of_range("pre-activation index out of range");
}

}  // namespace gfsim
