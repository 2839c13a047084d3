// Coincident kink surfaces (docs/events.md, "Sliding sets"): a data point and a positive multiple
// of it, x_b = c x_a, have every pre-activation of a bias-free ReLU net in the ratio c, so each
// hidden unit's surfaces at a and b are one surface. Its two sides have both masks 0 or both 1,
// so the Filippov field there takes one mask for both. The joint switch (KinkPattern::resolve)
// must give them one mask, and the sliding field's own solve (sliding_rhs) must continue it: the
// same masks at the switch's state, tangent to the surface, and one mask still at a nearby state.
// Before, the joint switch kept the split its warm start had (least-norm Newton steps), and the
// sliding field's steps moved the masks of such a pair apart until one left [0,1] at once while
// the other stayed inside: an exit, the joint switch put it back, and [8,8,8,8] gd on
// bench/relu_deep.toml stopped after 65 zero-length restarts at t = 1.145.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "gfsim/flow.hpp"
#include "gfsim/flow_problem.hpp"
#include "gfsim/kink_pattern.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

constexpr Index kPoints = 12, kDim = 3, kWidth = 4;
constexpr Index kA = 2, kB = 7;  // x_kB = kScale x_kA
constexpr double kScale = 2.5;

struct CoincidentPair {
  Dataset data = make_data();
  Flow flow{Network({kDim, kWidth, kWidth, 1}, Activation::relu), data, LossKind::logistic, FlowKind::gd};
  TimePoint tp{0.0, 0.2};

  static Dataset make_data() {
    Dataset d = test::separable_data(kPoints, kDim, 41, 0.1);
    d.X.row(kB) = kScale * d.X.row(kA);
    d.y[kB] = d.y[kA];
    return d;
  }
  // Layer-2 entry of unit i at point n in the concatenated pre-activation vector.
  static Index entry(Index i, Index n) { return kWidth * kPoints + i + n * kWidth; }

  // theta with unit i of layer 2 on its kink at point kA (its row orthogonal to the layer-1
  // activations there), hence at kB too; the unit's output weight w3. Empty if no layer-1 unit
  // is active at kA.
  Vec on_kink(Index i, double w3, std::uint64_t seed) {
    const Network& net = flow.network();
    Vec theta = test::random_vector(net.num_params(), seed, 0.8);
    const auto W1 = net.layer(theta, 0);
    const Vec a1 = (W1 * data.X.row(kA).transpose()).cwiseMax(0.0);
    if (!(a1.norm() > 0.1)) return Vec();
    Eigen::Map<RowMat> W2(theta.data() + net.layer_offset(1), kWidth, kWidth);
    W2.row(i) -= (W2.row(i).dot(a1) / a1.squaredNorm()) * a1.transpose();
    theta[net.layer_offset(2) + i] = w3;
    return flow.initial_state(theta);
  }
  // dh/dt of every pre-activation along the pattern's field.
  Vec rates(KinkPattern& pattern, const Vec& y) { return test::pattern_rates(pattern, tp, y); }
};

TEST(CoincidentSliding, JointSwitchAndSlidingFieldGiveCoincidentSurfacesOneMask) {
  CoincidentPair c;
  int sliding_pairs = 0;
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    for (Index i = 0; i < kWidth; ++i) {
      for (double w3 : {0.9, -0.9}) {
        const Vec y = c.on_kink(i, w3, seed);
        if (y.size() == 0) continue;
        const Index ja = CoincidentPair::entry(i, kA), jb = CoincidentPair::entry(i, kB);
        const Vec h = c.flow.preactivations(y);
        ASSERT_LT(std::abs(h[ja]), 1e-14 * h.cwiseAbs().maxCoeff());
        ASSERT_LT(std::abs(h[jb]), 1e-14 * h.cwiseAbs().maxCoeff());
        // The one-sided rates of the surface (both masks 0, both 1), the scale of its rates. (One
        // pattern per flow at a time: this one is gone before the next registers.)
        double r0 = 0, r1 = 0;
        {
          KinkPattern sides(c.flow);
          sides.freeze(y);
          sides.stop_sliding(ja, false);
          sides.stop_sliding(jb, false);
          r0 = c.rates(sides, y)[ja];
          sides.stop_sliding(ja, true);
          sides.stop_sliding(jb, true);
          r1 = c.rates(sides, y)[ja];
        }
        const double scale = std::abs(r0) + std::abs(r1);
        KinkPattern pattern(c.flow);
        pattern.freeze(y);
        // Both on the inactive side: the warm start of the joint switch.
        pattern.stop_sliding(ja, false);
        pattern.stop_sliding(jb, false);
        const auto joint = pattern.resolve(c.tp, y, {ja}, KinkPattern::kJointAfterEvents);
        ASSERT_TRUE(joint.has_value());
        ASSERT_TRUE(joint->failure.empty()) << joint->failure;
        const auto& s = pattern.sliding();
        const bool a_slides = std::find(s.begin(), s.end(), ja) != s.end();
        const bool b_slides = std::find(s.begin(), s.end(), jb) != s.end();
        // One surface: both slide or neither does, and their masks are one.
        EXPECT_EQ(a_slides, b_slides) << "seed " << seed << " unit " << i << " w3 " << w3;
        EXPECT_EQ(pattern.value(ja), pattern.value(jb)) << "seed " << seed << " unit " << i << " w3 " << w3;
        if (!a_slides || !b_slides || s.size() != 2) continue;
        ++sliding_pairs;
        const double m = pattern.value(ja);
        ASSERT_GT(m, 0.0);
        ASSERT_LT(m, 1.0);
        EXPECT_GT(r0, 0.0);  // attracting: both sides point into the surface
        EXPECT_LT(r1, 0.0);
        // The sliding field at the switch's state continues its masks and is tangent to both.
        const Vec ms = pattern.sliding_masks(c.tp, y);
        EXPECT_NEAR(ms[0], m, 1e-10);
        EXPECT_NEAR(ms[1], m, 1e-10);
        const Vec r = c.rates(pattern, y);
        if (!r.allFinite()) ADD_FAILURE() << pattern.field_failure().reason;
        EXPECT_LT(std::abs(r[ja]), 1e-9 * scale);
        EXPECT_LT(std::abs(r[jb]), 1e-9 * kScale * scale);
        // One mask is the Filippov combination of the two sides' fields: the surface's rate is
        // affine in it, r0 + m (r1 - r0) = 0 to first order (the field is quadratic in a mask).
        EXPECT_NEAR(m, r0 / (r0 - r1), 0.05);
        // Along the sliding field the masks stay one and move continuously.
        Vec F;
        pattern.rhs(c.tp, y, F);
        const double dt = 1e-4 / std::max(1.0, F.norm());
        const Vec y2 = y + dt * F;
        const Vec ms2 = pattern.sliding_masks(c.tp, y2);
        EXPECT_NEAR(ms2[0], ms2[1], 1e-9) << "seed " << seed << " unit " << i << " w3 " << w3;
        EXPECT_NEAR(ms2[0], m, 1e-2);
      }
    }
  }
  EXPECT_GE(sliding_pairs, 4);  // the test saw attracting coincident pairs (5 of 64)
}

