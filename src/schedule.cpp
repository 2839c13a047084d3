// Schedules lambda(t) and rho(t) (schedule.hpp, equations.md section 8). Every kind gives the log of
// its value in closed form, so the log clock's factor e^s = 1 + t is folded in as exp(s + log lambda).
#include "gfsim/schedule.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "gfsim/errors.hpp"
#include "gfsim/number_table.hpp"

namespace gfsim {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// sign(a) * exp(log_scale + log|a|): finite whenever the product is.
double scaled(double a, double log_scale) {
  if (a == 0.0) return 0.0;
  return std::copysign(std::exp(log_scale + std::log(std::abs(a))), a);
}

/// Segment [t_i, t_{i+1}) holding t; knots.t.size() - 1 beyond the last knot.
std::size_t segment_of(const ScheduleTable& knots, double t) {
  const auto next = std::upper_bound(knots.t.begin(), knots.t.end(), t);
  return std::size_t(std::max<std::ptrdiff_t>(next - knots.t.begin() - 1, 0));
}

/// The line of segment i at t (extended past the segment's ends) and its slope; the constant beyond
/// the last knot for i = knots.t.size() - 1.
double interpolate_on(const ScheduleTable& knots, std::size_t i, double t, double* slope) {
  if (i + 1 >= knots.t.size()) {
    if (slope) *slope = 0.0;
    return knots.value.back();
  }
  const double s = (knots.value[i + 1] - knots.value[i]) / (knots.t[i + 1] - knots.t[i]);
  if (slope) *slope = s;
  return knots.value[i] + s * (t - knots.t[i]);
}

/// Piecewise-linear interpolation through (t_i, v_i) and its slope on the segment holding `piece`
/// (t itself by default; equations.md 8, discontinuities): constant beyond the last knot, the first
/// segment extended below t_0 = 0. At a knot the slope is that of the segment starting there (right
/// derivative).
double interpolate(const ScheduleTable& knots, double t, double* slope = nullptr, double piece = kNaN) {
  return interpolate_on(knots, segment_of(knots, std::isnan(piece) ? t : piece), t, slope);
}

/// The first knot strictly after t, +inf beyond the last: where a table's slope changes.
double next_knot(const ScheduleTable& knots, double t) {
  const auto next = std::upper_bound(knots.t.begin(), knots.t.end(), t);
  return next == knots.t.end() ? std::numeric_limits<double>::infinity() : *next;
}

/// The staircase's phase index: the number of jump times j * phase (j >= 1, the doubles the
/// integration stops on) at or before t, so that rho jumps exactly at them (right-continuous);
/// -1 on (-1, 0), where the first phase is extended back.
double phase_index(double t, double phase) {
  double j = std::floor(t / phase);
  if ((j + 1) * phase <= t)
    j += 1;
  else if (j * phase > t)
    j -= 1;
  return j;
}

// The schedules are used at t >= 0; they are defined (smoothly) on t > -1 so that differences in t
// around t = 0 (Jacobian checks, a state component sigma = t perturbed by a solver) stay defined.
void require_finite_time(double t) {
  if (!(t > -1) || !std::isfinite(t)) throw DomainError(fmt::format("schedule evaluated at t = {}: needs finite t > -1", t));
}

}  // namespace

ScheduleTable read_schedule_table(const std::string& path, const std::string& key) {
  NumberTableFormat format;
  format.header_allowed = true;
  format.exact_columns = 2;
  format.row_rule = "a time and a value";
  format.check_value = [](std::size_t column, double value, std::string_view) -> std::string {
    if (column == 0 && value < 0) return "a time must be >= 0";
    if (column == 1 && !(value > 0)) return "a value must be > 0";
    return "";
  };
  const NumberTable table = read_number_table(path, format, key);
  if (table.rows() == 0) throw SpecError(fmt::format("{}: {} = \"{}\": the table has no rows", path, key, path));
  ScheduleTable knots;
  for (std::size_t r = 0; r < table.rows(); ++r) {
    knots.t.push_back(table.at(r, 0));
    knots.value.push_back(table.at(r, 1));
  }
  if (knots.t.front() != 0.0)
    throw SpecError(fmt::format("{}: {}: the first time is {}, must be 0 (the table gives the value from t = 0)", path,
                                key, knots.t.front()));
  for (std::size_t r = 1; r < knots.t.size(); ++r)
    if (!(knots.t[r] > knots.t[r - 1]))
      throw SpecError(fmt::format("{}: {}: time {} follows time {}: times must increase strictly", path, key,
                                  knots.t[r], knots.t[r - 1]));
  return knots;
}

