// A field with explicit time built on a library flow without touching the library: gradient flow
// with a vanishing weight decay, dW/dt = -grad L(W) - lambda(t) W, lambda(t) = lambda0/(1+t).
// It is this file only: the time-aware OdeProblem (F(t, y), its Jacobian, J v and dF/dt) over the
// gd flow's own field. Checked against an independent formulation: with Lambda(t) = lambda0
// log(1+t), z = e^{Lambda} W obeys dz/dt = -(1+t)^lambda0 grad L((1+t)^-lambda0 z), a field built
// from the loss gradient alone (no decay term, no clock factor), integrated by dopri5 in t.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "gfsim/cvode_solver.hpp"
#include "gfsim/flow_problem.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

constexpr double kLambda0 = 0.5;
double lambda(double t) { return kLambda0 / (1.0 + t); }
double dlambda(double t) { return -kLambda0 / ((1.0 + t) * (1.0 + t)); }

/// dW/dtau = e^{log_scale} (F_gd(W) - lambda(t) W): the gd field plus the decay, in the solver's form.
OdeProblem vanishing_decay_problem(const Flow& gd) {
  OdeProblem p = to_ode_problem(gd);
  p.autonomous = false;
  p.rhs = [&gd](TimePoint tp, const Vec& y, Vec& dy) {
    gd.rhs(y, tp.log_scale, dy);
    dy -= std::exp(tp.log_scale) * lambda(tp.t) * y;
  };
  p.jacobian = [&gd](TimePoint tp, const Vec& y, Mat& J) {
    gd.jacobian(y, tp.log_scale, J);
    J.diagonal().array() -= std::exp(tp.log_scale) * lambda(tp.t);
  };
  p.jvp = [&gd](TimePoint tp, const Vec& y, const Vec& v, Vec& jv) {
    gd.jvp(y, tp.log_scale, v, jv);
    jv -= std::exp(tp.log_scale) * lambda(tp.t) * v;
  };
  p.time_derivative = [](TimePoint tp, const Vec& y, Vec& dft) { dft = -std::exp(tp.log_scale) * dlambda(tp.t) * y; };
  return p;
}

/// The same trajectory in z = (1+t)^lambda0 W, from the loss gradient only.
OdeProblem rescaled_problem(const Flow& gd) {
  OdeProblem p;
  p.size = gd.state_size();
  p.autonomous = false;
  p.rhs = [&gd](TimePoint tp, const Vec& z, Vec& dz) {
    const double growth = std::pow(1.0 + tp.t, kLambda0);
    Vec grad;
    gd.loss_gradient(z / growth, grad);
    dz = -growth * grad;
  };
  return p;
}

struct Case {
  Method method;
  ClockKind clock;
};

class VanishingWeightDecay : public testing::TestWithParam<Case> {};

TEST_P(VanishingWeightDecay, AgreesWithTheRescaledFormulation) {
  const Case c = GetParam();
  const Dataset data = test::separable_data(12, 3, 71);
  Flow gd(Network({3, 2, 1}, Activation::linear), data, LossKind::exp, FlowKind::gd);
  const Vec w0 = test::random_vector(gd.num_params(), 72, 0.5);
  const std::vector<double> times{0.0, 0.3, 1.0, 4.0, 15.0, 60.0};

  std::vector<Vec> reference;
  const auto ref = integrate(rescaled_problem(gd), w0, times, test::solver_options(Method::dopri5, ClockKind::t, 1e-12),
                             [&](std::int64_t, double t, const Vec& z) {
                               reference.push_back(z / std::pow(1.0 + t, kLambda0));
                             });
  ASSERT_EQ(ref.status, Status::success) << ref.message;

  std::vector<Vec> direct;
  const auto r = integrate(vanishing_decay_problem(gd), w0, times, test::solver_options(c.method, c.clock, 1e-10),
                           [&](std::int64_t, double, const Vec& w) { direct.push_back(w); });
  ASSERT_EQ(r.status, Status::success) << r.message;
  ASSERT_EQ(direct.size(), reference.size());
  for (std::size_t i = 0; i < times.size(); ++i)
    EXPECT_LT((direct[i] - reference[i]).norm(), 1e-6 * reference[i].norm()) << "t = " << times[i];
  // The decay matters here: without it the weights end elsewhere by far more than the tolerance.
  std::vector<Vec> undecayed;
  integrate(to_ode_problem(gd), w0, times, test::solver_options(Method::dopri5, ClockKind::t, 1e-10),
            [&](std::int64_t, double, const Vec& w) { undecayed.push_back(w); });
  EXPECT_GT((undecayed.back() - reference.back()).norm(), 1e-2 * reference.back().norm());
}

INSTANTIATE_TEST_SUITE_P(StiffAndExplicitBothClocks, VanishingWeightDecay,
                         testing::Values(Case{Method::dopri5, ClockKind::t}, Case{Method::dopri5, ClockKind::log},
                                         Case{Method::rosenbrock4, ClockKind::t},
                                         Case{Method::rosenbrock4, ClockKind::log}, Case{Method::cvode, ClockKind::t},
                                         Case{Method::cvode, ClockKind::log}),
                         [](const testing::TestParamInfo<Case>& info) {
                           return std::string(to_string(info.param.method)) + "_clock_" +
                                  to_string(info.param.clock);
                         });

}  // namespace
}  // namespace gfsim
