#pragma once
// Event bookkeeping of the integration loop (detail::integrate_loop in integrate.cpp), the same for
// every stepper (docs/events.md):
//   - after each accepted step, a sign check of every event function at the new state;
//   - the earliest crossing in the step by one TOMS 748 search on phi(tau) = min_j g_j over the
//     functions that changed sign, on the driver's interpolant of the step (one search per step
//     however many changed: phi > 0 until the first of them crosses); functions already <= 0 at
//     the step's start (on a surface handled at an event) are events at the start if they fell
//     over the step beyond what the integration's error leaves undecided (rtol times the terms of
//     h; below twice their start value where no bound is known), and round-off otherwise;
//   - a negative function within its own rounding-error bound (EventHooks::round_off) is not a
//     crossing: its sign is noise; it counts as 0 at the next step's start;
//   - a surface handled at the previous event and hit again at zero distance is a bounce: the
//     fields on both sides point into it, so the trajectory enters Filippov sliding on it; other
//     surfaces hit at the same instant (parallel units) are plain crossings;
//   - a switch that puts another surface's sliding mask value outside [0,1] ends that sliding mode
//     at the same point (checked at once, not at the end of the next step; only values the switch
//     lowered count);
//   - a joint switch (EventHooks::resolve) that finds no consistent state leaves the event to
//     the one-at-a-time switch;
//   - more than kMaxZeroLengthRestarts bounces in a row stop the run (Status::stalled_at_kink), and
//     so do more than kMaxEventsNearPoint events within a relative clock distance kNearPoint of
//     one instant (a Zeno-like accumulation), naming the surface and t;
//   - a step that moves the state but not the clock has its crossings as events at its start;
//   - an event the stepper cannot leave (trial steps non-finite or collapsed) is switched again
//     jointly, once (rejoin()).
// After stop_at_event() the loop restarts its stepper at the event (the right-hand side changed
// discontinuously). A stop request (SIGINT/SIGTERM flag) is honoured inside the chain of forced
// exits too, so an event-dense run stops promptly.
// Private to src/.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <boost/math/tools/toms748_solve.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gfsim/clock.hpp"
#include "gfsim/integrate.hpp"

namespace gfsim::detail {

/// The state at clock value tau on the step just accepted (the stepper's dense output).
using StepInterpolant = std::function<void(double tau, Vec& out)>;

class EventLocator {
 public:
  static constexpr int kMaxZeroLengthRestarts = 64;
  static constexpr int kMaxEventsNearPoint = 2048;  ///< events allowed within kNearPoint of one instant
  static constexpr double kNearPoint = 1e-6;        ///< relative clock distance of "one point"
  /// Events at non-zero distances in one point's cluster before a stop that make the stop an
  /// accumulation of events (named Zeno in its message) rather than chattering at one instant.
  static constexpr int kZenoEvents = 16;
  /// A surface that enters sliding more than kCycleEntries times within a relative clock window
  /// kCycleWindow cycles between single-surface modes (kinks diagnosis Case B, legs far longer than
  /// kNearPoint at late times): the events of the next window are offered to the joint switch as a
  /// full cluster.
  static constexpr int kCycleEntries = 16;
  static constexpr double kCycleWindow = 1e-2;

  /// `rtol`: the integration's relative tolerance (how far a handled surface's function may move
  /// by the integrator's error alone, crossed()).
  EventLocator(const EventHooks& hooks, Clock clock, double rtol, const std::atomic<bool>* stop_requested = nullptr)
      : hooks_(hooks),
        clock_(clock),
        stop_requested_(stop_requested),
        noise_factor_(std::max(1.0, rtol / (std::numeric_limits<double>::epsilon() / 2))) {}

  bool active() const { return bool(hooks_.values); }

  /// A step-size collapse at clock value tau, close to the last event (within kNearPoint): the
  /// surface of that event and the cluster it belongs to, to name the stop (an accumulation of
  /// events collapses the steps of a solver that restarts cautiously, e.g. CVODE at order 1).
  std::optional<std::string> collapse_at_event(double tau) const {
    if (last_surface_tau_ == -std::numeric_limits<double>::infinity() ||
        tau - last_surface_tau_ > kNearPoint * std::max(1.0, std::abs(last_surface_tau_)))
      return std::nullopt;
    const double t = clock_.time(tau);
    return fmt::format("kink {} at t = {:.9g}: steps collapsed right after an event; {}", describe(last_surface_), t,
                       accumulation(t));
  }