// ---- lambda(t) --------------------------------------------------------------------------------

LambdaSchedule::LambdaSchedule(LambdaKind kind, double lambda0, double p, ScheduleTable knots)
    : kind_(kind), lambda0_(lambda0), p_(p), knots_(std::move(knots)) {}

LambdaSchedule LambdaSchedule::power(double lambda0, double p) {
  if (!(lambda0 > 0) || !std::isfinite(lambda0)) throw DomainError(fmt::format("lambda0 = {} must be > 0", lambda0));
  if (!(p > 0 && p <= 1)) throw DomainError(fmt::format("the power p = {} must be in (0, 1]", p));
  return LambdaSchedule(LambdaKind::power, lambda0, p, {});
}

LambdaSchedule LambdaSchedule::inverse_log(double lambda0) {
  if (!(lambda0 > 0) || !std::isfinite(lambda0)) throw DomainError(fmt::format("lambda0 = {} must be > 0", lambda0));
  return LambdaSchedule(LambdaKind::log, lambda0, 0.0, {});
}

LambdaSchedule LambdaSchedule::table(ScheduleTable knots) {
  if (knots.t.empty() || knots.t.size() != knots.value.size() || knots.t.front() != 0.0)
    throw DomainError("a lambda table needs knots t_0 = 0 < t_1 < ... with one value each");
  return LambdaSchedule(LambdaKind::table, 0.0, 0.0, std::move(knots));
}

double LambdaSchedule::log_value(double t, double piece) const {
  switch (kind_) {
    case LambdaKind::power:
      return std::log(lambda0_) - p_ * std::log1p(t);
    case LambdaKind::log:
      return std::log(lambda0_) - std::log(std::log(std::numbers::e + t));
    case LambdaKind::table:
      return std::log(interpolate(knots_, t, nullptr, piece));
  }
  return 0.0;
}

double LambdaSchedule::value(double t) const { return scaled_value(t, 0.0); }

double LambdaSchedule::derivative(double t) const { return scaled_derivative(t, 0.0); }

double LambdaSchedule::next_discontinuity(double t) const {
  return kind_ == LambdaKind::table ? next_knot(knots_, t) : std::numeric_limits<double>::infinity();
}

double LambdaSchedule::scaled_value(double t, double log_scale, double piece) const {
  require_finite_time(t);
  return std::exp(log_scale + log_value(t, piece));
}

double LambdaSchedule::scaled_derivative(double t, double log_scale, double piece) const {
  require_finite_time(t);
  switch (kind_) {
    case LambdaKind::power:  // -p lambda0 (1+t)^{-p-1}
      return -p_ * std::exp(log_scale + std::log(lambda0_) - (p_ + 1.0) * std::log1p(t));
    case LambdaKind::log: {  // -lambda0 / ((e+t) log(e+t)^2)
      const double l = std::log(std::numbers::e + t);
      return -std::exp(log_scale + std::log(lambda0_) - l - 2.0 * std::log(l));
    }
    case LambdaKind::table: {
      double slope = 0.0;
      interpolate(knots_, t, &slope, piece);
      return scaled(slope, log_scale);
    }
  }
  return 0.0;
}

// ---- rho(t) -----------------------------------------------------------------------------------

RhoSchedule::RhoSchedule(RhoScheduleKind kind, double rho0, double a, double b, ScheduleTable knots)
    : kind_(kind), rho0_(rho0), a_(a), b_(b), knots_(std::move(knots)) {}

namespace {
void require_rho0_rate(double rho0, double rate) {
  if (!(rho0 > 0) || !std::isfinite(rho0)) throw DomainError(fmt::format("rho0 = {} must be > 0", rho0));
  if (!(rate >= 0) || !std::isfinite(rate)) throw DomainError(fmt::format("the rate {} must be >= 0", rate));
}
}  // namespace

