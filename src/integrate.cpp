// The one integration loop (detail::integrate_loop): every method, odeint's steppers
// (src/stepper_odeint.cpp) and CVODE (src/cvode_solver.cpp), is a stepper behind src/stepper.hpp,
// and this loop owns what plain solvers lack or do differently: exact output times (dense output
// or clipped steps), counters, events, and the typed stop reasons (step limit, wall clock,
// interrupt, non-finite state, step-size collapse, stall, the caller's monitor).
#include "gfsim/integrate.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>

#include "discontinuity_stops.hpp"
#include "event_locator.hpp"
#include "gfsim/clock.hpp"
#include "gfsim/cvode_solver.hpp"
#include "stepper.hpp"

namespace gfsim {

namespace {
constexpr double kEps = std::numeric_limits<double>::epsilon();
// Accepted steps a stepper must take from a new time origin before the next move (Stepper::reanchor).
constexpr std::int64_t kStepsBetweenReanchors = 16;
}  // namespace

int method_order(Method m) {
  switch (m) {
    case Method::dopri5: return 5;
    case Method::rkf78: return 8;
    case Method::cash_karp: return 5;
    case Method::rosenbrock4: return 4;
    case Method::cvode: return 5;
    default: return 5;
  }
}

// The ring is left uninitialised and written in step order: a short run touches only the pages it
// uses (a first touch costs ~25 us on the benchmark VM, as much as 2.5 right-hand sides).
StallWindow::StallWindow(const SolverOptions& o, double tau0)
    : window_(std::size_t(std::max<std::int64_t>(o.stall_window, 1))), recent_(new double[window_]),
      stall_factor_(o.stall_factor), max_steps_(double(o.max_steps)) {
  recent_[0] = tau0;  // the clock after step 0, read back at step window_
  last_tau_ = tau0;
}

void StallWindow::restart(std::int64_t accepted, double tau) {
  first_ = accepted;
  recent_[std::size_t(accepted % std::int64_t(window_))] = tau;  // read back window_ steps later
  last_accepted_ = accepted;
  last_tau_ = tau;
}

bool StallWindow::stalled(std::int64_t accepted, double tau, double tau_end) {
  // Steps not reported here (a driver may skip the test after an event) keep the last clock seen,
  // so no slot is read before it is written.
  const std::int64_t w = std::int64_t(window_);
  for (std::int64_t k = std::max(last_accepted_ + 1, accepted - w); k < accepted; ++k)
    recent_[std::size_t(k % w)] = last_tau_;
  last_accepted_ = std::max(last_accepted_, accepted);
  last_tau_ = tau;
  double& oldest = recent_[std::size_t(accepted % w)];
  bool slow = false;
  if (accepted - first_ >= w) {
    const double pace = (tau - oldest) / double(w);
    slow = pace <= 0 || (tau_end - tau) / pace > stall_factor_ * max_steps_;
    // Steps growing in proportion to tau are progress too: the flow's time scales grow with t (in
    // the t clock, and in the log clock while t < 1), so a fixed fraction of tau per step is the
    // normal pace early on (a smoothed kink crossed at t ~ 1e-4 needs steps of ~1e-7), finishing in
    // log(tau_end / tau) / (log-advance per step) steps. That projection is optimistic, so it must
    // fit in max_steps itself; it uses the window's newer half (the first window starts at tau = 0).
    // A state chattering at a jump of the field (kinks = "ignore") advances by ~1e-6 of tau per
    // step, a smoothed kink's crossing by 1e-4..1e-3 (docs/relu_large_smooth.md).
    const std::int64_t half = w / 2;
    const double mid = recent_[std::size_t((accepted - half) % w)];
    if (slow && pace > 0 && half > 0 && mid > 0 && tau > mid)
      slow = std::log(tau_end / tau) / (std::log(tau / mid) / double(half)) > max_steps_;
  }
  oldest = tau;
  return slow;
}

bool has_dense_output(Method m) {
  return m == Method::dopri5 || m == Method::rosenbrock4 || m == Method::cvode;
}

std::optional<std::pair<Status, std::string>> limit_reached(const SolverOptions& o, const SolverCounters& c,
                                                            double t, double t_end, double elapsed_seconds) {
  if (c.steps >= o.max_steps)
    return std::make_pair(Status::max_steps,
                          fmt::format("stopped at t = {:.6g}: the limit of {} step attempts was reached before "
                                      "t_end = {:.6g}", t, o.max_steps, t_end));
  if (o.max_wall_seconds > 0 && elapsed_seconds > o.max_wall_seconds)
    return std::make_pair(Status::wall_clock, fmt::format("stopped at t = {:.6g}: the wall-clock limit of {} s "
                                                          "was exceeded", t, o.max_wall_seconds));
  return std::nullopt;
}

std::vector<double> log_spaced_times(double t_first, double t_end, int samples_per_decade) {
  std::vector<double> times{0.0};
  const double spd = samples_per_decade;
  for (long j = long(std::ceil(spd * std::log10(t_first) - 1e-9));; ++j) {
    const double t = std::pow(10.0, double(j) / spd);
    if (t >= t_end * (1 - 1e-12)) break;
    times.push_back(t);
  }
  times.push_back(t_end);
  return times;
}

namespace detail {

SolveResult integrate_loop(const OdeProblem& problem, const Vec& y0, const std::vector<double>& times,
                           const SolverOptions& o, const SampleObserver& observe, const StepMonitor& monitor,
                           const StepperFactory& make_stepper) {
  using steady = std::chrono::steady_clock;
  const auto start = steady::now();
  if (times.empty()) throw std::invalid_argument("integrate: need at least the initial time");
  SolveResult r;
  r.clock = to_string(o.clock);
  r.method = to_string(o.method);
  auto& c = r.counters;
  const Clock clock{o.clock};
  std::vector<double> taus(times.size());
  for (std::size_t i = 0; i < times.size(); ++i) taus[i] = clock.tau(times[i]);
  const double tau_end = taus.back();

  Vec x = y0, sample, y_before;
  double tau = taus.front();
  double last_good_t = times.front();
  auto finish = [&](Status s, std::string msg) {
    r.status = s;
    r.message = std::move(msg);
    r.t_final = last_good_t;
    r.y_final = x;
    c.wall_seconds = std::chrono::duration<double>(steady::now() - start).count();
    return r;
  };
  if (times.size() == 1) {  // an empty interval: a resume of a run killed after its last sample (run_resume.cpp)
    observe(0, times.front(), x);
    return finish(Status::success, fmt::format("reached t_end = {:.6g} (nothing left to integrate)", times.front()));
  }
  // Stop times at the field's known discontinuities (integrate.hpp, Discontinuities); this enters
  // the first piece, before the stepper's first evaluation.
  DiscontinuityStops stops(problem.discontinuities, clock, times.front(), times.back(), x);
  if (stops.failure()) return finish(Status::step_collapse, *stops.failure());
  std::unique_ptr<Stepper> stepper;
  try {
    stepper = make_stepper(c, x, tau, tau_end);
  } catch (const StepperSetupError& e) {
    return finish(Status::solver_failure, e.what());
  }
  // Event-driven integration (ReLU kinks): the rules of event_locator.hpp.
  EventLocator events(problem.events, clock, o.rtol, o.stop_requested);
  // The field found undefined at or past this state (OdeProblem::field_failure; an earlier,
  // recovered failure does not count).
  auto field_failed_ahead = [&]() -> std::optional<FieldFailure> {
    if (!problem.field_failure) return std::nullopt;
    FieldFailure f = problem.field_failure();
    if (f.reason.empty() || !(f.t >= clock.time(tau))) return std::nullopt;
    return f;
  };
  // A non-finite field the problem can name (a sliding set without an equivalent control): a stop
  // at a kink with that reason, not a bare non_finite.
  auto non_finite = [&](std::string what) {
    if (auto f = field_failed_ahead()) return finish(Status::stalled_at_kink, std::move(f->reason));
    return finish(Status::non_finite, std::move(what));
  };
  auto stalled = [&](const std::string& what) {
    if (auto cause = stepper->non_finite_cause(what, clock.time(tau))) return non_finite(*cause);
    bool at_kink = false;
    std::string why = problem.explain_stall ? problem.explain_stall(x, at_kink) : std::string();
    // Steps that collapse right after an event: the discontinuity's doing (an accumulation of
    // events), named by the event's surface when the problem cannot explain the stall itself.
    if (!at_kink && events.active())
      if (auto at_event = events.collapse_at_event(tau))
        return finish(Status::stalled_at_kink, fmt::format("{} at t = {:.6g} ({} clock step {:.3g}): {}", what,
                                                           clock.time(tau), to_string(o.clock), stepper->step_size(),
                                                           *at_event));
    const Status s = at_kink ? Status::stalled_at_kink : Status::step_collapse;
    return finish(s, fmt::format("{} at t = {:.6g} ({} clock step {:.3g}){}{}", what, clock.time(tau),
                                 to_string(o.clock), stepper->step_size(), why.empty() ? "" : ": ", why));
  };
  auto stop_requested = [&] { return o.stop_requested && o.stop_requested->load(std::memory_order_relaxed); };
  auto interrupted = [&] {
    return finish(Status::interrupted, fmt::format("interrupted at t = {:.6g}", clock.time(tau)));
  };

  StallWindow stall(o, tau);
  // Every stop: enter the piece beyond it and restart the stepper there (after the samples in the
  // step that ended on it, which the old interpolant serves).
  auto enter_piece = [&]() -> std::optional<std::pair<Status, std::string>> {
    if (auto failed = stops.enter(tau, x)) return std::make_pair(Status::step_collapse, std::move(*failed));
    return std::nullopt;
  };
  auto restart_at_stop = [&]() -> std::optional<std::pair<Status, std::string>> {
    ++c.discontinuities;
    if (auto failed = stepper->restart(x, tau)) return std::make_pair(Status::solver_failure, std::move(*failed));
    stall.restart(c.accepted, tau);
    return std::nullopt;
  };
  observe(0, times.front(), x);
  std::size_t next = 1;
  if (events.active() && !stepper->has_dense_output())
    throw std::invalid_argument(fmt::format("event-driven integration needs dense output; method {} has none",
                                            to_string(o.method)));

  if (o.fixed_step > 0) {
    // Fixed steps, clipped to land exactly on each output time.
    while (next < taus.size()) {
      if (stop_requested()) return interrupted();
      if (c.steps >= o.max_steps)
        return finish(Status::max_steps, fmt::format("stopped at t = {:.6g}: the limit of {} steps was reached",
                                                     clock.time(tau), o.max_steps));
      const double target = std::min(taus[next], stops.next_tau());
      const double h = std::min(o.fixed_step, target - tau);
      stepper->fixed_step(x, tau, h);
      ++c.steps;
      ++c.accepted;
      tau = (target - (tau + h) <= 8 * kEps * std::max(std::abs(tau), 1.0)) ? target : tau + h;
      if (!x.allFinite()) return finish(Status::non_finite, "the state became non-finite (fixed steps)");
      last_good_t = clock.time(tau);
      const bool at_stop = stops.reached(tau);
      if (at_stop)
        if (auto failed = enter_piece()) return finish(failed->first, std::move(failed->second));
      if (tau == taus[next]) observe(c.accepted, times[next++], x);
      if (at_stop && next < taus.size())
        if (auto failed = restart_at_stop()) return finish(failed->first, std::move(failed->second));
    }
    last_good_t = times.back();
    return finish(Status::success, fmt::format("reached t_end = {:.6g} with fixed steps", times.back()));
  }

  const StepInterpolant interpolate = [&](double s, Vec& out) { stepper->interpolate(s, out); };
  bool at_event = false;  // no step accepted since the last event
  bool rejoined = false;  // that event was switched jointly after the stepper failed to leave it
  // A field undefined just past this state, with no event here (a sliding set whose control the
  // problem no longer finds: FieldFailure at or after t): switch the discrete state jointly at this
  // state (EventLocator::rejoin without an event), once per state, and go on if it changed.
  // nullopt: nothing to do; an empty optional inside: changed, restarted; else the run's end.
  double field_rejoined_tau = std::numeric_limits<double>::quiet_NaN();
  auto rejoin_where_the_field_failed = [&]() -> std::optional<std::optional<SolveResult>> {
    if (tau == field_rejoined_tau || !field_failed_ahead()) return std::nullopt;
    field_rejoined_tau = tau;
    auto [how, why] = events.rejoin(tau, x, c, /*field_failed_here=*/true);
    if (how == EventLocator::Rejoin::failed)
      return std::optional<SolveResult>(finish(Status::stalled_at_kink, std::move(why)));
    if (how != EventLocator::Rejoin::changed) return std::nullopt;
    if (auto failed = stepper->restart(x, tau))
      return std::optional<SolveResult>(finish(Status::solver_failure, std::move(*failed)));
    stall.restart(c.accepted, tau);
    return std::optional<SolveResult>();
  };
  // Steps that collapsed against the round-off of the clock far from the stepper's time origin:
  // move the origin to this state and go on (Stepper::reanchor). A collapse again within a few
  // steps of the last move is a collapse of the step itself.
  std::int64_t reanchored_at = -kStepsBetweenReanchors;
  auto reanchor = [&] {
    if (c.accepted - reanchored_at < kStepsBetweenReanchors) return false;
    // Not where the field itself failed (non-finite values; a sliding set without a control): the
    // steps collapse there because nothing lies beyond, and the stop names why.
    if (stepper->non_finite_cause("", clock.time(tau)) || field_failed_ahead()) return false;
    if (!stepper->reanchor(x, tau)) return false;
    reanchored_at = c.accepted;
    ++c.reanchors;
    return true;
  };
  while (next < taus.size()) {
    if (stop_requested()) return interrupted();
    if (auto limit = limit_reached(o, c, clock.time(tau), times.back(),
                                   std::chrono::duration<double>(steady::now() - start).count()))
      return finish(limit->first, std::move(limit->second));
    const double target = std::min(stepper->has_dense_output() ? tau_end : taus[next], stops.next_tau());
    const double tau_before = tau;
    y_before = x;  // the last finite state, restored if the step goes non-finite
    Attempt step = stepper->attempt(x, tau, target);
    const bool cannot_leave = step.kind == Attempt::collapsed || step.kind == Attempt::non_finite;
    if (cannot_leave && !at_event && !rejoined) {
      if (auto outcome = rejoin_where_the_field_failed()) {
        if (*outcome) return std::move(**outcome);
        continue;
      }
    }
    if (cannot_leave && at_event && !rejoined) {
      // The stepper cannot leave the event it restarted at: switch that event's surfaces jointly
      // (EventLocator::rejoin), once, before giving up.
      rejoined = true;
      auto [how, why] = events.rejoin(tau, x, c);
      if (how == EventLocator::Rejoin::failed) return finish(Status::stalled_at_kink, std::move(why));
      if (how == EventLocator::Rejoin::changed) {
        if (auto failed = stepper->restart(x, tau)) return finish(Status::solver_failure, std::move(*failed));
        stall.restart(c.accepted, tau);
        continue;
      }
    }
    switch (step.kind) {
      case Attempt::accepted: break;
      case Attempt::rejected: continue;
      case Attempt::collapsed:
        if (reanchor()) continue;
        return stalled(step.message);
      case Attempt::non_finite: return non_finite(std::move(step.message));
      case Attempt::failed: return finish(Status::solver_failure, std::move(step.message));
    }
    at_event = false;
    rejoined = false;
    if (!x.allFinite()) {
      tau = tau_before;
      x = y_before;
      return finish(Status::non_finite,
                    fmt::format("the state became non-finite (NaN or Inf) in the step from t = {:.6g}",
                                clock.time(tau_before)));
    }
    if (events.active() && events.crossed(tau_before, y_before, tau, x, &interpolate)) {
      auto stop = events.stop_at_event(tau_before, y_before, tau, x, interpolate, taus, times, next, observe, c);
      last_good_t = clock.time(tau);
      if (stop) return finish(stop->first, std::move(stop->second));
      if (next >= taus.size()) break;  // the event is at t_end
      // An event at the end of a step that ended on a stop: the piece beyond it too.
      if (stops.reached(tau))
        if (auto failed = enter_piece()) return finish(failed->first, std::move(failed->second));
      // Restart the stepper from the event: the right-hand side changed discontinuously.
      if (auto failed = stepper->restart(x, tau)) return finish(Status::solver_failure, std::move(*failed));
      stall.restart(c.accepted, tau);
      at_event = true;
      continue;
    }
    last_good_t = clock.time(tau);
    // On a stop: a sample at the discontinuity itself sees the piece beyond it (right-continuous).
    const bool at_stop = stops.reached(tau);
    if (at_stop)
      if (auto failed = enter_piece()) return finish(failed->first, std::move(failed->second));
    while (next < taus.size() && taus[next] <= tau) {
      if (taus[next] == tau) {
        observe(c.accepted, times[next], x);
      } else {
        stepper->interpolate(taus[next], sample);
        observe(c.accepted, times[next], sample);
      }
      ++next;
    }
    if (monitor)
      if (const auto stop = monitor(clock.time(tau), x, c))
        return finish(*stop, fmt::format("{} at t = {:.6g}", status_name(*stop), clock.time(tau)));
    if (next >= taus.size()) break;
    if (at_stop) {  // the step was cut to land on the stop: its size says nothing of a collapse
      if (auto failed = restart_at_stop()) return finish(failed->first, std::move(failed->second));
      continue;
    }
    if (stepper->step_collapsed(tau)) {
      if (auto outcome = rejoin_where_the_field_failed()) {
        if (*outcome) return std::move(**outcome);
        continue;
      }
      if (reanchor()) continue;
      return stalled("step size collapsed");
    }
    // Stall: at the pace of the last window, finishing would take far more than max_steps.
    if (stall.stalled(c.accepted, tau, tau_end)) return stalled("integration stalled");
  }
  last_good_t = times.back();
  return finish(Status::success, fmt::format("reached t_end = {:.6g}{}", times.back(), stepper->success_note()));
}

}  // namespace detail

SolveResult integrate(const OdeProblem& problem, const Vec& y0, const std::vector<double>& times,
                      const SolverOptions& o, const SampleObserver& observe, const StepMonitor& monitor) {
  if (o.method == Method::cvode) return integrate_cvode(problem, y0, times, o, observe, monitor);
  return detail::integrate_loop(problem, y0, times, o, observe, monitor,
                                [&](SolverCounters& c, const Vec& x0, double tau0, double tau_end) {
                                  return detail::make_odeint_stepper(problem, o, c, x0, tau0, tau_end);
                                });
}

}  // namespace gfsim
