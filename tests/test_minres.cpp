// MINRES against dense solves: symmetric indefinite, and singular with a consistent right-hand side
// (minimum-norm solution).
#include <gtest/gtest.h>

#include <Eigen/Dense>

#include "gfsim/minres.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

Mat random_symmetric(const Vec& eigenvalues, std::uint64_t seed) {
  const Index n = eigenvalues.size();
  const Mat Q = Eigen::HouseholderQR<Mat>(Eigen::Map<const Mat>(test::random_vector(n * n, seed).data(), n, n))
                    .householderQ();
  return Q * eigenvalues.asDiagonal() * Q.transpose();
}

TEST(Minres, IndefiniteSystemMatchesDenseSolve) {
  const Index n = 80;
  Vec d(n);
  for (Index i = 0; i < n; ++i) d[i] = (i % 3 == 0 ? -1.0 : 1.0) * (0.5 + double(i));
  const Mat A = random_symmetric(d, 4);
  const Vec b = test::random_vector(n, 5);
  const MinresResult r = minres([&](const Vec& v, Vec& Av) { Av = A * v; }, b, {.rtol = 1e-13});
  ASSERT_TRUE(r.converged);
  const Vec x = A.ldlt().solve(b);
  EXPECT_LT((r.x - x).norm(), 1e-10 * x.norm());
  EXPECT_LT((A * r.x - b).norm(), 1e-11 * b.norm());
  EXPECT_LE(r.iterations, 3 * n);  // exact arithmetic: at most n; rounding costs a few more
}

TEST(Minres, SingularConsistentSystemGivesMinimumNorm) {
  const Index n = 60;
  Vec d(n);
  for (Index i = 0; i < n; ++i) d[i] = i < 7 ? 0.0 : (i % 2 ? 1.0 : -2.0) * double(i);
  const Mat A = random_symmetric(d, 8);
  // b in range(A).
  const Vec b = A * test::random_vector(n, 9);
  const MinresResult r = minres([&](const Vec& v, Vec& Av) { Av = A * v; }, b, {.rtol = 1e-13});
  ASSERT_TRUE(r.converged);
  const Vec x_min = A.completeOrthogonalDecomposition().pseudoInverse() * b;
  EXPECT_LT((r.x - x_min).norm(), 1e-9 * x_min.norm());
}

}  // namespace
}  // namespace gfsim
