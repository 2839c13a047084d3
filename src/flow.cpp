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

Flow::Flow(Network network, const Dataset& data, LossKind loss, const FlowSpec& spec)
    : Flow(std::move(network), data, loss, spec.kind, make_flow_kind(spec)) {
  fixed_rho_ = spec.rho;
}

Flow::Flow(Network network, const Dataset& data, LossKind loss, FlowKind kind, double fixed_rho)
    : Flow(std::move(network), data, loss, FlowSpec{kind, fixed_rho}) {}

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

void Flow::loss_descent(const Eigen::Ref<const Vec>& V, double rho, double log_scale, Eigen::Ref<Vec> G) const {
  forward(V);
  margins_and_weights(rho, log_scale, a_);
  net_.backward(V, a_, XT_, ws_, G);  // sum_n a_n df_n/dV
}

double Flow::log_loss(const Eigen::Ref<const Vec>& V, double rho) const {
  forward(V);
  u_.array() = rho * y_.array() * ws_.f.array();
  return loss_.log_total(std::span<const double>(u_.data(), std::size_t(u_.size())));
}

void Flow::loss_descent_tangent(const Eigen::Ref<const Vec>& V, const Eigen::Ref<const Vec>& dV, double rho,
                                std::optional<double> drho, double log_scale, Vec* G, Eigen::Ref<Vec> dG) const {
  forward(V);
  net_.forward_tangent(V, dV, XT_, ws_);
  margins_and_weights(rho, log_scale, a_);
  loss_.curvatures(u_, log_scale, da_);
  // da = -y c(u) du with du = y (drho f + rho df): the tangent of the loss weights.
  if (drho)
    da_.array() *= -y_.array().square() * (*drho * ws_.f.array() + rho * ws_.df.array());
  else
    da_.array() *= -y_.array().square() * (rho * ws_.df.array());
  net_.backward_tangent(V, dV, a_, da_, XT_, ws_, G ? Eigen::Ref<Vec>(*G) : Eigen::Ref<Vec>(grad_), dG,
                        /*with_grad=*/G != nullptr);
}

void Flow::linear_loss_curvature(const Vec& w, double log_scale, Mat& J) const {
  // J = -sum_n e^{log_scale} l''(u_n) x_n x_n^T, one rank-n update.
  if (num_layers() != 1) throw std::logic_error("linear_loss_curvature: the network is not linear (K > 1)");
  forward(w);
  margins_and_weights(1.0, log_scale, a_);
  // Symmetric: SYRK-style rank updates of the lower triangle (half the flops of a GEMM) on
  // preallocated buffers, l'' >= 0 for every loss so the square root is real. In blocks of
  // 32 points: Eigen's packing buffers then fit its stack limit (a depth-1000 product
  // heap-allocates ~200 KB per call, which costs more page faults than the product), and the
  // first call touches few fresh pages (docs/benchmarks.md).
  // The scaled block X_b^T diag(sqrt(l'')) lives in a cache-resident d x 32 buffer.
  loss_.curvatures(u_, log_scale, da_);
  da_ = da_.cwiseSqrt();  // once per point, not once per matrix entry
  constexpr Index kBlock = 32;
  const Index n = XT_.cols(), m = w.size();
  jac_scaled_.resize(XT_.rows(), std::min(kBlock, n));
  J.setZero(m, m);
  for (Index c = 0; c < n; c += kBlock) {
    const Index width = std::min(kBlock, n - c);
    auto block = jac_scaled_.leftCols(width);
    block.noalias() = XT_.middleCols(c, width) * da_.segment(c, width).asDiagonal();
    J.selfadjointView<Eigen::Lower>().rankUpdate(block, -1.0);
  }
  J.triangularView<Eigen::StrictlyUpper>() = J.transpose();
}

void Flow::rhs(TimePoint tp, const Vec& y, Vec& dy) const {
  if (!sliding_.empty()) return sliding_rhs(tp, y, dy);
  smooth_rhs(tp, y, dy);
}

void Flow::jvp(TimePoint tp, const Vec& y, const Vec& v, Vec& jv) const {
  if (!sliding_.empty()) {
    // The sliding field's masks depend on y through a linear solve: central differences of the
    // sliding right-hand side (second-order accurate; used only while sliding).
    const double h = 1e-7 * (1.0 + y.norm()) / std::max(v.norm(), 1e-300);
    Vec fp, fm;
    sliding_rhs(tp, y + h * v, fp);
    sliding_rhs(tp, y - h * v, fm);
    jv = (fp - fm) / (2 * h);
    return;
  }
  model_->field_tangent(*this, tp, y, v, jv);
}

