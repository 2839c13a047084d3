#pragma once
// One solve entry point with orthogonal options (method, tolerances, clock, limits, what to save).
// The problem is dy/dtau = e^{log_scale} F(t, y) given as callables of (TimePoint, y); the clock
// (clock.hpp) maps its variable tau to the TimePoint {t, log_scale}:
//   clock t:    integrate in t,              log_scale = 0
//   clock log:  integrate in s = log(1+t),   dy/ds = (1+t) F(t, y) = e^s F(t, y), log_scale = s
// so F never sees a huge factor: it folds e^s into its loss weights (equations.md section 5).
// One loop (detail::integrate_loop, src/integrate.cpp) drives every solver through the stepper
// interface of src/stepper.hpp; Boost.Odeint lives in src/stepper_odeint.cpp only, SUNDIALS in
// src/cvode_solver.cpp only.
//
//   OdeProblem p{.size = flow.state_size(), .rhs = rhs, .jacobian = jacobian};
//   SolverOptions o{.method = Method::rosenbrock4, .clock = ClockKind::log, .rtol = 1e-10};
//   auto result = integrate(p, y0, times, o, [&](std::int64_t step, double t, const Vec& y) {...});
//   if (result.status != Status::success) std::cerr << result.message;
#include <atomic>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "gfsim/clock.hpp"
#include "gfsim/enums.hpp"
#include "gfsim/result.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// Discrete-state events of a piecewise-smooth flow (ReLU kinks). Each event function g_j has
/// g_j > 0 on the side the current discrete state assumes; a sign change ends the smooth piece.
struct EventHooks {
  // Every hook gets the TimePoint (physical t, clock factor) of the state it is given: the sliding
  // field, and so the sliding masks and their event functions, depend on t for time-dependent fields.
  /// g = all event functions at y (size fixed)
  std::function<void(TimePoint tp, const Vec& y, Vec& g)> values;
  /// Optional: g_s = g_{js[s]} at y, equal to values() up to rounding but cheaper (root searches
  /// over the few surfaces crossed in a step).
  std::function<void(TimePoint tp, const Vec& y, const std::vector<Index>& js, Vec& g)> values_of;
  /// Optional: values() where cheaper ones will do for the surfaces off sliding (NaN for the rest):
  /// the grazing test between steps (EventLocator::grazing).
  std::function<void(TimePoint tp, const Vec& y, Vec& g)> surface_values;
  /// Optional: r_j >= |computed g_j - exact g_j| at y (0 where no bound is known). A negative g_j
  /// with |g_j| <= r_j carries no sign information: not a crossing (docs/events.md). Evaluated only
  /// after a step that ends with some g_j < 0.
  std::function<void(TimePoint tp, const Vec& y, Vec& r)> round_off;
  /// Switch the discrete state for event j at state y (the trajectory has crossed g_j = 0).
  std::function<void(TimePoint tp, const Vec& y, Index j)> cross;
  /// Optional: the field on both sides of surface j points into it (an event right at the restart
  /// after crossing j): enter Filippov sliding on it. Returns false if unsupported (run stops).
  std::function<bool(TimePoint tp, const Vec& y, Index j)> slide;
  /// Optional: the surfaces coincident with surface j at y (one surface met at several places:
  /// their functions vanish together and cross in the same direction). A crossing of j switches
  /// them at the same instant (each reported as a crossing and handled as j is), whether or not
  /// their own functions, which may be far smaller, showed the crossing within the step.
  std::function<std::vector<Index>(TimePoint tp, const Vec& y, Index j)> coincident;
  /// Optional: a one-line description of event j ("layer 1 unit 3 point 17").
  std::function<std::string(Index j)> describe;
  /// Optional: switch the discrete state for the surfaces `js` hit at one instant jointly with the
  /// ones coupled to them (a complementarity problem over the sliding set, docs/events.md),
  /// reporting the events itself. `cluster` = events so far within one point (EventLocator).
  /// nullopt: handle them one at a time by cross/slide instead.
  struct Resolution {
    Index crossings = 0, entries = 0, exits = 0;
    bool masks_moved = false;  ///< sliding entries that keep sliding got another control
    std::string failure;  ///< non-empty: no consistent state found (the run stops stalled_at_kink)
  };
  std::function<std::optional<Resolution>(TimePoint tp, const Vec& y, const std::vector<Index>& js, int cluster)>
      resolve;
};

