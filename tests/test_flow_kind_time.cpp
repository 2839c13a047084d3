// A flow kind that exists only in this test, added the way every kind is (flow_kind.hpp) without
// touching the library: gradient flow at a prescribed speed, dW/dt = -a(t) grad L(W) with
// a(t) = a0/(1+t). It reaches the states of gd in the time A(t) = a0 log(1+t): W(t) = W_gd(A(t))
// for any network, and for K = 1 and one point x (label +1, exp loss) u = w.x has the closed form
// e^{u(t)} = e^{u(0)} + |x|^2 A(t). Checked in both clocks with every method (rosenbrock4 and
// CVODE through the kind's exact Jacobian products and dF/dt), through the model reader (the kind
// is registered in the name table), and across ReLU kinks (events at the same states as gd's).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "gfsim/build.hpp"
#include "gfsim/flow_problem.hpp"
#include "gfsim/kink_pattern.hpp"
#include "gd_based_kind.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

constexpr double kA0 = 0.7;
double speed(double t) { return kA0 / (1.0 + t); }
double speed_rate(double t) { return -kA0 / ((1.0 + t) * (1.0 + t)); }
double elapsed_gd_time(double t) { return kA0 * std::log1p(t); }  // A(t) = int_0^t a

/// The gd kind's layout, its field times a(t): composition of a table kind, not a copy.
class TimeRescaledGradient final : public test::GdBasedKind {
 public:
  void field(const Flow& flow, TimePoint tp, const Vec& y, Vec& dy) const override {
    gd_->field(flow, tp, y, dy);
    dy *= speed(tp.t);
  }
  void field_tangent(const Flow& flow, TimePoint tp, const Vec& y, const Vec& v, Vec& jv) const override {
    gd_->field_tangent(flow, tp, y, v, jv);
    jv *= speed(tp.t);
  }
  bool dense_jacobian(const Flow& flow, TimePoint tp, const Vec& y, Mat& J) const override {
    if (!gd_->dense_jacobian(flow, tp, y, J)) return false;
    J *= speed(tp.t);
    return true;
  }
  void time_derivative(const Flow& flow, TimePoint tp, const Vec& y, Vec& dft) const override {
    gd_->field(flow, tp, y, dft);
    dft *= speed_rate(tp.t);
  }
  LayerResponse layer_response(const Network& net, TimePoint tp, const Vec& y, Index k) const override {
    LayerResponse r = gd_->layer_response(net, tp, y, k);
    r.alpha *= speed(tp.t);
    return r;
  }
};

constexpr FlowKind kTimeRescaled{"time_rescaled_gd"};

/// Registered once per process, before any test reads the table.
[[maybe_unused]] const bool registered = [] {
  register_flow_kind({"time_rescaled_gd", "dW/dt = -a(t) grad L, a(t) = a0/(1+t) (test only)",
                      [](const FlowSpec&) -> std::unique_ptr<FlowKindModel> {
                        return std::make_unique<TimeRescaledGradient>();
                      }});
  return true;
}();

struct Case {
  Method method;
  ClockKind clock;
};
std::string case_name(const testing::TestParamInfo<Case>& info) {
  return std::string(to_string(info.param.method)) + "_" + to_string(info.param.clock);
}
const Case kCases[] = {{Method::dopri5, ClockKind::t},      {Method::dopri5, ClockKind::log},
                       {Method::rkf78, ClockKind::t},       {Method::cash_karp, ClockKind::log},
                       {Method::rosenbrock4, ClockKind::t}, {Method::rosenbrock4, ClockKind::log},
                       {Method::cvode, ClockKind::t},       {Method::cvode, ClockKind::log}};

std::vector<Vec> solve(const Flow& flow, const Vec& y0, const std::vector<double>& times, Method method, ClockKind clock,
                       double rtol) {
  std::vector<Vec> states;
  const auto r = integrate(to_ode_problem(flow), y0, times, test::solver_options(method, clock, rtol),
                           [&](std::int64_t, double, const Vec& y) { states.push_back(y); });
  EXPECT_EQ(r.status, Status::success) << r.message;
  return states;
}

class TimeRescaledKind : public testing::TestWithParam<Case> {};

TEST_P(TimeRescaledKind, OnePointClosedForm) {
  Dataset data;
  data.X = Mat{{0.6, -0.3, 1.1}};
  data.y = Vec::Ones(1);
  const Flow flow(Network({3, 1}, Activation::linear), data, LossKind::exp, kTimeRescaled, 1.0);
  const Vec x = data.X.row(0).transpose();
  Vec w0(3);
  w0 << 0.2, 0.5, -0.4;
  const std::vector<double> times{0.0, 0.5, 3.0, 40.0, 1e3, 1e6};
  const auto states = solve(flow, w0, times, GetParam().method, GetParam().clock, 1e-10);
  ASSERT_EQ(states.size(), times.size());
  const double u0 = w0.dot(x);
  for (std::size_t i = 0; i < times.size(); ++i) {
    const double u = std::log(std::exp(u0) + x.squaredNorm() * elapsed_gd_time(times[i]));
    const Vec exact = w0 + x * ((u - u0) / x.squaredNorm());
    EXPECT_LT((states[i] - exact).norm(), 1e-7 * exact.norm()) << "t = " << times[i];
  }
}

