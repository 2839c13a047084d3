#include "gfsim/flow.hpp"

#include "gfsim/preactivation_rounding.hpp"

#include <Eigen/LU>

#include <fmt/format.h>

#include "gfsim/errors.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace gfsim {

Flow::Flow(Network network, const Dataset& data, LossKind loss, const FlowSpec& spec)
    : Flow(std::move(network), data, loss, spec.kind, make_flow_kind(spec)) {
  fixed_rho_ = spec.rho;
}

Flow::Flow(Network network, const Dataset& data, LossKind loss, FlowKind kind, double fixed_rho)
    : Flow(std::move(network), data, loss, [&] {
        FlowSpec spec;  // the other members at their defaults
        spec.kind = kind;
        spec.rho = fixed_rho;
        return spec;
      }()) {}

Flow::Flow(Network network, const Dataset& data, LossKind loss, FlowKind kind, std::unique_ptr<FlowKindModel> model)
    : net_(std::move(network)), XT_(data.X.transpose()), y_(data.y), loss_(loss), kind_(kind), fixed_rho_(1.0),
      model_(std::move(model)) {
  if (!model_) throw std::invalid_argument("Flow: no flow kind model");
  if (data.dim() != net_.widths().front())
    throw std::invalid_argument(fmt::format("Flow: data dimension {} != network input width {}", data.dim(),
                                            net_.widths().front()));
  const Index n = data.n(), P = num_params();
  u_.resize(n);
  a_.resize(n);
  da_.resize(n);
  grad_.resize(P);
}

TimePoint Flow::autonomous_at(double log_scale) const {
  if (!model_->autonomous())
    throw std::logic_error(fmt::format("the {} flow depends on t: evaluate it at a TimePoint", to_string(kind_)));
  return {0.0, log_scale};
}

void Flow::margins_and_weights(double rho, double log_scale, Vec& a) const {
  // u_n = rho y_n f~_n,  a_n = y_n e^{log_scale} g(u_n): the coefficient of df~_n/dV in -dL/dV / rho.
  const Vec& labels = *labels_;
  u_.resize(labels.size());
  a.resize(labels.size());
  u_.array() = rho * labels.array() * ws_.f.array();
  loss_.weights(u_, log_scale, a);
  a.array() *= labels.array();
}

void Flow::forward_on(const Eigen::Ref<const Vec>& theta, bool kept_only) const {
  // Bitwise equality: the cache must never change a result. Only without a pattern, whose entries
  // (sliding masks) change under the same weights. The point set is part of the key.
  const bool kept = kept_only && screening_on();
  const std::uint64_t set = kept ? screen_.generation : 0;
  if (!pattern_ && forward_valid_ && set == forward_set_ && forward_theta_.size() == theta.size() &&
      std::memcmp(forward_theta_.data(), theta.data(), sizeof(double) * std::size_t(theta.size())) == 0)
    return;
  if (pattern_ && kept) {  // the kept points' columns of the pattern (O(hidden units x kept): a pass costs more)
    kept_pattern_.resize(pattern_->size());
    for (std::size_t k = 0; k < pattern_->size(); ++k) {
      const Mat& m = (*pattern_)[k];
      Mat& mk = kept_pattern_[k];
      mk.resize(m.rows(), screen_.kept);
      for (Index q = 0; q < screen_.kept; ++q) mk.col(q) = m.col(screen_.kept_points[std::size_t(q)]);
    }
    ws_.pattern = &kept_pattern_;
  } else {
    ws_.pattern = pattern_ && screening_on() ? &pattern_with_dropped_signs(theta) : pattern_;
  }
  // The first layer's product W_1 X does not depend on the pattern: a pass over every point at
  // the same weights (the pattern's masks changed since, e.g. the rates of a joint switch's masks
  // or a sliding solve after the event functions at one state) keeps it.
  const bool held = !kept && pass_valid_ && pass_theta_.size() == theta.size() &&
                    std::memcmp(pass_theta_.data(), theta.data(), sizeof(double) * std::size_t(theta.size())) == 0;
  net_.forward(theta, kept ? kept_inputs() : Network::Inputs(XT_), ws_, held);
  pass_valid_ = !kept;
  if (pass_valid_ && !held) pass_theta_ = theta;
  forward_set_ = set;
  labels_ = kept ? &screen_.y : &y_;
  forward_valid_ = !pattern_;
  if (forward_valid_) forward_theta_ = theta;
}

void Flow::loss_descent(const Eigen::Ref<const Vec>& V, double rho, double log_scale, Eigen::Ref<Vec> G) const {
  if (points_.active) return point_loss_descent(V, rho, log_scale, G);
  forward_for_field(V, log_scale);
  margins_and_weights(rho, log_scale, a_);
  net_.backward(V, a_, inputs_in_use(), ws_, G);  // sum_n a_n df_n/dV
}