// A crossing of one of two coincident surfaces is a crossing of both, at that instant and in the
// same direction (their pre-activations are in the fixed ratio kScale). The event problem names
// the twins (EventHooks::coincident), which the locator switches with the crossing. Before, a twin
// was left to its own event function, which a step could carry back across unseen when its point
// died at a shallower layer within it ([8,8,8,8] gd_polar at t = 0.88935).
TEST(CoincidentSliding, TheEventProblemNamesTheCoincidentSurfacesOfACrossing) {
  CoincidentPair c;
  int tried = 0;
  for (std::uint64_t seed = 1; seed < 40 && tried < 3; ++seed) {
    const Vec y = c.on_kink(1, 0.7, seed);
    if (y.size() == 0) continue;
    ++tried;
    KinkPattern pattern(c.flow);
    const OdeProblem p = to_event_problem(pattern, y);
    const Index ja = CoincidentPair::entry(1, kA), jb = CoincidentPair::entry(1, kB);
    for (Index j : std::vector<Index>(pattern.sliding())) pattern.stop_sliding(j, true);
    if (pattern.value(jb) != pattern.value(ja)) pattern.flip(jb);
    // The twins, independently: points whose layer-1 activations are positive multiples of kA's
    // (kB by construction; others where one and the same layer-1 unit alone is active), on the
    // same side of unit 1, and unit 1's pre-activation on its kink there too.
    const Network& net = c.flow.network();
    const Vec theta = c.flow.theta(y);
    const Mat A1 = (net.layer(theta, 0) * c.data.X.transpose()).cwiseMax(0.0);
    std::vector<Index> expected;
    for (Index q = 0; q < kPoints; ++q) {
      const double ab = A1.col(kA).dot(A1.col(q)), na = A1.col(kA).norm(), nb = A1.col(q).norm();
      const bool same_side = pattern.value(CoincidentPair::entry(1, q)) == pattern.value(ja);
      if (q != kA && nb > 0 && ab >= (1 - 1e-12) * na * nb && same_side) expected.push_back(CoincidentPair::entry(1, q));
    }
    ASSERT_NE(std::find(expected.begin(), expected.end(), jb), expected.end()) << "seed " << seed;
    EXPECT_EQ(p.events.coincident(c.tp, y, ja), expected) << "seed " << seed;
    EXPECT_EQ(pattern.coincident_with(y, ja), expected) << "seed " << seed;
    // On another side of unit 1 at kB: no twin there.
    pattern.flip(jb);
    const auto other = pattern.coincident_with(y, ja);
    EXPECT_EQ(std::find(other.begin(), other.end(), jb), other.end()) << "seed " << seed;
    // Off the kink (unit 1's row moved along kA's activations): not one surface at this instant.
    pattern.flip(jb);
    Vec moved = theta;
    Eigen::Map<RowMat>(moved.data() + net.layer_offset(1), kWidth, kWidth).row(1) += 1e-3 * A1.col(kA).transpose();
    const auto off = pattern.coincident_with(c.flow.initial_state(moved), ja);
    EXPECT_TRUE(off.empty()) << "seed " << seed << ": " << off.size();
  }
  EXPECT_EQ(tried, 3);
}

}  // namespace
}  // namespace gfsim
