// Riemannian Newton on the sphere product: quadratic convergence, the MINRES step (gfsim/riemannian_newton.hpp).
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include "gfsim/stationary.hpp"
#include "stationary_test_util.hpp"

namespace gfsim {
namespace {

// Independent minimizer for K = 1, exp loss: projected gradient descent on the sphere, written
// from the data alone (no Flow): F(v) = sum_n exp(-rho v.z_n).
Vec projected_descent(const Dataset& data, double rho, Vec v, int steps, double eta) {
  const Mat Z = data.signed_points();
  for (int i = 0; i < steps; ++i) {
    const Vec w = (-rho * (Z * v).array()).exp().matrix();
    Vec g = -rho * Z.transpose() * w;
    g -= v * v.dot(g);
    v = (v - eta * g).normalized();
  }
  return v;
}

TEST(RiemannianNewton, LinearK1IsHyperbolicFixedPointAndNewtonIsQuadratic) {
  const Dataset data = test::separable_data(40, 5, 21);
  Network net({5, 1}, Activation::linear);
  const double rho = 4.0;
  Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, rho);
  StationaryOptions o;
  o.flow_tol = 1e-2;  // leave work for Newton so its convergence order is visible
  const StationaryResult r = find_stationary(flow, test::random_direction(net, 1), o);
  ASSERT_TRUE(r.newton_converged);
  EXPECT_EQ(r.verdict, "hyperbolic");
  EXPECT_EQ(r.spectrum.n_negative, 0);
  EXPECT_EQ(r.spectrum.n_zero, 0);
  EXPECT_EQ(r.spectrum.n_positive, 4);
  EXPECT_GT(r.spectrum.eigenvalues.minCoeff(), 0.0);
  EXPECT_LT(r.spectrum.residuals.maxCoeff(), 1e-10 * r.spectrum.eigenvalues.maxCoeff());
  // Fixed-point condition: v = G/||G||, G = sum_n e^{-rho v.z_n} z_n.
  const Mat Z = data.signed_points();
  const Vec G = Z.transpose() * (-rho * (Z * r.V).array()).exp().matrix();
  EXPECT_LT((r.V - G.normalized()).norm(), 1e-12);
  // Independent minimization.
  const double eta = 0.5 / r.spectrum.eigenvalues.maxCoeff();
  const Vec v_start = Z.colwise().sum().transpose().normalized();  // a reasonable start, from the data
  const Vec v_pgd = projected_descent(data, rho, v_start, 20000, eta);
  EXPECT_LT((r.V - v_pgd).norm(), 1e-8);
  // Quadratic convergence: e_{k+1} <= C e_k^2 while above round-off (relative gradients).
  ASSERT_GE(r.grad_norms.size(), 3u);
  const double s = r.loss_scale;
  int quadratic_steps = 0;
  for (std::size_t i = 0; i + 1 < r.grad_norms.size(); ++i) {
    const double e0 = r.grad_norms[i] / s, e1 = r.grad_norms[i + 1] / s;
    if (e1 < 1e-13) break;
    EXPECT_LT(e1, 50.0 * e0 * e0) << "step " << i;
    ++quadratic_steps;
  }
  EXPECT_GE(quadratic_steps, 1);
  EXPECT_LT(r.grad_norms.back() / s, 1e-13);
}

// The Newton step by MINRES with Hessian-vector products equals the dense (pseudo-inverse) step
// where the Hessian is nonsingular: near the stationary point of K = 1 and of a generic ReLU net.
class MinresNewtonStep : public ::testing::TestWithParam<Activation> {};

TEST_P(MinresNewtonStep, MatchesDense) {
  const Dataset data = test::separable_data(40, 6, 81);
  const Activation act = GetParam();
  {
    Network net = act == Activation::linear ? Network({6, 1}, act) : Network({6, 5, 1}, act);
    Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 3.0);
    SphereProblem sp(flow);
    StationaryOptions o;
    o.flow_tol = 1e-3;
    o.max_newton = 0;
    const StationaryResult near = find_stationary(flow, test::random_direction(net, 82), o);
    ASSERT_EQ(near.spectrum.n_zero, 0) << to_string(act);
    const Vec g = sp.gradient(near.V);
    // Independent: the exact Newton step from the dense tangent Hessian B^T H B.
    const Mat B = TangentBasis(net, near.V).dense();
    Mat Ht(B.cols(), B.cols());
    for (Index j = 0; j < B.cols(); ++j) Ht.col(j) = B.transpose() * sp.hessian(near.V, B.col(j));
    const Vec exact = -B * Ht.partialPivLu().solve(B.transpose() * g);
    int it_dense = 0, it_minres = 0;
    const Vec iterative = newton_step(sp, near.V, g, false, o, it_minres);
    EXPECT_LT((iterative - exact).norm(), 1e-8 * exact.norm()) << to_string(act);
    // The dense (saddle-free) step equals it at a local minimum (no negative eigenvalues).
    if (near.spectrum.n_negative == 0) {
      const Vec dense = newton_step(sp, near.V, g, true, o, it_dense);
      EXPECT_LT((dense - exact).norm(), 1e-8 * exact.norm()) << to_string(act);
    }
    EXPECT_GT(it_minres, 0);
    EXPECT_LE(it_minres, 2 * sp.tangent_dim());
  }
}

INSTANTIATE_TEST_SUITE_P(Activations, MinresNewtonStep, ::testing::Values(Activation::linear, Activation::relu),
                         [](const ::testing::TestParamInfo<Activation>& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace gfsim
