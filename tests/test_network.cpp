// Gradients and Hessian-vector products against central differences, for every network shape,
// activation (the smoothed ReLU of dynamics.kinks = "smooth" included) and loss; Euler's homogeneity identity; flow Jacobian-vector products against
// differences of the right-hand side.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>

#include "gfsim/flow.hpp"
#include "gfsim/errors.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

struct Case {
  std::vector<Index> widths;
  Activation act;
  LossKind loss;
  double kink_width = 0.0;  ///< > 0: the smoothed ReLU; wide enough that s'' matters at O(1) pre-activations
  Network net() const { return Network(widths, act, kink_width); }
};

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (auto act : {Activation::linear, Activation::relu})
    for (auto loss : {LossKind::exp, LossKind::logistic, LossKind::square})
      for (auto w : std::vector<std::vector<Index>>{{3, 1}, {3, 4, 1}, {3, 4, 5, 1}}) {
        cases.push_back({w, act, loss});
        if (act == Activation::relu && w.size() > 2) cases.push_back({w, act, loss, 0.3});
      }
  return cases;
}

std::string name(const Case& c) {
  return fmt::format("{} {} {}", c.net().describe(), to_string(c.loss), c.widths.size() - 1);
}

double loss_value(const Flow& flow, const Vec& theta) {
  // L = sum_n l(u_n) from the log-form pieces: exp(log_total).
  return std::exp(flow.diagnostics(theta).log_loss);
}

TEST(Network, GradientMatchesCentralDifferences) {
  for (const auto& c : all_cases()) {
    const Dataset data = test::separable_data(7, 3, 11);
    Flow flow(c.net(), data, c.loss, FlowKind::gd);
    const Vec theta = test::random_vector(flow.num_params(), 5, 0.7);
    Vec grad;
    flow.loss_gradient(theta, grad);
    const double h = 1e-6;
    for (Index i = 0; i < theta.size(); ++i) {
      Vec tp = theta, tm = theta;
      tp[i] += h;
      tm[i] -= h;
      const double fd = (loss_value(flow, tp) - loss_value(flow, tm)) / (2 * h);
      EXPECT_NEAR(grad[i], fd, 1e-6 * (1 + std::abs(fd))) << name(c) << " component " << i;
    }
  }
}

TEST(Network, HessianVectorProductMatchesDifferencesOfGradient) {
  for (const auto& c : all_cases()) {
    const Dataset data = test::separable_data(7, 3, 12);
    Flow flow(c.net(), data, c.loss, FlowKind::gd);
    const Vec theta = test::random_vector(flow.num_params(), 6, 0.7);
    const Vec v = test::random_vector(flow.num_params(), 7);
    Vec hv, gp, gm;
    flow.loss_hvp(theta, v, hv);
    const double h = 1e-5;
    flow.loss_gradient(theta + h * v, gp);
    flow.loss_gradient(theta - h * v, gm);
    const Vec fd = (gp - gm) / (2 * h);
    EXPECT_LT((hv - fd).norm(), 1e-7 * (1 + fd.norm())) << name(c);
  }
}

TEST(Network, HessianIsSymmetric) {
  const Dataset data = test::separable_data(9, 3, 13);
  Flow flow(Network({3, 4, 5, 1}, Activation::relu), data, LossKind::logistic, FlowKind::gd);
  const Vec theta = test::random_vector(flow.num_params(), 8);
  const Vec v = test::random_vector(flow.num_params(), 9), w = test::random_vector(flow.num_params(), 10);
  Vec hv, hw;
  flow.loss_hvp(theta, v, hv);
  flow.loss_hvp(theta, w, hw);
  EXPECT_NEAR(w.dot(hv), v.dot(hw), 1e-12 * (std::abs(w.dot(hv)) + 1));
}

TEST(Network, EulerIdentityPerLayer) {
  // <W_k, df_n/dW_k> = f_n for every layer k and point n (positive 1-homogeneity, exact for ReLU).
  for (auto act : {Activation::linear, Activation::relu}) {
    Network net({4, 6, 5, 1}, act);
    const Dataset data = test::separable_data(5, 4, 14);
    const Mat XT = data.X.transpose();
    const Vec theta = test::random_vector(net.num_params(), 15);
    Network::Workspace ws;
    net.forward(theta, XT, ws);
    const Vec f = ws.f;
    Vec grad(net.num_params());
    for (Index n = 0; n < data.n(); ++n) {
      net.backward(theta, Vec::Unit(data.n(), n), XT, ws, grad);
      for (Index k = 0; k < net.num_layers(); ++k) {
        const double inner = theta.segment(net.layer_offset(k), net.layer_size(k))
                                 .dot(grad.segment(net.layer_offset(k), net.layer_size(k)));
        EXPECT_NEAR(inner, f[n], 1e-12 * (1 + std::abs(f[n])));
      }
    }
  }
}

