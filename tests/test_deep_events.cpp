// Event-driven integration of a ReLU net with three layers (K = 3, two hidden layers): the checks
// issue 14 asks for beyond one hidden layer (docs/events.md, "Sliding sets").
//   - A second-layer unit sliding at one data point: on its surface h = 0 the field does not see
//     the mask in the forward pass (a = m h = 0) and sees it linearly in the backward pass, so the
//     field is affine in the mask, F(m) = F(0) + m (F(1) - F(0)), and the equivalent control is the
//     root of the one-sided rates, m = r(0) / (r(0) - r(1)): computed here from the two one-sided
//     fields alone, against the sliding field's own Newton solve; every flow kind.
//   - Along trajectories that cross kinks of both hidden layers and slide: the per-neuron balances
//     ||W_k row i||^2 - ||W_{k+1} column i||^2 of both hidden layers (and so Lemma 2's
//     rho_k^2 - rho_{k+1}^2) are conserved across the events, and the sliding entries stay on
//     their surfaces.
//   - The end state converges with the tolerance, as for a smooth problem.
//   - K = 4: a sliding mode on surfaces of all three hidden layers at once; the sliding field is
//     tangent to all of them, every flow kind, and off them it decays the drift.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "gfsim/flow_problem.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

const std::vector<Index> kWidths{4, 6, 4, 1};

// ---- a second-layer sliding mode: its control from the one-sided fields ----------------------

TEST(DeepSliding, SecondLayerMaskIsTheRootOfItsOneSidedRates) {
  const Dataset data = test::separable_data(12, kWidths[0], 41, 0.1);
  const Index n1 = kWidths[1], n_points = data.X.rows();
  for (FlowKind kind : {FlowKind::gd, FlowKind::gd_polar, FlowKind::wn, FlowKind::fixed_rho}) {
    Flow flow(Network(kWidths, Activation::relu), data, LossKind::exp, kind, 2.0);
    const Network& net = flow.network();
    Vec theta = test::random_vector(net.num_params(), 43, 0.4);
    // Layer 2 unit 3 on its kink at point 3: its row made orthogonal to the layer-1 activations
    // there (a state where the one-sided rates have opposite signs: a Filippov sliding mode).
    const Index p = 3, unit = 3;
    const Eigen::Map<const RowMat> W1(theta.data() + net.layer_offset(0), n1, kWidths[0]);
    const Vec a1 = (W1 * data.X.row(p).transpose()).cwiseMax(0.0);
    ASSERT_GT(a1.norm(), 0.1) << "point p must be alive in layer 1";
    Eigen::Map<RowMat> W2(theta.data() + net.layer_offset(1), kWidths[2], n1);
    W2.row(unit) -= (W2.row(unit).dot(a1) / a1.squaredNorm()) * a1.transpose();
    const Vec y = flow.initial_state(theta);
    const Index j = n1 * n_points + unit + p * kWidths[2];  // layer 2's block follows layer 1's
    ASSERT_EQ(flow.kink_of(j).layer, 2);
    ASSERT_EQ(flow.kink_of(j).point, p);
    const Vec h = flow.preactivations(y);
    ASSERT_LT(std::abs(h[j]), 1e-14);

    KinkPattern pattern(flow);
    pattern.freeze(y);
    const TimePoint tp{0.0, 0.3};
    const std::string what = to_string(kind);
    auto one_sided = [&](bool active, double& rate) {
      pattern.stop_sliding(j, active);
      Vec F;
      pattern.rhs(tp, y, F);
      rate = flow.preactivation_tangent(flow.theta(y), flow.theta_tangent(y, F))[j];
      return F;
    };
    ASSERT_TRUE(pattern.start_sliding(j));
    double r0 = 0, r1 = 0;
    const Vec F0 = one_sided(false, r0), F1 = one_sided(true, r1);
    ASSERT_GT(std::abs(r0 - r1), 1e-3 * (std::abs(r0) + std::abs(r1))) << what << ": the mask must act on the rate";
    ASSERT_TRUE(pattern.start_sliding(j));
    Vec F;
    pattern.rhs(tp, y, F);
    const double m = pattern.sliding_masks(tp, y)[0];
    const double m_root = r0 / (r0 - r1);
    ASSERT_TRUE(m_root > 0.1 && m_root < 0.9) << what << ": " << m_root;
    EXPECT_NEAR(m, m_root, 1e-10 * std::max(1.0, std::abs(m_root))) << what;
    EXPECT_LT((F - (F0 + m_root * (F1 - F0))).norm(), 1e-10 * F.norm()) << what;
    // Tangent to the surface: dh_j/dt = 0 by central differences of the pre-activation along F.
    const double e = 1e-6 / F.norm();
    const Vec dh = (flow.preactivations(y + e * F) - flow.preactivations(y - e * F)) / (2 * e);
    EXPECT_LT(std::abs(dh[j]), 1e-7 * dh.cwiseAbs().maxCoeff()) << what;
  }
}

