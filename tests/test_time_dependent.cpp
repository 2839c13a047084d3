// Fields that depend on time explicitly: y' = F(t, y) = -a(t) A y with a(t) = 2/(1+t) + cos t and
// A = [[1, -w], [w, 1]] (decay and rotation), whose solution is y(t) = exp(-I(t) A) y0 with
// I(t) = 2 log(1+t) + sin t, i.e. a decay by e^{-I} and a rotation by the angle w I. Every method
// in both clocks against this closed form; rosenbrock4's order with dF/dt and without it (the
// test problem is sensitive to a dropped time derivative); and the typed stop reasons of the loop
// (converged from a monitor, interrupted from the stop flag, also inside event handling). And a
// fast transient at late t, below the round-off of the clock (LateTransient).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <iostream>
#include <string>

#include "gfsim/cvode_solver.hpp"
#include "gfsim/integrate.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

constexpr double kTurn = 0.7;  // w: rotation rate relative to the decay

double a_of(double t) { return 2.0 / (1.0 + t) + std::cos(t); }
double da_of(double t) { return -2.0 / ((1.0 + t) * (1.0 + t)) - std::sin(t); }

Mat generator() { return (Mat(2, 2) << 1.0, -kTurn, kTurn, 1.0).finished(); }

Vec exact(double t, const Vec& y0) {
  const double I = 2.0 * std::log1p(t) + std::sin(t), phi = -kTurn * I;
  const Mat R = (Mat(2, 2) << std::cos(phi), -std::sin(phi), std::sin(phi), std::cos(phi)).finished();
  return std::exp(-I) * (R * y0);
}

/// The field in the solver's form: rhs = e^{log_scale} F(t, y), and its derivatives.
OdeProblem time_dependent_problem(bool with_time_derivative = true) {
  OdeProblem p;
  p.size = 2;
  p.rhs = [](TimePoint tp, const Vec& y, Vec& dy) { dy = -std::exp(tp.log_scale) * a_of(tp.t) * (generator() * y); };
  p.jacobian = [](TimePoint tp, const Vec&, Mat& J) { J = -std::exp(tp.log_scale) * a_of(tp.t) * generator(); };
  p.jvp = [](TimePoint tp, const Vec&, const Vec& v, Vec& jv) {
    jv = -std::exp(tp.log_scale) * a_of(tp.t) * (generator() * v);
  };
  p.autonomous = !with_time_derivative;  // "dropped": the stepper is told F has no explicit t
  if (with_time_derivative)
    p.time_derivative = [](TimePoint tp, const Vec& y, Vec& dft) {
      dft = -std::exp(tp.log_scale) * da_of(tp.t) * (generator() * y);
    };
  return p;
}

const Vec kY0 = (Vec(2) << 1.0, 0.5).finished();

struct Case {
  Method method;
  CvodeLinearSolver linear_solver;  ///< cvode only
  ClockKind clock;
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
  std::string name = to_string(info.param.method);
  if (info.param.method == Method::cvode) name += info.param.linear_solver == CvodeLinearSolver::dense ? "_dense" : "_krylov";
  return name + "_clock_" + to_string(info.param.clock);
}

SolveResult solve(const Case& c, const OdeProblem& p, const std::vector<double>& times, const SolverOptions& o,
                  const SampleObserver& observe) {
  if (c.method == Method::cvode) return integrate_cvode(p, kY0, times, o, observe, {}, c.linear_solver);
  return integrate(p, kY0, times, o, observe);
}

class TimeDependentField : public testing::TestWithParam<Case> {};

TEST_P(TimeDependentField, MatchesTheClosedFormAtEveryOutputTime) {
  const Case& c = GetParam();
  const auto o = test::solver_options(c.method, c.clock, 1e-10);
  const std::vector<double> times{0.0, 0.5, 1.0, 3.0, 7.0, 12.0, 20.0};
  std::size_t seen = 0;
  const auto r = solve(c, time_dependent_problem(), times, o, [&](std::int64_t, double t, const Vec& y) {
    ASSERT_LT(seen, times.size());
    EXPECT_EQ(t, times[seen++]);
    const Vec want = exact(t, kY0);
    // A field evaluated at the wrong time (or without the clock's factor) is off by O(1).
    EXPECT_LT((y - want).norm(), 2e-7 * want.norm()) << "t = " << t << ": " << y.transpose() << " vs "
                                                     << want.transpose();
  });
  ASSERT_EQ(r.status, Status::success) << r.message;
  EXPECT_EQ(seen, times.size());
}

