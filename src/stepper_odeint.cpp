// The only translation unit that includes Boost.Odeint: dopri5, rkf78, cash_karp and rosenbrock4
// as steppers of the integration loop (src/stepper.hpp). Each attempt is one odeint try_step, so
// gfsim, not odeint, owns the loop; an attempt whose result is not finite is rejected (plain
// odeint accepts a NaN error estimate and loops forever).
// Compiled as C++17 (see CMakeLists.txt): Boost 1.74's uBLAS, which rosenbrock4 needs, uses
// std::allocator::construct, removed in C++20.
#include "stepper.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/numeric/odeint.hpp>
#include <boost/numeric/odeint/external/eigen/eigen.hpp>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>

namespace gfsim::detail {

namespace odeint = boost::numeric::odeint;

namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();
// A step whose result is not finite (overflow in a too-large trial step) is rejected and retried
// this much smaller; plain odeint would accept it when the error estimate is NaN.
constexpr double kNonFiniteShrink = 0.1;

// The ODE in the clock variable, with counters. odeint's time is s = tau - origin, the time since
// the stepper's origin (0 unless the loop moved it: Stepper::reanchor), so that its steps are
// resolved against the round-off of s, not of tau.
struct ClockedSystem {
  const OdeProblem* problem;
  Clock clock;
  SolverCounters* counters;
  double origin = 0.0;
  void operator()(const Vec& y, Vec& dy, double s) const {
    ++counters->rhs_evals;
    problem->rhs(clock.at(origin + s), y, dy);
  }
};

// One attempt at a step of size dt from (x, tau). On success x and tau advance and dt holds the
// next suggested step; on failure dt is reduced. interpolate() is valid after a success.
class OdeintAdapter {
 public:
  virtual ~OdeintAdapter() = default;
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

class Dopri5Adapter final : public OdeintAdapter {
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
template <class OdeintStepper>
class ClippedAdapter final : public OdeintAdapter {
 public:
  ClippedAdapter(ClockedSystem sys, double atol, double rtol, const char* name)
      : sys_(sys), controlled_(odeint::make_controlled(atol, rtol, OdeintStepper())), name_(name) {}
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
  decltype(odeint::make_controlled(0.0, 0.0, OdeintStepper())) controlled_;
  const char* name_;
  Vec saved_;
  bool last_failed_non_finite_ = false;
};

// Rosenbrock4 (stiff, L-stable, order 4) with the exact Jacobian. A Rosenbrock method needs the
// explicit time derivative of the system; Boost 1.74's rosenbrock4 has a wrong sign on its d4
// coefficient, which only matters when that derivative is not zero. So a system that depends on
// the clock explicitly (the log clock, e^s F(t, y); or a field F that depends on t) is made
// autonomous by appending the clock to the state (dtau/dtau = 1): the Jacobian's last column is
// then d rhs / dtau = (d e^{log_scale}/dtau) F + e^{log_scale} (dF/dt) (dt/dtau).
// See tests/test_time_dependent.cpp (order test with and without dF/dt).
class Rosenbrock4Adapter final : public OdeintAdapter {
  using UVec = boost::numeric::ublas::vector<double>;
  using UMat = boost::numeric::ublas::matrix<double>;

 public:
  Rosenbrock4Adapter(const OdeProblem& problem, Clock clock, double origin, SolverCounters& counters, double atol,
                     double rtol, Index n)
      : problem_(problem), clock_(clock), origin_(origin), counters_(counters), controller_(atol, rtol), n_(n),
        augmented_(clock.kind == ClockKind::log || !problem.autonomous) {
    if (!problem.autonomous && !problem.time_derivative)
      throw std::invalid_argument("rosenbrock4 needs the time derivative of a non-autonomous field");
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
    problem_.rhs(clock_.at(origin_ + clock_of(xu, t)), y_, dy_);
    for (Index i = 0; i < n_; ++i) dxdt[i] = dy_[i];
    if (augmented_) dxdt[n_] = 1.0;
  }
  void jacobian(const UVec& xu, UMat& J, double t, UVec& dfdt) {
    ++counters_.jacobian_evals;
    ++counters_.lu_decompositions;  // rosenbrock4 factors once per attempt
    for (Index i = 0; i < n_; ++i) y_[i] = xu[i];
    const double tau = origin_ + clock_of(xu, t);
    const TimePoint tp = clock_.at(tau);
    problem_.jacobian(tp, y_, J_);
    const Index m = Index(J.size1());
    Eigen::Map<RowMat> Jm(&J.data()[0], m, m);
    Jm.setZero();
    Jm.topLeftCorner(n_, n_) = J_;
    if (augmented_) {
      // d rhs/dtau. Log clock: d/ds [e^s F] = e^s F (the right-hand side itself) + e^s dF/dt e^s.
      if (clock_.kind == ClockKind::log) {
        ++counters_.rhs_evals;
        problem_.rhs(tp, y_, dy_);
        Jm.col(n_).head(n_) = dy_;
      }
      if (!problem_.autonomous) {
        problem_.time_derivative(tp, y_, dft_);
        const double dt_dtau = clock_.kind == ClockKind::log ? std::exp(tau) : 1.0;
        Jm.col(n_).head(n_) += dt_dtau * dft_;
      }
    }
    for (std::size_t i = 0; i < dfdt.size(); ++i) dfdt[i] = 0.0;
  }

