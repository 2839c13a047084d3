#pragma once
// A time stepper as seen by the one integration loop (detail::integrate_loop, src/integrate.cpp):
// try a step, interpolate within the last accepted step (dense output), restart after an event.
// The loop owns everything else: limits, stall detection, events, output times, the stop reason.
// Adapters: src/stepper_odeint.cpp (the only file that includes Boost.Odeint; compiled as C++17)
// and src/cvode_solver.cpp (the only file that includes SUNDIALS). Private to src/; C++17-clean.
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gfsim/clock.hpp"
#include "gfsim/integrate.hpp"

namespace gfsim::detail {

/// The outcome of one step attempt.
struct Attempt {
  enum Kind {
    accepted,    ///< x and tau advanced; interpolate() covers the step
    rejected,    ///< x and tau unchanged; try again (the stepper chose a smaller step)
    collapsed,   ///< the step size fell below round-off: `message` says what collapsed
    non_finite,  ///< the field or the state became NaN/Inf: `message` is the user message
    failed,      ///< the solver reported an error: `message` is the user message
  };
  Kind kind = accepted;
  std::string message;
};

/// A stepper could not be set up (an error of the underlying library): Status::solver_failure.
struct StepperSetupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Stepper {
 public:
  virtual ~Stepper() = default;
  /// One step attempt from (tau, x) ending at or before `target` (exactly on it when it reaches
  /// it). Updates the step counters (steps, accepted, rejected and the evaluations).
  virtual Attempt attempt(Vec& x, double& tau, double target) = 0;
  /// Fixed-step mode: one step of exactly h from (tau, x) without error control.
  virtual void fixed_step(Vec& x, double tau, double h) = 0;
  virtual bool has_dense_output() const = 0;
  /// The state at clock value tau within the last accepted step (dense output).
  virtual void interpolate(double tau, Vec& out) = 0;
  /// The field jumped at an event at (tau, x): forget the step history and start from there.
  /// Returns the user message if the restart failed.
  virtual std::optional<std::string> restart(const Vec& x, double tau) = 0;
  /// The current step size in the clock variable (for stop messages).
  virtual double step_size() const = 0;
  /// After an accepted step ending at tau: true if its size is below the round-off of tau.
  virtual bool step_collapsed(double /*tau*/) const { return false; }
  /// The steps collapsed against the round-off of the stepper's time variable, far from its
  /// origin: restart at (tau, x) with the time origin there (no event: the field did not change),
  /// so that the steps are measured against the time since tau. False if the stepper has no local
  /// origin or it is already at tau. A fast transient at late t in the log clock needs this: a
  /// smoothed kink crossed at t ~ 1e8 takes steps of ~1e-14 in log t, a few ulps of s = 19.
  virtual bool reanchor(const Vec& /*x*/, double /*tau*/) { return false; }
  /// A collapse of the step size (`what`) caused by non-finite field values: the user message.
  virtual std::optional<std::string> non_finite_cause(const std::string& /*what*/, double /*t*/) const {
    return std::nullopt;
  }
  /// Appended to the success message (e.g. " (cvode BDF, dense exact Jacobian)").
  virtual std::string success_note() const { return {}; }
};

/// Builds the stepper of one solve at (tau0, y0); tau_end is the last clock value. The stepper
/// counts its work in `counters`.
using StepperFactory = std::function<std::unique_ptr<Stepper>(SolverCounters& counters, const Vec& y0,
                                                              double tau0, double tau_end)>;

/// dopri5, rkf78, cash_karp, rosenbrock4 (src/stepper_odeint.cpp).
std::unique_ptr<Stepper> make_odeint_stepper(const OdeProblem& problem, const SolverOptions& options,
                                             SolverCounters& counters, const Vec& y0, double tau0, double tau_end);

/// The integration loop shared by every method: outputs exactly at `times` (by dense output, or
/// steps clipped to them), events, limits, stall detection and the typed stop reason.
SolveResult integrate_loop(const OdeProblem& problem, const Vec& y0, const std::vector<double>& times,
                           const SolverOptions& options, const SampleObserver& observe, const StepMonitor& monitor,
                           const StepperFactory& make_stepper);

}  // namespace gfsim::detail
