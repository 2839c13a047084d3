// Safe screening of negligible data points in Flow (equations.md section 9, issue 19): the rule
// that chooses the kept points, and the check before every evaluation that the dropped ones are
// still certified negligible (the certificate itself: screening.hpp).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "gfsim/flow.hpp"

namespace gfsim {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
// A screen drops points until their certified contribution reaches e^{-kHeadroom} of the budget:
// the margin left for the weights to turn and the clock to advance before the next full pass.
// e^3, not more: on the linear benchmark the bound then forces at most one screen per solve (the
// counter screens_by_bound), the amortisation and the prediction trigger the others.
constexpr double kHeadroom = 3.0;
// Amortisation: a full pass (a screen) after `backoff * n / kept` evaluations of the kept set, so
// screens cost at most 1/backoff of the work on the kept points; the interval doubles (up to
// kMaxBackoff) while screens keep finding the same set.
constexpr double kStartBackoff = 2.0, kMinBackoff = 8.0, kMaxBackoff = 64.0;
// Predicted screens (worth_rescreening) need at least this fraction of the kept points to go.
constexpr double kMinPredictedDrop = 0.05;
}  // namespace

void Flow::enable_screening(double budget) {
  if (!(budget > 0) || !std::isfinite(budget))
    throw std::invalid_argument(fmt::format("Flow::enable_screening: budget {} must be finite and > 0", budget));
  Screen& S = screen_;
  S.enabled = true;
  S.budget = budget;
  // g(u) <= e^{-u}: exp and logistic (1/(1+e^u)); the square loss's weight 2(1-u) has no such bound.
  // The certificate needs f positively homogeneous in each layer: linear or the exact ReLU.
  S.applies = loss_.kind() != LossKind::square && net_.kink_width() == 0.0;
  S.x_norms = XT_.colwise().norm().transpose();
  S.max_norm = S.x_norms.size() ? S.x_norms.maxCoeff() : 0.0;
  S.kept = XT_.cols();
  S.has_reference = false;
  S.screens = S.screens_by_bound = S.total_evaluations = 0;
  S.dropped.clear();
  S.kept_work = 0;
  S.backoff = kStartBackoff;
}

ScreeningState Flow::screening_state() const {
  ScreeningState s;
  s.enabled = screen_.enabled;
  s.active = screen_.enabled && screen_.applies;
  s.kept = screen_.enabled ? screen_.kept : XT_.cols();
  s.screens = screen_.screens;
  s.screens_by_bound = screen_.screens_by_bound;
  s.evaluations = screen_.total_evaluations;
  s.kept_work = screen_.kept_work;
  s.last_bound = screen_.last_bound;
  s.last_budget = screen_.last_budget;
  return s;
}

void Flow::begin_evaluation(TimePoint tp, const Vec& y) const {
  if (!screen_.enabled) return;
  screen_.pending = true;
  screen_.tp = tp;
  screen_.y_state = &y;
}

void Flow::forward_for_field(const Eigen::Ref<const Vec>& V, double log_scale) const {
  if (screen_.enabled && screen_.pending) certify(log_scale);
  forward_on(V, true);
}

