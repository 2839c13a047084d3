// The sphere product: Riemannian gradient and Hessian, tangent basis (gfsim/sphere.hpp).
#include <gtest/gtest.h>

#include "gfsim/sphere.hpp"
#include "stationary_test_util.hpp"

namespace gfsim {
namespace {

// Riemannian Hessian vs finite differences of the Riemannian gradient along the retraction
// V(h) = R_V(h xi): Hess[xi] = P_V d/dh grad(V(h)) at h = 0 (Levi-Civita connection of the
// embedded product of spheres), at a generic (non-stationary) point; and vs the Flow::jvp form.
class SphereHessian : public ::testing::TestWithParam<Activation> {};

TEST_P(SphereHessian, RiemannianHessianMatchesFiniteDifferences) {
  const Activation act = GetParam();
  {
    const Dataset data = test::separable_data(30, 4, 11);
    Network net({4, 5, 3, 1}, act);
    Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 3.0);
    SphereProblem sp(flow);
    const Vec V = test::random_direction(net, 5);
    const Vec xi = sp.project(V, test::random_vector(net.num_params(), 6));
    const Vec H = sp.hessian(V, xi);
    const double h = 1e-5;
    const Vec fd = sp.project(V, (sp.gradient(sp.retract(V, h * xi)) - sp.gradient(sp.retract(V, -h * xi))) / (2 * h));
    EXPECT_LT((H - fd).norm(), 1e-6 * H.norm()) << to_string(act);
    EXPECT_LT((H - sp.hessian_from_jvp(V, xi)).norm(), 1e-11 * H.norm()) << to_string(act);
    // Tangent and symmetric.
    const Vec eta = sp.project(V, test::random_vector(net.num_params(), 7));
    EXPECT_NEAR(eta.dot(H), xi.dot(sp.hessian(V, eta)), 1e-11 * H.norm() * eta.norm());
    EXPECT_LT(sp.project(V, H).norm() - H.norm(), 1e-12 * H.norm());
    // Riemannian gradient = -rhs of the fixed-rho flow.
    Vec dy;
    flow.rhs(V, 0.0, dy);
    EXPECT_LT((sp.gradient(V) + dy).norm(), 1e-12 * dy.norm());
  }
}

INSTANTIATE_TEST_SUITE_P(Activations, SphereHessian, ::testing::Values(Activation::linear, Activation::relu),
                         [](const ::testing::TestParamInfo<Activation>& info) { return std::string(to_string(info.param)); });

TEST(Sphere, TangentBasisIsOrthonormalAndTangent) {
  Network net({4, 3, 1}, Activation::linear);
  const Vec V = test::random_direction(net, 9);
  TangentBasis B(net, V);
  const Mat Bd = B.dense();
  EXPECT_EQ(Bd.cols(), net.num_params() - 2);
  EXPECT_LT((Bd.transpose() * Bd - Mat::Identity(Bd.cols(), Bd.cols())).norm(), 1e-13);
  for (Index k = 0; k < 2; ++k)
    EXPECT_LT((V.segment(net.layer_offset(k), net.layer_size(k)).transpose() *
               Bd.middleRows(net.layer_offset(k), net.layer_size(k)))
                  .norm(),
              1e-13);
  const Vec y = test::random_vector(Bd.cols(), 3);
  EXPECT_LT((B.apply_transpose(B.apply(y)) - y).norm(), 1e-13);
}

}  // namespace
}  // namespace gfsim
