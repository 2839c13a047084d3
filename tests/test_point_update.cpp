// Flow::begin_point_update (flow.hpp, src/flow_point_update.cpp): the field with masks that change
// at a few data points, from the other points' loss sums kept and these points' recomputed, against
// the full evaluation with the same masks, for every kind of the table at two and three hidden
// layers, with and without the log clock's factor; and the deep event functions of a root search,
// from the columns of the entries' points only (src/point_columns.hpp), against the full ones.
#include <gtest/gtest.h>

#include <Eigen/Cholesky>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "gfsim/flow.hpp"
#include "gfsim/kink_pattern.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

// The masks of the signs of h at y (h > 0 active), layer by layer (d_k x n each).
std::vector<Mat> sign_masks(const Flow& flow, const Vec& y) {
  const Vec h = flow.preactivations(y);
  const Network& net = flow.network();
  const Index n = flow.num_points();
  std::vector<Mat> masks;
  Index o = 0;
  for (Index k = 0; k + 1 < net.num_layers(); ++k) {
    const Index rows = net.layer_rows(k);
    masks.push_back((Eigen::Map<const Mat>(h.data() + o, rows, n).array() > 0.0).cast<double>());
    o += rows * n;
  }
  return masks;
}

// Mask values in [0,1] at (layer, unit) of the changing points, one assignment per trial.
struct Trial {
  std::vector<double> values;
};

class EveryKindPointUpdate : public testing::TestWithParam<std::string> {};

