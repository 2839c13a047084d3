// Known discontinuities of the field as stop times of the integration loop (integrate.hpp,
// Discontinuities; equations.md 8 (j)). A staircase rho(t) makes the fixed-radius flows jump: stepped
// across its jumps, the run must equal the concatenation of constant-rho runs, each started from the
// direction the previous one ended with (the field is autonomous within a phase), in either clock and
// with every stepper; the stepper restarts once per jump; with fixed steps the method keeps its order
// across the jumps (a step straddling a jump would be first-order); and the loss-normalized staircase,
// whose steps used to collapse at a jump once rho ~ 1e4 (docs/rho_control.md), runs through.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include "gfsim/flow.hpp"
#include "gfsim/flow_problem.hpp"
#include "gfsim/max_margin.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

FlowSpec staircase(const char* kind, double rho0, double factor, double phase) {
  FlowSpec s;
  s.kind = FlowKind{kind};
  s.rho = rho0;
  s.rho_schedule = RhoScheduleKind::staircase;
  s.rho_factor = factor;
  s.rho_phase = phase;
  return s;
}

/// The same field at the constant radius rho (a staircase of factor 1: no discontinuity).
FlowSpec constant(const char* kind, double rho) { return staircase(kind, rho, 1.0, 1.0); }

struct End {
  Vec direction;
  SolveResult result;
};

End run(const Flow& flow, const Vec& theta0, double t_end, const SolverOptions& o) {
  const Vec y0 = flow.initial_state(theta0);
  End e;
  e.result = integrate(to_ode_problem(flow), y0, {0.0, t_end}, o, [](std::int64_t, double, const Vec&) {});
  e.direction = flow.direction(e.result.y_final);
  return e;
}

/// theta with unit layer norms scaled to the product rho (balanced: each layer rho^(1/K)).
Vec weights_at(const Network& net, const Vec& direction, double rho) {
  return std::pow(rho, 1.0 / double(net.num_layers())) * direction;
}

struct Case {
  const char* kind;
  Method method;
  ClockKind clock;
};

TEST(Discontinuities, StaircaseRunIsTheConcatenationOfConstantRadiusRuns) {
  const Dataset data = test::separable_data(15, 3, 401);
  const double rho0 = 0.7, factor = 2.0, phase = 0.7, t_end = 3.0;  // jumps at 0.7, 1.4, 2.1, 2.8
  const Case cases[] = {{"rho_schedule", Method::dopri5, ClockKind::t},
                        {"rho_schedule", Method::dopri5, ClockKind::log},
                        {"rho_schedule", Method::rkf78, ClockKind::log},
                        {"rho_schedule", Method::rosenbrock4, ClockKind::log},
                        {"rho_schedule", Method::cvode, ClockKind::t},
                        {"rho_schedule_normalized", Method::cvode, ClockKind::log},
                        {"rho_schedule_normalized", Method::dopri5, ClockKind::t}};
  for (const std::vector<Index>& widths : {std::vector<Index>{3, 1}, std::vector<Index>{3, 2, 1}}) {
    const Network net(widths, Activation::linear);
    const Vec theta0 = test::random_vector(net.num_params(), 402, 0.6);
    for (const Case& c : cases) {
      const double rtol = 1e-10;
      const SolverOptions o = test::solver_options(c.method, c.clock, rtol);
      const Flow stairs(net, data, LossKind::logistic, staircase(c.kind, rho0, factor, phase));
      const End got = run(stairs, theta0, t_end, o);
      ASSERT_EQ(got.result.status, Status::success) << c.kind << " " << to_string(c.method) << ": "
                                                    << got.result.message;
      // The reference: phase after phase at constant rho, in the t clock with dopri5.
      Vec v;
      Vec theta = theta0;
      double rho = rho0, t = 0.0;
      int jumps = 0;
      while (t < t_end) {
        const double t_next = std::min(stairs.next_discontinuity(t), t_end);
        const Flow piece(net, data, LossKind::logistic, constant(c.kind, rho));
        const End e = run(piece, theta, t_next - t, test::solver_options(Method::dopri5, ClockKind::t, rtol));
        ASSERT_EQ(e.result.status, Status::success) << e.result.message;
        v = e.direction;
        if (t_next < t_end) ++jumps;
        t = t_next;
        rho *= factor;
        theta = weights_at(net, v, rho);
      }
      // rtol 1e-10: the one-step methods land within ~1e-11 of the concatenation; creeping across the
      // jumps (no stops) they were 1e-9 (dopri5) to 3e-6 (rkf78) off. BDF's own error is ~1e-9.
      const double tol = c.method == Method::cvode ? 2e-8 : 1e-10;
      EXPECT_LT((got.direction - v).norm(), tol) << c.kind << " " << to_string(c.method) << " "
                                                   << to_string(c.clock) << " K = " << net.num_layers();
      EXPECT_EQ(got.result.counters.discontinuities, jumps) << c.kind << " " << to_string(c.method);
    }
  }
}

