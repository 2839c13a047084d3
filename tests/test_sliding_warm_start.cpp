// The deep-net sliding solve's warm start (KinkPattern::sliding_rhs, docs/events.md "Sliding at any
// depth"). Its masks m(y) solve the tangency conditions r(m, y) = 0 of the sliding set, an
// implicit function of the state, and Newton starts from the masks the last evaluation left. That
// evaluation may be a stage at the far end of a step while the next is a state of the event search
// near the step's start: [8,8,8,8] gd_polar seed 9 at t = 1.2709142922 stopped after 65 zero-length
// restarts because every state of that search was solved from the control of the step's last stage
// (-21, against 0.43 at the start), Newton failed from there, and the failed iterate read as an
// exit 3 ulps after the step's start. A failed solve is retried from the control solved nearest in
// time with the same pattern.
//
// Here: a Filippov sliding mode on surfaces of all three hidden layers of a 4-5-4-3-1 net (masks in
// (0, 1)); the sliding field is followed along its own direction to a state whose control is far
// from the start's (a stage at the end of a long step), and then solved at a state next to the
// start. The answer is checked independently of the solver: the field it returns is tangent to the
// three surfaces up to the drift decay, by central differences of the pre-activations along it.
// Without the solves near the start (the pattern's history forgotten by flipping an unrelated entry
// twice) the same solve from the far control fails: the situation the retry is for.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gfsim/flow_problem.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

TEST(SlidingWarmStart, AFailedSolveIsRetriedFromTheControlSolvedNearestInTime) {
  const std::vector<Index> widths{4, 5, 4, 3, 1};
  const Dataset data = test::separable_data(16, widths[0], 51, 0.1);
  for (FlowKind kind : {FlowKind::gd, FlowKind::gd_polar}) {
    const std::string what = to_string(kind);
    Flow flow(Network(widths, Activation::relu), data, LossKind::exp, kind, 2.0);
    const Network& net = flow.network();
    // Weights and surfaces (hidden layer, unit, point) found by a search over seeds for a sliding
    // mode whose control, followed along the field, leaves the start's far behind.
    Vec theta = test::random_vector(net.num_params(), 2061, 0.5);
    std::vector<Index> js;
    ASSERT_TRUE(test::put_on_kinks(net, data, theta, {{0, 1, 13}, {1, 1, 13}, {2, 0, 6}}, js))
        << what << ": each point must be alive below its surface's layer";
    const Vec y0 = flow.initial_state(theta);
    KinkPattern pattern(flow);
    pattern.freeze(y0);
    for (Index j : js) ASSERT_TRUE(pattern.start_sliding(j));
    Vec F0;
    pattern.rhs(TimePoint{0.0, 0.0}, y0, F0);
    ASSERT_TRUE(pattern.field_failure().reason.empty()) << what << ": " << pattern.field_failure().reason;
    const Vec m0 = pattern.sliding_masks(TimePoint{0.0, 0.0}, y0);
    for (Index s = 0; s < m0.size(); ++s) ASSERT_TRUE(m0[s] > 0.05 && m0[s] < 0.95) << what << ": mask " << m0[s];

    // The state along the start's field at clock time t (linear clock): y0 + t F0.
    auto state = [&](double t) { return Vec(y0 + t * F0); };
    // Where the control has left the start's by more than 3: followed in small moves (each solve
    // from the last) on a copy of the problem.
    double t_far = 0;
    {
      Flow probe_flow(Network(widths, Activation::relu), data, LossKind::exp, kind, 2.0);
      KinkPattern probe(probe_flow);
      probe.freeze(y0);
      for (Index j : js) ASSERT_TRUE(probe.start_sliding(j));
      const double dt = 1e-3 / F0.norm();
      Vec F, m = m0;
      for (int i = 0; i < 2000 && (m - m0).cwiseAbs().maxCoeff() <= 3.0; ++i) {
        t_far += dt;
        probe.rhs(TimePoint{t_far, 0.0}, state(t_far), F);
        ASSERT_TRUE(F.allFinite()) << what << ": the control followed in small moves, t = " << t_far;
        m = probe.sliding_masks(TimePoint{t_far, 0.0}, state(t_far));
      }
      ASSERT_GT((m - m0).cwiseAbs().maxCoeff(), 3.0) << what;
    }
    // A step from the start to there: dopri5's stages (c = 1/5, 3/10, 4/5, 8/9, 1), each solve
    // from the last one's control.
    auto step_to_far_end = [&]() {
      Vec F;
      pattern.rhs(TimePoint{0.0, 0.0}, y0, F);
      for (double c : {0.2, 0.3, 0.8, 8.0 / 9.0, 1.0}) {
        pattern.rhs(TimePoint{c * t_far, 0.0}, state(c * t_far), F);
        ASSERT_TRUE(F.allFinite()) << what << ": stage " << c;
      }
      const Vec m = pattern.sliding_masks(TimePoint{t_far, 0.0}, state(t_far));
      ASSERT_GT((m - m0).cwiseAbs().maxCoeff(), 3.0) << what;
    };
    // The state next to the start, solved after the far end (the warm start: the far control).
    step_to_far_end();
    const double t_near = 1e-3 * t_far;
    const Vec y = state(t_near);
    const TimePoint at{t_near, 0.0};
    Vec F;
    pattern.rhs(at, y, F);
    ASSERT_TRUE(F.allFinite()) << what << ": " << pattern.field_failure().reason;
    const Vec m = pattern.sliding_masks(at, y);
    EXPECT_LT((m - m0).cwiseAbs().maxCoeff(), 0.05) << what << ": the control next to the start";
    // Independent check: tangent to the three surfaces up to the drift decay (dh/dt = -decay h).
    const double e = 1e-6 / F.norm();
    const Vec dh = (flow.preactivations(y + e * F) - flow.preactivations(y - e * F)) / (2 * e);
    const Vec h = flow.preactivations(y);
    const double decay = KinkPattern::drift_decay(at);
    for (Index j : js)
      EXPECT_LT(std::abs(dh[j] + decay * h[j]), 1e-7 * dh.cwiseAbs().maxCoeff()) << what << ": entry " << j;

    // The same solve with the solves near the start forgotten: Newton from the far control alone
    // fails (NaN field), so the check above exercised the retry.
    step_to_far_end();
    const Index other = js[0] + 1;  // unit 2 of layer 1 at the same point: not sliding
    pattern.flip(other);
    pattern.flip(other);
    pattern.rhs(at, y, F);
    EXPECT_FALSE(F.allFinite()) << what << ": the far control alone is close enough for Newton";
  }
}

}  // namespace
}  // namespace gfsim
