// A data point waking up or dying in layer 1 (docs/events.md, "Sliding sets"): where one layer-1
// unit is active at a point with h ~ 1e-9 and the others inactive, every deeper pre-activation there
// is ~1e-9 as well, but not small against its own terms |W_k row i| |a_{k-1}(n)|: its sign is the
// weights' (W_2 column of the active unit), and the state is off that surface. The joint switch
// (KinkPattern::resolve) must put such a surface hit on the side of its sign, not decide its mask
// by its rate as for a surface the state is on. Its rate there follows the layer-1 unit's
// (r_2 ~ W_2[i, u] r_u): for a dying point it points the other way, and as a candidate the
// complementarity problem put the mask on the side opposite the sign (the pattern inconsistent
// with the state: an event again at zero distance). On bench/relu_deep.toml ([8,8,8,8] gd,
// t = 1.0582) four such layer-2 surfaces at one point made the joint problem of 27 surfaces
// unsolvable (residual 18.6) and stopped the run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "gfsim/flow.hpp"
#include "gfsim/kink_pattern.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

constexpr Index kPoints = 12, kDim = 3, kWidth = 4;
constexpr Index kP = 5;  // the waking / dying point

struct WakingPoint {
  Dataset data = test::separable_data(kPoints, kDim, 17, 0.1);
  Flow flow{Network({kDim, kWidth, kWidth, 1}, Activation::relu), data, LossKind::logistic, FlowKind::gd};
  TimePoint tp{0.0, 0.2};

  static Index entry1(Index i, Index n) { return i + n * kWidth; }
  static Index entry2(Index i, Index n) { return kWidth * kPoints + i + n * kWidth; }

  // theta with layer-1 unit u at h = eps at point kP and the other layer-1 units clearly inactive
  // there (h = -0.5).
  Vec state(Index u, double eps, std::uint64_t seed) {
    const Network& net = flow.network();
    Vec theta = test::random_vector(net.num_params(), seed, 0.8);
    Eigen::Map<RowMat> W1(theta.data() + net.layer_offset(0), kWidth, kDim);
    const Vec x = data.X.row(kP).transpose();
    for (Index i = 0; i < kWidth; ++i) {
      const double target = i == u ? eps : -0.5;
      W1.row(i) += ((target - W1.row(i).dot(x)) / x.squaredNorm()) * x.transpose();
    }
    return flow.initial_state(theta);
  }
  Vec rates(KinkPattern& pattern, const Vec& y) { return test::pattern_rates(pattern, tp, y); }
};

TEST(WakingPoint, DeeperSurfaceHitOffItsKinkTakesTheSideOfItsSign) {
  WakingPoint w;
  int against_rate = 0, cases = 0;
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    for (Index u = 0; u < kWidth; ++u) {
      const Vec y = w.state(u, 1e-9, seed);
      const Vec h = w.flow.preactivations(y);
      ASSERT_NEAR(h[WakingPoint::entry1(u, kP)], 1e-9, 1e-12);
      for (Index i = 0; i < kWidth; ++i) {
        const Index j = WakingPoint::entry2(i, kP);
        // Tiny, and not small against its terms: off its surface.
        ASSERT_LT(std::abs(h[j]), 1e-8);
        const double side = h[j] > 0 ? 1.0 : 0.0;
        KinkPattern pattern(w.flow);
        pattern.freeze(y);
        ASSERT_EQ(pattern.value(j), side);
        // The rate of h_j on the side of its sign: pointing back to the other side for a dying
        // point (the case the complementarity problem decided against the sign).
        if ((w.rates(pattern, y)[j] > 0) != (side == 1.0)) ++against_rate;
        // The event hit it with its mask on the other side (e.g. set before the point woke).
        pattern.stop_sliding(j, side == 0.0);
        const auto joint = pattern.resolve(w.tp, y, {j}, KinkPattern::kJointAfterEvents);
        ASSERT_TRUE(joint.has_value());
        ++cases;
        const auto& s = pattern.sliding();
        EXPECT_TRUE(std::find(s.begin(), s.end(), j) == s.end()) << "seed " << seed << " u " << u << " i " << i;
        EXPECT_EQ(pattern.value(j), side) << "seed " << seed << " u " << u << " i " << i << " h " << h[j];
      }
    }
  }
  EXPECT_GE(cases, 48);
  EXPECT_GE(against_rate, 4);  // the test saw surfaces whose rate points away from their sign's side
}

TEST(WakingPoint, DeeperSurfaceHitWithinTheClocksResolutionIsDecidedByItsRates) {
  // The same surfaces late in the log clock (tau = 30: the rates dh/dtau carry e^30), where h moves
  // by more than |h| over a few ulps of tau: the event cannot put the state on either side of the
  // surface, and the joint switch must decide it by the Filippov conditions of its rates (a
  // sliding mask with rate 0, or a side its rate does not leave), not by the sign of h. Measured
  // case: [8,8,8,8] gd_polar (seed 3) at t = 1718.4, layer 4 units 2 and 5 at point 4, 1e-5..2e-4
  // of their terms and 3e-17..5e-16 of |dh/dtau| max(1, tau); put on the side of their sign they
  // were hit again at zero length until the run stopped (96 events, the last 65 at zero length).
  WakingPoint w;
  const TimePoint late{std::expm1(30.0), 30.0};
  int against_sign = 0, cases = 0;
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    for (Index u = 0; u < kWidth; ++u) {
      const Vec y = w.state(u, 1e-9, seed);
      const Vec h = w.flow.preactivations(y);
      for (Index i = 0; i < kWidth; ++i) {
        const Index j = WakingPoint::entry2(i, kP);
        const double side = h[j] > 0 ? 1.0 : 0.0;
        KinkPattern pattern(w.flow);
        pattern.freeze(y);
        // Within 2^-50 tau (4..8 ulps of the clock) at its rate on its side (the joint switch's allowance).
        const double r_side = test::pattern_rates(pattern, late, y)[j];
        if (!(std::abs(h[j]) <= std::abs(r_side) * std::ldexp(30.0, -50))) continue;
        pattern.stop_sliding(j, side == 0.0);
        const auto joint = pattern.resolve(late, y, {j}, KinkPattern::kJointAfterEvents);
        ASSERT_TRUE(joint.has_value());
        ASSERT_TRUE(joint->failure.empty()) << joint->failure;
        ++cases;
        const auto& s = pattern.sliding();
        const bool sliding = std::find(s.begin(), s.end(), j) != s.end();
        const Vec r = test::pattern_rates(pattern, late, y);
        const double tol = 1e-9 * r.cwiseAbs().maxCoeff();
        const std::string where = "seed " + std::to_string(seed) + " u " + std::to_string(u) + " i " + std::to_string(i);
        if (sliding) {
          EXPECT_LE(std::abs(r[j]), tol) << where;
        } else if (pattern.value(j) == 1.0) {
          EXPECT_GE(r[j], -tol) << where;
        } else {
          EXPECT_EQ(pattern.value(j), 0.0) << where;
          EXPECT_LE(r[j], tol) << where;
        }
        if (sliding || pattern.value(j) != side) ++against_sign;
      }
    }
  }
  EXPECT_GE(cases, 40);
  EXPECT_GE(against_sign, 4);  // surfaces whose Filippov side is not the sign of h
}

}  // namespace
}  // namespace gfsim
