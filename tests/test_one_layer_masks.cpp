// The one-hidden-layer sliding solve without the field (KinkPattern::sliding_masks and the event
// functions of sliding entries) and the passes it reuses (Flow::preactivations after a field
// evaluation, the first layer's product kept across a change of masks): the same values as the
// field's own solve and as fresh passes, and the masks the equivalent control of the flow
// (docs/relu_deep.md, "Session 16").
#include <gtest/gtest.h>

#include <Eigen/LU>

#include <algorithm>
#include <cmath>
#include <vector>

#include "gfsim/dataset.hpp"
#include "gfsim/flow.hpp"
#include "gfsim/flow_problem.hpp"
#include "gfsim/kink_pattern.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

struct SlidingState {
  double t = -1;
  Vec y;
  std::vector<Mat> masks;
  std::vector<Index> sliding;
};

// A mid-run state of a small one-hidden-layer gd run with `want` or more sliding entries, at
// least two of them on one unit (a block of the solve larger than one).
SlidingState sliding_state(const Dataset& data, const Network& net, const Vec& theta0, std::size_t want) {
  Flow flow(net, data, LossKind::exp, FlowKind::gd);
  KinkPattern pattern(flow);
  SlidingState s;
  const OdeProblem p = to_event_problem(pattern, theta0);
  const Index d1 = net.layer_rows(0);
  const auto r = integrate(p, theta0, log_spaced_times(1e-2, 200.0, 40), test::solver_options(Method::dopri5, ClockKind::t, 1e-10),
                           [&](std::int64_t, double t, const Vec& y) {
                             if (s.t >= 0 || pattern.sliding().size() < want) return;
                             std::vector<Index> units;
                             for (Index j : pattern.sliding()) units.push_back(j % d1);
                             std::sort(units.begin(), units.end());
                             if (std::adjacent_find(units.begin(), units.end()) == units.end()) return;
                             s.t = t;
                             s.y = y;
                             s.masks = pattern.masks();
                             s.sliding = pattern.sliding();
                           });
  EXPECT_EQ(r.status, Status::success) << r.message;
  return s;
}

// A pattern on `flow` with the state's masks and sliding entries.
void restore(KinkPattern& pattern, const SlidingState& s) {
  pattern.freeze(s.y);
  const Index d1 = s.masks[0].rows();
  for (Index j = 0; j < s.masks[0].size(); ++j) {
    if (std::find(s.sliding.begin(), s.sliding.end(), j) != s.sliding.end()) continue;
    if (pattern.value(j) != s.masks[0](j % d1, j / d1)) pattern.flip(j);
  }
  for (Index j : s.sliding) ASSERT_TRUE(pattern.start_sliding(j));
}

// relu_events.toml's setting, smaller (teacher labels, a small initialization), and a mid-run
// state of its gd run with three or more sliding entries, two on one unit.
struct SmallRun {
  Dataset data = teacher_dataset(60, 6, 4, false, 11);
  Network net{{6, 12, 1}, Activation::relu};
  SlidingState s = sliding_state(data, net, test::random_vector(net.num_params(), 12, 0.1), 3);
};

