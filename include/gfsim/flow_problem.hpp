#pragma once
// Glue between a Flow (mathematics) and integrate() (time stepping): the flow's right-hand side,
// exact Jacobian, and the stall explanation that names the nearest ReLU kink.
//
//   auto result = integrate(to_ode_problem(flow), flow.initial_state(theta0), times, options, observe);
#include "gfsim/flow.hpp"
#include "gfsim/integrate.hpp"
#include "gfsim/kink_pattern.hpp"

namespace gfsim {

/// The flow must outlive the returned problem.
OdeProblem to_ode_problem(const Flow& flow);

/// Event-driven ReLU integration: freezes `pattern` at y0 and adds the kink events
/// (every hidden pre-activation h_{k,i,n} = 0) that switch it, with Filippov sliding where the
/// field points into a surface from both sides. Every event is reported to `on_event`.
enum class KinkEvent { crossing = 0, sliding_entry = 1, sliding_exit = 2 };
using KinkEventSink = std::function<void(double t, Index layer, Index unit, Index point, KinkEvent kind)>;
/// The right-hand side, Jacobian and events are the pattern's, which must outlive the problem.
/// `start`: the TimePoint of y0 (where the pattern is settled on kinks it starts on; a resumed run
/// starts at its restart time).
OdeProblem to_event_problem(KinkPattern& pattern, const Vec& y0, KinkEventSink on_event = {}, TimePoint start = {});

}  // namespace gfsim
