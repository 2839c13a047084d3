#pragma once
// The integration clock: tau = t, or tau = s = log(1+t) where dy/ds = (dt/ds) F(t, y) = e^s F(t, y)
// (equations.md section 5). The solvers integrate in tau; the field sees the physical time and the
// log of the factor dt/dtau (folded into its loss weights), both from Clock::at, the one map from
// tau to the field's arguments. C++17-clean (src/stepper_odeint.cpp is compiled as C++17).
#include <cmath>

#include "gfsim/enums.hpp"

namespace gfsim {

/// Where a field is evaluated: physical time t and log_scale = log(dt/dtau), the clock's factor.
struct TimePoint {
  double t = 0.0;
  double log_scale = 0.0;
};

struct Clock {
  ClockKind kind;
  double tau(double t) const { return kind == ClockKind::log ? std::log1p(t) : t; }
  double time(double tau) const { return kind == ClockKind::log ? std::expm1(tau) : tau; }
  /// log of the factor dt/dtau that multiplies F(t, y): folded into the loss weights.
  double log_scale(double tau) const { return kind == ClockKind::log ? tau : 0.0; }
  /// The field's arguments at clock value tau.
  TimePoint at(double tau) const { return {time(tau), log_scale(tau)}; }
};

}  // namespace gfsim
