#pragma once
// Least-squares fits of the asymptotic laws of equations.md section 6 to measured series: a line,
// eps ~ C / (log t + b), and log eps = a + c (log t)^p. One-dimensional searches use Boost.Math's
// Brent minimiser.
#include <limits>
#include <vector>

#include "gfsim/types.hpp"

namespace gfsim {

/// Ordinary least squares y = slope x + intercept.
struct LineFit {
  double slope = 0, intercept = 0, r2 = 0;
  Index points = 0;
};
LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y);

/// eps ~ C / (log t + b) by relative least squares (minimises sum ((C f - eps)/eps)^2, f = 1/(log t + b)):
/// closed form for C given b, b by a log-spaced scan then Brent's method over b > -min(log t).
/// fit_b = false fixes b = 0 (the plain C/log t law). r2 is computed on log eps.
struct InverseLogFit {
  double C = 0, b = 0, r2 = 0, max_rel_residual = std::numeric_limits<double>::infinity();
  Index points = 0;
};
InverseLogFit fit_inverse_log(const std::vector<double>& log_t, const std::vector<double>& eps, bool fit_b);

/// log eps = a + c (log t)^p: p on a grid in [0.1, 4] (step 0.005) then Brent's method, a and c by
/// least squares for each p. The paper's WN law eps ~ t^(-(1/2) log t) is p = 2, c = -1/2.
struct PowerLogFit {
  double a = 0, c = 0, p = 0, r2 = 0, max_abs_residual = 0;
  Index points = 0;
};
PowerLogFit fit_power_log(const std::vector<double>& log_t, const std::vector<double>& log_eps);

}  // namespace gfsim
