// CVODE (BDF) behind gfsim's solver interface: exact solutions to astronomical times in the log
// clock, dense and SPGMR linear solvers agree with each other and with rosenbrock4, outputs at
// exactly the requested times, and the stop conditions (non-finite RHS, max_steps, interrupt).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "gfsim/cvode_solver.hpp"
#include "gfsim/flow_problem.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

SolverOptions tight(Method m = Method::cvode, ClockKind clock = ClockKind::log, double rtol = 1e-10) {
  return test::solver_options(m, clock, rtol);
}

Dataset one_point(const Vec& x, double label) {
  Dataset d;
  d.X = x.transpose();
  d.y = Vec::Constant(1, label);
  return d;
}

struct Run {
  SolveResult result;
  std::vector<double> t;
  std::vector<Vec> y;
};

Run run_cvode(const OdeProblem& p, const Vec& y0, const std::vector<double>& times, const SolverOptions& o,
              CvodeLinearSolver ls) {
  Run run;
  run.result = integrate_cvode(p, y0, times, o, [&](std::int64_t, double t, const Vec& y) {
    run.t.push_back(t);
    run.y.push_back(y);
  }, {}, ls);
  return run;
}

Run run_integrate(const OdeProblem& p, const Vec& y0, const std::vector<double>& times, const SolverOptions& o) {
  Run run;
  run.result = integrate(p, y0, times, o, [&](std::int64_t, double t, const Vec& y) {
    run.t.push_back(t);
    run.y.push_back(y);
  });
  return run;
}

TEST(Cvode, ExpLossOnePointExactToAstronomicalTimes) {
  // q = w.z obeys dq/dt = ||z||^2 e^{-q}: q(t) = log(e^{q0} + ||z||^2 t), w = w0 + z (q - q0)/||z||^2.
  const Vec x = (Vec(3) << 0.6, -0.8, 0.5).finished();
  const Dataset data = one_point(x, -1.0);
  const Vec z = -x;
  Flow flow(Network({3, 1}, Activation::linear), data, LossKind::exp, FlowKind::gd);
  const Vec w0 = (Vec(3) << 0.1, 0.2, -0.1).finished();
  const double q0 = w0.dot(z), zz = z.squaredNorm();
  for (double t_end : {1e12, 1e100, 1e300}) {
    for (auto ls : {CvodeLinearSolver::dense, CvodeLinearSolver::spgmr}) {
      const auto o = tight();
      const auto run = run_cvode(to_ode_problem(flow), w0, log_spaced_times(1e-2, t_end, 5), o, ls);
      ASSERT_EQ(run.result.status, Status::success) << run.result.message;
      const double q = std::log(t_end) + std::log(zz + std::exp(q0) / t_end);
      const Vec exact = w0 + z * (q - q0) / zz;
      const Vec& w = run.y.back();
      EXPECT_EQ(run.t.back(), t_end);
      EXPECT_LT((w - exact).norm() / exact.norm(), 1e-8) << to_string(ls) << " t_end " << t_end;
      EXPECT_LT(test::weighted_error(w, exact, o.rtol, o.atol), 10.0) << to_string(ls) << " t_end " << t_end;
      EXPECT_LT(run.result.counters.rhs_evals, 5000) << to_string(ls) << " t_end " << t_end;
      EXPECT_EQ(run.result.method, "cvode");
      EXPECT_EQ(run.result.clock, "log");
    }
  }
}

TEST(Cvode, DenseAndSpgmrAgreeAndMatchRosenbrock4OnGaussianLinearProblem) {
  const Dataset data = test::separable_data(200, 10, 7, 0.1);
  Flow flow(Network({10, 1}, Activation::linear), data, LossKind::exp, FlowKind::gd);
  const Vec w0 = test::random_vector(10, 8, 0.01);
  const auto times = log_spaced_times(1e-2, 1e8, 2);
  const auto o = tight(Method::cvode, ClockKind::log, 1e-9);
  const auto dense = run_cvode(to_ode_problem(flow), w0, times, o, CvodeLinearSolver::dense);
  const auto spgmr = run_cvode(to_ode_problem(flow), w0, times, o, CvodeLinearSolver::spgmr);
  const auto ros = run_integrate(to_ode_problem(flow), w0, times, tight(Method::rosenbrock4, ClockKind::log, 1e-11));
  ASSERT_EQ(dense.result.status, Status::success) << dense.result.message;
  ASSERT_EQ(spgmr.result.status, Status::success) << spgmr.result.message;
  ASSERT_EQ(ros.result.status, Status::success) << ros.result.message;
  ASSERT_EQ(dense.y.size(), times.size());
  ASSERT_EQ(spgmr.y.size(), times.size());
  ASSERT_EQ(ros.y.size(), times.size());
  for (std::size_t i = 0; i < times.size(); ++i) {
    const double scale = ros.y[i].norm();
    EXPECT_LT((dense.y[i] - ros.y[i]).norm(), 1e-6 * scale) << "dense vs rosenbrock4 at t = " << times[i];
    EXPECT_LT((spgmr.y[i] - ros.y[i]).norm(), 1e-6 * scale) << "spgmr vs rosenbrock4 at t = " << times[i];
    EXPECT_LT((dense.y[i] - spgmr.y[i]).norm(), 1e-6 * scale) << "dense vs spgmr at t = " << times[i];
  }
  EXPECT_GT(dense.result.counters.jacobian_evals, 0);
  EXPECT_GT(dense.result.counters.lu_decompositions, 0);
  EXPECT_EQ(dense.result.counters.jvp_evals, 0);
  EXPECT_GT(spgmr.result.counters.jvp_evals, 0);
  EXPECT_EQ(spgmr.result.counters.jacobian_evals, 0);
  for (const auto* r : {&dense.result, &spgmr.result}) {
    const auto& c = r->counters;
    EXPECT_EQ(c.steps, c.accepted + c.rejected);
    EXPECT_GT(c.rhs_evals, c.accepted);
    EXPECT_GT(c.wall_seconds, 0.0);
  }
}