// Fixed steps of dopri5 that do not divide the phase: with the stops no step straddles a jump and
// the global error falls like h^5 (a straddling step's local error is O(h |F+ - F-|): first order).
TEST(Discontinuities, FixedStepsKeepTheirOrderAcrossJumps) {
  const Dataset data = test::separable_data(12, 3, 411);
  const Network net({3, 1}, Activation::linear);
  const Flow flow(net, data, LossKind::logistic, staircase("rho_schedule", 1.0, 1.5, 1.0));
  const Vec theta0 = test::random_vector(net.num_params(), 412, 0.5);
  const double t_end = 3.5;
  const Vec reference = run(flow, theta0, t_end, test::solver_options(Method::dopri5, ClockKind::t, 1e-13)).direction;
  std::vector<double> errors;
  for (double h : {0.3, 0.15, 0.075}) {
    SolverOptions o = test::solver_options(Method::dopri5, ClockKind::t, 1e-8);
    o.fixed_step = h;
    const End e = run(flow, theta0, t_end, o);
    ASSERT_EQ(e.result.status, Status::success) << e.result.message;
    EXPECT_EQ(e.result.counters.discontinuities, 3);
    errors.push_back((e.direction - reference).norm());
  }
  for (std::size_t i = 1; i < errors.size(); ++i) {
    const double order = std::log2(errors[i - 1] / errors[i]);
    EXPECT_GT(order, 4.0) << "errors " << errors[i - 1] << " -> " << errors[i];
  }
}

// Every table knot is a stop: nm's lambda table (a continuous lambda with a broken slope) and a
// rho table. Restarts: one per knot inside (0, t_end).
TEST(Discontinuities, TableKnotsAreStops) {
  const Dataset data = test::separable_data(12, 3, 421);
  const Network net({3, 1}, Activation::linear);
  const Vec theta0 = test::random_vector(net.num_params(), 422, 0.5);
  FlowSpec nm;
  nm.kind = FlowKind{"nm"};
  nm.lambda = LambdaKind::table;
  const auto dir = std::filesystem::temp_directory_path() / "gfsim_test_discontinuities";
  std::filesystem::create_directories(dir);
  nm.lambda_table = (dir / "lambda.csv").string();
  std::ofstream(nm.lambda_table) << "0,1\n0.5,0.2\n1.25,0.6\n2,0.1\n9,0.05\n";
  FlowSpec rho = staircase("rho_schedule", 1.0, 1.0, 1.0);
  rho.rho_schedule = RhoScheduleKind::table;
  rho.rho_table = (dir / "rho.csv").string();
  std::ofstream(rho.rho_table) << "0,1\n1,3\n1.5,2\n";
  for (const FlowSpec& spec : {nm, rho})
    for (Method method : {Method::dopri5, Method::rosenbrock4, Method::cvode}) {
      const Flow flow(net, data, LossKind::exp, spec);
      const double t_end = 3.0;
      int knots = 0;
      for (double t = flow.next_discontinuity(0.0); t < t_end; t = flow.next_discontinuity(t)) ++knots;
      const SolverOptions o = test::solver_options(method, ClockKind::log, 1e-10);
      const End e = run(flow, theta0, t_end, o);
      ASSERT_EQ(e.result.status, Status::success) << e.result.message;
      EXPECT_EQ(e.result.counters.discontinuities, knots) << to_string(spec.kind) << " " << to_string(method);
      // The field is continuous at the knots: the same end as a tight run that creeps across them.
      OdeProblem creeping = to_ode_problem(flow);
      creeping.discontinuities = {};
      const SolveResult r = integrate(creeping, flow.initial_state(theta0), {0.0, t_end},
                                      test::solver_options(Method::dopri5, ClockKind::t, 1e-12),
                                      [](std::int64_t, double, const Vec&) {});
      EXPECT_LT((flow.direction(r.y_final) - e.direction).norm(), 1e-7) << to_string(spec.kind);
    }
  std::filesystem::remove_all(dir);
}