TEST(OneLayerMasks, MaskOnlySolveEqualsTheFieldsAndIsTheEquivalentControl) {
  const SmallRun run;
  const Dataset& data = run.data;
  const Network& net = run.net;
  const SlidingState& s = run.s;
  ASSERT_GT(s.t, 0) << "the test needs a state with three or more sliding entries, two on one unit";
  const Index S = Index(s.sliding.size());
  const TimePoint tp{s.t, 0.4};  // a clock factor e^0.4 scales the rates, not the masks

  // The masks alone, on a fresh pattern (no memo of a field evaluation).
  Flow flow_a(net, data, LossKind::exp, FlowKind::gd);
  KinkPattern a(flow_a);
  restore(a, s);
  const Vec m_only = a.sliding_masks(tp, s.y);
  // The field's solve on another.
  Flow flow_b(net, data, LossKind::exp, FlowKind::gd);
  KinkPattern b(flow_b);
  restore(b, s);
  Vec dy;
  b.rhs(tp, s.y, dy);
  ASSERT_EQ(m_only.size(), S);
  for (Index l = 0; l < S; ++l) EXPECT_NEAR(m_only[l], b.value(s.sliding[std::size_t(l)]), 1e-12) << l;

  // Independently: the rates r(m) of the sliding entries along the flow's field with explicit
  // masks are affine in m (one hidden layer, h = 0 on the surfaces); their zero is the control.
  Flow flow_c(net, data, LossKind::exp, FlowKind::gd);
  std::vector<Mat> masks = s.masks;
  const std::vector<Index> sliding = s.sliding;
  flow_c.use_pattern(&masks, &sliding);
  const Index d1 = net.layer_rows(0);
  auto rates = [&](const Vec& m) {
    for (Index l = 0; l < S; ++l) masks[0](sliding[std::size_t(l)] % d1, sliding[std::size_t(l)] / d1) = m[l];
    Vec F;
    flow_c.rhs(tp, s.y, F);
    const Vec dh = flow_c.preactivation_tangent(flow_c.theta(s.y), flow_c.theta_tangent(s.y, F));
    Vec r(S);
    for (Index l = 0; l < S; ++l) r[l] = dh[sliding[std::size_t(l)]];
    return r;
  };
  const Vec r0 = rates(Vec::Zero(S));
  Mat C(S, S);
  for (Index l = 0; l < S; ++l) C.col(l) = rates(Vec::Unit(S, l)) - r0;
  const Vec m_indep = C.fullPivLu().solve(-r0);
  for (Index l = 0; l < S; ++l) EXPECT_NEAR(m_only[l], m_indep[l], 1e-9 * (1 + std::abs(m_indep[l]))) << l;
  // The field of the solve is tangent to every sliding surface.
  const Vec r_slide = rates(m_only);
  EXPECT_LT(r_slide.cwiseAbs().maxCoeff(), 1e-9 * r0.cwiseAbs().maxCoeff());
  const Vec dh = flow_b.preactivation_tangent(flow_b.theta(s.y), flow_b.theta_tangent(s.y, dy));
  for (Index j : s.sliding) EXPECT_LT(std::abs(dh[j]), 1e-9 * r0.cwiseAbs().maxCoeff()) << j;

  // The event functions of a subset with sliding entries are those of the full evaluation.
  std::vector<Index> js = s.sliding;
  for (Index j = 0; j < 5; ++j) js.push_back(j);
  Vec g_all, g_sub;
  b.event_values(tp, s.y, g_all);
  a.event_values_of(tp, s.y, js, g_sub);
  for (std::size_t q = 0; q < js.size(); ++q) EXPECT_EQ(g_sub[Index(q)], g_all[js[q]]) << js[q];
  for (Index l = 0; l < S; ++l)
    EXPECT_EQ(g_all[s.sliding[std::size_t(l)]], std::min(m_only[l], 1.0 - m_only[l]));
}

TEST(OneLayerMasks, ReusedPassesAreFreshPasses) {
  const Dataset data = test::separable_data(40, 4, 7, 0.1);
  const Network net({4, 8, 1}, Activation::relu);
  const Vec y = test::random_vector(net.num_params(), 3, 0.5);
  const Vec y2 = test::random_vector(net.num_params(), 4, 0.5);
  const TimePoint tp{0.0, 0.0};
  Flow used(net, data, LossKind::exp, FlowKind::gd), fresh(net, data, LossKind::exp, FlowKind::gd);
  std::vector<Mat> masks{(Eigen::Map<const Mat>(used.preactivations(y).data(), 8, 40).array() > 0).cast<double>()};
  std::vector<Mat> fresh_masks = masks;
  used.use_pattern(&masks);
  Vec F;
  used.rhs(tp, y, F);
  // Pre-activations at the state of the last pass: its first layer, bit for bit; elsewhere a pass.
  EXPECT_TRUE(used.preactivations(y) == fresh.preactivations(y));
  used.rhs(tp, y, F);
  EXPECT_TRUE(used.preactivations(y2) == fresh.preactivations(y2)) << "a stale pass";
  // A field at the same weights after a change of masks keeps W_1 X and forms the rest afresh.
  used.rhs(tp, y, F);
  masks[0](2, 5) = 0.3;
  masks[0](5, 11) = 1 - masks[0](5, 11);
  fresh_masks = masks;
  fresh.use_pattern(&fresh_masks);
  Vec F_used, F_fresh;
  used.rhs(tp, y, F_used);
  fresh.rhs(tp, y, F_fresh);
  EXPECT_TRUE(F_used == F_fresh);
  used.rhs(tp, y2, F_used);
  fresh.rhs(tp, y2, F_fresh);
  EXPECT_TRUE(F_used == F_fresh) << "a stale first layer";
  // The one-hidden-layer tangent of the pre-activations is dW_1 X.
  const Vec v = test::random_vector(net.num_params(), 5, 1.0);
  const Vec dh = used.preactivation_tangent(y, v);
  const Mat dH = net.layer(v, 0) * data.X.transpose();
  EXPECT_LT((dh - Eigen::Map<const Vec>(dH.data(), dH.size())).cwiseAbs().maxCoeff(), 1e-13 * dH.cwiseAbs().maxCoeff());
}

