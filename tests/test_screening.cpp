// Safe screening (equations.md section 9, issue 19): the certificate bounds the dropped points'
// loss mass at any weights (checked against the exact sum for random turns and growths of deep
// linear and ReLU nets); along whole runs the right-hand side of the kept points is within the
// certified bound of the full one at every step; screened and unscreened runs agree to the solver
// tolerance for every flow kind, both losses with a certificate, K = 1 and a deep linear net,
// with CVODE dense and SPGMR and rosenbrock4; a point that leaves the kept set comes back when
// its weight grows; and runs without screening are unaffected.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "gfsim/cvode_solver.hpp"
#include "gfsim/flow_problem.hpp"
#include "gfsim/screening.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

// log sum_{dropped} |x_n| e^{-u_n(theta)}, exactly.
double exact_log_mass(const Network& net, const Dataset& data, const Vec& theta, const std::vector<Index>& dropped) {
  Network::Workspace ws;
  const Mat XT = data.X.transpose();
  net.forward(theta, XT, ws);
  double top = -std::numeric_limits<double>::infinity();
  for (Index n : dropped) top = std::max(top, -data.y[n] * ws.f[n] + std::log(XT.col(n).norm()));
  double sum = 0;
  for (Index n : dropped) sum += std::exp(-data.y[n] * ws.f[n] + std::log(XT.col(n).norm()) - top);
  return top + std::log(sum);
}

TEST(ScreeningCertificate, BoundsTheDroppedMassAtTurnedAndGrownWeights) {
  const Dataset data = test::separable_data(60, 4, 5, 0.3);
  const Vec x_norms = data.X.rowwise().norm();
  struct Case {
    std::vector<Index> widths;
    Activation act;
  };
  for (const Case& c : {Case{{4, 1}, Activation::linear}, Case{{4, 3, 1}, Activation::linear},
                        Case{{4, 5, 3, 1}, Activation::relu}}) {
    const Network net(c.widths, c.act);
    const Vec theta_c = test::random_vector(net.num_params(), 6, 2.0);
    Network::Workspace ws;
    const Mat XT = data.X.transpose();
    net.forward(theta_c, XT, ws);
    const Vec u = (data.y.array() * ws.f.array()).matrix();
    // Drop the upper half of the margins (some may be negative: the bound does not need signs).
    Vec sorted = u;
    std::sort(sorted.data(), sorted.data() + sorted.size());
    const double median = sorted[sorted.size() / 2];
    std::vector<Index> dropped;
    for (Index n = 0; n < u.size(); ++n)
      if (u[n] >= median) dropped.push_back(n);
    ScreeningCertificate cert;
    cert.reset(net, theta_c, u, x_norms, dropped);
    ASSERT_EQ(cert.dropped(), Index(dropped.size()));
    // At the screen (kappa = 1, no turn) the banded sums are the exact mass.
    const double at_screen = exact_log_mass(net, data, theta_c, dropped);
    EXPECT_NEAR(cert.log_mass(net, theta_c), at_screen, 1e-12 * (1 + std::abs(at_screen)));
    int finite = 0;
    for (std::uint64_t seed = 0; seed < 200; ++seed) {
      // Growth by a random factor per layer plus a turn of random size.
      Vec theta = theta_c;
      const Vec factors = test::random_vector(net.num_layers(), 100 + seed, 0.3);
      for (Index k = 0; k < net.num_layers(); ++k)
        theta.segment(net.layer_offset(k), net.layer_size(k)) *= std::exp(factors[k]);
      theta += test::random_vector(net.num_params(), 500 + seed, 0.02 * double(seed % 10));
      const double bound = cert.log_mass(net, theta), exact = exact_log_mass(net, data, theta, dropped);
      EXPECT_GE(bound, exact - 1e-10) << "seed " << seed;
      finite += std::isfinite(bound);
    }
    EXPECT_GT(finite, 150);  // the bound says something for most of these perturbations
  }
}

