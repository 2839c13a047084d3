// Units below rounding (preactivation_rounding.hpp, mark_units_below_rounding; docs/events.md): a
// hidden unit whose outgoing weights are below u ||W_out||_F changes the field by less than its
// rounding when one of its masks switches, so its kinks are no events.
//
// Measured cause (docs/rho_control.md): under the prescribed-radius flows a unit that no point
// activates decays with its outgoing weight to subnormal numbers (~1e-312 on compare_iris_relu.toml
// at t = 142); the unit sat on its kink at one point, its one-sided rates were both at rounding
// level (~1e-322 against ~1e-311), the sliding mask value noise of relative size 1e-11, and the run
// ended after 65 zero-length restarts, slide / exit / bounce.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "gfsim/flow.hpp"
#include "gfsim/flow_problem.hpp"
#include "gfsim/integrate.hpp"
#include "gfsim/kink_pattern.hpp"
#include "gfsim/preactivation_rounding.hpp"
#include "gfsim/schedule.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

constexpr double kU = std::numeric_limits<double>::epsilon() / 2;

// Scale unit i of hidden layer k (0-based): its outgoing column to `factor` u ||W_out||_F, its row of
// W_{k+1} by `factor` u (its pre-activations then `factor` u against an O(1) row's).
void shrink_unit(const Network& net, Vec& theta, Index k, Index i, double factor) {
  Eigen::Map<RowMat> out(theta.data() + net.layer_offset(k + 1), net.layer_rows(k + 1), net.layer_cols(k + 1));
  out.col(i).setZero();
  const double rest = out.norm();
  out.col(i) = test::random_vector(out.rows(), 900 + std::uint64_t(k * 10 + i), 1.0);
  out.col(i) *= factor * kU * rest / out.col(i).norm();
  Eigen::Map<RowMat> in(theta.data() + net.layer_offset(k), net.layer_rows(k), net.layer_cols(k));
  in.row(i) *= factor * kU;
}

// The largest |h| of unit i of hidden layer k over the points, against the layer's.
double relative_preactivation(const Flow& flow, const Vec& y, Index k, Index i) {
  const Network& net = flow.network();
  const Index n = flow.num_points();
  Index o = 0;
  for (Index kk = 0; kk < k; ++kk) o += net.layer_rows(kk) * n;
  const Vec pre = flow.preactivations(y);
  const auto H = Eigen::Map<const Mat>(pre.data() + o, net.layer_rows(k), n);
  return H.row(i).cwiseAbs().maxCoeff() / H.cwiseAbs().maxCoeff();
}

// The claim itself: a marked unit's mask switch at any point moves the field by less than a few
// units of its rounding (u ||F||), for plain and polar kinds at two depths; a unit a million times
// above the threshold is not marked, and its switch moves the field measurably (the measure is
// not vacuous).
TEST(UnitsBelowRounding, AMarkedUnitsSwitchMovesTheFieldByLessThanItsRounding) {
  const Dataset data = test::separable_data(16, 4, 31, 0.1);
  for (const std::vector<Index>& widths : {std::vector<Index>{4, 6, 1}, std::vector<Index>{4, 6, 5, 1}}) {
    const Network net(widths, Activation::relu);
    for (const char* kind : {"gd", "gd_polar", "rho_schedule"}) {
      FlowSpec spec;
      spec.kind = FlowKind{kind};
      spec.rho = 2.0;
      Flow flow(net, data, LossKind::exp, spec);
      const Index K = net.num_layers(), n = data.X.rows();
      for (Index k = 0; k + 1 < K; ++k) {
        Vec theta = test::random_vector(net.num_params(), 41 + std::uint64_t(k), 0.7);
        const Index dead = 1, alive = 2;
        shrink_unit(net, theta, k, dead, 0.25);
        shrink_unit(net, theta, k, alive, 1e6);
        const Vec y = flow.initial_state(theta);
        const Vec th = flow.theta(y);
        ASSERT_LE(relative_preactivation(flow, y, k, dead), kU);
        const std::vector<char> below = entries_of_units_below_rounding(net, th, flow.preactivations(y), n);
        Index o = 0;
        for (Index kk = 0; kk < k; ++kk) o += net.layer_rows(kk) * n;
        const Index rows = net.layer_rows(k);
        ASSERT_EQ(Index(below.size()), flow.num_preactivations());
        for (Index j = 0; j < Index(below.size()); ++j) {
          const bool in_dead_unit = j >= o && j < o + rows * n && (j - o) % rows == dead;
          ASSERT_EQ(bool(below[std::size_t(j)]), in_dead_unit) << kind << " layer " << k + 1 << " entry " << j;
        }
        KinkPattern pattern(flow);
        pattern.freeze(y);
        Vec F0, F1;
        pattern.rhs(y, 0.0, F0);
        const double scale = F0.cwiseAbs().maxCoeff();
        double worst_dead = 0, most_alive = 0;
        for (Index p = 0; p < n; ++p) {
          for (Index i : {dead, alive}) {
            const Index j = o + p * rows + i;
            pattern.flip(j);
            pattern.rhs(y, 0.0, F1);
            pattern.flip(j);
            const double jump = (F1 - F0).cwiseAbs().maxCoeff() / scale;
            if (i == dead) worst_dead = std::max(worst_dead, jump);
            else most_alive = std::max(most_alive, jump);
          }
        }
        EXPECT_LE(worst_dead, 4 * kU) << kind << " layer " << k + 1;
        EXPECT_GT(most_alive, 1e3 * kU) << kind << " layer " << k + 1;
      }
    }
  }
}

