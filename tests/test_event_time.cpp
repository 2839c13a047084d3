// Event hooks see the time of the state they are given (docs/events.md, "Time"). The sliding
// field of a time-dependent flow depends on t, and so do its equivalent-control masks and their
// event functions min(m, 1 - m): a sliding mode must end where the mask at the true t leaves [0,1].
//
// The toy: a 2-1-1 ReLU net f(x) = w2 relu(w1 . x), exp loss, points x_A = (1, 0) label +1 and
// x_B = (1, 1) label -1, flowing by gd plus a test-only time-dependent push c(t) = c1 t on w1[0].
// Start: w1 = (0, u), w2 = -v (u, v > 0): A sits on its kink h_A = w1[0] = 0, B is active. With
// a_B = e^{-uv}, the rate of h_A with A's mask m is  r(m) = v (a_B - m) + c(t), so the surface
// attracts while 0 < m* = a_B + c(t)/v < 1, the equivalent control. While sliding, w1[0] = 0 and
//     du/dt = v e^{-uv},  dv/dt = u e^{-uv}
// (the push acts only on w1[0]); the slide ends onto the active side when m* reaches 1, i.e. at
//     c1 t = v(t) (1 - e^{-u(t) v(t)}),
// computed here independently by RK4 on the (u, v) system. At t = 0 the push is zero and m* < 1
// for ever: masks evaluated at t = 0 never leave [0,1] and would miss the exit.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "gfsim/flow_kind.hpp"
#include "gfsim/flow_problem.hpp"
#include "gfsim/kink_pattern.hpp"
#include "gd_based_kind.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

constexpr double kPushRate = 0.5;  // c(t) = c1 t

/// gd plus the push c(t) e_0 (the first weight of layer 1).
class PushedGradient final : public test::GdBasedKind {
 public:
  void field(const Flow& flow, TimePoint tp, const Vec& y, Vec& dy) const override {
    gd_->field(flow, tp, y, dy);
    dy[0] += std::exp(tp.log_scale) * kPushRate * tp.t;
  }
  void time_derivative(const Flow&, TimePoint tp, const Vec& y, Vec& dft) const override {
    dft = Vec::Zero(y.size());
    dft[0] = std::exp(tp.log_scale) * kPushRate;
  }
};

constexpr FlowKind kPushed{"pushed_gd"};
[[maybe_unused]] const bool registered = [] {
  register_flow_kind({"pushed_gd", "gd plus c1 t on the first weight (test only)",
                      [](const FlowSpec&) -> std::unique_ptr<FlowKindModel> {
                        return std::make_unique<PushedGradient>();
                      }});
  return true;
}();

Dataset two_points() {
  Dataset d;
  d.X = Mat{{1.0, 0.0}, {1.0, 1.0}};
  d.y.resize(2);
  d.y << 1.0, -1.0;
  return d;
}

/// The sliding phase independently: RK4 on (u, v), and the exit time where c1 t = v (1 - e^{-uv}).
struct SlidingReference {
  static Eigen::Vector2d rate(const Eigen::Vector2d& z) {
    const double a = std::exp(-z[0] * z[1]);
    return {z[1] * a, z[0] * a};
  }
  static Eigen::Vector2d rk4(Eigen::Vector2d z, double h) {
    const Eigen::Vector2d k1 = rate(z), k2 = rate(z + 0.5 * h * k1), k3 = rate(z + 0.5 * h * k2),
                          k4 = rate(z + h * k3);
    return z + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4);
  }
  static double excess(double t, const Eigen::Vector2d& z) {  // < 0 while sliding
    return kPushRate * t - z[1] * (1 - std::exp(-z[0] * z[1]));
  }
  /// (u, v) at time t from (u0, v0) at 0.
  static Eigen::Vector2d at(Eigen::Vector2d z, double t) {
    const int steps = int(std::ceil(t / 1e-4));
    for (int i = 0; i < steps; ++i) z = rk4(z, t / steps);
    return z;
  }
  static double exit_time(const Eigen::Vector2d& z0) {
    double lo = 0, hi = 0;
    Eigen::Vector2d z = z0;
    const double h = 1e-3;
    while (excess(hi, z) < 0) {
      lo = hi;
      z = rk4(z, h);
      hi += h;
    }
    const double base = lo;
    const Eigen::Vector2d z_base = at(z0, base);
    for (int it = 0; it < 80; ++it) {  // bisection on one RK4 step from base (error O(h^5), below 1e-13)
      const double mid = 0.5 * (lo + hi);
      (excess(mid, rk4(z_base, mid - base)) < 0 ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi);
  }
};

