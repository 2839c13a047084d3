// Lyu-Li KKT residual (K > 1 max-margin in parameter space): Lawson-Hanson NNLS against brute force
// over supports, margin gradients against finite differences, exact KKT points of deep linear nets
// built from the closed-form SVM.
#include "gfsim/kkt.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include <Eigen/QR>

#include "gfsim/dataset.hpp"
#include "gfsim/max_margin.hpp"

namespace {

using namespace gfsim;

Mat random_matrix(Index m, Index n, std::mt19937_64& rng) {
  std::normal_distribution<double> normal;
  Mat A(m, n);
  for (Index i = 0; i < m; ++i)
    for (Index j = 0; j < n; ++j) A(i, j) = normal(rng);
  return A;
}

/// min over subsets S of the columns whose unconstrained least squares has positive coefficients: the NNLS
/// optimum (its support is such an S, and every such S gives a feasible point).
double brute_force_nnls(const Mat& A, const Vec& b) {
  const Index n = A.cols();
  double best = b.norm();
  for (unsigned mask = 1; mask < (1u << n); ++mask) {
    std::vector<Index> idx;
    for (Index j = 0; j < n; ++j)
      if (mask & (1u << j)) idx.push_back(j);
    Mat AS(A.rows(), Index(idx.size()));
    for (std::size_t i = 0; i < idx.size(); ++i) AS.col(Index(i)) = A.col(idx[i]);
    const Vec s = AS.colPivHouseholderQr().solve(b);
    if ((s.array() > 0).all()) best = std::min(best, (AS * s - b).norm());
  }
  return best;
}

TEST(Nnls, MatchesBruteForceAndItsOwnKktConditions) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const Index m = 3 + trial % 6, n = 1 + trial % 9;  // over- and under-determined
    const Mat A = random_matrix(m, n, rng);
    const Vec b = random_matrix(m, 1, rng).col(0);
    const NnlsResult r = nnls(A, b);
    ASSERT_TRUE(r.converged);
    EXPECT_TRUE((r.x.array() >= 0).all());
    EXPECT_NEAR(r.residual, brute_force_nnls(A, b), 1e-10 * (1 + b.norm())) << "trial " << trial;
    // KKT of NNLS: w = A^T (b - A x) <= 0 where x = 0, w = 0 where x > 0.
    for (Index j = 0; j < n; ++j) {
      if (r.x[j] > 0) EXPECT_NEAR(r.dual[j], 0.0, 1e-10 * (1 + A.norm() * b.norm()));
      else EXPECT_LE(r.dual[j], 1e-10 * (1 + A.norm() * b.norm()));
    }
  }
}

TEST(Nnls, ExactNonnegativeCombinationAndDuplicatedColumns) {
  std::mt19937_64 rng(5);
  Mat A = random_matrix(6, 4, rng);
  A.col(3) = A.col(1);  // exactly dependent columns: the value is unique, the multipliers are not
  const Vec x_true = (Vec(4) << 0.5, 2.0, 0.0, 0.0).finished();
  const NnlsResult r = nnls(A, A * x_true);
  EXPECT_LT(r.residual, 1e-12);
  EXPECT_NEAR(r.x[0], 0.5, 1e-12);
  EXPECT_NEAR(r.x[1] + r.x[3], 2.0, 1e-12);
  EXPECT_NEAR(r.x[2], 0.0, 1e-12);
  // A target in the negative cone gets x = 0; so do a zero target and no columns at all.
  const NnlsResult z = nnls(A, -A * Vec::Ones(4));
  EXPECT_TRUE(z.x.isZero());
  EXPECT_TRUE(nnls(A, Vec::Zero(6)).x.isZero());
  const NnlsResult none = nnls(Mat(6, 0), Vec::Ones(6));
  EXPECT_EQ(none.x.size(), 0);
  EXPECT_NEAR(none.residual, std::sqrt(6.0), 1e-15);
}

Dataset closed_form_data() {
  // models/data/verify_closed_form.csv: w_hat = (1, 0), gamma = 1, alpha = (2/3, 1/3, 0).
  Dataset d;
  d.X = (Mat(3, 2) << 1, 1, -1, 2, 2, 0.5).finished();
  d.y = (Vec(3) << 1, -1, 1).finished();
  return d;
}