TEST_P(TimeRescaledKind, ReachesTheGradientFlowStatesAtTimeA) {
  // Deep linear net through the model reader: `flow.kind = "time_rescaled_gd"` is a table name.
  const Dataset data = test::separable_data(10, 3, 81);
  const ModelSpec spec = parse_model_spec("[flow]\nkind = \"time_rescaled_gd\"\n", "m.toml");
  const Network net({3, 2, 1}, Activation::linear);
  const Flow flow = make_flow(spec, net, data);
  ASSERT_FALSE(flow.autonomous());
  const Flow gd(net, data, LossKind::exp, FlowKind::gd);
  const Vec w0 = test::random_vector(gd.num_params(), 82, 0.5);
  const std::vector<double> times{0.0, 0.4, 2.0, 9.0, 60.0};
  std::vector<double> gd_times;
  for (double t : times) gd_times.push_back(elapsed_gd_time(t));
  const auto reference = solve(gd, w0, gd_times, Method::dopri5, ClockKind::t, 1e-12);
  const auto states = solve(flow, w0, times, GetParam().method, GetParam().clock, 1e-10);
  ASSERT_EQ(states.size(), reference.size());
  for (std::size_t i = 0; i < times.size(); ++i)
    EXPECT_LT((states[i] - reference[i]).norm(), 1e-6 * reference[i].norm()) << "t = " << times[i];
}

INSTANTIATE_TEST_SUITE_P(MethodsAndClocks, TimeRescaledKind, testing::ValuesIn(kCases), case_name);

TEST(TimeRescaledKind, FieldTangentAndTimeDerivativeMatchDifferences) {
  const Dataset data = test::separable_data(8, 3, 83);
  const Flow flow(Network({3, 4, 1}, Activation::relu), data, LossKind::logistic, kTimeRescaled, 1.0);
  const Vec y = test::random_vector(flow.state_size(), 84);
  const Vec v = test::random_vector(flow.state_size(), 85);
  const TimePoint tp{2.5, 0.4};
  Vec jv, fp, fm, dft;
  flow.jvp(tp, y, v, jv);
  const double h = 1e-6;
  flow.rhs(tp, y + h * v, fp);
  flow.rhs(tp, y - h * v, fm);
  EXPECT_LT((jv - (fp - fm) / (2 * h)).norm(), 1e-6 * (1 + jv.norm()));
  flow.time_derivative(tp, y, dft);
  flow.rhs({tp.t + 1e-5, tp.log_scale}, y, fp);
  flow.rhs({tp.t - 1e-5, tp.log_scale}, y, fm);
  EXPECT_LT((dft - (fp - fm) / 2e-5).norm(), 1e-6 * (1 + dft.norm()));
  // The t-free convenience overloads are for autonomous kinds only.
  EXPECT_THROW(flow.rhs(y, 0.0, fp), std::logic_error);
}

TEST(TimeRescaledKind, CrossesReluKinksAtTheStatesOfGradientFlow) {
  // Kink events (crossings and sliding) happen where gd's do, at the times t = A^{-1}(t_gd).
  const Dataset data = test::separable_data(12, 3, 86);
  const Network net({3, 5, 1}, Activation::relu);
  Flow flow(net, data, LossKind::exp, kTimeRescaled, 1.0);
  Flow gd(net, data, LossKind::exp, FlowKind::gd);
  const Vec w0 = test::random_vector(gd.num_params(), 87, 0.6);
  const double t_end = 200.0;
  std::vector<double> gd_events, events;
  auto run = [&](Flow& f, double end, std::vector<double>& at) {
    KinkPattern pattern(f);
    const OdeProblem p = to_event_problem(pattern, w0, [&](double t, Index, Index, Index, KinkEvent) { at.push_back(t); });
    Vec last;
    const auto r = integrate(p, w0, {0.0, end}, test::solver_options(Method::dopri5, ClockKind::t, 1e-11),
                             [&](std::int64_t, double, const Vec& y) { last = y; });
    EXPECT_EQ(r.status, Status::success) << r.message;
    return last;
  };
  const Vec w_gd = run(gd, elapsed_gd_time(t_end), gd_events);
  const Vec w = run(flow, t_end, events);
  ASSERT_GT(gd_events.size(), 2u);
  ASSERT_EQ(events.size(), gd_events.size());
  for (std::size_t i = 0; i < events.size(); ++i)
    EXPECT_NEAR(elapsed_gd_time(events[i]), gd_events[i], 1e-6 * (1 + gd_events[i])) << "event " << i;
  EXPECT_LT((w - w_gd).norm(), 1e-6 * w_gd.norm());
}

}  // namespace
}  // namespace gfsim