void Flow::certify(double log_scale) const {
  Screen& S = screen_;
  S.pending = false;
  const Index n = XT_.cols();
  auto keep_all = [&] {
    if (S.kept != n) ++S.generation;
    S.kept = n;
    S.has_reference = false;
    S.last_bound = 0;
  };
  // With a kink pattern the masks are in [0,1], so the per-point gradient bound of the certificate
  // holds for the field of the pattern as for the exact ReLU's, at any depth.
  const double gain = S.applies ? model_->screening_gain(net_, S.tp, *S.y_state) : 0.0;
  if (!(gain > 0) || !std::isfinite(gain) || !std::isfinite(log_scale)) return keep_all();
  // The budget is per unit of log clock; the right-hand side is per unit of the solver's clock.
  const double log_budget = std::log(S.budget) - (std::log1p(std::max(S.tp.t, 0.0)) - S.tp.log_scale);
  // |rhs(all) - rhs(kept)| <= e^{log_scale} gain sum_{dropped} |x_n| g(u_n): log of the factor.
  const double log_factor = log_scale + std::log(gain);
  const Vec theta = model_->theta(net_, *S.y_state);
  // An evaluation inside a point update (a deep sliding solve's Newton trials and Jacobian
  // columns, each a pass over a few points) is not a kept-set evaluation: it neither counts towards
  // the amortisation nor asks for a screen that pays, only for the certificate (counted as full
  // evaluations, they made two screens per right-hand side on a 20-6-4-1 net with n = 1000).
  const bool full_evaluation = !points_.active;
  if (full_evaluation) ++S.evaluations;
  double bound = -kInf;
  bool due = !S.has_reference ||
             (full_evaluation && double(S.evaluations) * double(S.kept) >= S.backoff * double(n));
  if (!due) {
    bound = log_factor + S.cert.log_mass(net_, theta);
    due = !(bound <= log_budget) ||
          (full_evaluation && worth_rescreening(theta, log_budget - log_factor - kHeadroom));
  }
  if (due) {
    if (S.has_reference && !(bound <= log_budget)) ++S.screens_by_bound;
    rescreen(theta, log_scale, log_budget - log_factor - kHeadroom);
    bound = log_factor + S.cert.log_mass(net_, theta);
    if (!(bound <= log_budget)) return keep_all();  // NaN weights: never drop on them
  }
  ++S.total_evaluations;
  if (full_evaluation) S.kept_work += double(S.kept) / double(n);
  S.last_bound = std::exp(bound);
  S.last_budget = std::exp(log_budget);
}

bool Flow::worth_rescreening(const Vec& theta, double log_target) const {
  // Scheduling only (the certificate does not depend on it): the kept margins grow with the
  // weights (u -> kappa u) while the drop threshold moves with the target, so the points a screen
  // would now drop are predicted from the histogram of the kept margins at the last screen,
  // ignoring the turn. A screen (one full forward pass, about one evaluation with every point) pays
  // once the predicted savings per evaluation, times the evaluations since the last screen (a
  // stand-in for those to come), exceed a full evaluation.
  const Screen& S = screen_;
  if (!(S.hist_width > 0)) return false;
  const double kappa = S.cert.growth(net_, theta);
  if (!(kappa > 0)) return false;
  const double u_now = (S.u_star + (S.log_target - log_target)) / kappa;  // kept u_n >= this: droppable
  double drop = 0;
  for (int b = kHistBins - 1; b >= 0 && S.hist_lo + b * S.hist_width >= u_now; --b) drop += double(S.hist[std::size_t(b)]);
  return drop >= kMinPredictedDrop * double(S.kept) &&
         drop * double(S.evaluations) >= double(XT_.cols());
}