INSTANTIATE_TEST_SUITE_P(
    EveryMethodBothClocks, TimeDependentField,
    testing::Values(Case{Method::dopri5, {}, ClockKind::t}, Case{Method::dopri5, {}, ClockKind::log},
                    Case{Method::rkf78, {}, ClockKind::t}, Case{Method::rkf78, {}, ClockKind::log},
                    Case{Method::cash_karp, {}, ClockKind::t}, Case{Method::cash_karp, {}, ClockKind::log},
                    Case{Method::rosenbrock4, {}, ClockKind::t}, Case{Method::rosenbrock4, {}, ClockKind::log},
                    Case{Method::cvode, CvodeLinearSolver::dense, ClockKind::t},
                    Case{Method::cvode, CvodeLinearSolver::dense, ClockKind::log},
                    Case{Method::cvode, CvodeLinearSolver::spgmr, ClockKind::t},
                    Case{Method::cvode, CvodeLinearSolver::spgmr, ClockKind::log}),
    case_name);

// Observed order of rosenbrock4 with fixed steps h and h/2 to t = 5.
double rosenbrock4_order(ClockKind clock, bool with_time_derivative) {
  const double t_end = 5.0;
  auto o = test::solver_options(Method::rosenbrock4, clock, 1e-10);
  const double span = Clock{clock}.tau(t_end);
  double errors[2];
  for (int i = 0; i < 2; ++i) {
    o.fixed_step = span / (80.0 * (1 << i));
    const auto r = integrate(time_dependent_problem(with_time_derivative), kY0, {0.0, t_end}, o,
                             [](std::int64_t, double, const Vec&) {});
    EXPECT_EQ(r.status, Status::success) << r.message;
    errors[i] = (r.y_final - exact(t_end, kY0)).norm();
  }
  return std::log2(errors[0] / errors[1]);
}

TEST(Rosenbrock4, OrderFourWithTheTimeDerivativeAndLessWithout) {
  for (ClockKind clock : {ClockKind::t, ClockKind::log}) {
    const double with = rosenbrock4_order(clock, true), without = rosenbrock4_order(clock, false);
    std::cout << to_string(clock) << " clock: observed order " << with << " with dF/dt, " << without << " without\n";
    EXPECT_GT(with, 3.6) << to_string(clock);
    EXPECT_LT(with, 5.5) << to_string(clock);  // pre-asymptotic excess, as for the flows' order test
    EXPECT_LT(without, 3.0) << to_string(clock) << ": dropping dF/dt must cost order";
  }
}

TEST(Rosenbrock4, NonAutonomousFieldWithoutTimeDerivativeIsRefused) {
  OdeProblem p = time_dependent_problem();
  p.time_derivative = {};
  EXPECT_THROW(integrate(p, kY0, {0.0, 1.0}, test::solver_options(Method::rosenbrock4, ClockKind::t, 1e-8),
                         [](std::int64_t, double, const Vec&) {}),
               std::invalid_argument);
}

// ---- a fast transient at late t ------------------------------------------------------------------

// z' = c sigma(z / eps), a smoothed ReLU's derivative driving a pre-activation held below its kink
// (a data point held at f = 0 by the smoothed flow, docs/relu_large_smooth.md): from z0 < 0 it
// creeps for a long time, then crosses 0 within ~eps / c and grows like c t. Closed form:
// z - eps e^{-z/eps} = z0 - eps e^{-z0/eps} + c t (separable), crossing 0 at
// t* = (eps e^{-z0/eps} - eps - z0) / c = 1e8 here, within ~1e-6 in t: ~1e-14 in log t, a few
// ulps of log(1e8) = 18.4, and ~70 ulps of 1e8 in the t clock.
constexpr double kWidth = 1e-3, kRate = 1e3;
const double kZ0 = -kWidth * std::log(1e8 * kRate / kWidth);  // t* ~ 1e8