TEST(Network, SmoothedReluIsExactAndHasNoSubnormalValues) {
  // dynamics.kinks = "smooth": s(z) = eps log(1 + e^t), s'(z) = sigma(t), s''(z) = sigma(t) sigma(-t) / eps,
  // t = z / eps. Far on the inactive side e^{-|t|} is subnormal for |t| in 708..745, and products with
  // subnormal operands are slow (the masks' GEMMs of the backward pass ran 13 times slower per
  // evaluation on the 8-unit copy of relu_large at eps = 1e-4); values below 1e-300 are flushed to 0.
  // The forward pass against closed forms in long double over t in [-800, 800].
  const double eps = 1e-3;
  const Index units = 401;
  Network net({1, units, 1}, Activation::relu, eps);
  Vec theta(net.num_params());
  for (Index i = 0; i < units; ++i) theta[i] = eps * (-800.0 + 4.0 * double(i));  // W1: z_i = eps t_i at x = 1
  theta.tail(units).setConstant(0.5);
  const Mat X = Mat::Ones(1, 1);
  Network::Workspace ws;
  net.forward(theta, X, ws);
  int subnormal = 0;
  for (Index i = 0; i < units; ++i) {
    const long double t = (-800.0L + 4.0L * i), e = std::exp(-std::fabs(t));
    const long double sig = t >= 0 ? 1.0L / (1.0L + e) : e / (1.0L + e);
    const long double s = eps * (std::max(t, 0.0L) + std::log1p(e));
    const long double curv = e / ((1.0L + e) * (1.0L + e)) / eps;  // sigma(t) sigma(-t) / eps
    const double got[3] = {ws.post[0](i, 0), ws.mask[0](i, 0), ws.curv[0](i, 0)};
    const long double want[3] = {s, sig, curv};
    for (int q = 0; q < 3; ++q) {
      subnormal += std::fpclassify(got[q]) == FP_SUBNORMAL;
      // The flush changes s' and s'' by at most 1 and 1/eps times 1e-300; s = max(z, 0) - eps log R,
      // R = 1/(1 + e^{-|t|}), is exact only to eps times the rounding of the vectorized log near 1
      // (0 where e^{-|t|} < 2^-53), as before the flush.
      const double flushed = q == 0 ? 1e-13 * eps : 1.01e-300 * (q == 1 ? 1.0 : 1.0 / eps);
      // Relative: e^{-|t|} carries |t| times the rounding of z / eps.
      const double rel = 4e-15 + 4e-16 * double(std::fabs(t));
      EXPECT_NEAR(got[q], double(want[q]), rel * double(std::fabs(want[q])) + flushed) << "t = " << double(t) << " value " << q;
    }
  }
  EXPECT_EQ(subnormal, 0);
}

TEST(Flow, JacobianVectorProductMatchesDifferencesOfRhs) {
  for (auto kind : {FlowKind::gd, FlowKind::gd_polar, FlowKind::wn, FlowKind::fixed_rho})
    for (const auto& c : all_cases()) {
      if (c.kink_width > 0 && kind != FlowKind::gd) continue;  // rejected by the spec: not homogeneous
      const Dataset data = test::separable_data(6, 3, 16);
      Flow flow(c.net(), data, c.loss, kind, 1.7);
      const Vec theta = test::random_vector(flow.num_params(), 17, 0.8);
      const Vec y = flow.initial_state(theta);
      const Vec v = test::random_vector(flow.state_size(), 18);
      for (double log_scale : {0.0, 2.5}) {
        Vec jv, fp, fm;
        flow.jvp(y, log_scale, v, jv);
        const double h = 1e-6;
        flow.rhs(y + h * v, log_scale, fp);
        flow.rhs(y - h * v, log_scale, fm);
        const Vec fd = (fp - fm) / (2 * h);
        EXPECT_LT((jv - fd).norm(), 1e-6 * (1 + fd.norm())) << to_string(kind) << " " << name(c);
      }
    }
}

TEST(Flow, ForwardPassReuseNeverChangesAResult) {
  // Flow skips the forward pass when called again at the same weights. Interleaved calls at two
  // states (hits and misses) must give, bit for bit, what a fresh Flow gives for each call.
  for (auto kind : {FlowKind::gd, FlowKind::gd_polar})
    for (const auto& c : all_cases()) {
      if (c.kink_width > 0 && kind != FlowKind::gd) continue;
      const Dataset data = test::separable_data(6, 3, 19);
      Flow flow(c.net(), data, c.loss, kind);
      const Vec y1 = flow.initial_state(test::random_vector(flow.num_params(), 20, 0.8));
      const Vec y2 = flow.initial_state(test::random_vector(flow.num_params(), 21, 0.8));
      const Vec v = test::random_vector(flow.state_size(), 22);
      auto fresh_rhs = [&](const Vec& y) {
        Flow f(c.net(), data, c.loss, kind);
        Vec dy;
        f.rhs(y, 1.5, dy);
        return dy;
      };
      auto fresh_jvp = [&](const Vec& y) {
        Flow f(c.net(), data, c.loss, kind);
        Vec jv;
        f.jvp(y, 1.5, v, jv);
        return jv;
      };
      const Vec r1 = fresh_rhs(y1), r2 = fresh_rhs(y2), j1 = fresh_jvp(y1), j2 = fresh_jvp(y2);
      Vec dy, jv;
      for (const Vec* y : {&y1, &y1, &y2, &y2, &y1, &y2, &y1}) {
        const bool first = y == &y1;
        flow.rhs(*y, 1.5, dy);
        EXPECT_EQ(dy, first ? r1 : r2) << to_string(kind) << " " << name(c);
        flow.jvp(*y, 1.5, v, jv);
        EXPECT_EQ(jv, first ? j1 : j2) << to_string(kind) << " " << name(c);
        flow.jvp(*y, 1.5, v, jv);
        EXPECT_EQ(jv, first ? j1 : j2) << to_string(kind) << " " << name(c);
      }
    }
}

