// The only translation unit that includes Boost.Odeint. It drives odeint's controlled steppers
// one attempt at a time so that gfsim, not odeint, owns the loop: exact output times by dense
// output, counters, and the stop conditions (step limit, wall clock, non-finite state, step-size
// collapse, stall) that plain odeint lacks (it accepts a NaN error estimate and loops forever).
// Compiled as C++17 (see CMakeLists.txt): Boost 1.74's uBLAS, which rosenbrock4 needs, uses
// std::allocator::construct, removed in C++20.
#include "gfsim/integrate.hpp"
#include "gfsim/cvode_solver.hpp"
#include "gfsim/clock.hpp"
#include "event_locator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/numeric/odeint.hpp>
#include <boost/numeric/odeint/external/eigen/eigen.hpp>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>

namespace gfsim {

namespace odeint = boost::numeric::odeint;

namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();
// A step whose result is not finite (overflow in a too-large trial step) is rejected and retried
// this much smaller; plain odeint would accept it when the error estimate is NaN.
constexpr double kNonFiniteShrink = 0.1;

// The ODE in the clock variable, with counters.
struct ClockedSystem {
  const OdeProblem* problem;
  Clock clock;
  SolverCounters* counters;
  void operator()(const Vec& y, Vec& dy, double tau) const {
    ++counters->rhs_evals;
    problem->rhs(y, clock.log_scale(tau), dy);
  }
};

// One attempt at a step of size dt from (x, tau). On success x and tau advance and dt holds the
// next suggested step; on failure dt is reduced. interpolate() is valid after a success.
class StepperAdapter {
 public:
  virtual ~StepperAdapter() = default;
  virtual bool try_step(Vec& x, double& tau, double& dt) = 0;
  /// One step of exactly dt without error control.
  virtual void fixed_step(Vec& x, double tau, double dt) = 0;
  virtual bool has_dense_output() const = 0;
  virtual void interpolate(double tau, Vec& out) = 0;
  virtual const char* name() const = 0;
  /// True when the last rejected attempt produced a non-finite trial state.
  virtual bool last_failure_non_finite() const { return false; }
};

using Dopri5 = odeint::runge_kutta_dopri5<Vec, double, Vec, double, odeint::vector_space_algebra>;
using Rkf78 = odeint::runge_kutta_fehlberg78<Vec, double, Vec, double, odeint::vector_space_algebra>;
using CashKarp = odeint::runge_kutta_cash_karp54<Vec, double, Vec, double, odeint::vector_space_algebra>;

class Dopri5Adapter final : public StepperAdapter {
 public:
  Dopri5Adapter(ClockedSystem sys, double atol, double rtol, const Vec& x0, double tau0)
      : sys_(sys), controlled_(odeint::make_controlled(atol, rtol, Dopri5())) {
    dxdt_.resize(x0.size());
    sys_(x0, dxdt_, tau0);
  }
  bool try_step(Vec& x, double& tau, double& dt) override {
    const double tau_before = tau;
    if (controlled_.try_step(sys_, x, dxdt_, tau, x_new_, dxdt_new_, dt) != odeint::success) return false;
    if (!x_new_.allFinite() || !dxdt_new_.allFinite()) return reject_non_finite(tau_before, tau, dt);
    x_old_.swap(x);
    dxdt_old_.swap(dxdt_);
    x = x_new_;
    dxdt_ = dxdt_new_;
    tau_old_ = tau_before;
    tau_new_ = tau;
    return true;
  }
  void fixed_step(Vec& x, double tau, double dt) override { controlled_.stepper().do_step(sys_, x, tau, dt); }
  bool has_dense_output() const override { return true; }
  void interpolate(double tau, Vec& out) override {
    out.resize(x_old_.size());
    controlled_.stepper().calc_state(tau, out, x_old_, dxdt_old_, tau_old_, x_new_, dxdt_new_, tau_new_);
  }
  const char* name() const override { return "dopri5"; }
  bool last_failure_non_finite() const override { return last_failed_non_finite_; }