void Flow::rescreen(const Vec& theta, double /*log_scale*/, double log_target) const {
  Screen& S = screen_;
  const Index n = XT_.cols();
  forward_on(theta, false);  // all points (for gd kinds the kept-set pass may then reuse it)
  Vec& u = S.u;
  u.resize(n);
  u.array() = y_.array() * ws_.f.array();
  // Drop the points of largest margin while their mass sum |x_n| e^{-u_n} stays below e^{log_target}
  // (greedy from the top margin: a large margin also gains most when the weights grow). In O(n):
  // every point above u_hi = log(n max|x|) - log_target fits together with all the others above
  // it; below, the margins are binned over [u_hi - log n - 2, u_hi) and whole bins are added from
  // the top while the running mass fits (a point below that range alone has weight e^{2}|x_n|/max|x|
  // of the target). Masses are in units of e^{log_target}.
  const double log_r = std::log(std::max(S.max_norm, 1e-300));
  const double u_hi = std::log(double(n)) + log_r - log_target, u_lo = u_hi - std::log(double(n)) - 2.0;
  constexpr int kBins = 256;
  const double bin_width = (u_hi - u_lo) / kBins;
  std::array<double, kBins> bin_mass{};
  double mass = 0;  // of the points at or above u_hi: at most n max|x| e^{-u_hi} = 1
  for (Index i = 0; i < n; ++i) {
    if (!(u[i] >= u_lo)) continue;  // also NaN: never dropped
    const double m = S.x_norms[i] * std::exp(-(u[i] + log_target));
    if (u[i] >= u_hi)
      mass += m;
    else
      bin_mass[std::size_t(std::clamp(int((u[i] - u_lo) / bin_width), 0, kBins - 1))] += m;
  }
  double u_star = u_hi;
  for (int b = kBins - 1; b >= 0 && mass + bin_mass[std::size_t(b)] <= 1.0; --b) {
    mass += bin_mass[std::size_t(b)];
    u_star = u_lo + b * bin_width;
  }
  // Persistent buffers: at n = 1e6 a fresh n-sized allocation per screen costs more in first-touch
  // page faults than the pass itself.
  std::vector<char>& keep = S.keep;
  std::vector<Index>& dropped = S.dropped;
  keep.assign(std::size_t(n), 0);
  dropped.clear();
  Index now = 0;
  for (Index i = 0; i < n; ++i) {
    if (u[i] >= u_star) {
      dropped.push_back(i);
    } else {
      keep[std::size_t(i)] = 1;
      ++now;
    }
  }
  // A sliding entry's point stays: its mask is the equivalent control of the kept field.
  if (pattern_sliding_ && !pattern_sliding_->empty()) {
    for (Index j : *pattern_sliding_) {
      const Index p = kink_of(j).point;
      if (keep[std::size_t(p)]) continue;
      keep[std::size_t(p)] = 1;
      dropped.erase(std::find(dropped.begin(), dropped.end(), p));
      ++now;
    }
  }
  if (now == 0) {  // keep the point of largest weight: a field of no points says nothing
    Index best = 0;
    u.minCoeff(&best);
    dropped.erase(std::find(dropped.begin(), dropped.end(), best));
    keep[std::size_t(best)] = 1;
    now = 1;
  }
  S.cert.reset(net_, theta, u, S.x_norms, dropped);
  // Histogram of the kept positive margins below the threshold, for worth_rescreening.
  S.u_star = u_star;
  S.log_target = log_target;
  S.hist.fill(0);
  S.hist_lo = kInf;
  for (Index i = 0; i < n; ++i)
    if (keep[std::size_t(i)]) S.hist_lo = std::min(S.hist_lo, std::max(u[i], 0.0));
  S.hist_width = u_star > S.hist_lo ? (u_star - S.hist_lo) / kHistBins : 0.0;
  if (S.hist_width > 0)
    for (Index i = 0; i < n; ++i)
      if (keep[std::size_t(i)] && u[i] > 0)
        ++S.hist[std::size_t(std::clamp(int((u[i] - S.hist_lo) / S.hist_width), 0, kHistBins - 1))];
  const Index before = S.kept;
  S.backoff = std::abs(double(now - before)) < 0.1 * double(before) ? std::min(2 * S.backoff, kMaxBackoff) : kMinBackoff;
  if (now < n) place_kept(keep, now);
  S.kept = now;
  ++S.generation;
  ++S.screens;
  S.evaluations = 0;
  S.has_reference = true;
}

void Flow::place_kept(const std::vector<char>& keep, Index count) const {
  // The kept points in ascending order in the first columns of S.X, a buffer allocated once: at
  // n = 1e6 a fresh allocation per screen cost more in first-touch page faults than the pass.
  // (Moving only the points that change side would copy less, but reorders the kept sums, and
  // their rounding changes the solver's steps; kept in point order the sums are those of a
  // fresh copy.)
  Screen& S = screen_;
  const Index n = XT_.cols();
  if (S.X.cols() != n) S.X.resize(XT_.rows(), n);  // once: the memory estimate's n d doubles
  S.y.resize(count);
  S.kept_points.resize(std::size_t(count));
  S.slot.assign(std::size_t(n), -1);
  Index j = 0;
  for (Index i = 0; i < n; ++i) {
    if (!keep[std::size_t(i)]) continue;
    S.X.col(j) = XT_.col(i);
    S.y[j] = y_[i];
    S.kept_points[std::size_t(j)] = i;
    S.slot[std::size_t(i)] = j++;
  }
  if (j != count) throw std::logic_error("Flow::place_kept: kept columns out of step");
}

}  // namespace gfsim