TEST(MarginGradients, MatchFiniteDifferences) {
  std::mt19937_64 rng(8);
  const Dataset data = teacher_dataset(20, 4, 3, false, 9);
  for (Activation act : {Activation::linear, Activation::relu}) {
    const Network net({4, 5, 3, 1}, act);
    const Vec theta = random_matrix(net.num_params(), 1, rng).col(0);
    std::vector<Index> idx{0, 3, 7, 19};
    const Mat G = margin_gradients(net, data, theta, idx);
    const Vec dir = random_matrix(net.num_params(), 1, rng).col(0);
    const double h = 1e-6;
    const Vec dq = (point_margins(net, data, theta + h * dir) - point_margins(net, data, theta - h * dir)) / (2 * h);
    for (std::size_t i = 0; i < idx.size(); ++i)
      EXPECT_NEAR(G.row(Index(i)).dot(dir), dq[idx[i]], 1e-6 * (1 + std::abs(dq[idx[i]])));
    // Euler: <grad q_n, theta> = K q_n for a K-homogeneous net.
    const Vec q = point_margins(net, data, theta);
    for (std::size_t i = 0; i < idx.size(); ++i)
      EXPECT_NEAR(G.row(Index(i)).dot(theta), 3 * q[idx[i]], 1e-10 * (1 + std::abs(q[idx[i]])));
  }
}

/// The balanced rank-1 factorization of beta = s v*: W_1 = c u_1 v*^T, W_k = c u_k u_{k-1}^T, W_K = c u_{K-1}^T,
/// with unit u_k and c = s^(1/K). Layers of width `width`.
Vec balanced_factorization(const Network& net, const Vec& v_star, double s, std::mt19937_64& rng) {
  const Index K = net.num_layers();
  const double c = std::pow(s, 1.0 / double(K));
  Vec theta(net.num_params());
  Vec prev = v_star;
  for (Index k = 0; k < K; ++k) {
    Vec u = k + 1 < K ? Vec(random_matrix(net.layer_rows(k), 1, rng).col(0).normalized()) : Vec::Ones(1);
    Eigen::Map<RowMat>(theta.data() + net.layer_offset(k), net.layer_rows(k), net.layer_cols(k)) =
        c * u * prev.transpose();
    prev = u;
  }
  return theta;
}

TEST(KktResidual, LinearModelAtTheSvmSolutionHasTheSvmMultipliers) {
  const Dataset data = closed_form_data();
  const Network net({2, 1}, Activation::linear);
  const Vec w = (Vec(2) << 3.0, 0.0).finished();  // any positive multiple of w_hat
  const KktResidual r = kkt_residual(net, data, w, 0.05);
  ASSERT_TRUE(r.defined);
  EXPECT_NEAR(r.q_min, 3.0, 1e-14);
  EXPECT_EQ(r.active, (std::vector<Index>{0, 1}));
  EXPECT_LT(r.stationarity, 1e-14);
  EXPECT_LT(r.complementarity, 1e-14);
  EXPECT_NEAR(r.lambda[0], 2.0 / 3.0, 1e-13);
  EXPECT_NEAR(r.lambda[1], 1.0 / 3.0, 1e-13);
  // Off the SVM direction the residual is of the order of the angle.
  const Vec w2 = (Vec(2) << 1.0, 0.1).finished();
  const KktResidual r2 = kkt_residual(net, data, w2, 0.05);
  EXPECT_GT(r2.residual(), 0.02);
}

