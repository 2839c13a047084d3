#pragma once
// The stop times of the integration loop at the field's known discontinuities (integrate.hpp,
// Discontinuities; DifferentialEquations.jl's d_discontinuities / tstops). Private to
// src/integrate.cpp. The discontinuities are given in physical time and enumerated lazily (a
// staircase has one per phase, without end); each is mapped to the clock once. A stop is
// identified by its exact clock value: the steppers end a step exactly on their target.
//
//   DiscontinuityStops stops(problem.discontinuities, clock, t0, t_end, x);  // enters the first piece
//   target = std::min(target, stops.next_tau());
//   ... step ...
//   if (stops.reached(tau)) { stops.enter(tau, x); stepper->restart(x, tau); }
#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "gfsim/clock.hpp"
#include "gfsim/integrate.hpp"

namespace gfsim::detail {

class DiscontinuityStops {
 public:
  DiscontinuityStops(const Discontinuities& d, Clock clock, double t0, double t_end, Vec& y0)
      : d_(d), clock_(clock), t_end_(t_end) {
    failure_ = advance(t0, clock.tau(t0), y0);
  }
  /// The piece is left pinned only while integrating (integrate.hpp): released at every exit.
  ~DiscontinuityStops() {
    if (!d_.enter) return;
    Vec none;
    d_.enter(std::numeric_limits<double>::quiet_NaN(), none);
  }
  DiscontinuityStops(const DiscontinuityStops&) = delete;
  DiscontinuityStops& operator=(const DiscontinuityStops&) = delete;

  /// The clock value of the next stop; +inf when none lies before t_end (a discontinuity at t_end
  /// itself needs no restart).
  double next_tau() const { return next_tau_; }
  /// The step ended on the next stop.
  bool reached(double tau) const { return tau == next_tau_; }

  /// At the stop just reached (tau == next_tau()): enter the piece beyond it and find the next
  /// stop. Discontinuities that the clock cannot separate from this one (the log clock at huge t)
  /// are passed together, entering the last piece. A message when too many fall within one
  /// clock value to enumerate: the field cannot be resolved there.
  std::optional<std::string> enter(double tau, Vec& y) { return advance(next_t_, tau, y); }
  /// Set up could not enter the first piece (see enter): the message.
  const std::optional<std::string>& failure() const { return failure_; }

 private:
  static constexpr int kMaxUnresolved = 1000;
  // Enter the piece that starts at t (clock value tau) or at the last discontinuity after it that
  // the clock cannot separate from tau.
  std::optional<std::string> advance(double t, double tau, Vec& y) {
    double after = d_.next_after ? d_.next_after(t) : std::numeric_limits<double>::infinity();
    for (int passed = 0; after < t_end_ && clock_.tau(after) <= tau; ++passed) {
      if (passed == kMaxUnresolved)
        return fmt::format("more than {} discontinuities of the field within the clock's resolution at t = {:.6g}",
                           kMaxUnresolved, t);
      t = after;
      after = d_.next_after(t);
    }
    if (d_.enter) d_.enter(t, y);
    set_next(after);
    return std::nullopt;
  }
  void set_next(double t) {
    next_t_ = t;
    next_tau_ = t < t_end_ ? clock_.tau(t) : std::numeric_limits<double>::infinity();
  }
  const Discontinuities& d_;
  Clock clock_;
  double t_end_;
  double next_t_ = std::numeric_limits<double>::infinity();
  double next_tau_ = std::numeric_limits<double>::infinity();
  std::optional<std::string> failure_;
};

}  // namespace gfsim::detail