TEST(ScreeningCertificate, PureGrowthAndShrinkAreBoundedPerBand) {
  // Without a turn (theta = kappa C on a K = 1 net) the margins scale exactly: u_n = kappa u_c,n.
  // Margins spread over many bands: the bound follows e^{-(kappa - 1) u} of each band's lowest
  // margin when growing, Hoelder's inequality when shrinking; both above the exact mass and, for
  // growth, within the band's relative width (u_hi - u_lo)(kappa - 1) of it.
  Dataset data = test::separable_data(400, 3, 17, 0.3);
  const Vec x_norms = data.X.rowwise().norm();
  const Network net({3, 1}, Activation::linear);
  const Vec theta_c = 40.0 * test::random_vector(3, 18 + 1000).normalized();  // near the data's direction
  Network::Workspace ws;
  net.forward(theta_c, Mat(data.X.transpose()), ws);
  const Vec u = (data.y.array() * ws.f.array()).matrix();
  std::vector<Index> dropped;
  for (Index n = 0; n < u.size(); ++n)
    if (u[n] >= 5.0) dropped.push_back(n);
  ASSERT_GT(dropped.size(), 50u);
  ScreeningCertificate cert;
  cert.reset(net, theta_c, u, x_norms, dropped);
  for (double kappa : {0.3, 0.7, 0.99, 1.0, 1.01, 1.5, 3.0, 20.0}) {
    const Vec theta = kappa * theta_c;
    EXPECT_NEAR(cert.growth(net, theta), kappa, 1e-12 * kappa);
    const double bound = cert.log_mass(net, theta), exact = exact_log_mass(net, data, theta, dropped);
    EXPECT_GE(bound, exact - 1e-10) << "kappa " << kappa;
    // Every band is at most a factor 2 wider than its distance from the lowest dropped margin
    // plus kBandWidth, so the slack is bounded by the spread of the margins at most.
    if (kappa > 1) {
      double spread = 0;
      for (Index n : dropped) spread = std::max(spread, u[n]);
      EXPECT_LE(bound - exact, (kappa - 1) * spread + 1e-9) << "kappa " << kappa;
    }
  }
  // A turn only adds: the same growth with a perpendicular component gives a larger bound.
  Vec perp = test::random_vector(3, 19);
  perp -= perp.dot(theta_c) / theta_c.squaredNorm() * theta_c;
  EXPECT_GT(cert.log_mass(net, 2.0 * theta_c + 0.1 * perp), cert.log_mass(net, 2.0 * theta_c));
  EXPECT_GE(cert.log_mass(net, 2.0 * theta_c + 0.1 * perp),
            exact_log_mass(net, data, 2.0 * theta_c + 0.1 * perp, dropped) - 1e-10);
  // A reversed layer (lambda <= 0) says nothing.
  EXPECT_EQ(cert.log_mass(net, -theta_c), std::numeric_limits<double>::infinity());
  EXPECT_EQ(cert.growth(net, -theta_c), 0.0);
}

TEST(ScreeningCertificate, OutputGradientBoundIsTheProductRule) {
  EXPECT_DOUBLE_EQ(output_gradient_bound((Vec(1) << 3.0).finished()), 1.0);
  EXPECT_DOUBLE_EQ(output_gradient_bound((Vec(2) << 3.0, 4.0).finished()), 5.0);
  EXPECT_DOUBLE_EQ(output_gradient_bound((Vec(3) << 1.0, 2.0, 0.0).finished()), 2.0);
}

struct Outcome {
  SolveResult result;
  std::vector<Index> kept;  // at every accepted step
  double worst_ratio = 0;   // max over steps of |rhs(kept) - rhs(all)| / certified bound
  double worst_budget = 0;  // max over steps of the certified bound / its budget
};

enum class Solver { cvode_dense, cvode_spgmr, rosenbrock4 };

