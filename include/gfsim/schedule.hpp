#pragma once
// Prescribed functions of physical time that control how rho grows (issue 15, equations.md section 8):
//   LambdaSchedule  lambda(t) -> 0 of the norm-minimizing flow dW/dt = -grad L - lambda(t) W;
//   RhoSchedule     rho(t) of the fixed-rho flow driven by a prescribed radius.
// Each gives its value and d/dt (the stiff solvers' dF/dt), and the forms the log clock needs: in
// s = log(1+t) the field is multiplied by e^s = 1+t, so lambda enters as e^s lambda(t), formed as
// exp(s + log lambda(t)) (finite at t = 1e300 for every kind); rho enters through log rho(t) and
// d log rho/dt, finite even where rho itself overflows (exponential schedule).
// Tables (two columns t, value; t_0 = 0, strictly increasing, value > 0) interpolate lambda
// linearly and rho geometrically (log rho linear in t); both are constant beyond the last knot.
// Every schedule is defined for t > -1 (smoothly through t = 0), used at t >= 0.
// Discontinuities (equations.md section 8 (j)): a staircase jumps at j * phase, a table's slope at its
// knots; next_discontinuity(t) gives the first after t (the integration loop stops there,
// integrate.hpp), and the `piece` argument evaluates the smooth piece holding `piece` at any t, past
// the piece's ends (NaN, the default: the piece holding t), so that a step ending on a jump is
// evaluated on one piece only.
//
//   LambdaSchedule lambda = LambdaSchedule::power(0.5, 1.0);     // 0.5 / (1 + t)
//   double decay = lambda.scaled_value(t, log_scale);            // e^{log_scale} lambda(t)
//   RhoSchedule rho = RhoSchedule::staircase(1.0, 2.0, 10.0);    // doubles after each 10 time units
#include <limits>
#include <string>
#include <vector>

#include "gfsim/enums.hpp"

namespace gfsim {

/// The `piece` argument's default: the piece holding t.
inline constexpr double kNoPiece = std::numeric_limits<double>::quiet_NaN();

/// Knots of a user table: t[0] = 0 < t[1] < ..., value[i] > 0.
struct ScheduleTable {
  std::vector<double> t, value;
};

/// Reads a two-column table (t, value) with the number_table reader (header line and '#' comments
/// allowed). SpecError naming `key` and the file for a bad table.
ScheduleTable read_schedule_table(const std::string& path, const std::string& key);

class LambdaSchedule {
 public:
  /// lambda0 (1 + t)^-p, p in (0, 1].
  static LambdaSchedule power(double lambda0, double p);
  /// lambda0 / log(e + t).
  static LambdaSchedule inverse_log(double lambda0);
  /// Piecewise linear through the knots, the last value beyond the last knot.
  static LambdaSchedule table(ScheduleTable knots);

  LambdaKind kind() const { return kind_; }
  double value(double t) const;
  double derivative(double t) const;
  /// e^{log_scale} lambda(t) and e^{log_scale} dlambda/dt without forming e^{log_scale} alone, on
  /// the piece holding `piece` (NaN: holding t).
  double scaled_value(double t, double log_scale, double piece = kNoPiece) const;
  double scaled_derivative(double t, double log_scale, double piece = kNoPiece) const;
  /// The first knot of a table strictly after t (lambda is continuous there, its slope is not);
  /// +inf for the other kinds and beyond the last knot.
  double next_discontinuity(double t) const;

 private:
  LambdaSchedule(LambdaKind kind, double lambda0, double p, ScheduleTable knots);
  double log_value(double t, double piece) const;
  LambdaKind kind_;
  double lambda0_, p_;
  ScheduleTable knots_;
};

class RhoSchedule {
 public:
  /// rho0 + rate log(1 + t): gradient descent's own growth for rate ~ 1/gamma.
  static RhoSchedule logarithmic(double rho0, double rate);
  /// rho0 (1 + t)^rate.
  static RhoSchedule power(double rho0, double rate);
  /// rho0 e^{rate t}.
  static RhoSchedule exponential(double rho0, double rate);
  /// rho0 factor^floor(t / phase): progressive norm rescaling (constant within a phase, rescaled by
  /// `factor` at its end; the jumps are discontinuities of the field).
  static RhoSchedule staircase(double rho0, double factor, double phase);
  /// log rho piecewise linear through the knots, constant beyond the last knot.
  static RhoSchedule table(ScheduleTable knots);

  RhoScheduleKind kind() const { return kind_; }
  // Each on the piece holding `piece` (NaN: holding t).
  double value(double t, double piece = kNoPiece) const;       ///< may overflow to inf (exponential at large t)
  double derivative(double t, double piece = kNoPiece) const;  ///< d rho/dt; 0 between the staircase's jumps
  double log_value(double t, double piece = kNoPiece) const;   ///< log rho(t), finite for every finite t
  double log_derivative(double t, double piece = kNoPiece) const;  ///< d log rho/dt
  /// The first time strictly after t where rho jumps (staircase, factor != 1) or its slope does (a
  /// table's knots); +inf for the smooth kinds.
  double next_discontinuity(double t) const;

 private:
  RhoSchedule(RhoScheduleKind kind, double rho0, double a, double b, ScheduleTable knots);
  RhoScheduleKind kind_;
  double rho0_, a_, b_;  ///< rate; or factor and phase
  ScheduleTable knots_;  ///< table: values stored as log rho
};

}  // namespace gfsim