 private:
  bool reject_non_finite(double tau_before, double& tau, double& dt) {
    dt = kNonFiniteShrink * (tau - tau_before);
    tau = tau_before;
    last_failed_non_finite_ = true;
    return false;
  }
  bool last_failed_non_finite_ = false;
  ClockedSystem sys_;
  decltype(odeint::make_controlled(0.0, 0.0, Dopri5())) controlled_;
  Vec dxdt_, x_new_, dxdt_new_, x_old_, dxdt_old_;
  double tau_old_ = 0, tau_new_ = 0;
};

// Embedded pairs without dense output: steps are clipped to land on the output times.
template <class Stepper>
class ClippedAdapter final : public StepperAdapter {
 public:
  ClippedAdapter(ClockedSystem sys, double atol, double rtol, const char* name)
      : sys_(sys), controlled_(odeint::make_controlled(atol, rtol, Stepper())), name_(name) {}
  bool try_step(Vec& x, double& tau, double& dt) override {
    saved_ = x;
    const double tau_before = tau;
    last_failed_non_finite_ = false;
    if (controlled_.try_step(sys_, x, tau, dt) != odeint::success) return false;
    if (x.allFinite()) return true;
    x = saved_;
    dt = kNonFiniteShrink * (tau - tau_before);
    tau = tau_before;
    last_failed_non_finite_ = true;
    return false;
  }
  bool last_failure_non_finite() const override { return last_failed_non_finite_; }
  void fixed_step(Vec& x, double tau, double dt) override { controlled_.stepper().do_step(sys_, x, tau, dt); }
  bool has_dense_output() const override { return false; }
  void interpolate(double, Vec&) override {}
  const char* name() const override { return name_; }

 private:
  ClockedSystem sys_;
  decltype(odeint::make_controlled(0.0, 0.0, Stepper())) controlled_;
  const char* name_;
  Vec saved_;
  bool last_failed_non_finite_ = false;
};

// Rosenbrock4 (stiff, L-stable, order 4) with the exact Jacobian. Boost 1.74's rosenbrock4 has a
// wrong sign on its d4 coefficient, which only matters when the system depends on time explicitly
// (df/dt != 0): the log clock does (e^s F(y)), so there the clock is appended to the state
// (ds/ds = 1) and the augmented system is autonomous. See tests/test_integrate.cpp (order test).
class Rosenbrock4Adapter final : public StepperAdapter {
  using UVec = boost::numeric::ublas::vector<double>;
  using UMat = boost::numeric::ublas::matrix<double>;

 public:
  Rosenbrock4Adapter(const OdeProblem& problem, Clock clock, SolverCounters& counters, double atol,
                     double rtol, Index n)
      : problem_(problem), clock_(clock), counters_(counters), controller_(atol, rtol), n_(n),
        augmented_(clock.kind == ClockKind::log) {
    const Index m = n_ + (augmented_ ? 1 : 0);
    x_.resize(m);
    x_new_.resize(m);
    x_old_.resize(m);
    y_.resize(n_);
    dy_.resize(n_);
  }
  bool try_step(Vec& x, double& tau, double& dt) override {
    for (Index i = 0; i < n_; ++i) x_[i] = x[i];
    if (augmented_) x_[n_] = tau;
    const double tau_before = tau;
    auto deriv = [this](const UVec& xu, UVec& dxdt, double t) { derivative(xu, dxdt, t); };
    auto jac = [this](const UVec& xu, UMat& J, double t, UVec& dfdt) { jacobian(xu, J, t, dfdt); };
    if (controller_.try_step(std::make_pair(deriv, jac), x_, tau, x_new_, dt) != odeint::success) {
      last_failed_non_finite_ = false;
      for (std::size_t i = 0; i < x_new_.size(); ++i) last_failed_non_finite_ |= !std::isfinite(x_new_[i]);
      return false;
    }
    bool finite = true;
    for (std::size_t i = 0; i < x_new_.size(); ++i) finite &= std::isfinite(x_new_[i]);
    if (!finite) {
      dt = kNonFiniteShrink * (tau - tau_before);
      tau = tau_before;
      last_failed_non_finite_ = true;
      return false;
    }
    x_old_ = x_;
    x_ = x_new_;
    controller_.stepper().prepare_dense_output();
    tau_old_ = tau_before;
    tau_new_ = tau;
    for (Index i = 0; i < n_; ++i) x[i] = x_[i];
    return true;
  }
  void fixed_step(Vec& x, double tau, double dt) override {
    for (Index i = 0; i < n_; ++i) x_[i] = x[i];
    if (augmented_) x_[n_] = tau;
    auto deriv = [this](const UVec& xu, UVec& dxdt, double t) { derivative(xu, dxdt, t); };
    auto jac = [this](const UVec& xu, UMat& J, double t, UVec& dfdt) { jacobian(xu, J, t, dfdt); };
    controller_.stepper().do_step(std::make_pair(deriv, jac), x_, tau, dt);
    for (Index i = 0; i < n_; ++i) x[i] = x_[i];
  }
  bool has_dense_output() const override { return true; }
  void interpolate(double tau, Vec& out) override {
    UVec tmp(x_.size());
    controller_.stepper().calc_state(tau, tmp, x_old_, tau_old_, x_, tau_new_);
    out.resize(n_);
    for (Index i = 0; i < n_; ++i) out[i] = tmp[i];
  }
  const char* name() const override { return "rosenbrock4"; }
  bool last_failure_non_finite() const override { return last_failed_non_finite_; }