// One run with (screened) or without screening; with `exact` given, at every accepted step the
// kept points' right-hand side is compared with the full one of `exact`.
Outcome run(Flow& flow, const Vec& y0, double t_end, Solver solver, double rtol, const Flow* exact = nullptr) {
  SolverOptions o = test::solver_options(solver == Solver::rosenbrock4 ? Method::rosenbrock4 : Method::cvode,
                                         ClockKind::log, rtol);
  Outcome r;
  const Clock clock{ClockKind::log};
  Vec full, kept;
  auto monitor = [&](double t, const Vec& y, const SolverCounters&) -> std::optional<Status> {
    const ScreeningState s0 = flow.screening_state();
    r.kept.push_back(s0.kept);
    if (exact) {
      const TimePoint tp = clock.at(clock.tau(t));
      flow.rhs(tp, y, kept);
      exact->rhs(tp, y, full);
      const ScreeningState s = flow.screening_state();
      // The certificate is exact arithmetic; the two sums also differ by their rounding (order).
      const double diff = (kept - full).norm(), rounding = 1e-12 * full.norm();
      if (diff > rounding) r.worst_ratio = std::max(r.worst_ratio, (diff - rounding) / s.last_bound);
      r.worst_budget = std::max(r.worst_budget, s.last_bound / s.last_budget);
    }
    return std::nullopt;
  };
  const auto times = log_spaced_times(1e-2, t_end, 1);
  auto ignore = [](std::int64_t, double, const Vec&) {};
  const OdeProblem p = to_ode_problem(flow);
  if (solver == Solver::rosenbrock4)
    r.result = integrate(p, y0, times, o, ignore, monitor);
  else
    r.result = integrate_cvode(p, y0, times, o, ignore, monitor,
                               solver == Solver::cvode_dense ? CvodeLinearSolver::dense : CvodeLinearSolver::spgmr);
  return r;
}

FlowSpec spec_of(const std::string& kind) {
  FlowSpec spec;
  spec.kind = FlowKind{kind};
  spec.rho = 200.0;       // fixed_rho, rho_schedule: large enough for the weights to concentrate
  spec.rho_schedule = RhoScheduleKind::logarithmic;
  spec.rho_rate = 2.0;
  return spec;
}

struct KindCase {
  std::string kind;
  LossKind loss;
  std::vector<Index> widths;
  Solver solver;
  double t_end;
};

class ScreenedRun : public testing::TestWithParam<KindCase> {};

TEST_P(ScreenedRun, AgreesWithTheUnscreenedRunAndTheCertificateHoldsAtEveryStep) {
  const KindCase& c = GetParam();
  const Dataset data = test::separable_data(300, c.widths.front(), 41, 0.2);
  const Network net(c.widths, Activation::linear);
  Flow plain(net, data, c.loss, spec_of(c.kind)), screened(net, data, c.loss, spec_of(c.kind)),
      exact(net, data, c.loss, spec_of(c.kind));
  const double rtol = 1e-8, atol = 1e-2 * rtol;
  screened.enable_screening(1e-3 * atol);
  Vec theta0 = test::random_vector(net.num_params(), 42, 0.3);
  if (c.kind == "fixed_rho" || c.kind.starts_with("rho_schedule"))  // at rho = 200 a misclassified point is too stiff
    theta0 = test::random_vector(c.widths.front(), 41 + 1000).normalized() + 0.1 * theta0;  // data's direction
  const Vec y0 = plain.initial_state(theta0);
  const Outcome a = run(plain, y0, c.t_end, c.solver, rtol);
  const Outcome b = run(screened, y0, c.t_end, c.solver, rtol, &exact);
  const Outcome ref = run(exact, y0, c.t_end, c.solver, 1e-12);
  ASSERT_EQ(a.result.status, Status::success) << a.result.message;
  ASSERT_EQ(b.result.status, Status::success) << b.result.message;
  ASSERT_EQ(ref.result.status, Status::success) << ref.result.message;
  // Agreement to the solver tolerance: the screened run is as close to a tight reference as the
  // unscreened one (the certified perturbation is far below the tolerance; what is left is the
  // two runs taking different steps, each with its own global error).
  const double err_plain = test::weighted_error(a.result.y_final, ref.result.y_final, rtol, atol);
  const double err_screened = test::weighted_error(b.result.y_final, ref.result.y_final, rtol, atol);
  EXPECT_LT(err_screened, std::max(2.0 * err_plain, 10.0))
      << "unscreened error " << err_plain << "; final states " << b.result.y_final.transpose() << "\n vs " << a.result.y_final.transpose();
  // The certificate: measured difference <= bound <= budget at every accepted step.
  EXPECT_LE(b.worst_ratio, 1.0);
  EXPECT_LE(b.worst_budget, 1.0);
  // Screening did drop points (the case is meant to exercise it) and the plain run kept all.
  EXPECT_LT(*std::min_element(b.kept.begin(), b.kept.end()), data.n() / 2) << c.kind;
  EXPECT_EQ(*std::min_element(a.kept.begin(), a.kept.end()), data.n());
}