double Flow::log_loss(const Eigen::Ref<const Vec>& V, double rho) const {
  if (points_.active) return point_log_loss(V, rho);
  auto kept_log_loss = [&] {
    forward_on(V, true);
    u_.resize(labels_->size());
    u_.array() = rho * labels_->array() * ws_.f.array();
    return loss_.log_total(std::span<const double>(u_.data(), std::size_t(u_.size())));
  };
  if (!(screen_.enabled && screen_.pending)) return kept_log_loss();
  // The normalized kind divides its weights by L: certify at log scale s - log L(kept points).
  certify(screen_.tp.log_scale - kept_log_loss());
  return kept_log_loss();
}

void Flow::loss_descent_tangent(const Eigen::Ref<const Vec>& V, const Eigen::Ref<const Vec>& dV, double rho,
                                std::optional<double> drho, double log_scale, Vec* G, Eigen::Ref<Vec> dG) const {
  if (points_.active) throw std::logic_error("Flow: no tangents during a point update (begin_point_update)");
  forward_for_field(V, log_scale);
  const Network::Inputs X = inputs_in_use();
  const Vec& labels = *labels_;
  net_.forward_tangent(V, dV, X, ws_);
  margins_and_weights(rho, log_scale, a_);
  da_.resize(labels.size());
  loss_.curvatures(u_, log_scale, da_);
  // da = -y c(u) du with du = y (drho f + rho df): the tangent of the loss weights.
  if (drho)
    da_.array() *= -labels.array().square() * (*drho * ws_.f.array() + rho * ws_.df.array());
  else
    da_.array() *= -labels.array().square() * (rho * ws_.df.array());
  net_.backward_tangent(V, dV, a_, da_, X, ws_, G ? Eigen::Ref<Vec>(*G) : Eigen::Ref<Vec>(grad_), dG,
                        /*with_grad=*/G != nullptr);
}

void Flow::linear_loss_curvature(const Vec& w, double log_scale, Mat& J) const {
  // J = -sum_n e^{log_scale} l''(u_n) x_n x_n^T, one rank-n update.
  if (num_layers() != 1) throw std::logic_error("linear_loss_curvature: the network is not linear (K > 1)");
  forward_for_field(w, log_scale);
  const Network::Inputs XT = inputs_in_use();
  margins_and_weights(1.0, log_scale, a_);
  da_.resize(u_.size());
  // Symmetric: SYRK-style rank updates of the lower triangle (half the flops of a GEMM) on
  // preallocated buffers, l'' >= 0 for every loss so the square root is real. In blocks of
  // 32 points: Eigen's packing buffers then fit its stack limit (a depth-1000 product
  // heap-allocates ~200 KB per call, which costs more page faults than the product), and the
  // first call touches few fresh pages (docs/benchmarks.md).
  // The scaled block X_b^T diag(sqrt(l'')) lives in a cache-resident d x 32 buffer.
  loss_.curvatures(u_, log_scale, da_);
  da_ = da_.cwiseSqrt();  // once per point, not once per matrix entry
  constexpr Index kBlock = 32;
  const Index n = XT.cols(), m = w.size();
  jac_scaled_.resize(XT.rows(), std::min(kBlock, n));
  J.setZero(m, m);
  for (Index c = 0; c < n; c += kBlock) {
    const Index width = std::min(kBlock, n - c);
    auto block = jac_scaled_.leftCols(width);
    block.noalias() = XT.middleCols(c, width) * da_.segment(c, width).asDiagonal();
    J.selfadjointView<Eigen::Lower>().rankUpdate(block, -1.0);
  }
  J.triangularView<Eigen::StrictlyUpper>() = J.transpose();
}

void Flow::rhs(TimePoint tp, const Vec& y, Vec& dy) const {
  begin_evaluation(tp, y);
  model_->field(*this, tp, y, dy);
}

void Flow::jvp(TimePoint tp, const Vec& y, const Vec& v, Vec& jv) const {
  begin_evaluation(tp, y);
  model_->field_tangent(*this, tp, y, v, jv);
}

void Flow::jacobian(TimePoint tp, const Vec& y, Mat& J) const {
  begin_evaluation(tp, y);
  if (model_->dense_jacobian(*this, tp, y, J)) return;
  const Index m = state_size();
  J.resize(m, m);
  Vec e = Vec::Zero(m), col(m);
  for (Index j = 0; j < m; ++j) {
    e[j] = 1.0;
    jvp(tp, y, e, col);
    J.col(j) = col;
    e[j] = 0.0;
  }
}

void Flow::time_derivative(TimePoint tp, const Vec& y, Vec& dft) const { model_->time_derivative(*this, tp, y, dft); }

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
  da_.resize(u_.size());
  loss_.curvatures(u_, 0.0, da_);
  da_.array() *= -y_.array().square() * ws_.df.array();
  net_.backward_tangent(theta, v, a_, da_, XT_, ws_, grad_, hv);
  hv = -hv;
}

Vec Flow::initial_state(const Vec& theta) const {
  if (theta.size() != num_params())
    throw DomainError(fmt::format("initial weights: {} numbers given, the network {} has P = {} parameters",
                                theta.size(), net_.describe(), num_params()));
  return model_->initial_state(net_, theta);
}