  /// The stepper could not leave the event just applied at tau (state y): its trial steps went
  /// non-finite or collapsed. Surfaces switched one at a time can leave a side whose field sends
  /// the state straight back at a rate the clock cannot resolve (late in the log clock, where the
  /// field carries e^s: iris seed 54 at t = 6.7e13, a dead point's surface crossed next to two
  /// sliding ones). Switch that event's surfaces jointly instead (hooks_.resolve as for a cluster:
  /// the complementarity problem over the sliding set, docs/events.md). Returns changed (restart
  /// the stepper), unchanged (no joint switch offered or needed), or failed with a message.
  enum class Rejoin { changed, unchanged, failed };
  std::pair<Rejoin, std::string> rejoin(double tau, const Vec& y, SolverCounters& c) {
    if (!hooks_.resolve || last_event_js_.empty() || tau != last_event_tau_) return {Rejoin::unchanged, {}};
    const TimePoint tp = clock_.at(tau);
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

  /// After an accepted step from (tau_before, y_before) to (tau, y): true if some event function is
  /// negative at y (the smooth piece ended inside the step), or, given the step's interpolant,
  /// dips below zero inside it and comes back (grazing(): two crossings the ends do not see).
  bool crossed(double tau_before, const Vec& y_before, double tau, const Vec& y,
               const StepInterpolant* interpolate = nullptr) {
    dip_tau_ = std::numeric_limits<double>::quiet_NaN();
    const bool at_end = crossed_at_end(tau_before, y_before, tau, y);
    const bool dip = interpolate && tau > tau_before && grazing(tau_before, y_before, tau, *interpolate);
    // A surface positive at the step's end left it on the chosen side (after the grazing test,
    // which gives the surfaces handled at the step's start their margin).
    for (Index j = 0; j < g_.size(); ++j)
      if (g_[j] > 0) handled_[std::size_t(j)] = 0;
    return at_end || dip;
  }

 private:
  bool crossed_at_end(double tau_before, const Vec& y_before, double tau, const Vec& y) {
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

  // A surface positive at both ends of a step can dip below zero inside it and come back: two
  // crossings (or an entry and an exit) that a sign check at the ends never sees, each a jump of
  // the field that the step carried over its whole excursion. Measured on bench/relu_deep.toml
  // ([16,8], gd): at t = 0.03806 the run at rtol 1e-10 crossed layer 2 unit 0 at point 95 and
  // came back 2e-5 later, the run at rtol 1e-8 stepped over that excursion, and from there the
  // two runs took different event sequences. Near a grazing point g is smooth and locally
  // quadratic in the clock, so the parabola through g at the step's start, middle and end finds
  // the dip: where its minimum is negative, g is evaluated there on the interpolant, and the
  // surfaces negative there beyond their rounding bound are crossings inside the step, located
  // on [start, that point] (locate()). One evaluation of the event functions per step.
  // How far below zero g must go inside a step to be an event there: 0 for a surface the step
  // starts off. A surface the step starts on (g <= 0: switched at the event the step starts from,
  // or round-off) gets the margin crossed_at_end() gives it at the step's end: a bounce that the
  // step carries back to the chosen side by its end is still a bounce. ([16,8] gd_polar at rtol
  // 1e-10, t = 0.0370369: layer 2 unit 0 at point 95 crossed to inactive with the rate +0.011 back
  // into the surface there (a sliding mode); the next step, 1.7e-3 long, took h up to +3e-6 and
  // back to -7.6e-7 by its end, so the run went on off the surface it should slide on, and parted
  // from the runs at other tolerances.)
  // `round_off`: rounding bounds of g near the state (empty: none known).
  double dip_bound(Index j, double g0, const Vec& round_off) const {
    if (g0 > 0) return 0.0;
    const bool bounds = round_off.size() == g_.size() && handled_[std::size_t(j)];
    return bounds ? std::min(g0, -noise_factor_ * round_off[j]) : 2 * g0;
  }

  bool grazing(double tau_before, const Vec& y_before, double tau, const StepInterpolant& interpolate) {
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

 public:
  /// The earliest event in the step (tau_before, y_before) -> tau after crossed() returned true:
  /// its clock value; y_event is the interpolated state there. The surfaces hit are kept for apply().
  double locate(double tau_before, const Vec& y_before, double tau, const StepInterpolant& interpolate,
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

  /// The event step after crossed() returned true for the step (tau_before, y_before) -> (tau, x):
  /// locate the earliest event, observe the output times before it from the interpolant, move
  /// (tau, x) to the event, apply() it and observe an output time that falls exactly on it.
  /// `next` indexes the first output time (taus: clock values, times: physical) not yet observed.
  std::optional<std::pair<Status, std::string>> stop_at_event(double tau_before, const Vec& y_before, double& tau,
                                                              Vec& x, const StepInterpolant& interpolate,
                                                              const std::vector<double>& taus,
                                                              const std::vector<double>& times, std::size_t& next,
                                                              const SampleObserver& observe, SolverCounters& c) {
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

  /// Switch the discrete state for every surface hit at the located event tau_star (state y there):
  /// sliding entry on a bounce, otherwise a crossing (or the end of a sliding mode); then the exits
  /// that this switch forces at the same point. Counts events and sliding entries in c. Returns the
  /// status and message to stop with when the state chatters.
  std::optional<std::pair<Status, std::string>> apply(double tau_star, const Vec& y, SolverCounters& c) {
    end_known_ = false;  // the switch changes the event functions
    const double tol_tau = 1e-12 * std::max(1.0, std::abs(tau_star));
    const TimePoint tp_star = clock_.at(tau_star);
    const double t_star = tp_star.t;
    if (auto zeno = count_near_point(tau_star, t_star)) return zeno;
    const bool same_instant = tau_star - last_event_tau_ <= tol_tau;
    // Surfaces handled at the previous event, if it was at this instant (they accumulate over a
    // chain of zero-length restarts).
    previous_.clear();
    if (same_instant) previous_ = last_event_js_;
    else last_event_js_.clear();
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
      overruled_ = res && res->failure.empty() && repeated && res->crossings + res->entries + res->exits == 0 &&
                   !res->masks_moved;
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

 private:
  // A Zeno-like accumulation: more than kMaxEventsNearPoint events while the clock advances by less
  // than kNearPoint (relative) from the first of them. Legs between events may be far longer than
  // the zero-length tolerance (a cycle between the sliding modes of two nearly parallel surfaces),
  // so the zero-length guard alone does not see it; the work spent near one point is bounded here.
  std::optional<std::pair<Status, std::string>> count_near_point(double tau_star, double t_star) {
    if (!std::isfinite(near_tau_) || tau_star - near_tau_ > kNearPoint * std::max(1.0, std::abs(near_tau_))) {
      near_tau_ = tau_star;
      near_events_ = 0;
    }
    last_surface_ = roots_.empty() ? (violated_.empty() ? Index(-1) : violated_.front()) : roots_.front().second;
    last_surface_tau_ = tau_star;
    if (++near_events_ <= kMaxEventsNearPoint) return std::nullopt;
    return std::make_pair(Status::stalled_at_kink,
                          fmt::format("kink {} at t = {:.9g}: {}", describe(last_surface_), t_star,
                                      accumulation(t_star)));
  }

  std::string describe(Index j) const {
    if (j < 0) return "(unknown surface)";
    return hooks_.describe ? hooks_.describe(j) : std::to_string(j);
  }

  // The events of the current cluster: how many, and how far the clock moved over them.
  std::string accumulation(double t_star) const {
    const std::string counts = fmt::format("{} events while t advanced by {:.3g} from {:.9g}", near_events_,
                                           t_star - clock_.time(near_tau_), clock_.time(near_tau_));
    if (near_events_ < kZenoEvents) return counts;
    return fmt::format("accumulation of events (Zeno: {})", counts);
  }

  // The zero-length-restart guard. A chain of zero-length restarts that ends a long cluster of
  // events is the clock's resolution reached by an accumulation of events (legs shrinking to
  // zero, e.g. switches spiralling into a codimension-2 point): named as such; otherwise the state
  // chatters at one instant.
  std::pair<Status, std::string> chatter(Index j, double t_star) const {
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

  // Cycle detection (kCycleEntries): count the sliding entries of surface j in its window.
  void note_sliding_entry(Index j, double tau) {
    const double window = kCycleWindow * std::max(1.0, std::abs(tau));
    Reentries& r = reentries_[j];
    if (r.count == 0 || tau - r.first_tau > window) {
      r.count = 1;
      r.first_tau = tau;
    } else if (++r.count > kCycleEntries) {
      joint_until_tau_ = tau + window;
    }
  }

  // The surfaces switched at this instant get the integration-error margin of crossed().
  void mark_handled() {
    for (Index j : last_event_js_)
      if (j >= 0 && std::size_t(j) < handled_.size()) handled_[std::size_t(j)] = 1;
  }

  bool was_previous(Index j) const { return std::find(previous_.begin(), previous_.end(), j) != previous_.end(); }

  // Cross or slide every surface in roots_ hit by tau_last (the state y at tp_star).
  std::optional<std::pair<Status, std::string>> switch_pattern(double tau_last, TimePoint tp_star, const Vec& y,
                                                               SolverCounters& c) {
    for (const auto& [root, j] : roots_) {
      if (root > tau_last) continue;
      last_event_js_.push_back(j);
      // Crossed j and the field on the new side sends the state straight back: both sides point
      // into the surface, a Filippov sliding mode.
      const bool bounced = was_previous(j);
      if (bounced && zero_length_restarts_ <= kMaxZeroLengthRestarts && hooks_.slide &&
          hooks_.slide(tp_star, y, j)) {
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
      hooks_.cross(tp_star, y, j);
      ++c.events;
    }
    return std::nullopt;
  }

  double min_over_crossing() const {
    double m = std::numeric_limits<double>::infinity();
    for (Index j : crossing_) m = std::min(m, g_[j]);
    return m;
  }

  const EventHooks& hooks_;
  Clock clock_;
  const std::atomic<bool>* stop_requested_;
  double noise_factor_;  ///< rtol / u: a rounding bound scaled to the integration's error
  Vec g_, g_before_, g_event_, y_event_, sample_;  ///< g at the step's end, start, the event
  Vec g_crossing_;                                 ///< g of the crossing surfaces (values_of)
  Vec g_slide_;                                    ///< g of a surface just put into sliding
  bool overruled_ = false;  ///< apply() switches one at a time after overruling an empty joint switch
  Vec round_off_;                                  ///< rounding-error bounds of g at the step's end
  std::vector<Index> violated_, crossing_, hit_, bounces_;
  Vec y_probe_, g_probe_;  ///< the state and event functions 1e-3 of a step in (locate())
  Vec y_mid_, g_mid_;      ///< mid-step (grazing())
  Vec y_dip_, g_dip_, round_off_dip_;  ///< at the vertex of a dip (grazing())
  double dip_tau_ = std::numeric_limits<double>::quiet_NaN();  ///< clock value where dips are negative
  bool before_valid_ = false;  ///< g_before_ holds the step's start values
  std::vector<char> handled_;  ///< switched at an event and not left since (crossed())
  std::vector<std::pair<double, Index>> roots_;  ///< (clock value, surface) hit in the located step
  double last_event_tau_ = -std::numeric_limits<double>::infinity();
  std::vector<Index> last_event_js_, previous_;  ///< surfaces handled at last_event_tau_; a copy for apply()
  int zero_length_restarts_ = 0;
  Vec y_end_, g_end_;  ///< the last step's end state and its event functions (the next step's start)
  bool end_known_ = false;
  struct Reentries {
    int count = 0;
    double first_tau = 0;
  };
  std::map<Index, Reentries> reentries_;  ///< sliding entries per surface in its current window
  double joint_until_tau_ = -std::numeric_limits<double>::infinity();  ///< a cycle was detected: joint switching
  double near_tau_ = -std::numeric_limits<double>::infinity();  ///< first event of the current cluster
  int near_events_ = 0;                                           ///< events in it so far
  Index last_surface_ = -1;  ///< the first surface of the last event, and its clock value
  double last_surface_tau_ = -std::numeric_limits<double>::infinity();
};

}  // namespace gfsim::detail
