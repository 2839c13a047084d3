#include "gfsim/kink_pattern.hpp"

#include "gfsim/preactivation_rounding.hpp"
#include "gfsim/sliding_set.hpp"
#include "point_columns.hpp"

#include <fmt/format.h>

#include <Eigen/LU>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

namespace gfsim {

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

KinkPattern::KinkPattern(Flow& flow) : flow_(flow) {}

KinkPattern::~KinkPattern() { clear(); }

void KinkPattern::clear() {
  forget_solved();
  sliding_jacobian_.resize(0, 0);  // belongs to the old sliding set
  sliding_jacobian_inverse_.resize(0, 0);
  jacobian_pending_.clear();
  memo_valid_ = false;
  field_failure_ = FieldFailure{};
  flow_.use_pattern(nullptr);
  masks_.clear();
  sliding_.clear();  // sliding modes live on the pattern
}

Index KinkPattern::freeze(const Vec& y) {
  clear();
  const Vec h = flow_.preactivations(y);
  const Network& net = flow_.network();
  const Index n = flow_.num_points();
  masks_.resize(std::size_t(std::max<Index>(net.num_layers() - 1, 0)));
  Index active = 0, o = 0;
  for (Index k = 0; k + 1 < net.num_layers(); ++k) {
    const Index rows = net.layer_rows(k);
    masks_[k] = (Eigen::Map<const Mat>(h.data() + o, rows, n).array() > 0.0).cast<double>();
    o += rows * n;
    active += Index(masks_[k].sum());
  }
  flow_.use_pattern(&masks_, &sliding_);
  return active;
}

double& KinkPattern::entry(Index j) {
  memo_valid_ = false;  // the caller may change the mask
  const auto [k, i] = locate(flow_.network(), flow_.num_points(), j);
  return masks_.at(std::size_t(k)).data()[i];
}

double KinkPattern::value(Index j) const {
  if (masks_.empty()) return -1.0;
  const auto [k, i] = locate(flow_.network(), flow_.num_points(), j);
  return masks_[std::size_t(k)].data()[i];
}

void KinkPattern::flip(Index j) {
  forget_solved();
  double& m = entry(j);
  m = 1.0 - m;
}

std::vector<Index> KinkPattern::coincident_with(const Vec& y, Index j) const {
  std::vector<Index> twins;
  if (masks_.empty()) return twins;
  const Network& net = flow_.network();
  const Index n = flow_.num_points();
  const auto at = flow_.kink_of(j);
  const Index k = at.layer - 1;  // 0-based hidden layer
  Index offset = 0;
  for (Index l = 0; l < k; ++l) offset += net.layer_rows(l) * n;
  // The inputs to layer k at every point (columns): the data (k = 0) or the activations mask * h
  // of layer k - 1. Their norms, and their products with j's point's input and with the unit's
  // row (its pre-activation at each point), in three passes over them.
  Mat activations;
  if (k > 0) {
    const Index below = net.layer_rows(k - 1);
    const Vec h = flow_.preactivations(y);
    activations =
        Eigen::Map<const Mat>(h.data() + offset - below * n, below, n).cwiseProduct(masks_[std::size_t(k - 1)]);
  }
  const Mat& A = k > 0 ? activations : flow_.inputs();
  const Vec a = A.col(at.point);
  const double na = a.norm();
  if (!(na > 0)) return twins;
  const Vec w = net.layer(flow_.theta(y), k).row(at.unit).transpose();
  const Vec norms = A.colwise().norm().transpose(), with_a = A.transpose() * a, with_w = A.transpose() * w;
  const double w_norm = w.norm();
  const Index rows = net.layer_rows(k);
  const double m = masks_[std::size_t(k)](at.unit, at.point);
  for (Index q = 0; q < n; ++q) {
    const Index jq = offset + q * rows + at.unit;
    if (q == at.point || masks_[std::size_t(k)](at.unit, q) != m || !flow_.point_kept(q)) continue;
    if (std::find(sliding_.begin(), sliding_.end(), jq) != sliding_.end()) continue;
    // Positive multiples (the cosine 1 within 1e-12), and on the surface at this instant as j is
    // (its h within 1e-9 of its terms): nearly parallel inputs of several active units are not
    // one surface.
    const double nb = norms[q], ab = with_a[q];
    if (nb > 0 && ab > 0 && ab >= (1 - 1e-12) * na * nb && std::abs(with_w[q]) <= 1e-9 * w_norm * nb)
      twins.push_back(jq);
  }
  return twins;
}

bool KinkPattern::start_sliding(Index j) {
  if (masks_.empty()) return false;
  if (std::find(sliding_.begin(), sliding_.end(), j) != sliding_.end()) return false;  // already sliding
  forget_solved();
  memo_valid_ = false;
  // The kept Jacobian grows by the new entry's column, evaluated at the next solve; its row starts
  // at zero (chord and Broyden steps complete it, or the solver evaluates J afresh when they stall).
  const Index S = Index(sliding_.size());
  sliding_jacobian_inverse_.resize(0, 0);
  if (sliding_jacobian_.rows() == S && sliding_jacobian_.cols() == S && S > 0) {
    sliding_jacobian_.conservativeResize(S + 1, S + 1);
    sliding_jacobian_.row(S).setZero();
    sliding_jacobian_.col(S).setZero();
    jacobian_pending_.resize(std::size_t(S), 0);
    jacobian_pending_.push_back(1);
  } else {
    sliding_jacobian_.resize(0, 0);
    jacobian_pending_.clear();
  }
  sliding_.push_back(j);
  return true;
}

void KinkPattern::stop_sliding(Index j, bool active) {
  forget_solved();
  const auto it = std::find(sliding_.begin(), sliding_.end(), j);
  const Index S = Index(sliding_.size());
  if (it != sliding_.end()) sliding_jacobian_inverse_.resize(0, 0);
  if (it != sliding_.end() && sliding_jacobian_.rows() == S && sliding_jacobian_.cols() == S) {
    // The other entries' columns and rows stay (the derivatives of their rates in their masks).
    const Index s = Index(it - sliding_.begin());
    Mat J(S - 1, S - 1);
    for (Index p = 0, pp = 0; p < S; ++p) {
      if (p == s) continue;
      for (Index q = 0, qq = 0; q < S; ++q)
        if (q != s) J(pp, qq++) = sliding_jacobian_(p, q);
      ++pp;
    }
    sliding_jacobian_.swap(J);
    if (jacobian_pending_.size() == std::size_t(S)) jacobian_pending_.erase(jacobian_pending_.begin() + s);
  } else if (it != sliding_.end()) {
    sliding_jacobian_.resize(0, 0);
    jacobian_pending_.clear();
  }
  sliding_.erase(std::remove(sliding_.begin(), sliding_.end(), j), sliding_.end());
  entry(j) = active ? 1.0 : 0.0;
}

bool KinkPattern::leave_sliding(TimePoint tp, const Vec& y, Index j) {
  const auto it = std::find(sliding_.begin(), sliding_.end(), j);
  if (it == sliding_.end()) return value(j) > 0.5;
  // The bound the mask value left through (m > 1: the top), as computed by the closed form.
  const bool through_top = sliding_masks(tp, y)[it - sliding_.begin()] > 0.5;
  // The rate of h_j on the opposite side, the other entries at their equivalent control. At the
  // exit the rate at the bound itself is zero up to round-off (m_j = bound <=> r_j(bound) = 0):
  // its sign is noise; the opposite one is +-dr_j/dm_j, the jump of the normal speed across j.
  stop_sliding(j, !through_top);
  Vec dy;
  rhs(tp, y, dy);
  const double r = flow_.preactivation_tangent(flow_.theta(y), flow_.theta_tangent(y, dy))[j];
  // Opposite side pointing away from the surface (r > 0 above, r < 0 below): the mode was repelling
  // and the state crosses to that side; otherwise it departs tangentially on the bound's side.
  const bool active = through_top ? !(r < 0) : r > 0;
  if (active == !through_top) return active;  // stays where the probe put it
  forget_solved();
  entry(j) = active ? 1.0 : 0.0;
  return active;
}

bool KinkPattern::remembered(TimePoint tp, const Vec& y) const {
  return memo_valid_ && memo_tp_.t == tp.t && memo_tp_.log_scale == tp.log_scale &&
         memo_masks_.size() == Index(sliding_.size()) && memo_y_.size() == y.size() && memo_y_ == y;
}

void KinkPattern::remember(TimePoint tp, const Vec& y, const Vec& dy, const Vec& masks) {
  memo_tp_ = tp;
  memo_y_ = y;
  memo_dy_ = dy;
  memo_masks_ = masks;
  memo_valid_ = true;
}

Vec KinkPattern::sliding_masks(TimePoint tp, const Vec& y) {
  if (flow_.num_layers() == 2 && !sliding_.empty()) return one_layer_masks(tp, y);
  Vec dy, masks;
  sliding_rhs(tp, y, dy, &masks);
  return masks;
}

std::vector<Index> KinkPattern::settle_on_kinks(TimePoint tp, const Vec& y, double rel_tol) {
  std::vector<Index> sliding;
  const Vec h = flow_.preactivations(y);
  if (h.size() == 0 || masks_.empty()) return sliding;
  const double tol = rel_tol * h.cwiseAbs().maxCoeff();
  if (!(tol > 0)) return sliding;  // all pre-activations zero (zero first layer): nothing to decide
  const Vec theta = flow_.theta(y);
  // A unit below rounding has no meaningful kink (preactivation_rounding.hpp): its masks stay at
  // the signs of h.
  const std::vector<char> below = entries_of_units_below_rounding(flow_.network(), theta, h, flow_.num_points());
  Vec dy;
  // dh_j/dt with the current pattern and sliding set (the e^s of the log clock is a positive factor).
  auto normal_velocity = [&](Index j) {
    memo_valid_ = false;  // the mask was written through a reference since entry() (no memo)
    rhs(tp, y, dy);
    return flow_.preactivation_tangent(theta, flow_.theta_tangent(y, dy))[j];
  };
  for (Index j = 0; j < h.size(); ++j) {
    if (std::abs(h[j]) > tol || below[std::size_t(j)]) continue;
    double& m = entry(j);
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
  forget_solved();  // solved with the masks the loop tried
  return sliding;
}

void KinkPattern::rhs(TimePoint tp, const Vec& y, Vec& dy) {
  if (!sliding_.empty()) return sliding_rhs(tp, y, dy);
  flow_.rhs(tp, y, dy);
}

void KinkPattern::jvp(TimePoint tp, const Vec& y, const Vec& v, Vec& jv) {
  if (sliding_.empty()) return flow_.jvp(tp, y, v, jv);
  // The sliding field's masks depend on y through a linear solve: central differences of the
  // sliding right-hand side (second-order accurate; used only while sliding).
  const double h = 1e-7 * (1.0 + y.norm()) / std::max(v.norm(), 1e-300);
  Vec fp, fm;
  sliding_rhs(tp, y + h * v, fp);
  sliding_rhs(tp, y - h * v, fm);
  jv = (fp - fm) / (2 * h);
}

void KinkPattern::jacobian(TimePoint tp, const Vec& y, Mat& J) {
  if (sliding_.empty()) return flow_.jacobian(tp, y, J);
  const Index m = flow_.state_size();
  J.resize(m, m);
  Vec e = Vec::Zero(m), col(m);
  for (Index j = 0; j < m; ++j) {
    e[j] = 1.0;
    jvp(tp, y, e, col);
    J.col(j) = col;
    e[j] = 0.0;
  }
}

void KinkPattern::surface_values(TimePoint tp, const Vec& y, Vec& g) { event_values(tp, y, g, false); }

void KinkPattern::event_values(TimePoint tp, const Vec& y, Vec& g) { event_values(tp, y, g, true); }

void KinkPattern::event_values(TimePoint tp, const Vec& y, Vec& g, bool with_sliding) {
  // The masks alone (one hidden layer: no field assembly, or the memo of the field's last solve
  // here); the pre-activations below then come from the pass of that solve (Flow::preactivations).
  const Vec masks = !sliding_.empty() && with_sliding ? sliding_masks(tp, y) : Vec();
  // With screening only the kept points' surfaces are events (their pass is the evaluations'); a
  // dropped point's switches since it left are located as events once it is back (its g is +inf
  // at the start of that step, EventLocator::locate).
  const bool screened = flow_.drops_points();
  g = screened ? flow_.kept_preactivations(y) : flow_.preactivations(y);
  const std::vector<char> dead = flow_.num_layers() > 2 ? dead_entries(g) : std::vector<char>();
  Index o = 0;
  for (const Mat& m : masks_)
    for (Index i = 0; i < m.size(); ++i, ++o)
      if (m.data()[i] < 0.5) g[o] = -g[o];
  for (std::size_t j = 0; j < dead.size(); ++j)
    if (dead[j]) g[Index(j)] = std::abs(g[Index(j)]);  // identically zero: never an event
  if (screened) {
    const Network& net = flow_.network();
    const Index n = flow_.num_points();
    o = 0;
    for (Index k = 0; k + 1 < net.num_layers(); ++k) {
      const Index rows = net.layer_rows(k);
      for (Index p = 0; p < n; ++p)
        if (!flow_.point_kept(p)) g.segment(o + p * rows, rows).setConstant(std::numeric_limits<double>::infinity());
      o += rows * n;
    }
  }
  // A sliding entry's event is its mask value leaving [0,1].
  for (std::size_t s = 0; s < sliding_.size(); ++s)
    g[sliding_[s]] = with_sliding ? std::min(masks[Index(s)], 1.0 - masks[Index(s)])
                                  : std::numeric_limits<double>::quiet_NaN();
}

void KinkPattern::event_values_of(TimePoint tp, const Vec& y, const std::vector<Index>& js, Vec& g) {
  g.resize(Index(js.size()));
  bool any_sliding = false;
  for (Index j : js) any_sliding |= std::find(sliding_.begin(), sliding_.end(), j) != sliding_.end();
  const Network& net = flow_.network();
  if (any_sliding) {  // a sliding entry's function is its mask: a solve
    event_values(tp, y, g_all_);
    for (std::size_t s = 0; s < js.size(); ++s) g[Index(s)] = g_all_[js[s]];
    return;
  }
  if (net.num_layers() != 2) {
    // Deeper pre-activations need a forward pass, but only over the columns of the entries' points
    // and with no mask solve: the sliding entries' masks enter it only through their activations
    // relu(h) = m h with h = 0 up to the drift. The dead test's scale, the largest |h| of a layer
    // over all points, is taken over the columns of the points that held it at the last full test
    // (the step's end value; the root search stays inside that step) with the entries' own.
    if (masks_.empty()) {  // no pattern: the full evaluation
      event_values(tp, y, g_all_);
      for (std::size_t s = 0; s < js.size(); ++s) g[Index(s)] = g_all_[js[s]];
      return;
    }
    if (scale_points_.size() != std::size_t(net.num_layers() - 2)) dead_entries(flow_.preactivations(y));
    std::vector<Index> entries = js;
    const Index n = flow_.num_points();
    for (Index k = 0, o = 0; k < Index(scale_points_.size()); o += net.layer_rows(k) * n, ++k)
      entries.push_back(o + scale_points_[std::size_t(k)] * net.layer_rows(k));  // unit 0 of layer k at the point
    PointColumns cols(flow_, entries, /*as_full_pass=*/true);  // checked against the full g (EventLocator)
    cols.forward(net, flow_.theta(y), masks_);
    for (std::size_t s = 0; s < js.size(); ++s) {
      const double h = cols.preactivation(s);
      const PointColumns::Place& at = cols.place(s);
      const std::size_t below = std::size_t(at.layer - 1);
      const bool dead = at.layer > 0 &&
                        inactive_below(cols.ws.pre[below].col(at.column), cols.masks()[below].col(at.column),
                                       cols.ws.pre[below].leftCols(Index(cols.points().size())).cwiseAbs().maxCoeff());
      g[Index(s)] = dead ? std::abs(h) : value(js[s]) < 0.5 ? -h : h;
    }
    return;
  }
  const Vec theta = flow_.theta(y);
  const auto W1 = net.layer(theta, 0);
  const Index d1 = net.layer_rows(0);
  for (std::size_t s = 0; s < js.size(); ++s) {
    const Index j = js[s];  // layer 1: entry j of the d_1 x n pattern, unit j % d_1, point j / d_1
    const double h = W1.row(j % d1).dot(flow_.inputs().col(j / d1));
    g[Index(s)] = masks_[0].data()[j] < 0.5 ? -h : h;
  }
}

std::vector<char> KinkPattern::dead_entries(const Vec& h) const {
  const Network& net = flow_.network();
  const Index n = flow_.num_points();
  std::vector<char> dead(std::size_t(h.size()), 0);
  if (masks_.empty()) return dead;
  scale_points_.assign(std::size_t(std::max<Index>(net.num_layers() - 2, 0)), 0);
  Index o = 0;
  for (Index k = 0; k + 1 < net.num_layers(); ++k) {
    const Index rows = net.layer_rows(k);
    if (k > 0) {
      // The layer below: activations relu(h) = mask h at each point, against its largest |h|.
      const Index below = net.layer_rows(k - 1), ob = o - below * n;
      const auto Hb = Eigen::Map<const Mat>(h.data() + ob, below, n);
      Index unit = 0, point = 0;
      const double scale = Hb.cwiseAbs().maxCoeff(&unit, &point);
      scale_points_[std::size_t(k - 1)] = point;
      for (Index p = 0; p < n; ++p)
        if (inactive_below(Hb.col(p), masks_[std::size_t(k - 1)].col(p), scale))
          for (Index i = 0; i < rows; ++i) dead[std::size_t(o + p * rows + i)] = 1;
    }
    o += rows * n;
  }
  return dead;
}

void KinkPattern::sliding_rhs(TimePoint tp, const Vec& y, Vec& dy, Vec* masks) {
  // On the kink surfaces the field depends on the sliding mask values m only through the
  // backward pass (the pre-activation is 0 there, so the outputs do not depend on m), and it is
  // affine in each m_l separately. For one hidden layer it is jointly affine and the tangency
  // conditions r(m) = (dh_j/dt along F(m))_j = 0 are a linear system (closed form below). Deeper
  // nets are multi-affine: masks of several layers at one point multiply, and the rates of a
  // deeper entry also see an upstream sliding entry's mask through the tangent pass, so r is at
  // most quadratic in each m_l (docs/events.md, "Sliding at any depth"). Newton's method from the
  // last masks (warm start), with the last Jacobian while it keeps converging fast (chord steps)
  // and the exact one, dr/dm_l = r(m + e_l/2) - r(m - e_l/2) (exact for a quadratic), otherwise.
  if (flow_.num_layers() == 2) return sliding_rhs_one_hidden_layer(tp, y, dy, masks);
  const double log_scale = tp.log_scale;
  const Index S = Index(sliding_.size());
  if (remembered(tp, y)) {
    dy = memo_dy_;
    if (masks) *masks = memo_masks_;
    return;
  }
  if (!y.allFinite()) {  // a trial stage after a non-finite one: nothing to solve
    dy.setConstant(y.size(), std::numeric_limits<double>::quiet_NaN());
    if (masks) *masks = Vec::Constant(S, std::numeric_limits<double>::quiet_NaN());
    return;
  }
  const Vec theta = flow_.theta(y);
  // The rates are needed at the sliding entries only: the tangent pass of the pre-activations
  // runs over the columns of their points (a handful of the n), with the pattern restricted to
  // them. The field couples all points through the weights, but only these points' terms of its
  // loss sums depend on the masks: the others' are summed once for the solve (point update).
  const Network& net = flow_.network();
  PointColumns cols(flow_, sliding_, /*as_full_pass=*/false);  // the rates feed Newton only
  const Flow::PointUpdate split = flow_.begin_point_update(cols.points());
  Vec F, m_of_F;  // the field of the last evaluation and its masks
  Vec rounding;   // each rate's rounding scale, from the first evaluation (the solve's tolerance)
  const double decay = drift_decay(tp);
  auto evaluate = [&](const Vec& m, Vec& r) {
    for (Index l = 0; l < S; ++l) entry(sliding_[l]) = m[l];
    flow_.rhs(tp, y, F);
    cols.forward(net, theta, masks_);
    const Vec dtheta = flow_.theta_tangent(y, F);
    net.forward_tangent(theta, dtheta, cols.inputs(), cols.ws);
    // Drift (Baumgarte, kDriftDecay): the control holds dh_l/dclock at -decay h_l, as for one
    // hidden layer; h_l is the entry's own pre-activation, exactly 0 on its surface.
    r.resize(S);
    for (Index l = 0; l < S; ++l)
      r[l] = cols.preactivation_tangent(std::size_t(l)) + decay * cols.preactivation(std::size_t(l));
    if (rounding.size() == S) return;
    rounding.resize(S);
    for (Index l = 0; l < S; ++l) {
      const auto [of_tangent, of_preactivation] = cols.rounding_scales(net, theta, dtheta, std::size_t(l));
      rounding[l] = of_tangent + decay * of_preactivation;
    }
  };
  const SlidingRates rates = [&](const Vec& m, Vec& r, Mat* J) {
    evaluate(m, r);
    if (!J) {
      m_of_F = m;
      return;
    }
    const Vec F_at_m = F;
    J->resize(S, S);
    for (Index l = 0; l < S; ++l) J->col(l) = mask_jacobian_column(evaluate, m, l);
    F = F_at_m;
    m_of_F = m;
    for (Index l = 0; l < S; ++l) entry(sliding_[l]) = m[l];
  };
  Vec m0(S);
  for (Index l = 0; l < S; ++l) m0[l] = entry(sliding_[l]);
  // The rates carry the clock's factor e^{log_scale}: a kept Jacobian is rescaled to this one.
  if (sliding_jacobian_.rows() == S && sliding_jacobian_.cols() == S) {
    sliding_jacobian_ *= std::exp(log_scale - sliding_jacobian_log_scale_);
    sliding_jacobian_inverse_ *= std::exp(sliding_jacobian_log_scale_ - log_scale);  // empty after start_sliding
    if (jacobian_pending_.size() == std::size_t(S)) {
      for (Index l = 0; l < S; ++l)
        if (jacobian_pending_[std::size_t(l)]) sliding_jacobian_.col(l) = mask_jacobian_column(evaluate, m0, l);
      for (Index l = 0; l < S; ++l) entry(sliding_[l]) = m0[l];
    }
  }
  jacobian_pending_.assign(std::size_t(S), 0);
  SlidingSetOptions opt;
  opt.box = false;  // the masks of a given sliding set; leaving [0,1] is their event
  opt.share_coincident = true;  // as the joint switch (resolve), whose split this continues
  // Each entry converged against its own rate's rounding: a dead point's entries (dr/dm growing
  // like t in the log clock, 1e13 at t = 4e10) set a shared tolerance at which the others'
  // masks were accepted with rates that moved them off their surfaces in proportion to t
  // ([8,8,8,8] seed 1: |h| at 0.7 of its layer's largest by t = 1e11; docs/relu_deep.md,
  // session 20).
  opt.per_entry_tolerance = true;
  opt.rate_rounding = &rounding;
  // A set without an equivalent control shows as Newton diverging with fresh Jacobians (masks far
  // outside [0,1]); each costs 2S rate evaluations, so a failure is declared after a few.
  opt.max_jacobians = 8;
  auto solve_from = [&](const Vec& start) {
    SlidingSetResult res = solve_sliding_set(rates, start, opt, &sliding_jacobian_, &sliding_jacobian_inverse_);
    // Then once more with affine-covariant damping and exact Jacobians, as the joint switch
    // (resolve): nearly dependent rows of two surfaces of one point in consecutive layers make
    // Broyden's and Armijo's steps crawl ([8,8,8,8] gd seed 2 at t = 1.6542: layer 2 unit 1 and
    // layer 3 unit 5 at point 27 among 34 surfaces, residual 1.3e-4 after 10 steps; this converges
    // in 4 to 7).
    if (!res.converged && std::isfinite(res.residual)) {
      SlidingSetOptions natural = opt;
      natural.natural_monotonicity = true;
      natural.max_jacobians = 8;
      sliding_jacobian_.resize(0, 0);  // evaluated afresh at the start
      sliding_jacobian_inverse_.resize(0, 0);
      res = solve_sliding_set(rates, start, natural, &sliding_jacobian_, &sliding_jacobian_inverse_);
    }
    // Then against the shared tolerance (the joint switch's for deep nets, resolve): a nearly
    // singular J (equilibrated singular values 2 .. 4e-10, above the numerically singular threshold)
    // of a crowded cluster converges only linearly, and the per-entry tolerances, ~1e-12 of each
    // rate's terms, were out of reach where the joint switch had accepted the set ([8,8,8,8]
    // gd_polar seed 13 at t = 1.1754: residual 8e-7 after 8 Newton steps, 24 surfaces). The drift
    // decay holds the entries' h at the size of what the shared tolerance leaves. Only for a solve
    // that came close (a residual within 1e-6 of the largest jump |dr_j/dm_j|): trial stages past
    // an exit, whose controls diverge, fail as before without the cost of a third solve.
    const double largest_jump =
        sliding_jacobian_.rows() == S && S > 0 ? sliding_jacobian_.diagonal().cwiseAbs().maxCoeff() : 0.0;
    if (!res.converged && res.residual <= 1e-6 * largest_jump) {
      SlidingSetOptions shared = opt;
      shared.per_entry_tolerance = false;
      shared.natural_monotonicity = true;
      sliding_jacobian_.resize(0, 0);
      sliding_jacobian_inverse_.resize(0, 0);
      res = solve_sliding_set(rates, start, shared, &sliding_jacobian_, &sliding_jacobian_inverse_);
    }
    return res;
  };
  SlidingSetResult res = solve_from(m0);
  // A failed solve from the last evaluation's masks is retried from the control solved nearest in
  // time with this pattern (solved_). The masks m(y) solve r(m, y) = 0, continued along the
  // trajectory (an implicit function, smooth in y where dr/dm is regular), and Newton converges
  // from a start close enough to the root; but the last evaluation is often a stage at the far end
  // of a step, and the next one a state of the event search near its start. The search then read
  // a failed iterate as the mask: [8,8,8,8] gd_polar seed 9 at t = 1.2709142922, after a crossing,
  // the next step's stages took the control of layer 1 unit 4 at point 127 smoothly from 0.43 to
  // -21 (through 0 at t ~ 1.2721); from -21 Newton failed at every state of the root search
  // (residual 0.44, iterate -1053), each read as past that entry's exit, so the exit was located
  // 3 ulps after the crossing (with layer 3 unit 6 at point 153, mask 0.056 there), and the run
  // stopped after 65 zero-length restarts. From the step start's control Newton converges.
  if (!res.converged) {
    const SolvedControl* nearest = nullptr;
    for (const SolvedControl& c : solved_)
      if (c.m.size() == S && c.m != m0 && (!nearest || std::abs(c.t - tp.t) < std::abs(nearest->t - tp.t)))
        nearest = &c;
    if (nearest) {
      const Vec start = nearest->m;
      sliding_jacobian_.resize(0, 0);  // evaluated afresh at the start
      sliding_jacobian_inverse_.resize(0, 0);
      SlidingSetResult again = solve_from(start);
      if (again.converged) res = std::move(again);
    }
  }
  if (res.converged) {
    if (solved_.size() < kSolvedKept)
      solved_.push_back({tp.t, res.m});
    else
      solved_[solved_next_] = {tp.t, res.m};
    solved_next_ = (solved_next_ + 1) % kSolvedKept;
  }
  sliding_jacobian_log_scale_ = log_scale;
  // A failed solve leaves the warm start in the pattern (its last iterate may lie far outside
  // [0,1]: a poor start for the next, nearby solve) and returns that iterate to the caller.
  for (Index l = 0; l < S; ++l) entry(sliding_[l]) = res.converged ? res.m[l] : m0[l];
  if (!res.converged) {
    // No equivalent control here (the set is inconsistent at y: some entry must leave, or y is a
    // trial stage far off the surfaces). NaN makes the stepper reject the step; the masks stay
    // finite for the event functions, whose leaving [0,1] ends the modes. Named by the entry with
    // the largest rate left.
    Index worst = 0;
    res.r.cwiseAbs().maxCoeff(&worst);
    const auto k = flow_.kink_of(sliding_[std::size_t(worst)]);
    field_failure_.t = tp.t;
    field_failure_.reason =
        fmt::format("kink layer {} unit {} at data point {} at t = {:.9g}: no equivalent control of the {} sliding "
                    "surfaces (residual {:.3g} after {} Newton steps)",
                    k.layer, k.unit, k.point, tp.t, S, res.residual, res.iterations);
    dy.setConstant(y.size(), std::numeric_limits<double>::quiet_NaN());
    if (masks) *masks = res.m;
    memo_valid_ = false;
    return;
  }
  if (m_of_F.size() == S && m_of_F == res.m)
    dy = F;
  else
    flow_.rhs(tp, y, dy);
  if (masks) *masks = res.m;
  remember(tp, y, dy, res.m);
}

}  // namespace gfsim
