// ReLU kink surfaces of the fixed-rho problem (gfsim/kink_surface.hpp).
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include "gfsim/kink_surface.hpp"
#include "stationary_test_util.hpp"

namespace gfsim {
namespace {

// Kink-surface tangent space: orthonormal, tangent to the spheres, and h_j stays 0 to first order.
TEST(KinkSurface, KinkSurfaceBasis) {
  const Dataset data = test::separable_data(20, 4, 91);
  Network net({4, 5, 1}, Activation::relu);
  Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 2.0);
  SphereProblem sp(flow);
  Vec V = test::random_direction(net, 92);
  // Put unit 2 on the kink of points 3 and 7: row 2 of V_1 orthogonal to x_3, x_7.
  Eigen::Map<RowMat> W1(V.data(), 5, 4);
  Mat X(4, 2);
  X << data.X.row(3).transpose(), data.X.row(7).transpose();
  const Vec w = W1.row(2).transpose();
  W1.row(2) = (w - X * X.colPivHouseholderQr().solve(w)).transpose();
  V = sp.normalize(V);
  const std::vector<Index> J = kink_indices(flow, V, 1e-12);
  ASSERT_EQ(J.size(), 2u);
  Index rank = 0;
  const Mat W = kink_surface_basis(sp, V, J, &rank);
  EXPECT_EQ(rank, 2);
  EXPECT_EQ(W.cols(), sp.tangent_dim() - 2);
  EXPECT_LT((W.transpose() * W - Mat::Identity(W.cols(), W.cols())).norm(), 1e-12);
  const double c = std::sqrt(2.0);
  for (Index j = 0; j < W.cols(); ++j) {
    EXPECT_LT((sp.project(V, W.col(j)) - W.col(j)).norm(), 1e-12);
    const Vec dh = flow.preactivation_tangent(c * V, c * W.col(j));
    for (Index q : J) EXPECT_LT(std::abs(dh[q]), 1e-12);
  }
}

}  // namespace
}  // namespace gfsim
