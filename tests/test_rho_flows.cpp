// The flows that control rho (equations.md section 8): nm and nm_polar agree; nm's layer imbalance
// decays exactly like (1+t)^(-2 lambda0); square loss, n < dim: gd ends at the interpolant nearest its
// start and nm at the pseudo-inverse solution from every start; exp loss: nm follows the
// regularization path (an independent Newton solve of min L + lambda |w|^2/2) and rho ~ log(1/lambda)/gamma;
// a constant rho_schedule reproduces fixed_rho; the normalized flow's field is the softmax-weighted
// descent even where L underflows. (Jacobians, J v and dF/dt against differences: test_flow_kinds.)
#include <optional>
#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <Eigen/QR>
#include <cmath>
#include <iostream>

#include "gfsim/flow.hpp"
#include "gfsim/flow_problem.hpp"
#include "gfsim/kink_pattern.hpp"
#include "gfsim/kkt.hpp"
#include "gfsim/max_margin.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

FlowSpec nm_spec(const char* kind, double lambda0, double p = 1.0) {
  FlowSpec s;
  s.kind = FlowKind{kind};
  s.lambda = LambdaKind::power;
  s.lambda0 = lambda0;
  s.lambda_power = p;
  return s;
}

/// theta at `times` of the flow from theta0.
/// ReLU networks: kinks as events (the flow's activation pattern is frozen and switched).
std::vector<Vec> trajectory(Flow& flow, const Vec& theta0, const std::vector<double>& times, Method method,
                            ClockKind clock, double rtol, Status* status = nullptr) {
  std::vector<Vec> out;
  const Vec y0 = flow.initial_state(theta0);
  std::optional<KinkPattern> pattern;
  if (flow.network().has_kinks()) pattern.emplace(flow);
  const OdeProblem problem = pattern ? to_event_problem(*pattern, y0) : to_ode_problem(flow);
  const SolveResult r = integrate(problem, y0, times,
                                  test::solver_options(method, clock, rtol),
                                  [&](std::int64_t, double, const Vec& y) { out.push_back(flow.theta(y)); });
  if (status) *status = r.status;
  EXPECT_EQ(r.status, Status::success) << r.message;
  return out;
}

TEST(NormMinimizing, PolarAndWeightFormsAgree) {
  const Dataset data = test::separable_data(15, 3, 81);
  for (Activation act : {Activation::linear, Activation::relu}) {
    const Network net({3, 4, 1}, act);
    Flow w_form(net, data, LossKind::exp, nm_spec("nm", 0.5, 0.7));
    Flow polar(net, data, LossKind::exp, nm_spec("nm_polar", 0.5, 0.7));
    const Vec theta0 = test::random_vector(net.num_params(), 82, 0.5);
    const std::vector<double> times{0.0, 0.5, 2.0, 10.0, 50.0};
    const auto a = trajectory(w_form, theta0, times, Method::dopri5, ClockKind::t, 1e-11);
    const auto b = trajectory(polar, theta0, times, Method::dopri5, ClockKind::t, 1e-11);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i)
      EXPECT_LT((a[i] - b[i]).norm(), 1e-7 * (1 + a[i].norm())) << "t = " << times[i] << " " << to_string(act);
  }
}

TEST(NormMinimizing, LayerImbalanceDecaysLikeTheIntegratedDecay) {
  // d(rho_2^2 - rho_1^2)/dt = -2 lambda (rho_2^2 - rho_1^2), lambda = lambda0/(1+t): D(t) = D(0) (1+t)^(-2 lambda0).
  const Dataset data = test::separable_data(12, 3, 83);
  const Network net({3, 2, 1}, Activation::linear);
  const double lambda0 = 0.3;
  Flow nm(net, data, LossKind::logistic, nm_spec("nm", lambda0));
  const Vec theta0 = test::random_vector(net.num_params(), 84, 0.8);
  const std::vector<double> times{0.0, 1.0, 10.0, 100.0, 1000.0};
  for (Method m : {Method::dopri5, Method::cvode, Method::rosenbrock4}) {
    const auto th = trajectory(nm, theta0, times, m, ClockKind::log, 1e-10);
    const Vec r0 = net.layer_norms(th[0]);
    const double d0 = r0[1] * r0[1] - r0[0] * r0[0];
    for (std::size_t i = 1; i < th.size(); ++i) {
      const Vec r = net.layer_norms(th[i]);
      const double expected = d0 * std::pow(1.0 + times[i], -2.0 * lambda0);
      EXPECT_NEAR(r[1] * r[1] - r[0] * r[0], expected, 1e-7 * std::abs(d0)) << "t = " << times[i];
    }
  }
}

