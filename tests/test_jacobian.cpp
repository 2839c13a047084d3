// Flow::jacobian against the matrix of exact Jacobian-vector products (jvp columns), which the
// flow tests check against finite differences: the blocked rank-update path of the linear model
// (K = 1, gd; n not a multiple of its 128-point block) and the column-by-column path otherwise.
#include <gtest/gtest.h>

#include "gfsim/flow.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

Mat jacobian_from_jvp(const Flow& flow, const Vec& y, double log_scale) {
  const Index m = flow.state_size();
  Mat J(m, m);
  Vec e = Vec::Zero(m), col(m);
  for (Index j = 0; j < m; ++j) {
    e[j] = 1.0;
    flow.jvp(y, log_scale, e, col);
    J.col(j) = col;
    e[j] = 0.0;
  }
  return J;
}

class LinearJacobian : public ::testing::TestWithParam<LossKind> {};

TEST_P(LinearJacobian, RankUpdateEqualsJvpColumns) {
  const Dataset data = test::separable_data(300, 17, 9);
  Flow flow(Network({17, 1}, Activation::linear), data, GetParam(), FlowKind::gd);
  const Vec y = test::random_vector(17, 10, 0.3);
  for (double log_scale : {0.0, 4.0}) {
    Mat J;
    flow.jacobian(y, log_scale, J);
    const Mat ref = jacobian_from_jvp(flow, y, log_scale);
    ASSERT_EQ(J.rows(), 17);
    ASSERT_EQ(J.cols(), 17);
    EXPECT_LE((J - ref).norm(), 1e-12 * ref.norm()) << "log_scale " << log_scale;
    EXPECT_LE((J - J.transpose()).norm(), 0.0);  // exactly symmetric: -Hessian
  }
}

INSTANTIATE_TEST_SUITE_P(Losses, LinearJacobian,
                         ::testing::Values(LossKind::exp, LossKind::logistic, LossKind::square));

TEST(Jacobian, ReluAndPolarEqualJvpColumns) {
  const Dataset data = test::separable_data(40, 4, 12);
  for (FlowKind kind : {FlowKind::gd, FlowKind::gd_polar}) {
    Flow flow(Network({4, 5, 1}, Activation::relu), data, LossKind::logistic, kind);
    const Vec y = flow.initial_state(test::random_vector(flow.num_params(), 13, 0.7));
    Mat J;
    flow.jacobian(y, 1.0, J);
    const Mat ref = jacobian_from_jvp(flow, y, 1.0);
    EXPECT_LE((J - ref).norm(), 1e-12 * ref.norm());
  }
}

}  // namespace
}  // namespace gfsim
