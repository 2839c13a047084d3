#include "gfsim/flow_problem.hpp"

#include "gfsim/preactivation_rounding.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace gfsim {

OdeProblem to_ode_problem(const Flow& flow) {
  OdeProblem p;
  p.size = flow.state_size();
  p.rhs = [&flow](TimePoint tp, const Vec& y, Vec& dy) { flow.rhs(tp, y, dy); };
  p.jacobian = [&flow](TimePoint tp, const Vec& y, Mat& J) { flow.jacobian(tp, y, J); };
  p.jvp = [&flow](TimePoint tp, const Vec& y, const Vec& v, Vec& jv) { flow.jvp(tp, y, v, jv); };
  // The built-in kinds are autonomous (F depends on t only through the clock's factor).
  p.autonomous = flow.autonomous();
  if (!p.autonomous)
    p.time_derivative = [&flow](TimePoint tp, const Vec& y, Vec& dft) { flow.time_derivative(tp, y, dft); };
  // Stop times at the kind's known discontinuities (a staircase rho(t); integrate.hpp).
  p.discontinuities.next_after = [&flow](double t) { return flow.next_discontinuity(t); };
  p.discontinuities.enter = [&flow](double t, Vec& y) { flow.enter_piece(t, y); };
  p.explain_stall = [&flow](const Vec& y, bool& at_kink) -> std::string {
    const auto kink = flow.nearest_kink(y);
    if (kink.layer < 0) return {};
    // A pre-activation this close to zero, relative to the size of the pre-activations, means the
    // state sits on a kink surface where the right-hand side is discontinuous.
    const Vec theta = flow.theta(y);
    const double scale = flow.network().layer_norms(theta).prod();
    at_kink = std::abs(kink.preactivation) <= 1e-6 * std::max(scale, 1e-300);
    return fmt::format("{}pre-activation of layer {} unit {} at data point {} is {:.3g} (ReLU kink)",
                       at_kink ? "" : "no kink reached; nearest ", kink.layer, kink.unit, kink.point,
                       kink.preactivation);
  };
  return p;
}

OdeProblem to_event_problem(KinkPattern& pattern, const Vec& y0, KinkEventSink on_event, TimePoint start) {
  const Flow& flow = pattern.flow();
  OdeProblem p = to_ode_problem(flow);
  if (flow.num_preactivations() == 0) return p;
  pattern.freeze(y0);
  p.rhs = [&pattern](TimePoint tp, const Vec& y, Vec& dy) { pattern.rhs(tp, y, dy); };
  p.jacobian = [&pattern](TimePoint tp, const Vec& y, Mat& J) { pattern.jacobian(tp, y, J); };
  p.jvp = [&pattern](TimePoint tp, const Vec& y, const Vec& v, Vec& jv) { pattern.jvp(tp, y, v, jv); };
  p.field_failure = [&pattern] { return pattern.field_failure(); };
  auto report = [&flow, on_event](double t, Index j, KinkEvent kind) {
    if (!on_event) return;
    const auto k = flow.kink_of(j);
    on_event(t, k.layer, k.unit, k.point, kind);
  };
  // A start on kink surfaces (e.g. from a state saved while sliding): sides and sliding modes
  // from the one-sided fields at the start time, not from the round-off sign of h.
  for (Index j : pattern.settle_on_kinks(start, y0)) report(start.t, j, KinkEvent::sliding_entry);
  p.events.values = [&pattern](TimePoint tp, const Vec& y, Vec& g) { pattern.event_values(tp, y, g); };
  p.events.surface_values = [&pattern](TimePoint tp, const Vec& y, Vec& g) { pattern.surface_values(tp, y, g); };
  p.events.values_of = [&pattern](TimePoint tp, const Vec& y, const std::vector<Index>& js, Vec& g) {
    pattern.event_values_of(tp, y, js, g);
  };
  // Bounds of the rounding error of each g: |g| = |h| for the pre-activations; a sliding entry's
  // g is its mask value, no pre-activation (0: its sign always counts).
  p.events.round_off = [&pattern](TimePoint, const Vec& y, Vec& r) {
    const Flow& f = pattern.flow();
    const Vec theta = f.theta(y), pre = f.preactivations(y);
    r = preactivation_rounding(f.network(), theta, f.inputs(), pattern.masks(), pre);
    // A unit below rounding has no meaningful kink: no sign of its h is a crossing.
    const auto below = entries_of_units_below_rounding(f.network(), theta, pre, f.num_points());
    for (std::size_t j = 0; j < below.size(); ++j)
      if (below[j]) r[Index(j)] = std::numeric_limits<double>::infinity();
    for (Index j : pattern.sliding()) r[j] = 0.0;
  };
  p.events.cross = [&pattern, report](TimePoint tp, const Vec& y, Index j) {
    const auto& sliding = pattern.sliding();
    const auto it = std::find(sliding.begin(), sliding.end(), j);
    if (it == sliding.end()) {
      pattern.flip(j);
      return report(tp.t, j, KinkEvent::crossing);
    }
    // Leaving a sliding mode: onto the side the one-sided rates send the state to (the side
    // through which its mask value left [0,1] when the mode was attracting).
    pattern.leave_sliding(tp, y, j);
    report(tp.t, j, KinkEvent::sliding_exit);
  };
  p.events.slide = [&pattern, report](TimePoint tp, const Vec&, Index j) {
    if (!pattern.start_sliding(j)) return false;
    report(tp.t, j, KinkEvent::sliding_entry);
    return true;
  };
  p.events.resolve = [&pattern, report](TimePoint tp, const Vec& y, const std::vector<Index>& js,
                                         int cluster) -> std::optional<EventHooks::Resolution> {
    auto joint = pattern.resolve(tp, y, js, cluster);
    if (!joint) return std::nullopt;
    EventHooks::Resolution r;
    r.failure = joint->failure;
    // Beyond the masks' rounding: a new equivalent control changes the field (and is the warm start
    // of the sliding field's next solve).
    r.masks_moved = joint->masks_moved > 1e-8;
    const double t = tp.t;
    for (const auto& [j, what] : joint->changes) {
      switch (what) {
        case KinkPattern::Switch::crossing: ++r.crossings; report(t, j, KinkEvent::crossing); break;
        case KinkPattern::Switch::sliding_entry: ++r.entries; report(t, j, KinkEvent::sliding_entry); break;
        case KinkPattern::Switch::sliding_exit: ++r.exits; report(t, j, KinkEvent::sliding_exit); break;
      }
    }
    return r;
  };
  p.events.coincident = [&pattern](TimePoint, const Vec& y, Index j) { return pattern.coincident_with(y, j); };
  p.events.describe = [&flow](Index j) {
    const auto k = flow.kink_of(j);
    return fmt::format("layer {} unit {} at data point {}", k.layer, k.unit, k.point);
  };
  return p;
}

}  // namespace gfsim