/// Square loss, linear model, n < dim: the interpolants are w* + null(X); the minimum-norm one is X^+ y.
TEST(NormMinimizing, SquareLossReachesThePseudoInverseSolutionFromEveryStart) {
  Dataset data;
  data.X = Eigen::Map<const Mat>(test::random_vector(4 * 7, 91).data(), 4, 7);
  data.y = test::random_vector(4, 92).array().sign().matrix();  // labels +-1: l = (1 - y f)^2 vanishes at f = y
  const Vec w_min = data.X.completeOrthogonalDecomposition().pseudoInverse() * data.y;
  const Mat P_null = Mat::Identity(7, 7) - data.X.completeOrthogonalDecomposition().pseudoInverse() * data.X;
  const Network net({7, 1}, Activation::linear);
  // lambda = 2/(1+t): the null-space part decays like (1+t)^-2, the bias of the regularized solution is O(lambda).
  Flow nm(net, data, LossKind::square, nm_spec("nm", 2.0));
  FlowSpec gd_spec;
  Flow gd(net, data, LossKind::square, gd_spec);
  const std::vector<double> times{0.0, 1e9};
  for (std::uint64_t seed : {93, 94, 95}) {
    const Vec w0 = test::random_vector(7, seed, 2.0);
    const Vec w_nm = trajectory(nm, w0, times, Method::cvode, ClockKind::t, 1e-10).back();
    const Vec w_gd = trajectory(gd, w0, times, Method::cvode, ClockKind::t, 1e-10).back();
    EXPECT_LT((w_nm - w_min).norm(), 1e-6 * w_min.norm()) << "nm from start " << seed;
    // gd keeps the null-space part of its start: the interpolant nearest w0.
    EXPECT_LT((w_gd - (w_min + P_null * w0)).norm(), 1e-6 * w_min.norm()) << "gd from start " << seed;
    EXPECT_GT((w_gd - w_min).norm(), 0.1 * w_min.norm());
  }
}

/// Two-layer linear net, square loss, n < dim: nm's limit is a balanced factorization of the
/// minimum-norm interpolant, |W_1|^2 + |W_2|^2 = 2 |w*| (the smallest sum over factorizations).
TEST(NormMinimizing, TwoLayerSquareLossReachesABalancedMinimumNormFactorization) {
  Dataset data;
  data.X = Eigen::Map<const Mat>(test::random_vector(3 * 5, 101).data(), 3, 5);
  data.y = test::random_vector(3, 102).array().sign().matrix();
  const Vec w_min = data.X.completeOrthogonalDecomposition().pseudoInverse() * data.y;
  const Network net({5, 3, 1}, Activation::linear);
  Flow nm(net, data, LossKind::square, nm_spec("nm", 1.0));
  for (std::uint64_t seed : {103, 104, 105}) {
    const Vec theta0 = test::random_vector(net.num_params(), seed, 0.7);
    const Vec th = trajectory(nm, theta0, {0.0, 1e9}, Method::cvode, ClockKind::t, 1e-10).back();
    const Vec rho = net.layer_norms(th);
    const Vec beta = end_to_end(net, th);
    EXPECT_LT((beta - w_min).norm(), 1e-4 * w_min.norm()) << "start " << seed;
    EXPECT_NEAR(rho.squaredNorm(), 2.0 * w_min.norm(), 1e-4 * w_min.norm()) << "start " << seed;
    EXPECT_NEAR(rho[0], rho[1], 1e-4 * rho[0]) << "start " << seed;
  }
}