/// Known discontinuities of the field in physical time (a staircase rho(t) jumps; a table's knots
/// break the slope), DifferentialEquations.jl's d_discontinuities: the integration loop steps exactly
/// onto each one (the step ends there, in either clock), restarts its stepper there (no step and no
/// error estimate straddles it) and counts the restart in SolverCounters::discontinuities. Without
/// it, step-size control has to creep across a jump: h |F+ - F-| <~ atol, and the run ends in
/// step_collapse once |F| is large (docs/rho_control.md, "Where it ends").
struct Discontinuities {
  /// The first discontinuity strictly after t, +inf if none.
  std::function<double(double t)> next_after;
  /// The integration continues on the smooth piece of the field that starts at t (the initial time
  /// or a discontinuity just reached): until the next call the field is that piece's formula,
  /// extended smoothly past the piece's ends, so the stages of the step that ends on the next
  /// discontinuity never see the piece beyond it (their clock value maps back to t only up to
  /// round-off). May correct y (a state component equal to t is set to t exactly). t = NaN: the
  /// integration is over; the field is again evaluated piece by piece from its arguments.
  std::function<void(double t, Vec& y)> enter;
};

/// Where and why a problem's field was last undefined (OdeProblem::field_failure).
struct FieldFailure {
  double t = -std::numeric_limits<double>::infinity();
  std::string reason;  ///< empty: never
};

struct OdeProblem {
  Index size = 0;
  /// dy = e^{tp.log_scale} F(tp.t, y)
  std::function<void(TimePoint tp, const Vec& y, Vec& dy)> rhs;
  /// J = d rhs / dy (dense); required by rosenbrock4
  std::function<void(TimePoint tp, const Vec& y, Mat& J)> jacobian;
  /// Jv = (d rhs / dy) v, exact; used by matrix-free stiff solvers (CVODE + Krylov)
  std::function<void(TimePoint tp, const Vec& y, const Vec& v, Vec& Jv)> jvp;
  /// False when F depends on t explicitly. The stiff steppers then need dF/dt (rosenbrock4 throws
  /// without time_derivative); the others only evaluate rhs.
  bool autonomous = true;
  /// Optional: dFt = e^{tp.log_scale} dF/dt (t, y), the partial derivative in physical time, scaled
  /// as rhs. The clock's own factor (d e^{log_scale}/dtau) is added by the stepper.
  std::function<void(TimePoint tp, const Vec& y, Vec& dFt)> time_derivative;
  /// Optional: explains a stall (e.g. "pre-activation of layer 1 unit 3 at point 17 is 2e-12").
  /// Returns an empty string when the stall has no known cause; `at_kink` says a kink is the cause.
  std::function<std::string(const Vec& y, bool& at_kink)> explain_stall;
  /// Optional: the last time the field was found undefined (it returned NaN there, so the steppers
  /// reject the step) and why, e.g. a sliding set without an equivalent control. A run that cannot
  /// go on past such a point ends with Status::stalled_at_kink and this reason instead of a bare
  /// non_finite (if t is not before the last accepted state: not an earlier, recovered failure).
  std::function<FieldFailure()> field_failure;
  /// Optional: event-driven integration (needs a method with dense output: dopri5, rosenbrock4, cvode).
  EventHooks events;
  /// Optional: stop times at the field's known discontinuities (any method, fixed steps too).
  Discontinuities discontinuities;
};