TEST(Cvode, IntegrateDispatchesOnMethodCvode) {
  const Dataset data = test::separable_data(30, 4, 11, 0.1);
  Flow flow(Network({4, 1}, Activation::linear), data, LossKind::exp, FlowKind::gd);
  const Vec w0 = test::random_vector(4, 12, 0.1);
  const auto times = log_spaced_times(1e-2, 1e6, 3);
  const auto a = run_integrate(to_ode_problem(flow), w0, times, tight());
  const auto b = run_cvode(to_ode_problem(flow), w0, times, tight(), CvodeLinearSolver::auto_select);
  ASSERT_EQ(a.result.status, Status::success) << a.result.message;
  EXPECT_EQ(a.result.method, "cvode");
  ASSERT_EQ(a.y.size(), b.y.size());
  EXPECT_EQ(a.y.back(), b.y.back());  // auto = dense at this size: the same computation
}

TEST(Cvode, OutputsExactlyAtRequestedTimesInBothClocks) {
  const Dataset data = test::separable_data(40, 5, 13, 0.1);
  Flow flow(Network({5, 1}, Activation::linear), data, LossKind::exp, FlowKind::gd);
  const Vec w0 = test::random_vector(5, 14, 0.1);
  for (ClockKind clock : {ClockKind::t, ClockKind::log}) {
    const std::vector<double> times{0.0, 0.37, 1.0, 2.5, 17.0, 123.456, 1000.0};
    const auto o = tight(Method::cvode, clock, 1e-10);
    const auto run = run_cvode(to_ode_problem(flow), w0, times, o, CvodeLinearSolver::dense);
    ASSERT_EQ(run.result.status, Status::success) << run.result.message;
    ASSERT_EQ(run.t, times);
    EXPECT_EQ(run.y.front(), w0);
    EXPECT_EQ(run.result.t_final, times.back());
    EXPECT_EQ(run.y.back(), run.result.y_final);
    // An interpolated sample equals the end state of a run that stops there.
    for (std::size_t i : {2u, 5u}) {
      const auto stop = run_cvode(to_ode_problem(flow), w0, {0.0, times[i]}, o, CvodeLinearSolver::dense);
      ASSERT_EQ(stop.result.status, Status::success);
      EXPECT_LT((run.y[i] - stop.y.back()).norm(), 1e-7 * stop.y.back().norm())
          << to_string(clock) << " t = " << times[i];
    }
  }
}

TEST(Cvode, NonFiniteRightHandSideStopsWithStatusNonFinite) {
  // NaN from the start, and NaN once y crosses a level (mid-run): a status, never a hang.
  for (double level : {-1.0, 2.0}) {
    for (auto ls : {CvodeLinearSolver::dense, CvodeLinearSolver::spgmr}) {
      OdeProblem p;
      p.size = 1;
      p.rhs = [level](TimePoint, const Vec& y, Vec& dy) {
        dy.resize(1);
        dy[0] = y[0] > level ? std::numeric_limits<double>::quiet_NaN() : 1.0;
      };
      p.jacobian = [](TimePoint, const Vec&, Mat& J) { J = Mat::Zero(1, 1); };
      p.jvp = [](TimePoint, const Vec&, const Vec&, Vec& jv) { jv = Vec::Zero(1); };
      auto o = tight(Method::cvode, ClockKind::t, 1e-8);
      o.max_wall_seconds = 10;
      const auto run = run_cvode(p, Vec::Zero(1), {0.0, 1.0, 10.0}, o, ls);
      EXPECT_EQ(run.result.status, Status::non_finite) << run.result.message << " level " << level;
      EXPECT_TRUE(run.result.y_final.allFinite());
      if (level > 0) {
        EXPECT_EQ(run.t.size(), 2u);  // t = 0 and t = 1 observed before the failure
        EXPECT_GT(run.result.t_final, 1.0);
      }
    }
  }
}

TEST(Cvode, MaxStepsAndInterruptStop) {
  const Dataset data = test::separable_data(30, 4, 15, 0.1);
  Flow flow(Network({4, 1}, Activation::linear), data, LossKind::exp, FlowKind::gd);
  const Vec w0 = test::random_vector(4, 16, 0.1);
  auto o = tight();
  o.max_steps = 5;
  auto r = integrate_cvode(to_ode_problem(flow), w0, {0.0, 1e12}, o, [](std::int64_t, double, const Vec&) {});
  EXPECT_EQ(r.status, Status::max_steps) << r.message;
  EXPECT_LE(r.counters.steps, 5 + 20);
  o.max_steps = 1000000;
  int calls = 0;
  r = integrate_cvode(to_ode_problem(flow), w0, {0.0, 1e12}, o, [](std::int64_t, double, const Vec&) {},
                      [&](double, const Vec&, const SolverCounters&) -> std::optional<Status> {
                        return ++calls < 3 ? std::nullopt : std::optional(Status::interrupted);
                      });
  EXPECT_EQ(r.status, Status::interrupted) << r.message;
  EXPECT_EQ(calls, 3);
}

}  // namespace
}  // namespace gfsim