 private:
  double clock_of(const UVec& xu, double t) const { return augmented_ ? xu[n_] : t; }
  void derivative(const UVec& xu, UVec& dxdt, double t) {
    ++counters_.rhs_evals;
    for (Index i = 0; i < n_; ++i) y_[i] = xu[i];
    problem_.rhs(y_, clock_.log_scale(clock_of(xu, t)), dy_);
    for (Index i = 0; i < n_; ++i) dxdt[i] = dy_[i];
    if (augmented_) dxdt[n_] = 1.0;
  }
  void jacobian(const UVec& xu, UMat& J, double t, UVec& dfdt) {
    ++counters_.jacobian_evals;
    ++counters_.lu_decompositions;  // rosenbrock4 factors once per attempt
    for (Index i = 0; i < n_; ++i) y_[i] = xu[i];
    const double tau = clock_of(xu, t);
    problem_.jacobian(y_, clock_.log_scale(tau), J_);
    const Index m = Index(J.size1());
    Eigen::Map<RowMat> Jm(&J.data()[0], m, m);
    Jm.setZero();
    Jm.topLeftCorner(n_, n_) = J_;
    if (augmented_) {
      // d/ds [e^s F(y)] = e^s F(y): the right-hand side itself.
      ++counters_.rhs_evals;
      problem_.rhs(y_, clock_.log_scale(tau), dy_);
      Jm.col(n_).head(n_) = dy_;
    }
    for (std::size_t i = 0; i < dfdt.size(); ++i) dfdt[i] = 0.0;
  }

  const OdeProblem& problem_;
  Clock clock_;
  SolverCounters& counters_;
  odeint::rosenbrock4_controller<odeint::rosenbrock4<double>> controller_;
  Index n_;
  bool augmented_;
  UVec x_, x_new_, x_old_;
  Vec y_, dy_;
  Mat J_;
  double tau_old_ = 0, tau_new_ = 0;
  bool last_failed_non_finite_ = false;
};

// Hairer-Norsett-Wanner's starting step (Solving ODEs I, II.4), one extra RHS evaluation.
double initial_step(const ClockedSystem& sys, const Vec& y0, double tau0, double span, int order, double atol,
                    double rtol) {
  Vec f0(y0.size()), y1(y0.size()), f1(y0.size());
  sys(y0, f0, tau0);
  const Vec scale = (atol + rtol * y0.array().abs()).matrix();
  const double d0 = (y0.array() / scale.array()).matrix().norm() / std::sqrt(double(y0.size()));
  const double d1 = (f0.array() / scale.array()).matrix().norm() / std::sqrt(double(y0.size()));
  double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
  h0 = std::min(h0, span);
  y1 = y0 + h0 * f0;
  sys(y1, f1, tau0 + h0);
  const double d2 = ((f1 - f0).array() / scale.array()).matrix().norm() / std::sqrt(double(y0.size())) / h0;
  const double dmax = std::max(d1, d2);
  const double h1 = dmax <= 1e-15 ? std::max(1e-6, h0 * 1e-3) : std::pow(0.01 / dmax, 1.0 / (order + 1));
  return std::min({100 * h0, h1, span});
}

std::unique_ptr<StepperAdapter> make_adapter(const OdeProblem& problem, Clock clock, SolverCounters& counters,
                                             const SolverOptions& o, const Vec& y0, double tau0) {
  ClockedSystem sys{&problem, clock, &counters};
  switch (o.method) {
    case Method::dopri5:
      return std::make_unique<Dopri5Adapter>(sys, o.atol, o.rtol, y0, tau0);
    case Method::rkf78:
      return std::make_unique<ClippedAdapter<Rkf78>>(sys, o.atol, o.rtol, "rkf78");
    case Method::cash_karp:
      return std::make_unique<ClippedAdapter<CashKarp>>(sys, o.atol, o.rtol, "cash_karp");
    case Method::rosenbrock4:
      if (!problem.jacobian) throw std::invalid_argument("rosenbrock4 needs the Jacobian of the problem");
      return std::make_unique<Rosenbrock4Adapter>(problem, clock, counters, o.atol, o.rtol, problem.size);
    default:
      throw std::invalid_argument(fmt::format("integrate: method {} is not an odeint stepper", to_string(o.method)));
  }
}

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
  for (std::int64_t k = std::max(last_accepted_ + 1, accepted - std::int64_t(window_)); k < accepted; ++k)
    recent_[std::size_t(k % std::int64_t(window_))] = last_tau_;
  last_accepted_ = std::max(last_accepted_, accepted);
  last_tau_ = tau;
  double& oldest = recent_[std::size_t(accepted % std::int64_t(window_))];
  bool slow = false;
  if (accepted - first_ >= std::int64_t(window_)) {
    const double pace = (tau - oldest) / double(window_);
    slow = pace <= 0 || (tau_end - tau) / pace > stall_factor_ * max_steps_;
  }
  oldest = tau;
  return slow;
}

