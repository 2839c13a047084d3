// The event bookkeeping of the integration loop: the definitions of EventLocator
// (event_locator.hpp states the rules; docs/events.md).
#include "event_locator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/math/tools/toms748_solve.hpp>
#include <cmath>
#include <limits>

namespace gfsim::detail {

std::optional<std::string> EventLocator::collapse_at_event(double tau) const {
  if (last_surface_tau_ == -std::numeric_limits<double>::infinity() ||
      tau - last_surface_tau_ > kNearPoint * std::max(1.0, std::abs(last_surface_tau_)))
    return std::nullopt;
  const double t = clock_.time(tau);
  return fmt::format("kink {} at t = {:.9g}: steps collapsed right after an event; {}", describe(last_surface_), t,
                     accumulation(t));
}

std::pair<EventLocator::Rejoin, std::string> EventLocator::rejoin(double tau, const Vec& y, SolverCounters& c,
                                                                  bool field_failed_here) {
  if (!hooks_.resolve) return {Rejoin::unchanged, {}};
  const bool at_event = !last_event_js_.empty() && tau == last_event_tau_;
  if (!at_event && !field_failed_here) return {Rejoin::unchanged, {}};
  const TimePoint tp = clock_.at(tau);
  if (!at_event) {
    auto res = hooks_.resolve(tp, y, {}, kMaxEventsNearPoint);
    if (!res) return {Rejoin::unchanged, {}};
    if (!res->failure.empty())
      return {Rejoin::failed, fmt::format("at t = {:.9g}: {}", tp.t, res->failure)};
    if (res->crossings + res->entries + res->exits == 0 && !res->masks_moved) return {Rejoin::unchanged, {}};
    c.events += res->crossings + res->exits;
    c.sliding_entries += res->entries;
    end_known_ = false;
    return {Rejoin::changed, {}};
  }
  // The surfaces switched at this instant that the state is still on, within the integration's
  // error (crossed()): a chain of restarts at one instant can carry the state off an earlier
  // one's surface, and a surface off its kink has no equivalent control (the output depends on
  // its mask there). With them, [8,8,8,8] gd_polar's joint problem at t = 1.079 held 35 surfaces,
  // six of them 1e-6..2e-4 off their kinks, and had no solution.
  // Off means beyond the integration's error and not small against the largest |g| either (a
  // deeper unit at a point whose activations below are ~1e-14 has |h| ~ 1e-15 and a rounding
  // bound of ~1e-21: it stays).
  std::vector<Index> on_surface = last_event_js_;
  if (hooks_.round_off) {
    hooks_.values(tp, y, g_);
    hooks_.round_off(tp, y, round_off_);
    const double small = 1e-10 * g_.cwiseAbs().maxCoeff();
    on_surface.erase(std::remove_if(on_surface.begin(), on_surface.end(),
                                    [&](Index j) {
                                      return round_off_[j] > 0 &&
                                             std::abs(g_[j]) > std::max(noise_factor_ * round_off_[j], small);
                                    }),
                     on_surface.end());
  }
  auto res = hooks_.resolve(tp, y, on_surface, std::max(near_events_, kMaxEventsNearPoint));
  if (!res) return {Rejoin::unchanged, {}};
  if (!res->failure.empty())
    return {Rejoin::failed,
            fmt::format("kink {} at t = {:.9g}: {}", describe(last_event_js_.front()), tp.t, res->failure)};
  if (res->crossings + res->entries + res->exits == 0 && !res->masks_moved) return {Rejoin::unchanged, {}};
  c.events += res->crossings + res->exits;
  c.sliding_entries += res->entries;
  end_known_ = false;
  return {Rejoin::changed, {}};
}

bool EventLocator::crossed(double tau_before, const Vec& y_before, double tau, const Vec& y,
                           const StepInterpolant* interpolate) {
  dip_tau_ = std::numeric_limits<double>::quiet_NaN();
  const bool at_end = crossed_at_end(tau_before, y_before, tau, y);
  const bool dip = interpolate && tau > tau_before && grazing(tau_before, y_before, tau, *interpolate);
  // A surface positive at the step's end left it on the chosen side (after the grazing test,
  // which gives the surfaces handled at the step's start their margin).
  for (Index j = 0; j < g_.size(); ++j)
    if (g_[j] > 0) handled_[std::size_t(j)] = 0;
  return at_end || dip;
}

bool EventLocator::crossed_at_end(double tau_before, const Vec& y_before, double tau, const Vec& y) {
  hooks_.values(clock_.at(tau), y, g_);
  // g at the start of the next step, unless an event switches the discrete state first.
  const bool before_known = end_known_ && y_before.size() == y_end_.size() && y_before == y_end_;
  before_valid_ = before_known;
  if (before_known) g_before_.swap(g_end_);
  y_end_ = y;
  g_end_ = g_;
  end_known_ = true;
  violated_.clear();
  if (handled_.size() != std::size_t(g_.size())) handled_.assign(std::size_t(g_.size()), 0);
  for (Index j = 0; j < g_.size(); ++j)
    if (g_[j] < 0) violated_.push_back(j);
  if (violated_.empty()) return false;
  if (!before_known) hooks_.values(clock_.at(tau_before), y_before, g_before_);
  before_valid_ = true;
  // A function <= 0 at the start that did not fall is no event under either rule below: dropped
  // before the bounds are formed (one forward-like pass), which most such steps then skip.
  violated_.erase(std::remove_if(violated_.begin(), violated_.end(),
                                 [&](Index j) { return g_before_[j] <= 0 && !(g_[j] < g_before_[j]); }),
                  violated_.end());
  if (violated_.empty()) return false;
  // Rounding-error bounds, when the problem has them.
  const bool bounds = bool(hooks_.round_off);
  if (bounds) hooks_.round_off(clock_.at(tau), y, round_off_);
  // A function already <= 0 at the step's start sits on a surface handled at an event, or one
  // whose value was round-off at the last step's end (every other one is positive after a step
  // or an event, see apply()). It is an event at the step's start (a bounce: the field on the
  // chosen side sends the state back through the surface) only if it fell clearly over the step.
  // For a surface switched at an event that means beyond what the integration itself leaves
  // undecided: the step's error is of relative size rtol, so a pre-activation that moved by less
  // than rtol times its terms (its rounding bound scaled from u to rtol) may have moved by the
  // integrator's error alone; below that the state is leaving the surface on the side the event
  // chose, or has not moved off it. (A tangential exit from sliding departs at second order in
  // the step, and at a fold of the exit side's field turns back at once: a sliding pair of
  // parallel units on compare_iris_relu.toml, rho_schedule_normalized, exited at m = 0 with h
  // drifted 1e-12 off the surface, bounced at the step's start on a move of 1e-9 and chattered
  // 65 times at one instant; docs/events.md.) Otherwise, and for a sliding entry's mask (bound
  // 0), below twice its start value.
  violated_.erase(std::remove_if(violated_.begin(), violated_.end(),
                                 [&](Index j) {
                                   if (g_before_[j] > 0) return false;
                                   const double noise =
                                       bounds && handled_[std::size_t(j)] ? noise_factor_ * round_off_[j] : 0.0;
                                   const double below = noise > 0 ? std::min(g_before_[j], -noise) : 2 * g_before_[j];
                                   return !(g_[j] < below);
                                 }),
                  violated_.end());
  if (violated_.empty() || !bounds) return !violated_.empty();
  // A value within its own rounding-error bound is not a crossing: its sign is noise (a state
  // on a kink surface in exact arithmetic, e.g. a unit the field keeps orthogonal to one point
  // while inactive on the others, computes h of either sign from step to step: each flip an
  // event, the run stalled; docs/rho_control.md). It is on the surface for the next step's start
  // (g = 0 there): should it fall beyond its bound, that is an event at that start, rather than
  // a creep past the rule above at less than a doubling per step.
  violated_.erase(std::remove_if(violated_.begin(), violated_.end(),
                                 [&](Index j) {
                                   if (-g_[j] > round_off_[j]) return false;
                                   g_end_[j] = 0.0;
                                   return true;
                                 }),
                  violated_.end());
  return !violated_.empty();
}

double EventLocator::dip_bound(Index j, double g0, const Vec& round_off) const {
  if (g0 > 0) return 0.0;
  const bool bounds = round_off.size() == g_.size() && handled_[std::size_t(j)];
  return bounds ? std::min(g0, -noise_factor_ * round_off[j]) : 2 * g0;
}

bool EventLocator::grazing(double tau_before, const Vec& y_before, double tau, const StepInterpolant& interpolate) {
  if (!before_valid_) {
    hooks_.values(clock_.at(tau_before), y_before, g_before_);
    before_valid_ = true;
  }
  const double tau_mid = 0.5 * (tau_before + tau);
  interpolate(tau_mid, y_mid_);
  // Off the sliding entries (a mask's dip would be an exit: their solve costs more than the test).
  const auto& values = hooks_.surface_values ? hooks_.surface_values : hooks_.values;
  values(clock_.at(tau_mid), y_mid_, g_mid_);
  double first = std::numeric_limits<double>::infinity();  // the earliest vertex below zero, in (0, 1)
  for (Index j = 0; j < g_.size(); ++j) {
    const double g0 = g_before_[j], gm = g_mid_[j], g1 = g_[j];
    if (!(g1 > 0) || !std::isfinite(g0) || !std::isfinite(g1) || !std::isfinite(gm)) continue;
    const double below = dip_bound(j, g0, round_off_);  // the bounds of an earlier step: a filter only
    if (gm < below) {
      first = std::min(first, 0.5);
      continue;
    }
    const double c = 2 * (g0 + g1 - 2 * gm), b = g1 - g0 - c;  // g(s) = g0 + b s + c s^2
    if (!(c > 0)) continue;
    const double s = -b / (2 * c);
    if (s > 0 && s < 1 && g0 - b * b / (4 * c) < below) first = std::min(first, s);
  }
  if (!(first < 1)) return false;
  const double tau_dip = tau_before + first * (tau - tau_before);
  if (!(tau_dip > tau_before && tau_dip < tau)) return false;
  interpolate(tau_dip, y_dip_);
  const TimePoint tp = clock_.at(tau_dip);
  values(tp, y_dip_, g_dip_);
  if (hooks_.round_off) hooks_.round_off(tp, y_dip_, round_off_dip_);
  bool found = false;
  for (Index j = 0; j < g_.size(); ++j) {
    if (!(g_[j] > 0) || !std::isfinite(g_before_[j]) || !(g_dip_[j] < dip_bound(j, g_before_[j], round_off_dip_)))
      continue;
    if (hooks_.round_off && !(-g_dip_[j] > round_off_dip_[j])) continue;  // noise, not a crossing
    if (std::find(violated_.begin(), violated_.end(), j) == violated_.end()) violated_.push_back(j);
    found = true;
  }
  if (found) dip_tau_ = tau_dip;
  return found;
}

double EventLocator::locate(double tau_before, const Vec& y_before, double tau, const StepInterpolant& interpolate,
                            Vec& y_event) {
  double tau_star = tau;
  roots_.clear();
  crossing_.clear();
  bounces_.clear();
  for (Index j : violated_) (g_before_[j] <= 0 ? bounces_ : crossing_).push_back(j);
  // The bracket of the search: the step, unless a probe moves it.
  double lo = tau_before, hi = tau;
  const Vec* g_lo = &g_before_;
  if (!bounces_.empty() && tau > tau_before) {
    // A surface handled at an event that fell over the step: a bounce at the step's start if the
    // state goes straight back through it. It may instead have left on the chosen side and come
    // back through later in the step, after another switch inside the step turned its rate around
    // ([8,8,8,8] gd at t = 1.0305: a joint switch put a surface on its active side with rate
    // +0.0099, and over the next step h went from -1.5e-13 to -2.8e-5; called a bounce at the
    // start, the crossing inside the step was never located and the run chattered). A probe 1e-3
    // of the step in tells them apart: positive there, it is a crossing inside the step.
    const double tp = tau_before + 1e-3 * (tau - tau_before);
    interpolate(tp, y_probe_);
    hooks_.values(clock_.at(tp), y_probe_, g_probe_);
    bool at_start = false;
    for (Index j : bounces_) at_start |= !(g_probe_[j] > 0);
    if (at_start) {
      for (Index j : bounces_) roots_.emplace_back(tau_before, j);
      tau_star = tau_before;
    } else {
      double first = std::numeric_limits<double>::infinity();
      for (Index j : crossing_) first = std::min(first, g_probe_[j]);
      if (first > 0) {  // nothing crossed before the probe: search the rest of the step for all
        crossing_.insert(crossing_.end(), bounces_.begin(), bounces_.end());
        lo = tp;
      } else {  // a crossing before the probe comes first
        hi = tp;
      }
      g_lo = lo == tp ? &g_probe_ : &g_before_;
    }
  }
  // A dip inside the step (grazing()): its surfaces are negative at dip_tau_, so the earliest
  // crossing lies before it.
  if (dip_tau_ > lo && dip_tau_ < hi) hi = dip_tau_;
  // A step that moved the state but not the clock (a step below the clock's resolution, e.g.
  // CVODE's first step after a restart near an accumulation of events): its crossings cannot be
  // placed inside it, they are events at its start. Dropping them would restart the stepper at
  // the same point with the same discrete state, forever.
  if (tau == tau_before) {
    for (Index j : bounces_) roots_.emplace_back(tau_before, j);
    for (Index j : crossing_) roots_.emplace_back(tau_before, j);
    tau_star = tau_before;
  }
  if (tau_star > tau_before && !crossing_.empty()) {
    // The search evaluates only the crossing surfaces when the problem can (values_of); the
    // root's side is then decided on the full evaluation below, as everywhere else.
    auto phi = [&](double s) {
      interpolate(s, y_event);
      if (hooks_.values_of) {
        hooks_.values_of(clock_.at(s), y_event, crossing_, g_crossing_);
        return g_crossing_.minCoeff();
      }
      hooks_.values(clock_.at(s), y_event, g_);
      return min_over_crossing();
    };
    auto phi_full = [&](double s) {
      interpolate(s, y_event);
      hooks_.values(clock_.at(s), y_event, g_);
      return min_over_crossing();
    };
    g_ = *g_lo;
    double pa = min_over_crossing();
    // A surface not tracked at the step's start (g = +inf: screening had dropped its point, and a
    // screen inside the step brought it back with stale masks): the values there, its own too.
    bool untracked = false;
    for (Index j : crossing_) untracked |= !(g_[j] < std::numeric_limits<double>::infinity());
    if (untracked) pa = phi(lo);
    const double pb = phi(hi);
    double right = pa > 0 ? hi : lo;
    if (pb < 0 && pa > 0) {
      std::uintmax_t iters = 100;
      const auto bracket =
          boost::math::tools::toms748_solve(phi, lo, hi, pa, pb, boost::math::tools::eps_tolerance<double>(48), iters);
      right = bracket.second;
    }
    // The subset and the full evaluation may round differently: step on towards tau (where
    // the full min is negative) until the full evaluation agrees that a surface is crossed.
    for (double d = 4 * std::numeric_limits<double>::epsilon() * std::max(1.0, std::abs(right));
         phi_full(right) > 0 && right < tau; d *= 4)
      right = std::min(tau, right + d);
    tau_star = right;
    // Every changed function that is non-positive at the root crosses there (g_ holds g(right)).
    g_event_ = g_;
    for (Index j : crossing_)
      if (g_[j] <= 0) roots_.emplace_back(right, j);
    if (roots_.empty()) roots_.emplace_back(right, crossing_.front());
  }
  // At the step's start the state is known exactly (an interpolant need not reproduce it).
  if (tau_star == tau_before) {
    y_event = y_before;
    g_event_ = g_before_;
  } else {
    interpolate(tau_star, y_event);
  }
  return tau_star;
}

std::optional<std::pair<Status, std::string>> EventLocator::stop_at_event(
    double tau_before, const Vec& y_before, double& tau, Vec& x, const StepInterpolant& interpolate,
    const std::vector<double>& taus, const std::vector<double>& times, std::size_t& next, const SampleObserver& observe,
    SolverCounters& c) {
  const double tau_star = locate(tau_before, y_before, tau, interpolate, y_event_);
  while (next < taus.size() && taus[next] < tau_star) {
    interpolate(taus[next], sample_);
    observe(c.accepted, times[next], sample_);
    ++next;
  }
  x = y_event_;
  tau = tau_star;
  if (auto stop = apply(tau_star, x, c)) return stop;
  if (next < taus.size() && taus[next] == tau) observe(c.accepted, times[next++], x);
  return std::nullopt;
}

std::optional<std::pair<Status, std::string>> EventLocator::apply(double tau_star, const Vec& y, SolverCounters& c) {
  end_known_ = false;  // the switch changes the event functions
  const double tol_tau = 1e-12 * std::max(1.0, std::abs(tau_star));
  const TimePoint tp_star = clock_.at(tau_star);
  const double t_star = tp_star.t;
  if (auto zeno = count_near_point(tau_star, t_star)) return zeno;
  const bool same_instant = tau_star - last_event_tau_ <= tol_tau;
  // Surfaces handled at the previous event, if it was at this instant (they accumulate over a
  // chain of zero-length restarts).
  previous_.clear();
  if (same_instant)
    previous_ = last_event_js_;
  else
    last_event_js_.clear();
  bool repeated = false;
  for (const auto& [root, j] : roots_)
    if (root <= tau_star + tol_tau && was_previous(j)) repeated = true;
  zero_length_restarts_ = repeated ? zero_length_restarts_ + 1 : 0;
  if (hooks_.resolve) {
    // The problem switches every surface hit here jointly with the ones coupled to them: the new
    // state is consistent as a whole (no forced exits to chase).
    hit_.clear();
    for (const auto& [root, j] : roots_)
      if (root <= tau_star + tol_tau) hit_.push_back(j);
    const int cluster = tau_star <= joint_until_tau_ ? std::max(near_events_, kMaxEventsNearPoint) : near_events_;
    auto res = hooks_.resolve(tp_star, y, hit_, cluster);
    // A joint switch that changes nothing while the trajectory came back through a surface it
    // handled at this instant (a zero-length restart) contradicts the step: the surface's rate
    // on its side is zero up to the solve's tolerance (a tangency) and the field's second-order
    // term carries the state through. Such an event is switched one surface at a time below (a
    // bounce slides), instead of being offered the same answer until the restart guard stops the
    // run (iris seeds 68 and 86, docs/events.md).
    // (A switch that gives the sliding entries another control changed the field: it stands. On
    // [8,8,8,8] gd_polar at t = 1.0667 a converged joint switch of 29 surfaces moved four masks by
    // up to 0.68 and was discarded as "no change"; the sliding field then solved from the old
    // masks, failed, and the run stopped.)
    overruled_ =
        res && res->failure.empty() && repeated && res->crossings + res->entries + res->exits == 0 && !res->masks_moved;
    if (overruled_) res.reset();
    // No consistent joint state found (the semismooth Newton of the complementarity problem
    // stalled: rates not monotone in the masks): the surfaces hit are switched one at a time
    // below, as outside a cluster; a state that then chatters is stopped by the restart guard.
    if (res && !res->failure.empty()) res.reset();
    if (res) {
      const Index j0 = hit_.empty() ? 0 : hit_.front();
      const std::string where = hooks_.describe ? hooks_.describe(j0) : std::to_string(j0);
      if (!res->failure.empty())
        return std::make_pair(Status::stalled_at_kink,
                              fmt::format("kink {} at t = {:.9g}: {}", where, t_star, res->failure));
      c.events += res->crossings + res->exits;
      c.sliding_entries += res->entries;
      if (zero_length_restarts_ > kMaxZeroLengthRestarts) return chatter(j0, t_star);
      last_event_js_.insert(last_event_js_.end(), hit_.begin(), hit_.end());
      last_event_tau_ = tau_star;
      mark_handled();
      return std::nullopt;
    }
  }
  if (auto stop = switch_pattern(tau_star + tol_tau, tp_star, y, c)) return stop;
  overruled_ = false;
  // The switch can move other surfaces' sliding mask values out of [0,1] at this very point (a
  // crossing by another entry of the same unit changes the sliding system): those modes end here,
  // not wherever the next step happens to end (an explicit step can carry the mask back inside and
  // miss the exit). Surfaces already handled at this instant sit on g = 0 up to round-off: their
  // sign is noise, the field decides at the next step (the bounce rule). Each pass adds to that
  // set, so this ends.
  // Only values the switch lowered count: a negative value it left alone is round-off on a
  // surface handled at an earlier event.
  for (;;) {
    if (stop_requested_ && stop_requested_->load(std::memory_order_relaxed))
      return std::make_pair(Status::interrupted, fmt::format("interrupted at t = {:.6g} (handling an event)", t_star));
    hooks_.values(tp_star, y, g_);
    roots_.clear();
    for (Index j = 0; j < g_.size(); ++j)
      if (g_[j] < 0 && g_[j] < g_event_[j] &&
          std::find(last_event_js_.begin(), last_event_js_.end(), j) == last_event_js_.end())
        roots_.emplace_back(tau_star, j);
    g_event_.swap(g_);
    if (roots_.empty()) break;
    if (auto stop = switch_pattern(tau_star, tp_star, y, c)) return stop;
  }
  last_event_tau_ = tau_star;
  mark_handled();
  // The last pass's values are those at the state the stepper restarts from: the next step's
  // start values (crossed() checks the state; a rejoin() switches again and forgets them).
  y_end_ = y;
  g_end_ = g_event_;
  end_known_ = true;
  return std::nullopt;
}

std::optional<std::pair<Status, std::string>> EventLocator::count_near_point(double tau_star, double t_star) {
  if (!std::isfinite(near_tau_) || tau_star - near_tau_ > kNearPoint * std::max(1.0, std::abs(near_tau_))) {
    near_tau_ = tau_star;
    near_events_ = 0;
  }
  last_surface_ = roots_.empty() ? (violated_.empty() ? Index(-1) : violated_.front()) : roots_.front().second;
  last_surface_tau_ = tau_star;
  if (++near_events_ <= kMaxEventsNearPoint) return std::nullopt;
  return std::make_pair(Status::stalled_at_kink, fmt::format("kink {} at t = {:.9g}: {}", describe(last_surface_),
                                                             t_star, accumulation(t_star)));
}

std::string EventLocator::describe(Index j) const {
  if (j < 0) return "(unknown surface)";
  return hooks_.describe ? hooks_.describe(j) : std::to_string(j);
}

std::string EventLocator::accumulation(double t_star) const {
  const std::string counts = fmt::format("{} events while t advanced by {:.3g} from {:.9g}", near_events_,
                                         t_star - clock_.time(near_tau_), clock_.time(near_tau_));
  if (near_events_ < kZenoEvents) return counts;
  return fmt::format("accumulation of events (Zeno: {})", counts);
}

std::pair<Status, std::string> EventLocator::chatter(Index j, double t_star) const {
  if (near_events_ >= zero_length_restarts_ + kZenoEvents)
    return std::make_pair(Status::stalled_at_kink,
                          fmt::format("kink {} at t = {:.9g}: {}; the last {} at zero length (the clock cannot "
                                      "resolve them)",
                                      describe(j), t_star, accumulation(t_star), zero_length_restarts_));
  return std::make_pair(Status::stalled_at_kink,
                        fmt::format("kink {} at t = {:.6g}: {} zero-length restarts in a row (the state "
                                    "chatters between crossing, sliding and leaving this surface)",
                                    describe(j), t_star, zero_length_restarts_));
}

void EventLocator::note_sliding_entry(Index j, double tau) {
  const double window = kCycleWindow * std::max(1.0, std::abs(tau));
  Reentries& r = reentries_[j];
  if (r.count == 0 || tau - r.first_tau > window) {
    r.count = 1;
    r.first_tau = tau;
  } else if (++r.count > kCycleEntries) {
    joint_until_tau_ = tau + window;
  }
}

void EventLocator::mark_handled() {
  for (Index j : last_event_js_)
    if (j >= 0 && std::size_t(j) < handled_.size()) handled_[std::size_t(j)] = 1;
}

std::optional<std::pair<Status, std::string>> EventLocator::switch_pattern(double tau_last, TimePoint tp_star,
                                                                           const Vec& y, SolverCounters& c) {
  for (const auto& [root, j] : roots_) {
    if (root > tau_last) continue;
    last_event_js_.push_back(j);
    // Crossed j and the field on the new side sends the state straight back: both sides point
    // into the surface, a Filippov sliding mode.
    const bool bounced = was_previous(j);
    if (bounced && zero_length_restarts_ <= kMaxZeroLengthRestarts && hooks_.slide && hooks_.slide(tp_star, y, j)) {
      ++c.sliding_entries;
      note_sliding_entry(j, tau_last);
      // After an overruled joint switch: an equivalent control outside [0,1] is no Filippov
      // sliding mode (both one-sided rates have one sign), and the state crosses to the side
      // they point to (the exit's rule). Left sliding, the mask's event function starts
      // negative and only a doubling counts, so the run went on with the field extrapolated
      // beyond both sides (the 100-16-1 copy at t = 1.55e7: m = 1.54 on a surface 7.5e-4 past
      // its kink; docs/relu_deep.md, session 17). Not outside a cluster: relu_events' golden
      // counts hold one such slide (its control 0.8 outside [0,1], t = 1.426).
      if (overruled_ && hooks_.values_of) {
        hooks_.values_of(tp_star, y, {j}, g_slide_);
        if (g_slide_[0] < 0) {
          hooks_.cross(tp_star, y, j);
          ++c.events;
        }
      }
      continue;
    }
    if (bounced && zero_length_restarts_ > kMaxZeroLengthRestarts) return chatter(j, tp_star.t);
    // Not a new sliding mode: a plain crossing, or the end of a sliding mode on j.
    if (std::find(twins_switched_.begin(), twins_switched_.end(), j) != twins_switched_.end()) continue;
    const std::vector<Index> twins = hooks_.coincident ? hooks_.coincident(tp_star, y, j) : std::vector<Index>();
    hooks_.cross(tp_star, y, j);
    ++c.events;
    // Its coincident surfaces cross with it (EventHooks::coincident), once, and are handled as j.
    for (Index q : twins) {
      if (std::find(last_event_js_.begin(), last_event_js_.end(), q) != last_event_js_.end()) continue;
      hooks_.cross(tp_star, y, q);
      ++c.events;
      last_event_js_.push_back(q);
      twins_switched_.push_back(q);
    }
  }
  twins_switched_.clear();
  return std::nullopt;
}

double EventLocator::min_over_crossing() const {
  double m = std::numeric_limits<double>::infinity();
  for (Index j : crossing_) m = std::min(m, g_[j]);
  return m;
}

}  // namespace gfsim::detail