/// The regularization path of a linear model: w_lambda = argmin L(w) + lambda |w|^2 / 2 by Newton's
/// method (strictly convex), from the loss gradient and Hessian-vector products of the flow.
Vec regularized_minimizer(const Flow& gd, double lambda, Vec w) {
  const Index d = w.size();
  for (int it = 0; it < 200; ++it) {
    Vec g, hv;
    gd.loss_gradient(w, g);
    g += lambda * w;
    Mat H(d, d);
    for (Index j = 0; j < d; ++j) {
      gd.loss_hvp(w, Vec::Unit(d, j), hv);
      H.col(j) = hv;
    }
    H.diagonal().array() += lambda;
    const Vec step = H.ldlt().solve(g);
    w -= step;
    if (step.norm() <= 1e-13 * w.norm()) break;
  }
  return w;
}

TEST(NormMinimizing, FollowsTheRegularizationPath) {
  const Dataset data = test::separable_data(20, 3, 111, 0.3);
  const Network net({3, 1}, Activation::linear);
  const double lambda0 = 1.0;
  Flow nm(net, data, LossKind::exp, nm_spec("nm", lambda0));
  FlowSpec gd_spec;
  const Flow gd(net, data, LossKind::exp, gd_spec);
  const double gamma = max_margin(data.signed_points()).gamma;
  const std::vector<double> times{0.0, 1e2, 1e4, 1e8, 1e16, 1e50, 1e100};
  const auto w = trajectory(nm, test::random_vector(3, 112, 0.3), times, Method::cvode, ClockKind::log, 1e-10);
  double previous_gap = HUGE_VAL;
  for (std::size_t i = 2; i < times.size(); ++i) {
    const double lambda = lambda0 / (1.0 + times[i]);
    const Vec path = regularized_minimizer(gd, lambda, w[i]);
    const double rho = w[i].norm();
    // The flow lags the path by a few percent of its norm at t = 1e4, and the lag shrinks.
    const double gap = (w[i] - path).norm() / path.norm();
    EXPECT_LT(gap, 3e-2) << "t = " << times[i];
    std::cout << "t = " << times[i] << ": |w - w_lambda|/|w_lambda| = " << gap << ", rho gamma / log(1/lambda) = "
              << rho * gamma / std::log(1.0 / lambda) << "\n";
    EXPECT_LT(gap, previous_gap) << "t = " << times[i];
    previous_gap = gap;
    // rho ~ log(1/lambda)/gamma, up to the log log correction of the path: gamma |w_lambda| =
    // log(1/lambda) - log |w_lambda| + O(1).
    const double predicted = std::log(1.0 / lambda) / gamma;
    EXPECT_NEAR(rho / predicted, 1.0, (std::log(rho) + 2.0) / std::log(1.0 / lambda)) << "t = " << times[i];
  }
}

TEST(RhoSchedule, ConstantScheduleReproducesFixedRho) {
  const Dataset data = test::separable_data(15, 3, 121);
  for (Activation act : {Activation::linear, Activation::relu}) {
    const Network net({3, 4, 1}, act);
    FlowSpec fixed;
    fixed.kind = FlowKind::fixed_rho;
    fixed.rho = 2.5;
    FlowSpec power = fixed, staircase = fixed;
    power.kind = staircase.kind = FlowKind{"rho_schedule"};
    power.rho_schedule = RhoScheduleKind::power;
    power.rho_rate = 0.0;
    staircase.rho_schedule = RhoScheduleKind::staircase;
    staircase.rho_factor = 1.0;
    staircase.rho_phase = 0.7;
    Flow a(net, data, LossKind::logistic, fixed), b(net, data, LossKind::logistic, power),
        c(net, data, LossKind::logistic, staircase);
    const Vec theta0 = test::random_vector(net.num_params(), 122, 0.5);
    const std::vector<double> times{0.0, 0.3, 3.0, 30.0};
    const auto ta = trajectory(a, theta0, times, Method::dopri5, ClockKind::t, 1e-11);
    const auto tb = trajectory(b, theta0, times, Method::dopri5, ClockKind::t, 1e-11);
    const auto tc = trajectory(c, theta0, times, Method::dopri5, ClockKind::t, 1e-11);
    for (std::size_t i = 0; i < times.size(); ++i) {
      EXPECT_LT((ta[i] - tb[i]).norm(), 1e-8 * ta[i].norm()) << "t = " << times[i] << " " << to_string(act);
      EXPECT_LT((ta[i] - tc[i]).norm(), 1e-8 * ta[i].norm()) << "t = " << times[i] << " " << to_string(act);
    }
  }
}