// ---- K = 4: sliding in all three hidden layers at once ---------------------------------------

TEST(DeepSliding, FieldIsTangentToSurfacesOfThreeHiddenLayersEveryFlowKind) {
  // Four layers (three hidden), one sliding entry in each hidden layer, each at a point alive below
  // it: the state is put on the three surfaces by making the unit's incoming row orthogonal to its
  // input there (lower layers first, since they feed the ones above). The sliding field's masks (a
  // joint Newton solve: the masks of different layers meet in the backward passes) make every
  // sliding rate vanish, checked by central differences of the pre-activations along the field,
  // which is the flow's own field at those masks (the Filippov combination). The state (weights
  // seed, entries) is one where all three masks lie inside (0, 1) for every flow kind, i.e. a
  // Filippov sliding mode and not only a tangent field; neither side alone is tangent.
  const std::vector<Index> widths{4, 5, 4, 3, 1};
  const Dataset data = test::separable_data(16, widths[0], 51, 0.1);
  for (FlowKind kind : {FlowKind::gd, FlowKind::gd_polar, FlowKind::wn, FlowKind::fixed_rho}) {
    const std::string what = to_string(kind);
    Flow flow(Network(widths, Activation::relu), data, LossKind::exp, kind, 2.0);
    const Network& net = flow.network();
    Vec theta = test::random_vector(net.num_params(), 1833, 0.5);
    const std::vector<test::KinkEntry> on{{0, 4, 14}, {1, 0, 13}, {2, 1, 10}};
    std::vector<Index> js;
    ASSERT_TRUE(test::put_on_kinks(net, data, theta, on, js))
        << what << ": each point must be alive below its surface's layer";
    for (std::size_t l = 0; l < on.size(); ++l) {
      ASSERT_EQ(flow.kink_of(js[l]).layer, on[l].layer + 1);
      ASSERT_EQ(flow.kink_of(js[l]).point, on[l].point);
    }
    const Vec y = flow.initial_state(theta);
    const Vec h = flow.preactivations(y);
    for (Index j : js) ASSERT_LT(std::abs(h[j]), 1e-13) << what << " entry " << j;

    KinkPattern pattern(flow);
    pattern.freeze(y);
    const TimePoint tp{0.0, 0.2};
    auto rates_along = [&](const Vec& F) {
      const double e = 1e-6 / F.norm();
      return Vec((flow.preactivations(y + e * F) - flow.preactivations(y - e * F)) / (2 * e));
    };
    // One-sided fields (no entry sliding, all on one side): not tangent.
    for (double side : {0.0, 1.0}) {
      for (Index j : js) pattern.stop_sliding(j, side > 0.5);  // not sliding: sets the side
      Vec F;
      pattern.rhs(tp, y, F);
      const Vec dh = rates_along(F);
      double worst = 0;
      for (Index j : js) worst = std::max(worst, std::abs(dh[j]));
      ASSERT_GT(worst, 1e-3 * dh.cwiseAbs().maxCoeff()) << what << ": side " << side << " is tangent already";
    }
    for (Index j : js) ASSERT_TRUE(pattern.start_sliding(j));
    Vec F, full;
    pattern.rhs(tp, y, F);
    ASSERT_TRUE(pattern.field_failure().reason.empty()) << what << ": " << pattern.field_failure().reason;
    const Vec m = pattern.sliding_masks(tp, y);
    ASSERT_EQ(m.size(), Index(js.size()));
    flow.rhs(tp, y, full);  // the pattern holds the solved masks
    EXPECT_LE((F - full).norm(), 1e-12 * full.norm()) << what;
    const Vec dh = rates_along(F);
    for (std::size_t s = 0; s < js.size(); ++s) {
      EXPECT_LT(std::abs(dh[js[s]]), 1e-7 * dh.cwiseAbs().maxCoeff())
          << what << ": layer " << on[s].layer + 1 << " entry, mask " << m[Index(s)];
      EXPECT_TRUE(m[Index(s)] > 0.0 && m[Index(s)] < 1.0) << what << ": layer " << on[s].layer + 1 << " mask " << m[Index(s)];
    }
    // Off the surfaces by a small h (the integrator's drift), the field holds dh_j/dclock at
    // -drift_decay h_j on each (KinkPattern::kDriftDecay: 1 per unit of s = log(1+t) on either
    // clock), so that a drift decays instead of growing with the solve's error.
    const Vec y_off = y + 1e-7 * test::random_vector(y.size(), 1834, 1.0);
    const Vec h_off = flow.preactivations(y_off);
    for (const TimePoint at : {TimePoint{0.5, 0.0}, TimePoint{0.5, std::log1p(0.5)}}) {
      Vec F_off;
      pattern.rhs(at, y_off, F_off);
      ASSERT_TRUE(pattern.field_failure().reason.empty()) << what << ": " << pattern.field_failure().reason;
      const Vec dh_off = flow.preactivation_tangent(flow.theta(y_off), flow.theta_tangent(y_off, F_off));
      const double decay = KinkPattern::drift_decay(at);
      for (Index j : js) {
        ASSERT_GT(std::abs(h_off[j]), 1e-10) << what << ": the perturbation must move the state off surface " << j;
        EXPECT_NEAR(dh_off[j], -decay * h_off[j], 1e-12 * dh_off.cwiseAbs().maxCoeff()) << what << " entry " << j;
      }
    }
  }
}