TEST_P(EveryKindPointUpdate, IncrementalFieldEqualsTheFullField) {
  const Dataset data = test::separable_data(40, 4, 51);
  const std::vector<Index> points{3, 17, 28};
  // (layer, unit, point) entries whose masks the trials set: several layers and units per point.
  struct Entry {
    Index layer, unit, point;
  };
  const std::vector<Entry> entries{{0, 0, 3}, {0, 2, 3}, {1, 1, 3}, {0, 1, 17}, {1, 0, 17}, {1, 2, 28}, {0, 3, 28}};
  const std::vector<Trial> trials{{{0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5}},
                                  {{0.0, 1.0, 0.25, 0.9, 0.1, 1.0, 0.0}},
                                  {{1.0, 0.3, 0.0, 0.0, 1.0, 0.7, 0.6}},
                                  {{0.2, 0.8, 1.0, 0.4, 0.35, 0.0, 1.0}}};
  for (std::vector<Index> widths : {std::vector<Index>{4, 5, 3, 1}, std::vector<Index>{4, 5, 3, 4, 1}}) {
    for (LossKind loss : {LossKind::exp, LossKind::logistic}) {
      FlowSpec spec;
      for (const FlowKindEntry& e : flow_kind_table())
        if (GetParam() == e.name) spec.kind = FlowKind{e.name};
      spec.rho = 1.7;
      Flow flow(Network(widths, Activation::relu), data, loss, spec);
      const Vec theta = test::random_vector(flow.num_params(), 52, 0.8);
      const Vec y = flow.initial_state(theta);
      std::vector<Mat> masks = sign_masks(flow, y);
      flow.use_pattern(&masks);
      auto set_trial = [&](const Trial& trial) {
        for (std::size_t e = 0; e < entries.size(); ++e)
          masks[std::size_t(entries[e].layer)](entries[e].unit, entries[e].point) = trial.values[e];
      };
      for (double log_scale : {0.0, 2.5, 40.0}) {
        const TimePoint tp{0.7, log_scale};
        // The full evaluation of every trial first, then the same trials in one point update.
        std::vector<Vec> full(trials.size());
        for (std::size_t i = 0; i < trials.size(); ++i) {
          set_trial(trials[i]);
          flow.rhs(tp, y, full[i]);
        }
        // The trials differ: the masks at the changing points move the field.
        EXPECT_GT((full[0] - full[1]).norm(), 1e-6 * full[0].norm()) << GetParam();
        {
          const Flow::PointUpdate split = flow.begin_point_update(points);
          for (std::size_t i = 0; i < trials.size(); ++i) {
            set_trial(trials[i]);
            Vec dy;
            flow.rhs(tp, y, dy);
            ASSERT_EQ(dy.size(), full[i].size());
            EXPECT_LE((dy - full[i]).lpNorm<Eigen::Infinity>(), 1e-13 * full[i].lpNorm<Eigen::Infinity>())
                << GetParam() << " K = " << widths.size() - 1 << " log_scale " << log_scale << " trial " << i;
          }
          // Tangents would mix the split sums with the full pass: refused meanwhile.
          Vec jv;
          EXPECT_THROW(flow.jvp(tp, y, y, jv), std::logic_error);
          EXPECT_THROW((void)flow.begin_point_update(points), std::logic_error);
        }
        Vec jv;
        EXPECT_NO_THROW(flow.jvp(tp, y, y, jv));  // the scope's end restores the full field
      }
      // Another state inside one scope: the other points' part belongs to the weights it was
      // summed at and is summed afresh at new ones.
      const Vec y2 = flow.initial_state(test::random_vector(flow.num_params(), 53, 0.8));
      set_trial(trials[1]);
      Vec f1, f2, g1, g2;
      flow.rhs(TimePoint{0.3, 1.0}, y, f1);
      flow.rhs(TimePoint{0.3, 1.0}, y2, f2);
      {
        const Flow::PointUpdate split = flow.begin_point_update(points);
        flow.rhs(TimePoint{0.3, 1.0}, y, g1);
        flow.rhs(TimePoint{0.3, 1.0}, y2, g2);
      }
      EXPECT_LE((g1 - f1).lpNorm<Eigen::Infinity>(), 1e-13 * f1.lpNorm<Eigen::Infinity>()) << GetParam();
      EXPECT_LE((g2 - f2).lpNorm<Eigen::Infinity>(), 1e-13 * f2.lpNorm<Eigen::Infinity>()) << GetParam();
      flow.use_pattern(nullptr);
      EXPECT_THROW((void)flow.begin_point_update(points), std::logic_error);  // no pattern: no masks to change
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, EveryKindPointUpdate, testing::ValuesIn(test::flow_kind_names()),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(PointUpdate, UnderScreeningTheOtherPointsAreTheKeptOnes) {
  // With screening the other points' part sums the kept points only (the deep sliding solve of a
  // screened run): equal to the screened full evaluation with the same masks, which itself differs
  // from the field of all points by the dropped ones.
  const Dataset data = test::separable_data(300, 4, 71, 0.3);
  bool discriminates = false;
  for (std::vector<Index> widths : {std::vector<Index>{4, 5, 3, 1}, std::vector<Index>{4, 5, 3, 4, 1}}) {
    Flow flow(Network(widths, Activation::relu), data, LossKind::logistic, FlowKind::gd);
    Flow all(Network(widths, Activation::relu), data, LossKind::logistic, FlowKind::gd);
    flow.enable_screening(0.1);
    // Large weights: most margins are large, their points negligible against the budget.
    const Vec y = flow.initial_state(test::random_vector(flow.num_params(), 72, 8.0));
    std::vector<Mat> masks = sign_masks(flow, y);
    flow.use_pattern(&masks);
    all.use_pattern(&masks);
    const TimePoint tp{0.0, 0.0};
    Vec full, split_field, every;
    flow.rhs(tp, y, full);
    const Index kept = flow.screening_state().kept;
    ASSERT_LT(kept, data.n()) << "screening dropped no points";
    std::vector<Index> points;  // three kept points, whose masks change
    for (Index p = 0; p < data.n() && points.size() < 3; ++p)
      if (flow.point_kept(p)) points.push_back(p);
    for (Index p : points) masks[0].col(p) = Vec::Constant(masks[0].rows(), 0.5);
    flow.rhs(tp, y, full);
    ASSERT_EQ(flow.screening_state().kept, kept);
    {
      const Flow::PointUpdate split = flow.begin_point_update(points);
      flow.rhs(tp, y, split_field);
    }
    ASSERT_EQ(flow.screening_state().kept, kept);
    EXPECT_LE((split_field - full).lpNorm<Eigen::Infinity>(), 1e-13 * full.lpNorm<Eigen::Infinity>())
        << "K = " << widths.size() - 1;
    all.rhs(tp, y, every);
    // ... by less than the certificate (up to the rounding of sums over other point sets), and in
    // at least one case by more than the split's tolerance, so that a split over every point
    // would be caught.
    EXPECT_LE((every - full).norm(), flow.screening_state().last_bound + 1e-13 * full.norm());
    discriminates |= (every - full).lpNorm<Eigen::Infinity>() > 1e-11 * full.lpNorm<Eigen::Infinity>();
    // A screened-out point cannot be a changing one.
    Index dropped = 0;
    while (flow.point_kept(dropped)) ++dropped;
    EXPECT_THROW((void)flow.begin_point_update({dropped}), std::logic_error);
  }
  EXPECT_TRUE(discriminates) << "the dropped points' part is below the split's tolerance in every case";
}

TEST(PointUpdate, SlidingSolveMatchesTheFullFieldAtItsMasks) {
  // KinkPattern's deep sliding field (solved with point updates) at its masks against the flow's
  // full field with the same masks, and holding its sliding entries' rates, by the full pass over
  // all points, at the drift decay's -drift_decay h_j (tangent where h_j = 0).
  const Dataset data = test::separable_data(30, 4, 61);
  Flow flow(Network({4, 5, 4, 1}, Activation::relu), data, LossKind::logistic, FlowKind::gd_polar);
  // Layer-1 unit 2 on its kink surfaces at points 1 and 2: W1 row 2 orthogonal to x_1 and x_2.
  // (Not point 0: every other layer-1 unit is inactive there, so the layers above see only the
  // round-off of h and the rates do not depend on the mask; which side freeze() took and whether
  // Newton "converged" then depended on the build's rounding.)
  Vec theta = test::random_vector(flow.num_params(), 62);
  const Network& net = flow.network();
  auto W1 = Eigen::Map<RowMat>(theta.data(), net.layer_rows(0), net.layer_cols(0));
  const Mat X12 = flow.inputs().middleCols(1, 2);
  W1.row(2) -= (X12 * (X12.transpose() * X12).ldlt().solve(X12.transpose() * W1.row(2).transpose())).transpose();
  const Vec y = flow.initial_state(theta);
  KinkPattern pattern(flow);
  pattern.freeze(y);
  const std::vector<Index> sliding{7, 12, flow.network().layer_rows(0) * flow.num_points() + 9};
  for (Index j : sliding) ASSERT_TRUE(pattern.start_sliding(j));
  Vec dy, full, masks = pattern.sliding_masks(TimePoint{0.0, 0.5}, y);
  pattern.rhs(TimePoint{0.0, 0.5}, y, dy);
  for (std::size_t s = 0; s < sliding.size(); ++s) EXPECT_EQ(pattern.value(sliding[s]), masks[Index(s)]);
  flow.rhs(TimePoint{0.0, 0.5}, y, full);  // the pattern holds the solved masks
  EXPECT_LE((dy - full).lpNorm<Eigen::Infinity>(), 1e-13 * full.lpNorm<Eigen::Infinity>());
  // The rates are -drift_decay h_j (0 on a surface; the layer-2 entry is off its own).
  const Vec rates = flow.preactivation_tangent(flow.theta(y), flow.theta_tangent(y, full));
  const Vec h = flow.preactivations(y);
  const double decay = KinkPattern::drift_decay(TimePoint{0.0, 0.5});
  for (Index j : sliding)
    EXPECT_LE(std::abs(rates[j] + decay * h[j]), 1e-10 * rates.lpNorm<Eigen::Infinity>()) << j << " h " << h[j];
}

TEST(PointColumns, DeepEventValuesOfEqualTheFullEvaluationWithDeadPoints) {
  // Three hidden layers; at data point p every layer-1 unit is inactive but one, whose
  // pre-activation is at round-off (3e-14 of |W1 row| |x_p|): the entries above at p have h at
  // round-off, no surface (dead: g = |h|). The subset's pass (with the columns of the points of
  // each layer's largest |h|) decides it as the full pass does, and rounds as it does.
  const Dataset data = test::separable_data(25, 5, 71);
  Flow flow(Network({5, 4, 3, 3, 1}, Activation::relu), data, LossKind::exp, FlowKind::gd);
  const Network& net = flow.network();
  Vec theta = test::random_vector(flow.num_params(), 72);
  const Index p = 6, n = flow.num_points(), d1 = net.layer_rows(0), d2 = net.layer_rows(1), d3 = net.layer_rows(2);
  const Vec x = flow.inputs().col(p);
  auto W1 = Eigen::Map<RowMat>(theta.data(), d1, net.layer_cols(0));
  W1.row(0) -= ((W1.row(0).dot(x) - 3e-14 * W1.row(0).norm() * x.norm()) / x.squaredNorm()) * x.transpose();
  KinkPattern pattern(flow);
  pattern.freeze(theta);
  ASSERT_EQ(pattern.value(p * d1), 1.0) << "unit 0 stays active at round-off";
  for (Index i = 1; i < d1; ++i)
    if (pattern.value(p * d1 + i) > 0.5) pattern.flip(p * d1 + i);
  const Index o2 = d1 * n, o3 = o2 + d2 * n;  // layer 2 and layer 3 entries
  std::vector<Index> js{p * d1, p * d1 + 1, o2 + p * d2, o2 + p * d2 + 2, o3 + p * d3 + 1, o2 + 4 * d2, o3 + 11 * d3,
                        3};
  const std::vector<char> dead = pattern.dead_entries(flow.preactivations(theta));
  EXPECT_TRUE(dead[std::size_t(o2 + p * d2)]);
  EXPECT_FALSE(dead[std::size_t(o2 + 4 * d2)]);
  Vec all, some;
  pattern.event_values(TimePoint{}, theta, all);
  pattern.event_values_of(TimePoint{}, theta, js, some);
  ASSERT_EQ(some.size(), Index(js.size()));
  const double scale = all.cwiseAbs().maxCoeff();
  for (std::size_t s = 0; s < js.size(); ++s) {
    EXPECT_EQ(some[Index(s)], all[js[s]]) << js[s];  // rounded as the full pass (point_columns.hpp)
    if (dead[std::size_t(js[s])]) EXPECT_GE(some[Index(s)], 0.0) << js[s];  // never an event
  }
  // A layer-2 entry at p has h at round-off but nonzero: dead makes it |h| whatever its mask.
  bool some_nonzero = false;
  for (Index i = 0; i < d2; ++i) some_nonzero |= all[o2 + p * d2 + i] != 0.0;
  EXPECT_TRUE(some_nonzero);
}

}  // namespace
}  // namespace gfsim