// End to end: a unit inactive at every point but one, on its kink there, with an outgoing weight
// below rounding (a dead unit) under the prescribed-radius flows: the run reaches t_end without a
// single event of that unit. (Before the rule this toy, with the row decaying to ~1e-13, chattered.)
TEST(UnitsBelowRounding, ADeadUnitOnItsKinkHasNoEvents) {
  const Index p = 2, unit = 1, d1 = 4;
  const Vec w = test::one_kink_row();  // w . x_p = 0 exactly, w . x_q < 0 elsewhere
  const Dataset data = test::one_kink_data(p, w);
  const Network net({3, d1, 1}, Activation::relu);
  for (const char* kind : {"rho_schedule", "rho_schedule_normalized", "gd_polar"}) {
    FlowSpec spec;
    spec.kind = FlowKind{kind};
    spec.rho = 1.7;
    spec.rho_schedule = RhoScheduleKind::logarithmic;
    Flow flow(net, data, LossKind::exp, spec);
    Vec theta = test::random_vector(net.num_params(), 172);
    Eigen::Map<RowMat> W1(theta.data(), d1, 3);
    // Its row 1e-60 of the others: a unit that no point activates can still grow against its
    // layer while the data are not yet separated (the projection's -(V . G) V term changes sign),
    // by ~1e4 over t = 8 here; from 1e-20 it reached u and its kinks became real again.
    W1.row(unit) = 1e-60 * w.transpose();
    // The output weight of the unit: subnormal against the others, as measured on iris.
    theta[net.layer_offset(1) + unit] = -data.y[p] * 1e-310;
    const Vec y = flow.initial_state(theta);
    const Index j = p * d1 + unit;
    ASSERT_LT(std::abs(flow.preactivations(y)[j]), 1e-75);
    KinkPattern pattern(flow);
    Index events_of_unit = 0, events = 0;
    OdeProblem problem = to_event_problem(pattern, y, [&](double, Index layer, Index u, Index, KinkEvent) {
      ++events;
      events_of_unit += layer == 1 && u == unit;
    });
    Vec yt = y;
    const double t_end = 50.0;
    const auto r = integrate(problem, yt, log_spaced_times(1e-2, t_end, 5),
                             test::solver_options(Method::dopri5, ClockKind::t, 1e-10),
                             [](std::int64_t, double, const Vec&) {});
    ASSERT_EQ(r.status, Status::success) << kind << ": " << r.message;
    EXPECT_EQ(r.t_final, t_end) << kind;
    EXPECT_EQ(events_of_unit, 0) << kind << " (" << events << " events in all)";
  }
}

}  // namespace
}  // namespace gfsim