double sigmoid(double u) { return u >= 0 ? 1.0 / (1.0 + std::exp(-u)) : std::exp(u) / (1.0 + std::exp(u)); }

/// z(t) from the closed form, by bisection on the increasing g(z) = z - eps e^{-z/eps} (its
/// value moves by a relative 1e-16 per ulp of z wherever e^{-z/eps} matters).
double late_crossing_exact(double t) {
  const double k = kZ0 - kWidth * std::exp(-kZ0 / kWidth) + kRate * t;
  double lo = kZ0, hi = std::max(0.0, k) + 1.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (mid - kWidth * std::exp(-mid / kWidth) < k ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

OdeProblem late_crossing_problem() {
  OdeProblem p;
  p.size = 1;
  p.rhs = [](TimePoint tp, const Vec& y, Vec& dy) {
    dy.resize(1);
    dy[0] = std::exp(tp.log_scale) * kRate * sigmoid(y[0] / kWidth);
  };
  p.jacobian = [](TimePoint tp, const Vec& y, Mat& J) {
    const double s = sigmoid(y[0] / kWidth);
    J = Mat::Constant(1, 1, std::exp(tp.log_scale) * kRate * s * (1.0 - s) / kWidth);
  };
  p.jvp = [](TimePoint tp, const Vec& y, const Vec& v, Vec& jv) {
    const double s = sigmoid(y[0] / kWidth);
    jv = std::exp(tp.log_scale) * kRate * s * (1.0 - s) / kWidth * v;
  };
  return p;
}

TEST(LateTransient, SteppersMoveTheirTimeOriginToResolveAFastCrossingAtLateTime) {
  // Without a new origin the steps collapse against the round-off of the clock at t ~ 1e8
  // ("step size collapsed", in either clock); with it the run reaches t = 1e12 on the closed form.
  const std::vector<double> times{0.0, 1e4, 5e7, 2e8, 1e10, 1e12};
  const Case cases[] = {{Method::cvode, CvodeLinearSolver::dense, {}}, {Method::cvode, CvodeLinearSolver::spgmr, {}},
                        {Method::dopri5, {}, {}}, {Method::rosenbrock4, {}, {}}};
  for (ClockKind clock : {ClockKind::log, ClockKind::t})
    for (Case c : cases) {
      c.clock = clock;
      const std::string what = case_name(testing::TestParamInfo<Case>(c, 0));
      const auto o = test::solver_options(c.method, clock, 1e-9);
      std::size_t seen = 0;
      const SampleObserver check = [&](std::int64_t, double t, const Vec& y) {
        ++seen;
        // The crossing time is exponentially sensitive to z before it (t* ~ e^{-z/eps}): an error
        // dz there shifts it by t* dz / eps, and z after it by c t* dz / eps (measured: dz up to
        // ~6e-6 eps), plus the solver's own relative error while z grows like c t.
        const double want = late_crossing_exact(t);
        if (t < 1e8)
          EXPECT_LT(std::abs(y[0] - want), 2e-5 * kWidth) << what << " t = " << t;
        else
          EXPECT_LT(std::abs(y[0] - want), 2e-5 * kRate * 1e8 + 1e-7 * want)
              << what << " t = " << t << ": " << y[0] << " vs " << want;
      };
      const Vec z0 = Vec::Constant(1, kZ0);
      const auto r = c.method == Method::cvode
                         ? integrate_cvode(late_crossing_problem(), z0, times, o, check, {}, c.linear_solver)
                         : integrate(late_crossing_problem(), z0, times, o, check);
      ASSERT_EQ(r.status, Status::success) << what << ": " << r.message;
      EXPECT_EQ(seen, times.size()) << what;
      EXPECT_GE(r.counters.reanchors, 1) << what << ": the crossing needs steps below the clock's round-off";
      EXPECT_LE(r.counters.reanchors, 4) << what;
    }
}

// ---- typed stop reasons -------------------------------------------------------------------------

TEST(StopReasons, ConvergedIsItsOwnStatusWithExitCodeZero) {
  EXPECT_EQ(status_name(Status::converged), "converged");
  EXPECT_EQ(exit_code(Status::converged), 0);
  EXPECT_EQ(exit_code(Status::interrupted), 1);
  // A monitor that declares the decay done once |y| < 1e-2 |y0|: the run ends there, converged.
  for (Method m : {Method::dopri5, Method::rosenbrock4, Method::cvode}) {
    const auto r = integrate(time_dependent_problem(), kY0, {0.0, 1e3}, test::solver_options(m, ClockKind::log, 1e-9),
                             [](std::int64_t, double, const Vec&) {},
                             [](double, const Vec& y, const SolverCounters&) -> std::optional<Status> {
                               if (y.norm() < 1e-2 * kY0.norm()) return Status::converged;
                               return std::nullopt;
                             });
    EXPECT_EQ(r.status, Status::converged) << to_string(m) << ": " << r.message;
    EXPECT_LT(r.y_final.norm(), 1e-2 * kY0.norm());
    EXPECT_LT(r.t_final, 1e3);
    EXPECT_LT((r.y_final - exact(r.t_final, kY0)).norm(), 1e-6 * kY0.norm()) << to_string(m);
  }
}

TEST(StopReasons, StopFlagEndsTheRunAtTheNextAttempt) {
  for (Method m : {Method::dopri5, Method::rkf78, Method::rosenbrock4, Method::cvode}) {
    std::atomic<bool> stop{false};
    auto o = test::solver_options(m, ClockKind::t, 1e-10);
    o.stop_requested = &stop;
    std::int64_t steps_at_request = -1;
    const auto r = integrate(time_dependent_problem(), kY0, log_spaced_times(1e-2, 20.0, 10), o,
                             [&](std::int64_t step, double t, const Vec&) {
                               if (t >= 1.0 && steps_at_request < 0) {
                                 steps_at_request = step;
                                 stop = true;
                               }
                             });
    EXPECT_EQ(r.status, Status::interrupted) << to_string(m) << ": " << r.message;
    EXPECT_LT(r.t_final, 2.0) << to_string(m);
    EXPECT_LE(r.counters.accepted, steps_at_request + 1) << to_string(m);
  }
}

// y' = 1 with event surfaces y = 0.1 j (j = 1..50), each crossed once: the flag, raised by the
// third crossing, stops the run at that event, not at t_end.
TEST(StopReasons, StopFlagIsHonouredInsideAnEventDenseRun) {
  std::atomic<bool> stop{false};
  const Index surfaces = 50;
  Vec side = Vec::Ones(surfaces);  // +1 below the surface, -1 above: g_j > 0 on the current side
  int crossings = 0;
  OdeProblem p;
  p.size = 1;
  p.rhs = [](TimePoint, const Vec&, Vec& dy) { dy = Vec::Ones(1); };
  p.jacobian = [](TimePoint, const Vec&, Mat& J) { J = Mat::Zero(1, 1); };
  p.events.values = [&](TimePoint, const Vec& y, Vec& g) {
    g.resize(surfaces);
    for (Index j = 0; j < surfaces; ++j) g[j] = side[j] * (0.1 * double(j + 1) - y[0]);
  };
  p.events.cross = [&](TimePoint, const Vec&, Index j) {
    side[j] = -side[j];
    if (++crossings == 3) stop = true;
  };
  auto o = test::solver_options(Method::dopri5, ClockKind::t, 1e-10);
  o.stop_requested = &stop;
  const auto r = integrate(p, Vec::Zero(1), {0.0, 10.0}, o, [](std::int64_t, double, const Vec&) {});
  EXPECT_EQ(r.status, Status::interrupted) << r.message;
  EXPECT_EQ(crossings, 3);
  EXPECT_NEAR(r.t_final, 0.3, 1e-9);
}

}  // namespace
}  // namespace gfsim