TEST(OneLayerMasks, JointSwitchThatKeepsEverySideIsNoChangeOfTheField) {
  // At an event inside a cluster the joint switch (resolve) solves the sliding set afresh. With one
  // hidden layer the sliding field's control is the closed form at every evaluation, so a switch
  // that keeps every side and the sliding set changes no field, whatever control the pattern last
  // stored (here a trial stage's, at another state). Counted as a change (masks_moved), it kept
  // EventLocator::apply from overruling an empty switch at a zero-length restart, and the 100-16-1
  // copy of relu_large stopped after 65 restarts that switched nothing (docs/relu_deep.md, session 17).
  const SmallRun run;
  const SlidingState& s = run.s;
  ASSERT_GT(s.t, 0);
  const Index S = Index(s.sliding.size());
  const TimePoint tp{s.t, 0.0};
  Flow flow(run.net, run.data, LossKind::exp, FlowKind::gd);
  KinkPattern pattern(flow);
  restore(pattern, s);
  Vec F_before;
  pattern.rhs(tp, s.y, F_before);
  const Vec m_at_y = pattern.sliding_masks(tp, s.y);
  // The last evaluation at a trial stage: the pattern now holds that state's control.
  const Vec y_stage = s.y + 1e-3 * F_before;
  Vec F_stage;
  pattern.rhs(tp, y_stage, F_stage);
  Vec m_stored(S);
  for (Index l = 0; l < S; ++l) m_stored[l] = pattern.value(s.sliding[std::size_t(l)]);
  ASSERT_GT((m_stored - m_at_y).cwiseAbs().maxCoeff(), 1e-6) << "the stage must move the control";
  // The event: a sliding surface hit again (its rate zero, so it keeps sliding).
  const auto joint = pattern.resolve(tp, s.y, {s.sliding.front()}, 4 * KinkPattern::kJointAfterEvents);
  ASSERT_TRUE(joint.has_value());
  ASSERT_TRUE(joint->failure.empty()) << joint->failure;
  EXPECT_TRUE(joint->changes.empty());
  EXPECT_EQ(pattern.sliding(), s.sliding);
  EXPECT_EQ(joint->masks_moved, 0.0) << "a one-hidden-layer control is no change of the field";
  // And indeed the field after the switch is the field before it: the same control, tangent to
  // every sliding surface.
  Vec F_after;
  pattern.rhs(tp, s.y, F_after);
  EXPECT_LE((F_after - F_before).cwiseAbs().maxCoeff(), 1e-12 * F_before.cwiseAbs().maxCoeff());
  const Vec m_after = pattern.sliding_masks(tp, s.y);
  EXPECT_LE((m_after - m_at_y).cwiseAbs().maxCoeff(), 1e-12);
  const Vec dh = flow.preactivation_tangent(flow.theta(s.y), flow.theta_tangent(s.y, F_after));
  const Vec h = flow.preactivations(s.y);
  double scale = 0;
  for (Index j = 0; j < dh.size(); ++j) scale = std::max(scale, std::abs(dh[j]));
  for (Index j : s.sliding) {
    EXPECT_LT(std::abs(dh[j]), 1e-9 * scale) << "not tangent to surface " << j;
    EXPECT_LT(std::abs(h[j]), 1e-9) << "off surface " << j;
  }
}