std::string case_name(const testing::TestParamInfo<KindCase>& info) {
  const KindCase& c = info.param;
  const char* solver = c.solver == Solver::cvode_dense ? "dense" : c.solver == Solver::cvode_spgmr ? "spgmr" : "ros4";
  return c.kind + "_" + to_string(c.loss) + "_K" + std::to_string(c.widths.size() - 1) + "_" + solver + "_t1e" +
         std::to_string(int(std::lround(std::log10(c.t_end))));
}

const std::vector<Index> kLinear{5, 1}, kDeep{5, 3, 1};

INSTANTIATE_TEST_SUITE_P(
    EveryKind, ScreenedRun,
    testing::Values(KindCase{"gd", LossKind::exp, kLinear, Solver::cvode_dense, 1e12},
                    KindCase{"gd", LossKind::exp, kLinear, Solver::cvode_dense, 1e100},
                    KindCase{"gd", LossKind::logistic, kLinear, Solver::cvode_dense, 1e12},
                    KindCase{"gd", LossKind::exp, kLinear, Solver::cvode_spgmr, 1e12},
                    KindCase{"gd", LossKind::exp, kLinear, Solver::rosenbrock4, 1e12},
                    KindCase{"gd_polar", LossKind::exp, kLinear, Solver::cvode_dense, 1e12},
                    KindCase{"wn", LossKind::logistic, kLinear, Solver::cvode_dense, 1e12},
                    KindCase{"fixed_rho", LossKind::exp, kLinear, Solver::cvode_dense, 1e3},
                    KindCase{"nm", LossKind::exp, kLinear, Solver::cvode_dense, 1e12},
                    KindCase{"nm_polar", LossKind::logistic, kLinear, Solver::cvode_dense, 1e12},
                    KindCase{"rho_schedule", LossKind::exp, kLinear, Solver::cvode_dense, 1e12},
                    KindCase{"normalized", LossKind::exp, kLinear, Solver::cvode_dense, 1e3},
                    KindCase{"rho_schedule_normalized", LossKind::exp, kLinear, Solver::cvode_dense, 1e3},
                    KindCase{"gd", LossKind::exp, kDeep, Solver::cvode_dense, 1e12},
                    KindCase{"gd", LossKind::logistic, kDeep, Solver::cvode_spgmr, 1e12},
                    KindCase{"gd_polar", LossKind::exp, kDeep, Solver::cvode_dense, 1e12}),
    case_name);