// ---- trajectories ------------------------------------------------------------------------------

struct DeepTrace {
  std::vector<Vec> theta;
  double kink_gap = 0;  // max over the samples of max |h_j| over the sliding entries
  SolveResult result;
  Index crossings = 0, entries = 0, exits = 0, second_layer_events = 0;
};

struct DeepCase {
  Dataset data = test::separable_data(30, kWidths[0], 7, 0.1);
  Vec theta0 = test::random_vector(Network(kWidths, Activation::relu).num_params(), 8, 0.5);

  DeepTrace run(FlowKind kind, double rtol, double t_end) const {
    Flow flow(Network(kWidths, Activation::relu), data, LossKind::exp, kind, 1.0);
    DeepTrace out;
    const Vec y0 = flow.initial_state(theta0);
    KinkPattern pattern(flow);
    const OdeProblem p = to_event_problem(pattern, y0, [&](double, Index layer, Index, Index, KinkEvent e) {
      out.crossings += e == KinkEvent::crossing;
      out.entries += e == KinkEvent::sliding_entry;
      out.exits += e == KinkEvent::sliding_exit;
      out.second_layer_events += layer == 2;
    });
    out.result = integrate(p, y0, log_spaced_times(1e-2, t_end, 10),
                           test::solver_options(Method::dopri5, ClockKind::log, rtol),
                           [&](std::int64_t, double, const Vec& y) {
                             out.theta.push_back(flow.theta(y));
                             const Vec h = flow.preactivations(y);
                             for (Index j : pattern.sliding()) out.kink_gap = std::max(out.kink_gap, std::abs(h[j]));
                           });
    return out;
  }
};

// Per-neuron balance of every hidden unit: ||incoming row||^2 - ||outgoing column||^2.
Vec neuron_balances(const Vec& theta) {
  const Network net(kWidths, Activation::relu);
  Vec out(kWidths[1] + kWidths[2]);
  for (Index k = 0, at = 0; k < 2; at += kWidths[std::size_t(k) + 1], ++k) {
    const auto in = net.layer(theta, k), next = net.layer(theta, k + 1);
    out.segment(at, kWidths[std::size_t(k) + 1]) =
        in.rowwise().squaredNorm() - next.colwise().squaredNorm().transpose();
  }
  return out;
}

TEST(DeepReluEvents, BalancesHoldAcrossCrossingsAndSlidingOfBothHiddenLayers) {
  const DeepCase c;
  const Vec b0 = neuron_balances(c.theta0);
  for (FlowKind kind : {FlowKind::gd, FlowKind::gd_polar}) {
    const std::string what = to_string(kind);
    const DeepTrace tr = c.run(kind, 1e-10, 1e3);
    ASSERT_EQ(tr.result.status, Status::success) << what << ": " << tr.result.message;
    EXPECT_GT(tr.crossings, 3) << what;
    EXPECT_GT(tr.entries, 0) << what << ": the trajectory must slide";
    EXPECT_GT(tr.second_layer_events, 0) << what << ": the second hidden layer must switch";
    double drift = 0, scale = 0;
    for (const Vec& th : tr.theta) {
      drift = std::max(drift, (neuron_balances(th) - b0).cwiseAbs().maxCoeff());
      scale = std::max(scale, th.squaredNorm());
    }
    EXPECT_LT(drift, 1e-8 * scale) << what << ": per-neuron balance";
    EXPECT_LT(tr.kink_gap, 1e-8 * std::sqrt(scale)) << what << ": distance from the sliding surfaces";
  }
}

TEST(DeepReluEvents, EndStateConvergesWithTheTolerance) {
  const DeepCase c;
  std::vector<Vec> end;
  for (double rtol : {1e-7, 1e-9, 1e-11}) {
    const DeepTrace tr = c.run(FlowKind::gd, rtol, 1e3);
    ASSERT_EQ(tr.result.status, Status::success) << rtol << ": " << tr.result.message;
    ASSERT_GT(tr.crossings + tr.entries, 3) << "the comparison must cross kinks";
    end.push_back(tr.theta.back());
  }
  const double d1 = (end[0] - end[2]).norm() / end[2].norm(), d2 = (end[1] - end[2]).norm() / end[2].norm();
  EXPECT_LT(d1, 1e-5);
  EXPECT_LT(d2, 1e-7);
  EXPECT_LT(d2, 0.1 * d1) << "the end state must converge with the tolerance";
}

}  // namespace
}  // namespace gfsim