struct SolverOptions {
  Method method = Method::dopri5;   ///< resolved: not auto_select
  ClockKind clock = ClockKind::log; ///< resolved: not auto_select
  double rtol = 1e-8;
  double atol = 1e-10;
  std::int64_t max_steps = 1000000;  ///< step attempts
  double max_wall_seconds = 0.0;     ///< 0 = none
  double initial_step = 0.0;         ///< in the clock variable; 0 = automatic
  /// > 0: no error control, steps of exactly this size in the clock variable (clipped to land on
  /// output times). For convergence-order studies; rtol/atol are then unused.
  double fixed_step = 0.0;
  /// Stall: the last `stall_window` accepted steps advanced the clock so little that finishing at
  /// that rate would take more than `stall_factor` * max_steps steps (and more than max_steps at
  /// that rate in the log of the clock: StallWindow).
  std::int64_t stall_window = 2000;
  double stall_factor = 100.0;
  /// Optional: set asynchronously (a SIGINT/SIGTERM handler) to stop with Status::interrupted.
  /// Read at every step attempt and inside event handling.
  const std::atomic<bool>* stop_requested = nullptr;
};

/// Called at every requested time (exactly; by dense output where the method has one).
using SampleObserver = std::function<void(std::int64_t step, double t, const Vec& y)>;
/// Called after every accepted step: a status to stop with (e.g. Status::converged), or nullopt to go on.
using StepMonitor = std::function<std::optional<Status>(double t, const Vec& y, const SolverCounters& c)>;

/// Integrate from times.front() (the initial time, y0) through every time in `times` (physical
/// time, strictly increasing). Never throws for numerical trouble: the status says what happened.
SolveResult integrate(const OdeProblem& problem, const Vec& y0, const std::vector<double>& times,
                      const SolverOptions& options, const SampleObserver& observe,
                      const StepMonitor& monitor = {});

/// The step-count and wall-clock limits checked by the integration loop: the status and message
/// to stop with, or nothing to go on. `t` is the physical time reached.
std::optional<std::pair<Status, std::string>> limit_reached(const SolverOptions& options, const SolverCounters& c,
                                                            double t, double t_end, double elapsed_seconds);

/// The stall test of the integration loop: after each accepted step, at the pace of the last
/// `stall_window` accepted steps, finishing would take more than `stall_factor` * max_steps steps,
/// and, at the pace in log tau of the window's newer half (steps growing with tau), more than
/// max_steps.
class StallWindow {
 public:
  StallWindow(const SolverOptions& options, double tau0);
  /// Record the clock value after accepted step number `accepted` (1-based); true if stalled.
  bool stalled(std::int64_t accepted, double tau, double tau_end);
  /// An event restarted the stepper after `accepted` accepted steps, at clock value tau: the pace
  /// is measured afresh from there. An event-dense phase advances by its events, each costing a
  /// stepper restart (CVODE climbs back from order 1: ~8 steps), not by collapsing steps; events
  /// repeated at one point are bounded by the zero-length-restart guard instead.
  void restart(std::int64_t accepted, double tau);

 private:
  std::size_t window_;
  std::unique_ptr<double[]> recent_;  ///< ring of the clock after the last window_ accepted steps
  std::int64_t first_ = 0;            ///< accepted steps before the window's start
  double stall_factor_, max_steps_;
  std::int64_t last_accepted_ = 0;
  double last_tau_ = 0;
};

/// Log-spaced output times: t0 = 0, then 10^(j/samples_per_decade) for t_first <= t < t_end, then t_end.
std::vector<double> log_spaced_times(double t_first, double t_end, int samples_per_decade);

/// Order of the method's error estimate pair (the higher), for convergence tests.
int method_order(Method m);

/// True if the method interpolates within a step (needed for event location): dopri5,
/// rosenbrock4, cvode. The others land on output times by clipping their steps.
bool has_dense_output(Method m);

}  // namespace gfsim