TEST(Screening, APointThatLeavesIsBroughtBackWhenItsWeightGrows) {
  // z_a = (1, 1) starts with margin 50 (weight e^{-50}: dropped), z_b = (1, -1) with margin 0.
  // The flow moves w along z_b (orthogonal to z_a), so u_a stays 50 while the clock's factor
  // e^s grows: well before t ~ e^50 point a carries weight again and must be back in the kept set.
  Dataset data;
  data.X = (Mat(2, 2) << 1, 1, 1, -1).finished();
  data.y = Vec::Ones(2);
  const Network net({2, 1}, Activation::linear);
  Flow plain(net, data, LossKind::exp, FlowKind::gd), screened(net, data, LossKind::exp, FlowKind::gd),
      exact(net, data, LossKind::exp, FlowKind::gd);
  const double rtol = 1e-9, atol = 1e-11;
  screened.enable_screening(1e-3 * atol);
  const Vec w0 = (Vec(2) << 25.0, 25.0).finished();
  const Outcome a = run(plain, w0, 1e30, Solver::cvode_dense, rtol);
  const Outcome b = run(screened, w0, 1e30, Solver::cvode_dense, rtol, &exact);
  ASSERT_EQ(b.result.status, Status::success) << b.result.message;
  const auto first_one = std::find(b.kept.begin(), b.kept.end(), 1);
  ASSERT_NE(first_one, b.kept.end()) << "point a was never dropped";
  EXPECT_NE(std::find(first_one, b.kept.end(), 2), b.kept.end()) << "point a never came back";
  EXPECT_EQ(b.kept.back(), 2);
  EXPECT_LE(b.worst_ratio, 1.0);
  EXPECT_LT(test::weighted_error(b.result.y_final, a.result.y_final, rtol, atol), 10.0);
  // The limit direction is the max-margin one, (1, 0): both points support it.
  EXPECT_GT(b.result.y_final.normalized()[0], 0.95);
}

TEST(Screening, ARepeatedSolveOnTheSameFlowIsBitwiseTheSame) {
  // enable_screening starts every solve from all points, including the order in which the kept
  // points are stored (it sets the rounding of the kept sums).
  const Dataset data = test::separable_data(300, 5, 41, 0.2);
  Flow flow(Network({5, 1}, Activation::linear), data, LossKind::exp, FlowKind::gd);
  const Vec y0 = flow.initial_state(test::random_vector(5, 42, 0.3));
  flow.enable_screening(1e-13);
  const Outcome a = run(flow, y0, 1e30, Solver::cvode_dense, 1e-8);
  flow.enable_screening(1e-13);
  const Outcome b = run(flow, y0, 1e30, Solver::cvode_dense, 1e-8);
  ASSERT_EQ(a.result.status, Status::success) << a.result.message;
  EXPECT_LT(*std::min_element(a.kept.begin(), a.kept.end()), data.n() / 2);  // screening did drop points
  EXPECT_EQ(a.kept, b.kept);
  EXPECT_EQ(a.result.y_final, b.result.y_final);
}

TEST(Screening, WithoutCertificateEveryPointIsKept) {
  // The square loss has no weight bound g(u) <= e^{-u}; the smoothed ReLU is not homogeneous.
  const Dataset data = test::separable_data(50, 3, 9, 0.2);
  Flow square(Network({3, 1}, Activation::linear), data, LossKind::square, FlowKind::gd);
  Flow smooth(Network({3, 4, 1}, Activation::relu, 1e-3), data, LossKind::exp, FlowKind::gd);
  for (Flow* f : {&square, &smooth}) {
    f->enable_screening(1e-13);
    const Vec y0 = f->initial_state(test::random_vector(f->num_params(), 3, 0.3));
    const Outcome r = run(*f, y0, 1e4, Solver::cvode_dense, 1e-8);
    ASSERT_EQ(r.result.status, Status::success) << r.result.message;
    EXPECT_EQ(*std::min_element(r.kept.begin(), r.kept.end()), data.n());
    EXPECT_FALSE(f->screening_state().active);
  }
  EXPECT_THROW(square.enable_screening(0.0), std::invalid_argument);
}

}  // namespace
}  // namespace gfsim