// Progressive norm rescaling at large radii: the loss-normalized staircase doubling every 5 time
// units, with cvode as in docs/rho_control.md. Creeping across the jumps (no stops) the step size
// must satisfy h |F+ - F-| <~ atol with |F| ~ rho: the steps collapse at a jump, where the run
// ended before the loop moved the stepper's time origin (Stepper::reanchor). With the stops it
// reaches rho = 2^17 and the margin gap keeps halving per phase.
TEST(Discontinuities, NormalizedStaircasePassesTheJumpsWhereStepsCollapsed) {
  const Dataset data = test::separable_data(20, 3, 431);
  const Network net({3, 1}, Activation::linear);
  const Flow flow(net, data, LossKind::exp, staircase("rho_schedule_normalized", 1.0, 2.0, 5.0));
  const Vec theta0 = test::random_vector(net.num_params(), 432, 0.5);
  const double t_end = 88.0;
  SolverOptions o = test::solver_options(Method::cvode, ClockKind::t, 1e-8);
  o.atol = 1e-10;
  std::vector<double> margins;  // at the end of each phase
  std::vector<double> times{0.0};
  for (double t = 4.99; t < t_end; t += 5.0) times.push_back(t);
  times.push_back(t_end);
  OdeProblem problem = to_ode_problem(flow);
  const Vec y0 = flow.initial_state(theta0);
  const SolveResult with = integrate(problem, y0, times, o, [&](std::int64_t, double, const Vec& y) {
    margins.push_back(flow.diagnostics(y).margin);
  });
  EXPECT_EQ(with.status, Status::success) << with.message;
  EXPECT_EQ(with.counters.discontinuities, 17);
  problem.discontinuities = {};
  const SolveResult without = integrate(problem, y0, times, o, [](std::int64_t, double, const Vec&) {});
  // Without the stops CVODE's steps collapse at some of the jumps, against the round-off of t; it
  // moves its time origin there (Stepper::reanchor), which restarts it as a stop would, and ends
  // on the same solution, at more steps.
  EXPECT_EQ(without.status, Status::success) << without.message;
  EXPECT_GE(without.counters.reanchors, 1);
  EXPECT_LE(without.counters.reanchors, 17);
  EXPECT_GT(without.counters.accepted, with.counters.accepted);
  EXPECT_LT((without.y_final - with.y_final).norm(), 1e-7 * with.y_final.norm());
  // The gap to the max-margin value is ~ C / rho: it halves per phase once the direction has settled.
  const double gamma = max_margin(data.signed_points()).gamma;
  for (std::size_t i = margins.size() - 6; i + 2 < margins.size(); ++i) {
    const double ratio = (gamma - margins[i + 1]) / (gamma - margins[i]);
    EXPECT_NEAR(ratio, 0.5, 0.1) << "phase " << i;
  }
}

}  // namespace
}  // namespace gfsim