TEST(Flow, LogScaleMultipliesTheRhs) {
  const Dataset data = test::separable_data(6, 3, 19);
  for (auto kind : {FlowKind::gd, FlowKind::gd_polar, FlowKind::wn, FlowKind::fixed_rho}) {
    Flow flow(Network({3, 4, 1}, Activation::relu), data, LossKind::logistic, kind, 2.0);
    const Vec y = flow.initial_state(test::random_vector(flow.num_params(), 20));
    Vec d0, d1;
    flow.rhs(y, 0.0, d0);
    flow.rhs(y, 3.0, d1);
    EXPECT_LT((d1 - std::exp(3.0) * d0).norm(), 1e-13 * d1.norm()) << to_string(kind);
  }
}

TEST(Flow, PolarRhsIsTangentToTheSpheres) {
  const Dataset data = test::separable_data(8, 3, 21);
  for (auto kind : {FlowKind::gd_polar, FlowKind::wn, FlowKind::fixed_rho}) {
    Flow flow(Network({3, 4, 5, 1}, Activation::relu), data, LossKind::exp, kind, 2.0);
    const Vec y = flow.initial_state(test::random_vector(flow.num_params(), 22));
    Vec dy;
    flow.rhs(y, 0.0, dy);
    const Index off = flow.state_size() - flow.num_params();  // V after the rho_k, if any
    for (Index k = 0; k < flow.num_layers(); ++k) {
      const auto& net = flow.network();
      const double radial = y.segment(off + net.layer_offset(k), net.layer_size(k))
                                .dot(dy.segment(off + net.layer_offset(k), net.layer_size(k)));
      EXPECT_NEAR(radial, 0.0, 1e-13 * dy.norm()) << to_string(kind);
    }
  }
}

TEST(Flow, PolarRefusesZeroLayer) {
  const Dataset data = test::separable_data(4, 3, 23);
  Flow flow(Network({3, 1}, Activation::linear), data, LossKind::exp, FlowKind::wn);
  EXPECT_THROW(flow.initial_state(Vec::Zero(3)), DomainError);
  Flow gd(Network({3, 1}, Activation::linear), data, LossKind::exp, FlowKind::gd);
  EXPECT_NO_THROW(gd.initial_state(Vec::Zero(3)));
}

TEST(Loss, LogFormsAgreeWithDirectFormulas) {
  for (double u : {-30.0, -2.0, -0.3, 0.0, 0.7, 5.0, 40.0}) {
    Loss e(LossKind::exp), l(LossKind::logistic), s(LossKind::square);
    EXPECT_NEAR(e.log_value(u), -u, 1e-15);
    EXPECT_NEAR(std::exp(l.log_value(u)), std::log1p(std::exp(-u)), 1e-15 * std::log1p(std::exp(-u)) + 1e-300);
    EXPECT_NEAR(l.weight(u), 1.0 / (1.0 + std::exp(u)), 1e-15);
    EXPECT_NEAR(l.curvature(u), std::exp(u) / std::pow(1.0 + std::exp(u), 2), 1e-15);
    EXPECT_NEAR(s.weight(u), 2 * (1 - u), 1e-13 * (1 + std::abs(u)));
    EXPECT_NEAR(s.curvature(u), 2.0, 1e-15);
  }
}

TEST(Loss, NoOverflowAtAstronomicalTimes) {
  // At t = 1e300 (s = 690.8) margins are ~ s: e^s e^{-u} must be formed as exp(s - u).
  const double s = std::log1p(1e300), u = s + 1.5;
  for (auto kind : {LossKind::exp, LossKind::logistic}) {
    Loss loss(kind);
    EXPECT_NEAR(loss.weight(u, s), std::exp(-1.5), 1e-12) << to_string(kind);
    EXPECT_NEAR(loss.curvature(u, s), std::exp(-1.5), 1e-12) << to_string(kind);
    const std::vector<double> margins{u, u + 1000.0, 2000.0};
    EXPECT_NEAR(loss.log_total(margins), -u, 1e-12 * u) << to_string(kind);
  }
}

}  // namespace
}  // namespace gfsim
