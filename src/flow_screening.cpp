// Safe screening of negligible data points in Flow (equations.md section 9, issue 19): the rule
// that chooses the kept points, and the check before every evaluation that the dropped ones are
// still certified negligible (the certificate itself: screening.hpp).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "gfsim/flow.hpp"

namespace gfsim {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
// A screen drops points until their certified contribution reaches e^{-kHeadroom} of the budget:
// the margin left for the weights to turn and the clock to advance before the next full pass.
constexpr double kHeadroom = 10.0;
// Amortisation: a full pass (a screen) after `backoff * n / kept` evaluations of the kept set, so
// screens cost at most 1/backoff of the work on the kept points; the interval doubles (up to
// kMaxBackoff) while screens keep finding the same set.
constexpr double kMinBackoff = 8.0, kMaxBackoff = 64.0;
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
}

ScreeningState Flow::screening_state() const {
  ScreeningState s;
  s.enabled = screen_.enabled;
  s.active = screen_.enabled && screen_.applies && !ws_.pattern;
  s.kept = screen_.enabled ? screen_.kept : XT_.cols();
  s.screens = screen_.screens;
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
  const double gain = S.applies && !ws_.pattern ? model_->screening_gain(net_, S.tp, *S.y_state) : 0.0;
  if (!(gain > 0) || !std::isfinite(gain) || !std::isfinite(log_scale)) return keep_all();
  // The budget is per unit of log clock; the right-hand side is per unit of the solver's clock.
  const double log_budget = std::log(S.budget) - (std::log1p(std::max(S.tp.t, 0.0)) - S.tp.log_scale);
  // |rhs(all) - rhs(kept)| <= e^{log_scale} gain sum_{dropped} |x_n| g(u_n): log of the factor.
  const double log_factor = log_scale + std::log(gain);
  const Vec theta = model_->theta(net_, *S.y_state);
  ++S.evaluations;
  double bound = -kInf;
  bool due = !S.has_reference || double(S.evaluations) * double(S.kept) >= S.backoff * double(n);
  if (!due) {
    bound = log_factor + S.cert.log_mass(net_, theta);
    due = !(bound <= log_budget);
  }
  if (due) {
    rescreen(theta, log_scale, log_budget - log_factor - kHeadroom);
    bound = log_factor + S.cert.log_mass(net_, theta);
    if (!(bound <= log_budget)) return keep_all();  // NaN weights: never drop on them
  }
  S.last_bound = std::exp(bound);
  S.last_budget = std::exp(log_budget);
}

void Flow::rescreen(const Vec& theta, double /*log_scale*/, double log_target) const {
  Screen& S = screen_;
  const Index n = XT_.cols();
  forward_on(theta, false);  // all points (for gd kinds the kept-set pass may then reuse it)
  const Vec u = (y_.array() * ws_.f.array()).matrix();
  // Drop u_n >= u*: then sum_{dropped} |x_n| e^{-u_n} <= n max|x| e^{-u*} = e^{log_target}.
  const double u_star = std::log(double(n)) + std::log(std::max(S.max_norm, 1e-300)) - log_target;
  std::vector<Index> dropped, kept;
  dropped.reserve(std::size_t(n));
  kept.reserve(std::size_t(n));
  for (Index i = 0; i < n; ++i) (u[i] >= u_star ? dropped : kept).push_back(i);
  if (kept.empty()) {  // keep the point of largest weight: a field of no points says nothing
    Index best = 0;
    u.minCoeff(&best);
    dropped.erase(std::find(dropped.begin(), dropped.end(), best));
    kept.push_back(best);
  }
  S.cert.reset(net_, theta, u, S.x_norms, dropped);
  const Index before = S.kept, now = Index(kept.size());
  S.backoff = std::abs(double(now - before)) < 0.1 * double(before) ? std::min(2 * S.backoff, kMaxBackoff) : kMinBackoff;
  if (now < n) {
    S.X.resize(XT_.rows(), now);
    S.y.resize(now);
    for (Index j = 0; j < now; ++j) {
      S.X.col(j) = XT_.col(kept[std::size_t(j)]);
      S.y[j] = y_[kept[std::size_t(j)]];
    }
  } else {
    S.X.resize(0, 0);
    S.y.resize(0);
  }
  S.kept = now;
  ++S.generation;
  ++S.screens;
  S.evaluations = 0;
  S.has_reference = true;
}

}  // namespace gfsim
