#pragma once
// Glue between a Flow (mathematics) and integrate() (time stepping): the flow's right-hand side,
// exact Jacobian, and the stall explanation that names the nearest ReLU kink.
//
//   auto result = integrate(to_ode_problem(flow), flow.initial_state(theta0), times, options, observe);
#include "gfsim/flow.hpp"
#include "gfsim/integrate.hpp"

namespace gfsim {

/// The flow must outlive the returned problem.
OdeProblem to_ode_problem(const Flow& flow);

}  // namespace gfsim
