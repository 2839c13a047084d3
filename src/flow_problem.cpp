#include "gfsim/flow_problem.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

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

OdeProblem to_event_problem(Flow& flow, const Vec& y0, KinkEventSink on_event) {
  OdeProblem p = to_ode_problem(flow);
  if (flow.num_preactivations() == 0) return p;
  flow.freeze_pattern(y0);
  auto report = [&flow, on_event](double t, Index j, KinkEvent kind) {
    if (!on_event) return;
    const auto k = flow.kink_of(j);
    on_event(t, k.layer, k.unit, k.point, kind);
  };
  // A start on kink surfaces (e.g. from a state saved while sliding): sides and sliding modes
  // from the one-sided fields, not from the round-off sign of h. Runs start at t = 0.
  for (Index j : flow.settle_on_kinks(y0)) report(0.0, j, KinkEvent::sliding_entry);
  p.events.values = [&flow](const Vec& y, Vec& g) { flow.event_values(y, g); };
  p.events.values_of = [&flow](const Vec& y, const std::vector<Index>& js, Vec& g) {
    flow.event_values_of(y, js, g);
  };
  p.events.cross = [&flow, report](double t, const Vec& y, Index j) {
    const auto& sliding = flow.sliding();
    const auto it = std::find(sliding.begin(), sliding.end(), j);
    if (it == sliding.end()) {
      flow.flip_pattern(j);
      return report(t, j, KinkEvent::crossing);
    }
    // Leaving a sliding mode: onto the side through which its mask value left [0,1].
    const double m = flow.sliding_masks(y)[it - sliding.begin()];
    flow.stop_sliding(j, m > 0.5);
    report(t, j, KinkEvent::sliding_exit);
  };
  p.events.slide = [&flow, report](double t, const Vec&, Index j) {
    if (!flow.start_sliding(j)) return false;
    report(t, j, KinkEvent::sliding_entry);
    return true;
  };
  p.events.describe = [&flow](Index j) {
    const auto k = flow.kink_of(j);
    return fmt::format("layer {} unit {} at data point {}", k.layer, k.unit, k.point);
  };
  return p;
}

}  // namespace gfsim