std::optional<std::pair<Status, std::string>> limit_reached(const SolverOptions& o, const SolverCounters& c,
                                                            double t, double t_end, double elapsed_seconds) {
  if (c.steps >= o.max_steps)
    return std::make_pair(Status::max_steps,
                          fmt::format("stopped at t = {:.6g}: solver.max_steps = {} step attempts reached before "
                                      "t_end = {:.6g}", t, o.max_steps, t_end));
  if (o.max_wall_seconds > 0 && elapsed_seconds > o.max_wall_seconds)
    return std::make_pair(Status::wall_clock, fmt::format("stopped at t = {:.6g}: solver.max_wall_seconds = {} "
                                                          "exceeded", t, o.max_wall_seconds));
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

SolveResult integrate(const OdeProblem& problem, const Vec& y0, const std::vector<double>& times,
                      const SolverOptions& o, const SampleObserver& observe, const StepMonitor& monitor) {
  if (o.method == Method::cvode) return integrate_cvode(problem, y0, times, o, observe, monitor);
  using steady = std::chrono::steady_clock;
  const auto start = steady::now();
  SolveResult r;
  r.clock = to_string(o.clock);
  r.method = to_string(o.method);
  auto& c = r.counters;
  const Clock clock{o.clock};
  if (times.size() < 2) throw std::invalid_argument("integrate: need at least the initial and one output time");

  std::vector<double> taus(times.size());
  for (std::size_t i = 0; i < times.size(); ++i) taus[i] = clock.tau(times[i]);
  const double tau_end = taus.back();

  Vec x = y0, sample;
  double tau = taus.front();
  auto stepper = make_adapter(problem, clock, c, o, x, tau);
  ClockedSystem sys{&problem, clock, &c};
  double dt = o.initial_step > 0 ? o.initial_step
                                 : initial_step(sys, x, tau, tau_end - tau, method_order(o.method), o.atol, o.rtol);
  observe(0, times.front(), x);
  std::size_t next = 1;
  // Event-driven integration (ReLU kinks): the rules shared with the CVODE driver.
  detail::EventLocator events(problem.events, clock);
  if (events.active() && !stepper->has_dense_output())
    throw std::invalid_argument(fmt::format("event-driven integration needs dense output; method {} has none",
                                            to_string(o.method)));
  Vec y_before;
  StallWindow stall(o, tau);
  double last_good_t = times.front();

  auto finish = [&](Status s, std::string msg) {
    r.status = s;
    r.message = std::move(msg);
    r.t_final = last_good_t;
    r.y_final = x;
    c.wall_seconds = std::chrono::duration<double>(steady::now() - start).count();
    return r;
  };
  auto stalled = [&](const char* what) {
    bool at_kink = false;
    std::string why = problem.explain_stall ? problem.explain_stall(x, at_kink) : std::string();
    const Status s = at_kink ? Status::stalled_at_kink : Status::step_collapse;
    return finish(s, fmt::format("{} at t = {:.6g} ({} clock step {:.3g}){}{}", what, clock.time(tau),
                                 to_string(o.clock), dt, why.empty() ? "" : ": ", why));
  };

  if (o.fixed_step > 0) {
    // Fixed steps, clipped to land exactly on each output time.
    while (next < taus.size()) {
      if (c.steps >= o.max_steps)
        return finish(Status::max_steps, fmt::format("stopped at t = {:.6g}: solver.max_steps = {} reached",
                                                     clock.time(tau), o.max_steps));
      const double h = std::min(o.fixed_step, taus[next] - tau);
      stepper->fixed_step(x, tau, h);
      ++c.steps;
      ++c.accepted;
      tau = (taus[next] - (tau + h) <= 8 * kEps * std::max(std::abs(tau), 1.0)) ? taus[next] : tau + h;
      if (!x.allFinite()) return finish(Status::non_finite, "the state became non-finite (fixed steps)");
      last_good_t = clock.time(tau);
      if (tau == taus[next]) observe(c.accepted, times[next++], x);
    }
    last_good_t = times.back();
    return finish(Status::success, fmt::format("reached t_end = {:.6g} with fixed steps", times.back()));
  }

  while (next < taus.size()) {
    if (auto limit = limit_reached(o, c, clock.time(tau), times.back(),
                                   std::chrono::duration<double>(steady::now() - start).count()))
      return finish(limit->first, std::move(limit->second));
    const double target = stepper->has_dense_output() ? tau_end : taus[next];
    dt = std::min(dt, target - tau);
    const double tau_before = tau;
    y_before = x;  // the last finite state, restored if the step goes non-finite
    const bool ok = stepper->try_step(x, tau, dt);
    ++c.steps;
    if (!ok) {
      ++c.rejected;
      if (!(dt > 0) || !std::isfinite(dt)) return finish(Status::non_finite, fmt::format(
          "non-finite step size at t = {:.6g}: the right-hand side or its error estimate is not finite",
          clock.time(tau)));
      if (dt < 64 * kEps * std::max(std::abs(tau), 1.0)) {
        if (stepper->last_failure_non_finite())
          return finish(Status::non_finite, fmt::format("the right-hand side became non-finite near t = {:.6g}",
                                                        clock.time(tau)));
        return stalled("step size collapsed");
      }
      continue;
    }
    ++c.accepted;
    if (!x.allFinite()) {
      tau = tau_before;
      x = y_before;
      return finish(Status::non_finite,
                    fmt::format("the state became non-finite (NaN or Inf) in the step from t = {:.6g}",
                                clock.time(tau_before)));
    }
    // Snap round-off residues onto the output grid.
    if (std::abs(target - tau) <= 8 * kEps * std::max(std::abs(target), 1.0)) tau = target;
    if (events.active() && events.crossed(y_before, x)) {
      auto stop = events.stop_at_event(
          tau_before, y_before, tau, x, [&](double s, Vec& out) { stepper->interpolate(s, out); }, taus, times,
          next, observe, c);
      last_good_t = clock.time(tau);
      if (stop) return finish(stop->first, std::move(stop->second));
      // Restart the stepper from the event: the right-hand side changed discontinuously.
      stepper = make_adapter(problem, clock, c, o, x, tau);
      stall.restart(c.accepted, tau);
      continue;
    }
    last_good_t = clock.time(tau);
    while (next < taus.size() && taus[next] <= tau) {
      const double t_out = times[next];
      if (taus[next] == tau) {
        observe(c.accepted, t_out, x);
      } else {
        stepper->interpolate(taus[next], sample);
        observe(c.accepted, t_out, sample);
      }
      ++next;
    }
    if (monitor && !monitor(clock.time(tau), x, c))
      return finish(Status::interrupted, fmt::format("interrupted at t = {:.6g}", clock.time(tau)));
    // Stall: at the pace of the last window, finishing would take far more than max_steps.
    if (stall.stalled(c.accepted, tau, tau_end)) return stalled("integration stalled");
  }
  last_good_t = times.back();
  return finish(Status::success, fmt::format("reached t_end = {:.6g}", times.back()));
}

}  // namespace gfsim