TEST(RhoSchedule, WeightsFollowThePrescribedRadius) {
  const Dataset data = test::separable_data(15, 3, 131);
  const Network net({3, 2, 1}, Activation::linear);
  FlowSpec s;
  s.kind = FlowKind{"rho_schedule"};
  s.rho = 0.5;
  s.rho_schedule = RhoScheduleKind::staircase;
  s.rho_factor = 2.0;
  s.rho_phase = 3.0;
  Flow flow(net, data, LossKind::exp, s);
  const std::vector<double> times{0.0, 1.0, 2.9, 3.1, 7.0, 9.5};
  const auto th = trajectory(flow, test::random_vector(net.num_params(), 132), times, Method::dopri5, ClockKind::t, 1e-10);
  for (std::size_t i = 0; i < times.size(); ++i) {
    const double rho = 0.5 * std::pow(2.0, std::floor(times[i] / 3.0));
    const Vec r = net.layer_norms(th[i]);
    EXPECT_NEAR(r.prod(), rho, 1e-8 * rho) << "t = " << times[i];
    EXPECT_NEAR(r[0], r[1], 1e-8 * r[0]);  // balanced by construction
  }
}

TEST(Normalized, FieldIsTheSoftmaxWeightedDescentWhereTheLossUnderflows) {
  const Dataset data = test::separable_data(10, 3, 141);
  const Network net({3, 1}, Activation::linear);
  FlowSpec s;
  s.kind = FlowKind{"normalized"};
  const Flow flow(net, data, LossKind::exp, s);
  const Vec v_star = max_margin(data.signed_points()).direction;
  const Mat Z = data.signed_points();
  for (double scale : {1.0, 1e3, 1e5}) {  // L = sum e^{-u} underflows to 0 for u ~ 1e3 and beyond
    const Vec w = scale * v_star;
    const Vec u = Z * w;
    const Eigen::ArrayXd e = (-(u.array() - u.minCoeff())).exp();
    const Vec expected = Z.transpose() * (e / e.sum()).matrix();  // -grad L / L = sum softmax(-u)_n z_n
    Vec dy;
    flow.rhs(TimePoint{}, w, dy);
    ASSERT_TRUE(dy.allFinite()) << scale;
    EXPECT_LT((dy - expected).norm(), 1e-11 * expected.norm()) << "|w| = " << scale;
    // In the log clock at t = 1e300 the field is e^s times the same.
    const double s300 = std::log1p(1e300);
    flow.rhs(TimePoint{1e300, s300}, w, dy);
    EXPECT_LT((dy / 1e300 - expected).norm(), 1e-11 * expected.norm()) << "|w| = " << scale;
  }
}

TEST(Normalized, ConservesTheLayerBalanceAndGrowsExponentiallyWithTwoLayers) {
  const Dataset data = test::separable_data(12, 3, 151);
  const Network net({3, 2, 1}, Activation::linear);
  FlowSpec s;
  s.kind = FlowKind{"normalized"};
  Flow flow(net, data, LossKind::logistic, s);
  const Vec theta0 = test::random_vector(net.num_params(), 152, 0.8);
  const std::vector<double> times{0.0, 2.0, 6.0, 12.0};
  const auto th = trajectory(flow, theta0, times, Method::dopri5, ClockKind::t, 1e-10);
  const Vec r0 = net.layer_norms(th[0]);
  for (std::size_t i = 1; i < th.size(); ++i) {
    const Vec r = net.layer_norms(th[i]);
    EXPECT_NEAR(r[1] * r[1] - r[0] * r[0], r0[1] * r0[1] - r0[0] * r0[0], 1e-6 * r.squaredNorm()) << times[i];
  }
  // K = 2: d rho_k^2/dt = 2 sum_n g_n u_n / L ~ 2 u_min ~ rho_k^2: exponential growth (gd: like log t).
  EXPECT_GT(net.layer_norms(th.back()).squaredNorm(), 3.0 * net.layer_norms(th[1]).squaredNorm());
}

