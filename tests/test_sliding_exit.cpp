// The end of a sliding mode (KinkPattern::leave_sliding): the side is the one the one-sided rates
// send the state to (the Filippov condition), not the side of the bound the mask left through.
// Issue 14 (bench/relu_large.toml, hidden 16): a sliding mode on a surface whose unit's output weight
// had changed sign (r and dr/dm both scale with W2_i, so the equivalent control moved on smoothly
// while the mode became repelling) ended with m leaving through 0 and both one-sided rates
// positive. The old rule (m > 1/2) put it on the inactive side, whose field carried h back through
// 0, the bounce re-entered sliding, and the run chattered until stalled_at_kink.
#include <gtest/gtest.h>

#include <Eigen/Cholesky>

#include "gfsim/flow.hpp"
#include "gfsim/kink_pattern.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

// For one hidden layer and gd, the field is affine in the mask m_j of a single surface j = (unit i,
// point n): r_j(m) = r0 + m D with D = a_n W2_i |x_n|^2 (a_n the loss weight). The equivalent control
// m* = -r0/D; outside [0,1] both one-sided rates r0, r0 + D have one sign: the surface is crossed.
struct OneSurface {
  Dataset data = test::separable_data(12, 3, 21, 0.1);
  Flow flow{Network({3, 4, 1}, Activation::relu), data, LossKind::exp, FlowKind::gd, 2.0};
  Vec theta;
  TimePoint tp{0.0, 0.3};

  // theta with unit i's first-layer row projected onto the orthogonal complement of x_n (h_j = 0)
  // and the output weight of unit i set to w2.
  Vec on_kink(Index i, Index n, double w2, std::uint64_t seed) {
    const Network& net = flow.network();
    theta = test::random_vector(net.num_params(), seed, 0.8);
    Eigen::Map<RowMat> W1(theta.data(), 4, 3);
    const Vec x = data.X.row(n).transpose();
    W1.row(i) -= (W1.row(i).dot(x) / x.squaredNorm()) * x.transpose();
    theta[net.layer_offset(1) + i] = w2;
    return flow.initial_state(theta);
  }
  // dh_j/dt with the pattern as it is.
  double rate(KinkPattern& pattern, const Vec& y, Index j) {
    Vec F;
    pattern.rhs(tp, y, F);
    return flow.preactivation_tangent(flow.theta(y), flow.theta_tangent(y, F))[j];
  }
};

TEST(SlidingExit, LeavesOntoTheSideTheOneSidedRatesPointTo) {
  OneSurface c;
  int repelling_through_zero = 0, repelling_through_one = 0, attracting_exits = 0;
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    for (Index i = 0; i < 4; ++i) {
      for (Index n = 0; n < 12; ++n) {
        for (double w2 : {0.7, -0.7}) {
          const Vec y = c.on_kink(i, n, w2, seed);
          const Index j = i + 4 * n;  // layer-1 entries: unit + point * d_1
          KinkPattern pattern(c.flow);
          pattern.freeze(y);
          pattern.stop_sliding(j, false);
          const double r0 = c.rate(pattern, y, j);
          pattern.stop_sliding(j, true);
          const double r1 = c.rate(pattern, y, j);
          const double D = r1 - r0;
          ASSERT_GT(std::abs(D), 0.0);
          // dr/dm = a_n W2_i |x_n|^2 (gd, one hidden layer; the loss weights carry the clock factor).
          const double a_n = c.flow.loss_weights()[n];
          // (D is the difference of the one-sided rates: round-off relative to them)
          const double scale = std::abs(r0) + std::abs(r1);
          EXPECT_NEAR(D, a_n * w2 * c.data.X.row(n).squaredNorm(), 1e-12 * scale);
          ASSERT_TRUE(pattern.start_sliding(j));
          const double m = pattern.sliding_masks(c.tp, y)[0];
          EXPECT_NEAR(m, -r0 / D, 1e-12 * (1 + std::abs(m)) * scale / std::abs(D));
          // The sliding field is tangent to the surface.
          EXPECT_LT(std::abs(c.rate(pattern, y, j)), 1e-12 * scale);
          if (m >= 0 && m <= 1) continue;  // still sliding: no exit here
          const bool active = pattern.leave_sliding(c.tp, y, j);
          EXPECT_TRUE(pattern.sliding().empty());
          EXPECT_EQ(pattern.value(j), active ? 1.0 : 0.0);
          // The Filippov condition: both one-sided rates have one sign; the state leaves the
          // surface on the side they point to, and the field of the chosen side points away.
          EXPECT_GT(r0 * r1, 0.0);
          EXPECT_EQ(active, r1 > 0) << "seed " << seed << " unit " << i << " point " << n << " m " << m;
          const double r = c.rate(pattern, y, j);
          EXPECT_TRUE(active ? r > 0 : r < 0);
          const bool through_top = m > 1;
          if (D > 0) {
            // Repelling: the side opposite to the bound the mask left through (the old rule's
            // m > 1/2 chose the bound's side, whose field crosses back).
            EXPECT_EQ(active, !through_top);
            ++(through_top ? repelling_through_one : repelling_through_zero);
          } else {
            // Attracting: a departure on the bound's side (m > 1: active).
            EXPECT_EQ(active, through_top);
            ++attracting_exits;
          }
        }
      }
    }
  }
  // The cases of the issue are exercised (a repelling mode ending through 0) and their mirror images.
  EXPECT_GT(repelling_through_zero, 0);
  EXPECT_GT(repelling_through_one, 0);
  EXPECT_GT(attracting_exits, 0);
}

}  // namespace
}  // namespace gfsim