Vec Flow::theta(const Vec& y) const { return model_->theta(net_, y); }

Vec Flow::direction(const Vec& y) const { return model_->direction(net_, y); }

Vec Flow::layer_norms(const Vec& y) const { return model_->layer_norms(net_, y); }

FlowDiagnostics Flow::diagnostics(const Vec& y) const {
  FlowDiagnostics d;
  const Vec theta = this->theta(y);
  forward(theta);
  margins_and_weights(1.0, 0.0, a_);
  d.log_loss = loss_.log_total(std::span<const double>(u_.data(), std::size_t(u_.size())));
  // Normalized margin of the actual weights: min_n y_n f(W; x_n) / prod_k ||W_k||.
  const double prod_norm = net_.layer_norms(theta).prod();
  d.margin = prod_norm > 0 ? u_.minCoeff() / prod_norm : 0.0;
  if (model_->on_spheres()) {
    Vec dy;
    rhs(TimePoint{}, y, dy);
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
  // Units below rounding have no kink (preactivation_rounding.hpp): a dead unit's h is ~0 at every
  // point and would name itself as the kink of any stall.
  const Vec pre = preactivations(y);
  const std::vector<char> below = entries_of_units_below_rounding(net_, theta, pre, y_.size());
  double smallest = std::numeric_limits<double>::infinity();
  for (Index j = 0; j < pre.size(); ++j)
    if (!below[std::size_t(j)] && std::abs(pre[j]) < smallest) {
      smallest = std::abs(pre[j]);
      const auto at = kink_of(j);
      best = {at.layer, at.unit, at.point, pre[j]};
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
  // One hidden layer: h = W_1 X, the same at any pattern; a pass over every point at these
  // weights is in ws_ already when the field was just evaluated here.
  const bool reuse = num_layers() == 2 && pass_valid_ && pass_theta_.size() == theta.size() &&
                     std::memcmp(pass_theta_.data(), theta.data(), sizeof(double) * std::size_t(theta.size())) == 0;
  if (!reuse) forward(theta);
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
  if (num_layers() == 2) {
    // One hidden layer: dh = dW_1 X, the first product of the tangent pass (the same to the bit),
    // which needs no forward pass.
    const Network::Inputs X(XT_);
    Mat dH;
    dH.noalias() = net_.layer(dtheta, 0) * X;
    dh = Eigen::Map<const Vec>(dH.data(), dH.size());
    return dh;
  }
  forward(theta);
  net_.forward_tangent(theta, dtheta, XT_, ws_);
  Index o = 0;
  for (Index k = 0; k + 1 < num_layers(); ++k) {
    dh.segment(o, ws_.dpre[k].size()) = Eigen::Map<const Vec>(ws_.dpre[k].data(), ws_.dpre[k].size());
    o += ws_.dpre[k].size();
  }
  return dh;
}

void Flow::use_pattern(std::vector<Mat>* masks, const std::vector<Index>* sliding) {
  pattern_ = masks;
  pattern_sliding_ = masks ? sliding : nullptr;
  ws_.pattern = masks;
  forward_valid_ = false;
}

Vec Flow::kept_preactivations(const Vec& y) const {
  if (!screening_on()) return preactivations(y);
  Vec h = Vec::Zero(num_preactivations());
  if (h.size() == 0) return h;
  forward_on(this->theta(y), true);
  const Index n = XT_.cols();
  Index o = 0;
  for (Index k = 0; k + 1 < num_layers(); ++k) {
    const Mat& H = ws_.pre[std::size_t(k)];
    auto out = Eigen::Map<Mat>(h.data() + o, H.rows(), n);
    for (Index q = 0; q < H.cols(); ++q) out.col(screen_.kept_points[std::size_t(q)]) = H.col(q);
    o += H.rows() * n;
  }
  return h;
}

const std::vector<Mat>& Flow::pattern_with_dropped_signs(const Eigen::Ref<const Vec>& theta) const {
  // A dropped point's surfaces are not events, so its columns of the pattern are stale (signs of
  // some earlier state). A pass over every point (a screen's margins, diagnostics) takes the signs
  // of its pre-activations instead, from its own pass without the pattern (ReLU'(0) = 0); the
  // pattern itself is left alone: a point that comes back has its switches located as events.
  const std::vector<Index>& dropped = screen_.dropped;
  full_pattern_ = *pattern_;
  Mat X(XT_.rows(), Index(dropped.size()));
  for (std::size_t q = 0; q < dropped.size(); ++q) X.col(Index(q)) = XT_.col(dropped[q]);
  Network::Workspace w;
  net_.forward(theta, X, w);
  for (std::size_t k = 0; k < full_pattern_.size(); ++k)
    for (std::size_t q = 0; q < dropped.size(); ++q)
      full_pattern_[k].col(dropped[q]) = (w.pre[k].col(Index(q)).array() > 0.0).cast<double>();
  return full_pattern_;
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
