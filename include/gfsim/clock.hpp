#pragma once
// The integration clock: tau = t, or tau = s = log(1+t) where dy/ds = e^s F(y) (equations.md
// section 5). Shared by the odeint and CVODE drivers; C++17-clean (integrate.cpp is C++17).
#include <cmath>

#include "gfsim/enums.hpp"

namespace gfsim {

struct Clock {
  ClockKind kind;
  double tau(double t) const { return kind == ClockKind::log ? std::log1p(t) : t; }
  double time(double tau) const { return kind == ClockKind::log ? std::expm1(tau) : tau; }
  /// log of the factor dt/dtau that multiplies F(y): folded into the loss weights.
  double log_scale(double tau) const { return kind == ClockKind::log ? tau : 0.0; }
};

}  // namespace gfsim