TEST(OneLayerMasks, JointSwitchRatesInClosedFormAreTheFieldsRates) {
  // The joint switch of one hidden layer takes the rates of its candidates from the sliding field's
  // affine model, r(m) = r0 + J m (KinkPattern::one_layer_rates), instead of a field per trial.
  // Independently: the flow's field with explicit masks, for every kind whose layer response the
  // model uses (gd: no projection; gd_polar, wn: projected, theta_1 = rho_1 V_1; fixed_rho).
  const SmallRun run;
  const Dataset& data = run.data;
  const Network& net = run.net;
  const SlidingState& s = run.s;
  ASSERT_GT(s.t, 0);
  const Index S = Index(s.sliding.size()), d1 = net.layer_rows(0);
  const TimePoint tp{s.t, 0.7};
  for (FlowKind kind : {FlowKind::gd, FlowKind::gd_polar, FlowKind::wn, FlowKind::fixed_rho}) {
    SCOPED_TRACE(to_string(kind));
    Flow flow(net, data, LossKind::exp, kind, 2.0);
    const Vec y = flow.initial_state(s.y);
    KinkPattern pattern(flow);
    pattern.freeze(y);
    Vec r0;
    Mat J;
    ASSERT_TRUE(pattern.one_layer_rates(tp, y, s.sliding, r0, J));
    ASSERT_EQ(J.rows(), S);
    Flow explicit_flow(net, data, LossKind::exp, kind, 2.0);
    std::vector<Mat> masks = pattern.masks();
    explicit_flow.use_pattern(&masks, &s.sliding);
    auto rates = [&](const Vec& m) {
      for (Index l = 0; l < S; ++l) masks[0](s.sliding[std::size_t(l)] % d1, s.sliding[std::size_t(l)] / d1) = m[l];
      Vec F;
      explicit_flow.rhs(tp, y, F);
      const Vec dh = explicit_flow.preactivation_tangent(explicit_flow.theta(y), explicit_flow.theta_tangent(y, F));
      Vec r(S);
      for (Index l = 0; l < S; ++l) r[l] = dh[s.sliding[std::size_t(l)]];
      return r;
    };
    const Vec r_zero = rates(Vec::Zero(S));
    const double scale = r_zero.cwiseAbs().maxCoeff() + J.cwiseAbs().maxCoeff();
    ASSERT_GT(scale, 0);
    EXPECT_LT((r0 - r_zero).cwiseAbs().maxCoeff(), 1e-12 * scale);
    // Each column against the field's response to that mask alone, and a point inside the box.
    for (Index l = 0; l < S; ++l)
      EXPECT_LT((J.col(l) - (rates(Vec::Unit(S, l)) - r_zero)).cwiseAbs().maxCoeff(), 1e-9 * scale) << l;
    const Vec m = (test::random_vector(S, 21, 1.0).array().abs()).min(1.0).matrix();
    EXPECT_LT((r0 + J * m - rates(m)).cwiseAbs().maxCoeff(), 1e-9 * scale);
    // Not a vacuous match: the masks move the rates at the scale of the rates themselves.
    EXPECT_TRUE((J.diagonal().array() != 0).all());
  }
}

TEST(OneLayerMasks, SlidingFieldDecaysTheDriftOffItsSurfaces) {
  // Off its sliding surfaces by a small h (the integrator's drift), the sliding field holds
  // dh_j/dclock = -drift_decay h_j on every sliding entry: 1 per unit of s = log(1+t) on either
  // clock (KinkPattern::kDriftDecay), so that the drift decays instead of feeding itself.
  const SmallRun run;
  const SlidingState& s = run.s;
  ASSERT_GT(s.t, 0);
  Flow flow(run.net, run.data, LossKind::exp, FlowKind::gd);
  KinkPattern pattern(flow);
  restore(pattern, s);
  const Vec y = s.y + 1e-7 * test::random_vector(s.y.size(), 5, 1.0);
  const Vec h = flow.preactivations(y);
  for (const TimePoint tp : {TimePoint{s.t, 0.0}, TimePoint{s.t, std::log1p(s.t)}}) {
    Vec dy;
    pattern.rhs(tp, y, dy);
    const Vec dh = flow.preactivation_tangent(flow.theta(y), flow.theta_tangent(y, dy));
    const double decay = KinkPattern::drift_decay(tp);
    EXPECT_NEAR(decay, tp.log_scale == 0 ? 1.0 / (1.0 + s.t) : 1.0, 1e-15);
    double h_off = 0;
    for (Index j : s.sliding) {
      h_off = std::max(h_off, std::abs(h[j]));
      EXPECT_NEAR(dh[j], -decay * h[j], 1e-9 * std::abs(decay * h[j]) + 1e-13 * dh.cwiseAbs().maxCoeff()) << j;
    }
    EXPECT_GT(h_off, 1e-9) << "the perturbation must move the state off the surfaces";
  }
}

}  // namespace
}  // namespace gfsim