RhoSchedule RhoSchedule::logarithmic(double rho0, double rate) {
  require_rho0_rate(rho0, rate);
  return RhoSchedule(RhoScheduleKind::logarithmic, rho0, rate, 0.0, {});
}

RhoSchedule RhoSchedule::power(double rho0, double rate) {
  require_rho0_rate(rho0, rate);
  return RhoSchedule(RhoScheduleKind::power, rho0, rate, 0.0, {});
}

RhoSchedule RhoSchedule::exponential(double rho0, double rate) {
  require_rho0_rate(rho0, rate);
  return RhoSchedule(RhoScheduleKind::exponential, rho0, rate, 0.0, {});
}

RhoSchedule RhoSchedule::staircase(double rho0, double factor, double phase) {
  require_rho0_rate(rho0, 0.0);
  if (!(factor > 0) || !std::isfinite(factor)) throw DomainError(fmt::format("the factor {} must be > 0", factor));
  if (!(phase > 0) || !std::isfinite(phase)) throw DomainError(fmt::format("the phase {} must be > 0", phase));
  return RhoSchedule(RhoScheduleKind::staircase, rho0, factor, phase, {});
}

RhoSchedule RhoSchedule::table(ScheduleTable knots) {
  if (knots.t.empty() || knots.t.size() != knots.value.size() || knots.t.front() != 0.0)
    throw DomainError("a rho table needs knots t_0 = 0 < t_1 < ... with one value each");
  for (double& v : knots.value) {
    if (!(v > 0)) throw DomainError(fmt::format("a rho table value {} must be > 0", v));
    v = std::log(v);
  }
  return RhoSchedule(RhoScheduleKind::table, 0.0, 0.0, 0.0, std::move(knots));
}

double RhoSchedule::next_discontinuity(double t) const {
  constexpr double none = std::numeric_limits<double>::infinity();
  switch (kind_) {
    case RhoScheduleKind::staircase: {
      if (a_ == 1.0) return none;  // a factor 1 does not jump
      const double next = (phase_index(t, b_) + 1) * b_;
      return next > t ? next : none;  // beyond 2^53 phases the jumps are not separable in t
    }
    case RhoScheduleKind::table: return next_knot(knots_, t);
    default: return none;
  }
}

double RhoSchedule::log_value(double t, double piece) const {
  require_finite_time(t);
  if (std::isnan(piece)) piece = t;
  switch (kind_) {
    case RhoScheduleKind::logarithmic:
      return std::log(rho0_ + a_ * std::log1p(t));
    case RhoScheduleKind::power:
      return std::log(rho0_) + a_ * std::log1p(t);
    case RhoScheduleKind::exponential:
      return std::log(rho0_) + a_ * t;
    case RhoScheduleKind::staircase:
      return std::log(rho0_) + phase_index(piece, b_) * std::log(a_);
    case RhoScheduleKind::table:
      return interpolate(knots_, t, nullptr, piece);
  }
  return 0.0;
}

double RhoSchedule::log_derivative(double t, double piece) const {
  require_finite_time(t);
  switch (kind_) {
    case RhoScheduleKind::logarithmic:
      return a_ / ((1.0 + t) * (rho0_ + a_ * std::log1p(t)));
    case RhoScheduleKind::power:
      return a_ / (1.0 + t);
    case RhoScheduleKind::exponential:
      return a_;
    case RhoScheduleKind::staircase:
      return 0.0;
    case RhoScheduleKind::table: {
      double slope = 0.0;
      interpolate(knots_, t, &slope, piece);
      return slope;
    }
  }
  return 0.0;
}

double RhoSchedule::value(double t, double piece) const {
  if (kind_ == RhoScheduleKind::logarithmic) {
    require_finite_time(t);
    return rho0_ + a_ * std::log1p(t);
  }
  return std::exp(log_value(t, piece));
}

double RhoSchedule::derivative(double t, double piece) const {
  if (kind_ == RhoScheduleKind::logarithmic) {
    require_finite_time(t);
    return a_ / (1.0 + t);
  }
  const double slope = log_derivative(t, piece);
  return slope == 0.0 ? 0.0 : value(t, piece) * slope;
}

}  // namespace gfsim