  const OdeProblem& problem_;
  Clock clock_;
  double origin_;  ///< the clock value of odeint's time 0 (ClockedSystem)
  SolverCounters& counters_;
  odeint::rosenbrock4_controller<odeint::rosenbrock4<double>> controller_;
  Index n_;
  bool augmented_;
  UVec x_, x_new_, x_old_;
  Vec y_, dy_, dft_;
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

// An adapter whose time 0 is the clock value `origin`, starting at (origin + s0, y0).
std::unique_ptr<OdeintAdapter> make_adapter(const OdeProblem& problem, Clock clock, SolverCounters& counters,
                                             const SolverOptions& o, const Vec& y0, double origin, double s0) {
  ClockedSystem sys{&problem, clock, &counters, origin};
  switch (o.method) {
    case Method::dopri5:
      return std::make_unique<Dopri5Adapter>(sys, o.atol, o.rtol, y0, s0);
    case Method::rkf78:
      return std::make_unique<ClippedAdapter<Rkf78>>(sys, o.atol, o.rtol, "rkf78");
    case Method::cash_karp:
      return std::make_unique<ClippedAdapter<CashKarp>>(sys, o.atol, o.rtol, "cash_karp");
    case Method::rosenbrock4:
      if (!problem.jacobian) throw std::invalid_argument("rosenbrock4 needs the Jacobian of the problem");
      return std::make_unique<Rosenbrock4Adapter>(problem, clock, origin, counters, o.atol, o.rtol, problem.size);
    default:
      throw std::invalid_argument(fmt::format("integrate: method {} is not an odeint stepper", to_string(o.method)));
  }
}

// One solve's odeint stepper behind the loop's interface: owns the step size and the rejection
// rules; an event restart builds a fresh odeint stepper (no history across the jump of the field).
// odeint steps in s = tau - origin_; the last step's s is kept, since tau = origin_ + s rounds.
class OdeintStepper final : public Stepper {
 public:
  OdeintStepper(const OdeProblem& problem, const SolverOptions& o, SolverCounters& c, const Vec& y0, double tau0,
                double tau_end)
      : problem_(problem), options_(o), clock_{o.clock}, c_(c),
        inner_(make_adapter(problem, clock_, c, o, y0, 0.0, tau0)), tau_(tau0), s_(tau0) {
    const ClockedSystem sys{&problem, clock_, &c};
    dt_ = o.initial_step > 0 ? o.initial_step
                             : initial_step(sys, y0, tau0, tau_end - tau0, method_order(o.method), o.atol, o.rtol);
  }

  Attempt attempt(Vec& x, double& tau, double target) override {
    double s = local(tau);
    const double s_target = target - origin_;
    dt_ = std::min(dt_, s_target - s);
    const bool ok = inner_->try_step(x, s, dt_);
    ++c_.steps;
    if (!ok) {
      ++c_.rejected;
      if (!(dt_ > 0) || !std::isfinite(dt_))
        return {Attempt::non_finite,
                fmt::format("non-finite step size at t = {:.6g}: the right-hand side or its error estimate is "
                            "not finite", clock_.time(tau))};
      // Against the round-off of s: of tau itself (at least that of 1) before any move of the
      // origin, of the time since the move after one (but not below eps^2 of the origin: the
      // field's time, origin + s, resolves eps of it, so steps that small only spin).
      const double scale = origin_ == 0.0 ? std::max(std::abs(s), 1.0)
                                          : std::max(std::abs(s), kEps * std::abs(origin_));
      if (dt_ < 64 * kEps * scale) {
        if (inner_->last_failure_non_finite())
          return {Attempt::non_finite,
                  fmt::format("the right-hand side became non-finite near t = {:.6g}", clock_.time(tau))};
        return {Attempt::collapsed, "step size collapsed"};
      }
      return {Attempt::rejected, {}};
    }
    ++c_.accepted;
    // Snap round-off residues onto the output grid.
    if (std::abs(s_target - s) <= 8 * kEps * std::max(std::abs(s_target), 1.0)) s = s_target;
    s_ = s;
    tau = tau_ = s == s_target ? target : origin_ + s;
    return {Attempt::accepted, {}};
  }
  void fixed_step(Vec& x, double tau, double h) override { inner_->fixed_step(x, local(tau), h); }
  bool has_dense_output() const override { return inner_->has_dense_output(); }
  void interpolate(double tau, Vec& out) override { inner_->interpolate(local(tau), out); }
  std::optional<std::string> restart(const Vec& x, double tau) override {
    inner_ = make_adapter(problem_, clock_, c_, options_, x, origin_, local(tau));  // the step size carries over
    return std::nullopt;
  }
  bool reanchor(const Vec& x, double tau) override {
    if (tau == origin_) return false;
    origin_ = tau;
    tau_ = tau;
    s_ = 0.0;
    inner_ = make_adapter(problem_, clock_, c_, options_, x, origin_, 0.0);
    return true;
  }
  double step_size() const override { return dt_; }

 private:
  // s of the clock value tau: the last step's own s where tau is where it ended.
  double local(double tau) const { return tau == tau_ ? s_ : tau - origin_; }

  const OdeProblem& problem_;
  SolverOptions options_;
  Clock clock_;
  SolverCounters& c_;
  std::unique_ptr<OdeintAdapter> inner_;
  double dt_ = 0;
  double origin_ = 0.0;  ///< the clock value of odeint's time 0 (moved by reanchor)
  double tau_, s_;       ///< where the last accepted step ended, as tau and as s
};

}  // namespace

std::unique_ptr<Stepper> make_odeint_stepper(const OdeProblem& problem, const SolverOptions& options,
                                             SolverCounters& counters, const Vec& y0, double tau0, double tau_end) {
  return std::make_unique<OdeintStepper>(problem, options, counters, y0, tau0, tau_end);
}

}  // namespace gfsim::detail