void Flow::jacobian(TimePoint tp, const Vec& y, Mat& J) const {
  if (sliding_.empty() && model_->dense_jacobian(*this, tp, y, J)) return;
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

Index Flow::freeze_pattern(const Vec& y) {
  clear_pattern();
  const Vec theta = this->theta(y);
  forward(theta);
  pattern_.resize(std::size_t(std::max<Index>(num_layers() - 1, 0)));
  Index active = 0;
  for (Index k = 0; k + 1 < num_layers(); ++k) {
    pattern_[k] = (ws_.pre[k].array() > 0.0).cast<double>();
    active += Index(pattern_[k].sum());
  }
  ws_.pattern = &pattern_;
  return active;
}

std::vector<Index> Flow::settle_on_kinks(const Vec& y, double rel_tol) {
  std::vector<Index> sliding;
  const Vec h = preactivations(y);
  if (h.size() == 0 || pattern_.empty()) return sliding;
  const double tol = rel_tol * h.cwiseAbs().maxCoeff();
  if (!(tol > 0)) return sliding;  // all pre-activations zero (zero first layer): nothing to decide
  const Vec theta = this->theta(y);
  Vec dy;
  // dh_j/dt with the current pattern and sliding set (the e^s of the log clock is a positive factor).
  auto normal_velocity = [&](Index j) {
    rhs(TimePoint{}, y, dy);
    return preactivation_tangent(theta, theta_tangent(y, dy))[j];
  };
  for (Index j = 0; j < h.size(); ++j) {
    if (std::abs(h[j]) > tol) continue;
    double& m = pattern_entry(j);
    m = 1.0;
    const double up = normal_velocity(j);  // the field on the active side (h > 0)
    m = 0.0;
    const double down = normal_velocity(j);  // on the inactive side
    m = h[j] > 0 ? 1.0 : 0.0;
    if (up < 0 && down > 0) {  // both sides point into the surface
      start_sliding(j);
      sliding.push_back(j);
    } else if (up > 0 && down >= 0) {
      m = 1.0;
    } else if (down < 0 && up <= 0) {
      m = 0.0;
    }  // else repelling (up > 0 > down) or tangent on both sides: the sign of h decides
  }
  return sliding;
}

namespace {
// Locate entry j of the concatenated (layer, column-major d_k x n) pre-activation vector.
std::pair<Index, Index> locate(const Network& net, Index n, Index j) {
  for (Index k = 0; k + 1 < net.num_layers(); ++k) {
    const Index size = net.layer_rows(k) * n;
    if (j < size) return {k, j};
    j -= size;
  }
  throw std::out_of_range("pre-activation index out of range");
}
}  // namespace

void Flow::event_values(const Vec& y, Vec& g) const {
  Vec masks;
  if (!sliding_.empty()) {
    Vec dy;
    sliding_rhs(TimePoint{}, y, dy, &masks);
  }
  g = preactivations(y);
  Index o = 0;
  for (const Mat& m : pattern_)
    for (Index i = 0; i < m.size(); ++i, ++o)
      if (m.data()[i] < 0.5) g[o] = -g[o];
  // A sliding entry's event is its mask value leaving [0,1].
  for (std::size_t s = 0; s < sliding_.size(); ++s) g[sliding_[s]] = std::min(masks[Index(s)], 1.0 - masks[Index(s)]);
}

void Flow::event_values_of(const Vec& y, const std::vector<Index>& js, Vec& g) const {
  g.resize(Index(js.size()));
  bool any_sliding = false;
  for (Index j : js) any_sliding |= std::find(sliding_.begin(), sliding_.end(), j) != sliding_.end();
  if (num_layers() != 2 || any_sliding) {  // deeper pre-activations need the forward pass; masks a solve
    event_values(y, g_all_);
    for (std::size_t s = 0; s < js.size(); ++s) g[Index(s)] = g_all_[js[s]];
    return;
  }
  const Vec theta = this->theta(y);
  const auto W1 = net_.layer(theta, 0);
  const Index d1 = net_.layer_rows(0);
  for (std::size_t s = 0; s < js.size(); ++s) {
    const Index j = js[s];  // layer 1: entry j of the d_1 x n pattern, unit j % d_1, point j / d_1
    const double h = W1.row(j % d1).dot(XT_.col(j / d1));
    g[Index(s)] = pattern_[0].data()[j] < 0.5 ? -h : h;
  }
}

double& Flow::pattern_entry(Index j) const {
  const auto [k, i] = locate(net_, y_.size(), j);
  return const_cast<Mat&>(pattern_.at(std::size_t(k))).data()[i];
}

bool Flow::start_sliding(Index j) {
  if (pattern_.empty()) return false;
  if (std::find(sliding_.begin(), sliding_.end(), j) != sliding_.end()) return false;  // already sliding
  sliding_.push_back(j);
  return true;
}

void Flow::stop_sliding(Index j, bool active) {
  sliding_.erase(std::remove(sliding_.begin(), sliding_.end(), j), sliding_.end());
  pattern_entry(j) = active ? 1.0 : 0.0;
}

Vec Flow::sliding_masks(const Vec& y) const {
  Vec dy, masks;
  sliding_rhs(TimePoint{}, y, dy, &masks);
  return masks;
}

void Flow::sliding_rhs(TimePoint tp, const Vec& y, Vec& dy, Vec* masks) const {
  // On the kink surfaces the field depends on the sliding mask values m only through the
  // backward pass (the pre-activation is 0 there, so the outputs do not depend on m), and it is
  // affine in each m_l separately: F(m) = F(m, m_l = 0) + m_l D_l(m). For one hidden layer it is
  // jointly affine and the tangency conditions r(m) = (dh_j/dt along F(m))_j = 0 are a linear
  // system; deeper nets (masks of several layers multiply) take a few Newton steps, with the
  // exact Jacobian dr/dm_l = rates(D_l(m)).
  if (num_layers() == 2) return sliding_rhs_one_hidden_layer(tp, y, dy, masks);
  const Index S = Index(sliding_.size());
  const Vec theta = this->theta(y);
  auto rates = [&](const Vec& velocity) {  // dh_j/dt along a state velocity, for the sliding entries
    forward(theta);
    net_.forward_tangent(theta, theta_tangent(y, velocity), XT_, ws_);
    Vec r(S);
    for (Index s = 0; s < S; ++s) {
      const auto [k, i] = locate(net_, y_.size(), sliding_[s]);
      r[s] = ws_.dpre[k].data()[i];
    }
    return r;
  };
  auto set_masks = [&](const Vec& m) {
    for (Index l = 0; l < S; ++l) pattern_entry(sliding_[l]) = m[l];
  };
  const bool jointly_affine = num_layers() <= 2;
  Vec m = Vec::Zero(S), F, Fl, Fm, step;
  Mat D(state_size(), S), C(S, S);
  for (int newton = 0; newton < 20; ++newton) {
    set_masks(m);
    smooth_rhs(tp, y, F);
    const Vec r = rates(F);
    for (Index l = 0; l < S; ++l) {
      Vec ml = m;
      ml[l] = 1.0;
      set_masks(ml);
      smooth_rhs(tp, y, Fl);
      if (m[l] == 0.0) {
        D.col(l) = Fl - F;
      } else {  // D_l = F(m_l = 1) - F(m_l = 0)
        ml[l] = 0.0;
        set_masks(ml);
        smooth_rhs(tp, y, Fm);
        D.col(l) = Fl - Fm;
      }
      C.col(l) = rates(D.col(l));
    }
    step = C.fullPivLu().solve(-r);
    m += step;
    if (jointly_affine) {
      set_masks(m);
      dy = F + D * step;  // exact: F is affine in m
      if (masks) *masks = m;
      return;
    }
    if (step.lpNorm<Eigen::Infinity>() <= 1e-14 * (1.0 + m.lpNorm<Eigen::Infinity>())) break;
  }
  set_masks(m);
  smooth_rhs(tp, y, dy);
  if (masks) *masks = m;
}

void Flow::sliding_rhs_one_hidden_layer(TimePoint tp, const Vec& y, Vec& dy, Vec* masks) const {
  // The same equivalent control in closed form for one hidden layer, at the cost of ~2 RHS instead
  // of S + 1. Mask m_l of sliding entry l = (unit i, point n) adds to the loss gradient in the
  // flow's coordinates the single row dG_l = a_n W2_i x_n^T in row i of layer 1 (a_n the loss
  // weight, W2 the output layer of theta for gd, of V otherwise); the outputs do not depend on m.
  // The flow maps it to the state velocity D_l = alpha (dG_l - c_l V_1), c_l = <V_1, dG_l>/|V_1|^2
  // (gd: alpha = 1, no projection), and the rates dh_j/dt = s1 (D_l row i_j) . x_{n_j}, with
  // s1 = d theta_1 / d V_1 (1, rho_1 or rho^(1/2)): the kind's LayerResponse of layer 1.
  const Index S = Index(sliding_.size()), d0 = net_.layer_cols(0), rows = net_.layer_rows(0);
  const LayerResponse response = model_->layer_response(net_, y, 0);
  const bool projected = response.projected;
  const Index off = response.offset;
  for (Index j : sliding_) pattern_entry(j) = 0.0;
  smooth_rhs(tp, y, dy);  // F(m = 0); leaves the loss weights in a_ and V's forward pass in ws_
  const auto V1 = net_.layer(y.segment(off, num_params()), 0);
  const auto W2 = y.segment(off + net_.layer_offset(1), net_.layer_size(1));
  const double alpha = response.alpha, s1 = response.weight_scale;
  const double v1_norm2 = projected ? V1.squaredNorm() : 1.0;
  std::vector<Index> unit(std::size_t(S), 0), point(std::size_t(S), 0);
  Vec coef(S), c(S), hv(S);  // dG_l = coef_l x_{n_l} in row unit_l
  for (Index l = 0; l < S; ++l) {
    const auto [k, e] = locate(net_, y_.size(), sliding_[l]);
    unit[l] = e % rows;
    point[l] = e / rows;
    coef[l] = a_[point[l]] * W2[unit[l]];
    hv[l] = V1.row(unit[l]).dot(XT_.col(point[l]));  // pre-activation of V (0 on the surface)
    c[l] = projected ? coef[l] * hv[l] / v1_norm2 : 0.0;
  }
  // Rates along F(0): h_j = (W_1 x_{n_j})_{i_j} is linear in theta_1, so dh_j/dt = (dtheta_1 row i_j) . x_{n_j}.
  const Vec dtheta = theta_tangent(y, dy);
  const auto dW1 = net_.layer(dtheta, 0);
  Vec r(S);
  for (Index j = 0; j < S; ++j) r[j] = dW1.row(unit[j]).dot(XT_.col(point[j]));
  // C = B - s1 alpha hv c^T: B is block diagonal (entries couple only within a unit), the
  // projection adds a rank-one term (hv = 0 on the surfaces up to the integrator's drift).
  // Solve B by unit blocks and the rank-one term by Sherman-Morrison.
  std::vector<Index> order(static_cast<std::size_t>(S));
  for (Index l = 0; l < S; ++l) order[l] = l;
  std::stable_sort(order.begin(), order.end(), [&](Index p, Index q) { return unit[p] < unit[q]; });
  auto solve_blocks = [&](const Vec& rhs) {
    Vec x(S);
    for (std::size_t b = 0; b < order.size();) {
      std::size_t e = b;
      while (e < order.size() && unit[order[e]] == unit[order[b]]) ++e;
      const Index nb = Index(e - b);
      Mat Bk(nb, nb);
      Vec rk(nb);
      for (Index p = 0; p < nb; ++p) {
        const Index j = order[b + p];
        rk[p] = rhs[j];
        for (Index q = 0; q < nb; ++q) {
          const Index l = order[b + q];
          Bk(p, q) = s1 * alpha * coef[l] * XT_.col(point[l]).dot(XT_.col(point[j]));
        }
      }
      const Vec xk = Bk.fullPivLu().solve(rk);
      for (Index p = 0; p < nb; ++p) x[order[b + p]] = xk[p];
      b = e;
    }
    return x;
  };
  Vec m = solve_blocks(-r);
  if (projected) {
    const Vec u = -s1 * alpha * hv;  // C = B + u c^T
    const Vec Binv_u = solve_blocks(u);
    m -= Binv_u * (c.dot(m) / (1.0 + c.dot(Binv_u)));
  }
  for (Index l = 0; l < S; ++l) {
    pattern_entry(sliding_[l]) = m[l];
    auto row = dy.segment(off + unit[l] * d0, d0);
    row += (alpha * m[l] * coef[l]) * XT_.col(point[l]);
  }
  if (projected) dy.segment(off, net_.layer_size(0)) -= (alpha * m.dot(c)) * y.segment(off, net_.layer_size(0));
  if (masks) *masks = m;
}

void Flow::flip_pattern(Index j) {
  const auto [k, i] = locate(net_, y_.size(), j);
  double& m = pattern_.at(std::size_t(k)).data()[i];
  m = 1.0 - m;
}

double Flow::pattern_value(Index j) const {
  if (!ws_.pattern) return -1.0;
  const auto [k, i] = locate(net_, y_.size(), j);
  return pattern_[std::size_t(k)].data()[i];
}

void Flow::clear_pattern() {
  ws_.pattern = nullptr;
  forward_valid_ = false;
  pattern_.clear();
  sliding_.clear();  // sliding modes live on the pattern
}

Flow::NearestKink Flow::kink_of(Index j) const {
  const auto [k, i] = locate(net_, y_.size(), j);
  const Index rows = net_.layer_rows(k);
  return {k + 1, i % rows, i / rows, 0.0};
}

}  // namespace gfsim