FlowSpec normalized_schedule(RhoScheduleKind kind, double rho0) {
  FlowSpec s;
  s.kind = FlowKind{"rho_schedule_normalized"};
  s.rho = rho0;
  s.rho_schedule = kind;
  return s;
}

/// At constant rho the loss-normalized field is fixed_rho's divided by L: the same path in the time
/// tau(t) = int_0^t L(rho V(t')) dt'. Independent formulation: fixed_rho's field and L integrated
/// together, (V, tau), by classical RK4 with a fixed step; the normalized flow by dopri5 to tau.
TEST(RhoScheduleNormalized, ConstantRadiusIsFixedRhoInLossTime) {
  const Dataset data = test::separable_data(15, 3, 171);
  for (const std::vector<Index>& widths : {std::vector<Index>{3, 1}, std::vector<Index>{3, 2, 1}}) {
    const Network net(widths, Activation::linear);
    const double rho = 2.5;
    FlowSpec fixed;
    fixed.kind = FlowKind::fixed_rho;
    fixed.rho = rho;
    FlowSpec power = normalized_schedule(RhoScheduleKind::power, rho);
    power.rho_rate = 0.0;
    FlowSpec staircase = normalized_schedule(RhoScheduleKind::staircase, rho);
    staircase.rho_factor = 1.0;
    staircase.rho_phase = 0.3;
    for (LossKind loss : {LossKind::exp, LossKind::logistic}) {
      const Flow a(net, data, loss, fixed);
      // A start with positive margins (W_1 rows near the mean signed point): L = O(n), the field O(1),
      // so that the fixed-step RK4 is accurate to ~1e-10 from the first step.
      Vec theta0 = test::random_vector(net.num_params(), 172, 0.3);
      const Vec zbar = data.signed_points().colwise().mean().transpose().normalized();
      for (Index r = 0; r < net.layer_rows(0); ++r) theta0.segment(r * 3, 3) += zbar;
      if (net.num_layers() == 2) theta0.tail(2) = theta0.tail(2).cwiseAbs();
      for (Index k = 0; k < net.num_layers(); ++k) {  // balanced: fixed_rho represents it exactly
        auto W = theta0.segment(net.layer_offset(k), net.layer_size(k));
        W *= std::pow(rho, 1.0 / double(net.num_layers())) / W.norm();
      }
      // RK4 on (V, tau), dV/dt = F_fixed(V), dtau/dt = L(rho V).
      const auto aug = [&](const Vec& z) {
        Vec dz(z.size()), dv;
        const Vec V = z.head(z.size() - 1);
        a.rhs(V, 0.0, dv);
        dz.head(dv.size()) = dv;
        dz[z.size() - 1] = std::exp(a.log_loss(V, rho));
        return dz;
      };
      Vec z(net.num_params() + 1);
      z.head(net.num_params()) = a.initial_state(theta0);
      z[net.num_params()] = 0.0;
      const double h = 2.5e-4;
      std::vector<double> taus{0.0};
      std::vector<Vec> thetas{theta0};
      for (int step = 1; step <= 8000; ++step) {
        const Vec k1 = aug(z), k2 = aug(z + 0.5 * h * k1), k3 = aug(z + 0.5 * h * k2), k4 = aug(z + h * k3);
        z += (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
        if (step % 2000 == 0) {
          taus.push_back(z[net.num_params()]);
          thetas.push_back(a.theta(z.head(net.num_params())));
        }
      }
      ASSERT_GT(taus.back(), 2.0 * taus[1]);  // the loss does not vanish on the way: tau keeps growing
      for (const FlowSpec& spec : {power, staircase}) {
        Flow b(net, data, loss, spec);
        const auto tb = trajectory(b, theta0, taus, Method::dopri5, ClockKind::t, 1e-11);
        ASSERT_EQ(tb.size(), taus.size());
        for (std::size_t i = 0; i < taus.size(); ++i)
          EXPECT_LT((tb[i] - thetas[i]).norm(), 1e-8 * thetas[i].norm())
              << "tau = " << taus[i] << " K = " << net.num_layers() << " " << to_string(loss) << " "
              << to_string(spec.rho_schedule);
      }
    }
  }
}

TEST(RhoScheduleNormalized, TangentMatchesDifferencesForEverySchedule) {
  // test_flow_kinds checks the logarithmic schedule at sigma = 0; here every smooth schedule (and the
  // staircase between jumps) at sigma = 2.3 (the sigma column: drho = rho'(sigma) v_sigma), both
  // clocks, K = 1 and a ReLU net.
  const Dataset data = test::separable_data(8, 3, 201);
  for (RhoScheduleKind kind : {RhoScheduleKind::power, RhoScheduleKind::exponential, RhoScheduleKind::staircase}) {
    FlowSpec s = normalized_schedule(kind, 1.3);
    s.rho_rate = 0.4;
    s.rho_factor = 3.0;
    s.rho_phase = 1.0;
    for (const std::vector<Index>& widths : {std::vector<Index>{3, 1}, std::vector<Index>{3, 4, 1}}) {
      for (LossKind loss : {LossKind::exp, LossKind::logistic}) {
        const Flow flow(Network(widths, widths.size() == 2 ? Activation::linear : Activation::relu), data, loss, s);
        Vec y = flow.initial_state(test::random_vector(flow.num_params(), 202, 0.8));
        y[0] = 2.3;
        const Vec v = test::random_vector(flow.state_size(), 203);
        for (const TimePoint tp : {TimePoint{2.3, 0.0}, TimePoint{2.3, std::log1p(2.3)}}) {
          Vec jv, fp, fm;
          flow.jvp(tp, y, v, jv);
          const double h = 1e-6;
          flow.rhs(tp, y + h * v, fp);
          flow.rhs(tp, y - h * v, fm);
          const Vec fd = (fp - fm) / (2 * h);
          EXPECT_LT((jv - fd).norm(), 1e-6 * (1 + fd.norm()))
              << to_string(kind) << " K = " << widths.size() - 1 << " " << to_string(loss);
        }
      }
    }
  }
}

TEST(RhoScheduleNormalized, FieldIsTheSoftmaxWeightedProjectionWhereTheLossUnderflows) {
  // K = 1, exp loss: dv/dt = rho sum_n p_n (z_n - v (v.z_n)), p = softmax(-rho v.z).
  const Dataset data = test::separable_data(10, 3, 181);
  const Network net({3, 1}, Activation::linear);
  const Mat Z = data.signed_points();
  const Vec v = (max_margin(Z).direction + 0.1 * test::random_vector(3, 182)).normalized();
  for (double rho : {1.0, 1e3, 1e5}) {  // L = sum e^{-rho v.z} underflows to 0 beyond rho ~ 1e3
    FlowSpec s = normalized_schedule(RhoScheduleKind::power, rho);
    s.rho_rate = 0.0;
    const Flow flow(net, data, LossKind::exp, s);
    Vec y(4);
    y[0] = 0.0;
    y.tail(3) = v;
    const Vec u = rho * (Z * v);
    const Eigen::ArrayXd e = (-(u.array() - u.minCoeff())).exp();
    const Vec p = (e / e.sum()).matrix();
    const Vec zbar = Z.transpose() * p;
    const Vec expected = rho * (zbar - v * v.dot(zbar));
    Vec dy;
    flow.rhs(TimePoint{}, y, dy);
    ASSERT_TRUE(dy.allFinite()) << rho;
    EXPECT_LT((dy.tail(3) - expected).norm(), 1e-10 * expected.norm()) << "rho = " << rho;
    EXPECT_EQ(dy[0], 1.0);
    // In the log clock at t = 1e300 the field is e^s times the same.
    const double s300 = std::log1p(1e300);
    flow.rhs(TimePoint{1e300, s300}, y, dy);
    EXPECT_LT((dy.tail(3) / 1e300 - expected).norm(), 1e-10 * expected.norm()) << "rho = " << rho;
  }
}

/// Progressive norm rescaling: each phase at radius rho settles near v_rho = argmin L(rho v) on the
/// sphere, whose margin is within log(n)/rho of gamma. With rho doubled per phase the gap at the end
/// of the phases falls geometrically (equations.md 8 (i)).
TEST(RhoScheduleNormalized, StaircaseGapFallsGeometricallyWithThePhases) {
  const Dataset data = test::separable_data(20, 3, 191, 0.3);
  const Network net({3, 1}, Activation::linear);
  const Mat Z = data.signed_points();
  const double gamma = max_margin(Z).gamma;
  FlowSpec s = normalized_schedule(RhoScheduleKind::staircase, 1.0);
  s.rho_factor = 2.0;
  s.rho_phase = 4.0;
  Flow flow(net, data, LossKind::exp, s);
  std::vector<double> times{0.0};
  // Phases 1..10 (rho up to 512): beyond, stepping across a jump of size ~rho needs h below the
  // spacing of doubles at t ~ 40 (docs/rho_control.md).
  for (int m = 1; m <= 10; ++m) times.push_back(4.0 * m - 1e-3);  // the end of phase m
  const auto w = trajectory(flow, test::random_vector(3, 192), times, Method::cvode, ClockKind::t, 1e-10);
  ASSERT_EQ(w.size(), times.size());
  std::vector<double> gaps;
  for (std::size_t i = 1; i < w.size(); ++i) {
    const double rho = std::pow(2.0, double(i - 1));
    const double gap = (gamma - (Z * w[i]).minCoeff() / w[i].norm()) / gamma;
    EXPECT_LE(gap, std::log(20.0) / (rho * gamma)) << "phase " << i << " rho = " << rho;
    gaps.push_back(gap);
  }
  // From the phases where log(n)/rho is small: the gap at least halves per phase on average.
  EXPECT_LT(gaps.back(), std::pow(0.5, 5.0) * gaps[3]) << gaps[3] << " -> " << gaps.back();
}

/// A unit inactive at every point but one, where it sits on its kink: the prescribed-radius field
/// moves its row only by the projection, dV_i = -rho c V_i, so h stays exactly 0 there in exact
/// arithmetic, and the field on the active side points into the surface (a_p W2_i < 0) while the
/// inactive side is tangent: the Filippov solution stays inactive on the surface. The computed h
/// is rounding noise of either sign (~1e-17): taken as crossings, the noise flips the entry,
/// bounces into sliding at m ~ 0 and out again, and the run stalls after 64 zero-length restarts
/// (the stall of models/compare_iris_relu.toml on main, docs/rho_control.md). Values within their
/// rounding-error bound are not crossings (EventHooks::round_off): no event of that entry.
TEST(RhoFlows, AUnitInactiveEverywhereButOnOneKinkStaysOnItWithoutEvents) {
  const Index p = 2, unit = 1, d1 = 4;
  const Vec w = test::one_kink_row();  // w . x_p = 0 exactly, w . x_q < 0 elsewhere
  const Dataset data = test::one_kink_data(p, w);
  const Network net({3, d1, 1}, Activation::relu);
  for (const char* kind : {"rho_schedule", "rho_schedule_normalized"}) {
    FlowSpec spec;
    spec.kind = FlowKind{kind};
    spec.rho = 1.7;
    spec.rho_schedule = RhoScheduleKind::logarithmic;
    Flow flow(net, data, LossKind::exp, spec);
    // y = (sigma, V_1 row-major 4 x 3, V_2): row `unit` of V_1 is w exactly, the other rows fill
    // |V_1| to 1; the unit's output weight makes the active side's field point into the surface.
    Vec y(1 + net.num_params());
    y[0] = 0.0;
    Vec V = test::random_vector(net.num_params(), 172);
    Eigen::Map<RowMat> V1(V.data(), d1, 3);
    V1.row(unit).setZero();
    V1 *= std::sqrt(1.0 - w.squaredNorm()) / V1.norm();
    V1.row(unit) = w.transpose();
    auto V2 = V.segment(net.layer_offset(1), d1);
    V2[unit] = -data.y[p] * std::abs(V2[unit]);
    V2.normalize();
    y.segment(1, net.num_params()) = V;
    const Index j = p * d1 + unit;  // pre-activations column-major: point p, unit
    ASSERT_LT(std::abs(flow.preactivations(y)[j]), 1e-15);  // rounding of theta = rho^(1/2) V only
    for (Index q = 0; q < data.X.rows(); ++q)
      if (q != p) ASSERT_LT(flow.preactivations(y)[q * d1 + unit], -0.1) << "point " << q;

    KinkPattern pattern(flow);
    Index events_of_j = 0, events = 0;
    OdeProblem problem = to_event_problem(pattern, y, [&](double, Index layer, Index u, Index q, KinkEvent) {
      ++events;
      events_of_j += layer == 1 && u == unit && q == p;
    });
    const double t_end = 30.0;
    double h_max = 0, h_scale = 0;  // |h_j| and the unit's |h| elsewhere over the samples
    const auto r = integrate(problem, y, log_spaced_times(1e-2, t_end, 5),
                             test::solver_options(Method::dopri5, ClockKind::t, 1e-10),
                             [&](std::int64_t, double, const Vec& ys) {
                               const Vec h = flow.preactivations(ys);
                               h_max = std::max(h_max, std::abs(h[j]));
                               for (Index q = 0; q < data.X.rows(); ++q)
                                 if (q != p) h_scale = std::max(h_scale, std::abs(h[q * d1 + unit]));
                             });
    ASSERT_EQ(r.status, Status::success) << kind << ": " << r.message;
    EXPECT_EQ(r.t_final, t_end) << kind;
    // A few switches of the entry at most: the settle at the start may slide it at m ~ 0 and end
    // that at once (rho_schedule_normalized), and the state's own h drifts off 0 by the
    // integrator's rounding of V (a random walk that outgrows the bound of one evaluation once the
    // row has decayed ~1e5-fold): a crossing there, then sliding. Once the row has decayed, both
    // one-sided rates are at rounding level too, and whether and where that sliding mode ends is
    // the build's rounding (Intel Xeon: 2 switches, sliding at the end; AMD EPYC, both
    // -march=native: 3 and 5, rho_schedule ending on the active side with |h| ~ 1e-11). Without
    // the rule: 65 zero-length restarts and stalled_at_kink at t ~ 0. Either way the unit stays on
    // its kink to the rounding of the decayed row.
    EXPECT_LE(events_of_j, 6) << kind << " (" << events << " events in all)";
    EXPECT_LT(h_max, 1e-9 * h_scale) << kind << ": the unit left its kink";
  }
}

TEST(RhoFlows, SlidingKeepsThePreactivationOnItsSurface) {
  // One hidden ReLU layer, a state with pre-activation (unit 1, point 2) exactly 0: in Filippov
  // sliding on that surface (the solve uses the kind's LayerResponse) dh/dt must vanish.
  const Dataset data = test::separable_data(9, 3, 161);
  const Network net({3, 4, 1}, Activation::relu);
  for (const char* kind : {"nm", "nm_polar", "rho_schedule", "normalized", "rho_schedule_normalized"}) {
    FlowSpec s = nm_spec(kind, 0.7);
    s.rho = 1.7;
    Flow flow(net, data, LossKind::exp, s);
    Vec theta = test::random_vector(net.num_params(), 162);
    // Unit 1 of layer 1 orthogonal to point 2 (W_1 row-major, 4 x 3).
    Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> W1(theta.data(), 4, 3);
    const Vec x = data.X.row(2).transpose();
    W1.row(1) -= (W1.row(1).dot(x) / x.squaredNorm()) * x.transpose();
    Vec y = flow.initial_state(theta);
    if (std::string(kind).rfind("rho_schedule", 0) == 0) y[0] = 2.0;  // at t = 2 of the schedule
    KinkPattern pattern(flow);
    pattern.freeze(y);
    const Index j = 2 * 4 + 1;  // pre-activations column-major: point 2, unit 1
    ASSERT_TRUE(pattern.start_sliding(j)) << kind;
    Vec dy;
    pattern.rhs(TimePoint{0.5, 0.0}, y, dy);
    const Vec dh = flow.preactivation_tangent(flow.theta(y), flow.kind_model().theta_tangent(net, y, dy));
    const Vec h = flow.preactivations(y);
    EXPECT_LT(std::abs(h[j]), 1e-14) << kind;
    EXPECT_LT(std::abs(dh[j]), 1e-12 * dh.norm()) << kind;
    EXPECT_GT(dh.norm(), 1e-6) << kind;  // the other pre-activations move
  }
}

}  // namespace
}  // namespace gfsim