TEST(KktResidual, DeepLinearBalancedFactorizationOfTheSvmIsAKktPoint) {
  std::mt19937_64 rng(4);
  for (Index K : {2, 3, 4}) {
    for (bool closed_form : {true, false}) {
      const Dataset data = closed_form ? closed_form_data() : gaussian_dataset(40, 6, 0.1, false, 3);
      const MaxMarginResult mm = max_margin(data.signed_points());
      std::vector<Index> widths{data.dim()};
      for (Index k = 1; k < K; ++k) widths.push_back(3);
      widths.push_back(1);
      const Network net(widths, Activation::linear);
      // Scale s = 2.7 (arbitrary): the residual is scale invariant.
      const Vec theta = balanced_factorization(net, mm.direction, 2.7, rng);
      EXPECT_LT((end_to_end(net, theta) - 2.7 * mm.direction).norm(), 1e-12);
      const KktResidual r = kkt_residual(net, data, theta, 0.05);
      ASSERT_TRUE(r.defined);
      EXPECT_NEAR(r.q_min, 2.7 * mm.gamma, 1e-12);
      EXPECT_LT(r.stationarity, 1e-10) << "K = " << K;
      EXPECT_LT(r.complementarity, 1e-10) << "K = " << K;
      // Multipliers lambda_n = gamma^(2/K) ... in sum: sum lambda_n q_n(theta~) = ||theta~||^2 / K (Euler).
      double sum = 0;
      for (Index i = 0; i < r.lambda.size(); ++i) sum += r.lambda[i] * (point_margins(net, data, r.theta_tilde)[r.active[std::size_t(i)]]);
      EXPECT_NEAR(sum, r.theta_tilde.squaredNorm() / double(K), 1e-10 * r.theta_tilde.squaredNorm());
      // Unbalanced layers (same end-to-end map): not a KKT point.
      Vec unbalanced = theta;
      unbalanced.head(net.layer_size(0)) *= 2.0;
      unbalanced.segment(net.layer_offset(1), net.layer_size(1)) *= 0.5;
      EXPECT_GT(kkt_residual(net, data, unbalanced, 0.05).stationarity, 0.1) << "K = " << K;
    }
  }
}

TEST(KktResidual, ReluKktPointOnAKinkNeedsTheClarkeSubdifferential) {
  // x_p = (1, 0), x_n = (-1, 1), both y = +1; f = a_1 relu(w_1.x) + a_2 relu(w_2.x) with
  // w_1 = s (1/2, 1/2) (orthogonal to x_n: on a kink there), w_2 = beta (-1, 1) (inactive on x_p).
  // Stationarity theta = lambda_p g_p + lambda_n g_n(m), m in [0, 1] the mask of unit 1 at x_n, gives
  // lambda_p = sqrt 2, lambda_n = 1/sqrt 2, a_1 = s/sqrt 2, a_2 = sqrt 2 beta and m = 1 (not the ReLU'(0) = 0
  // convention); both margins equal 1 for s^2 = 2 sqrt 2, beta^2 = 1/(2 sqrt 2).
  Dataset data;
  data.X = (Mat(2, 2) << 1, 0, -1, 1).finished();
  data.y = Vec::Ones(2);
  const Network net({2, 2, 1}, Activation::relu);
  const double s = std::sqrt(2 * std::sqrt(2.0)), beta = 1 / std::sqrt(2 * std::sqrt(2.0));
  const Vec theta = (Vec(6) << 0.5 * s, 0.5 * s, -beta, beta, s / std::sqrt(2.0), std::sqrt(2.0) * beta).finished();
  const Vec q = point_margins(net, data, theta);
  EXPECT_NEAR(q[0], 1.0, 1e-14);
  EXPECT_NEAR(q[1], 1.0, 1e-14);
  const KktResidual r = kkt_residual(net, data, theta, 0.05);
  ASSERT_TRUE(r.defined);
  EXPECT_EQ(r.kink_points, 1);
  EXPECT_EQ(r.columns, 3);  // x_p, and x_n with m = 0 and m = 1
  EXPECT_LT(r.stationarity, 1e-13);
  EXPECT_NEAR(r.lambda[0], std::sqrt(2.0), 1e-12);
  EXPECT_NEAR(r.lambda[1], 1 / std::sqrt(2.0), 1e-12);
  // With the kink ignored (ReLU'(0) = 0 only) the same point looks far from KKT.
  const KktResidual plain = kkt_residual(net, data, theta, 0.05, -1.0);
  EXPECT_EQ(plain.kink_points, 0);
  EXPECT_GT(plain.stationarity, 0.1);
}

TEST(KktResidual, UndefinedBeforeSeparation) {
  const Dataset data = closed_form_data();
  const Network net({2, 1}, Activation::linear);
  EXPECT_FALSE(kkt_residual(net, data, (Vec(2) << -1.0, 0.0).finished(), 0.05).defined);
}

}  // namespace