TEST(EventTime, SlidingModeEndsWhereTheMaskAtTheTrueTimeLeaves) {
  const Dataset data = two_points();
  Vec y0(3);
  y0 << 0.0, 1.0, -1.0;  // w1 = (0, u0), w2 = -v0
  const Eigen::Vector2d z0(1.0, 1.0);
  const double t_exit = SlidingReference::exit_time(z0);
  ASSERT_GT(t_exit, 1.0);
  ASSERT_LT(t_exit, 4.5);
  for (ClockKind clock : {ClockKind::t, ClockKind::log}) {
    Flow f(Network({2, 1, 1}, Activation::relu), data, LossKind::exp, kPushed, 1.0);
    KinkPattern pattern(f);
    struct Logged {
      double t;
      Index point;
      KinkEvent kind;
    };
    std::vector<Logged> log;
    const OdeProblem p = to_event_problem(pattern, y0, [&](double t, Index, Index, Index point, KinkEvent e) {
      log.push_back({t, point, e});
    });
    // Samples before the exit: the state stays on h_A = 0 and follows the reference (u, v).
    const std::vector<double> times{0.0, 0.5, 1.0, 2.5, 5.0};
    std::vector<Vec> states;
    const auto r = integrate(p, y0, times, test::solver_options(Method::dopri5, clock, 1e-11),
                             [&](std::int64_t, double, const Vec& y) { states.push_back(y); });
    ASSERT_EQ(r.status, Status::success) << r.message;
    ASSERT_EQ(states.size(), times.size());
    ASSERT_GE(log.size(), 2u) << to_string(clock);
    EXPECT_EQ(log[0].kind, KinkEvent::sliding_entry);  // settled at the start: both sides point in
    EXPECT_EQ(log[0].t, 0.0);
    EXPECT_EQ(log[1].kind, KinkEvent::sliding_exit) << to_string(clock);
    EXPECT_EQ(log[1].point, 0);
    EXPECT_NEAR(log[1].t, t_exit, 1e-7 * t_exit) << to_string(clock);
    for (std::size_t s = 1; s + 1 < times.size(); ++s) {
      const Eigen::Vector2d z = SlidingReference::at(z0, times[s]);
      EXPECT_NEAR(states[s][0], 0.0, 1e-9) << times[s];
      EXPECT_NEAR(states[s][1], z[0], 1e-8) << times[s];
      EXPECT_NEAR(states[s][2], -z[1], 1e-8) << times[s];
    }
    // After the exit the state is on the active side: h_A = w1[0] > 0.
    EXPECT_GT(states.back()[0], 0.0);
    EXPECT_EQ(pattern.value(0), 1.0);
  }
}

TEST(EventTime, StartOnAKinkIsSettledWithTheFieldAtTheStartTime) {
  // At t0 = 2.5 the push c(t0) = 1.25 exceeds v0 (1 - a_B): both one-sided rates of h_A are
  // positive, so A starts active, not sliding (at t = 0 the same state slides).
  const Dataset data = two_points();
  Flow flow(Network({2, 1, 1}, Activation::relu), data, LossKind::exp, kPushed, 1.0);
  Vec y0(3);
  y0 << 0.0, 1.0, -1.0;
  {
    KinkPattern pattern(flow);
    to_event_problem(pattern, y0, {}, TimePoint{0.0, 0.0});
    EXPECT_EQ(pattern.sliding(), std::vector<Index>{0});
  }
  for (const TimePoint start : {TimePoint{2.5, 0.0}, TimePoint{2.5, std::log1p(2.5)}}) {
    KinkPattern pattern(flow);
    to_event_problem(pattern, y0, {}, start);
    EXPECT_TRUE(pattern.sliding().empty());
    EXPECT_EQ(pattern.value(0), 1.0);
  }
}

}  // namespace
}  // namespace gfsim
