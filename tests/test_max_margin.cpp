// Max-margin reference (K = 1): closed forms, brute force over candidate supports, KKT certificates,
// degenerate and non-separable data.
#include "gfsim/max_margin.hpp"

#include <gtest/gtest.h>

#include <Eigen/LU>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "gfsim/model_spec.hpp"

namespace {

using gfsim::Index;
using gfsim::Mat;
using gfsim::Vec;

Mat rows(std::initializer_list<std::initializer_list<double>> values) {
  Mat Z(static_cast<Index>(values.size()), static_cast<Index>(values.begin()->size()));
  Index i = 0;
  for (const auto& row : values) {
    Index j = 0;
    for (double x : row) Z(i, j++) = x;
    ++i;
  }
  return Z;
}

/// The optimum over candidate support S: w_S = Z_S^T (Z_S Z_S^T)^{-1} 1 (all of S on the margin).
Vec support_solution(const Mat& Z_S, Vec* multipliers = nullptr) {
  const Mat gram = Z_S * Z_S.transpose();
  const Vec a = gram.partialPivLu().solve(Vec::Ones(Z_S.rows()));
  if (multipliers) *multipliers = a;
  return Z_S.transpose() * a;
}

Vec random_unit(Index d, std::mt19937_64& rng) {
  std::normal_distribution<double> normal;
  Vec v(d);
  for (Index j = 0; j < d; ++j) v(j) = normal(rng);
  return v.normalized();
}

/// z ~ N(0, I) flipped to z.w_true > 0 for a random unit w_true, then moved along w_true by
/// `shift(z.w_true)`.
template <class Shift>
Mat separable_points(Index n, Index d, std::mt19937_64& rng, Vec& w_true, Shift shift) {
  std::normal_distribution<double> normal;
  w_true = random_unit(d, rng);
  Mat Z(n, d);
  for (Index i = 0; i < n; ++i) {
    Vec z(d);
    for (Index j = 0; j < d; ++j) z(j) = normal(rng);
    if (z.dot(w_true) < 0) z = -z;
    z += shift(z.dot(w_true)) * w_true;
    Z.row(i) = z.transpose();
  }
  return Z;
}

/// Points with z.w_true < margin pushed onto the plane z.w_true = margin. With enough of them there,
/// w_true lies in their cone and the data are degenerate with w_hat = w_true/margin.
Mat pushed_points(Index n, Index d, double margin, std::mt19937_64& rng, Vec& w_true) {
  return separable_points(n, d, rng, w_true, [&](double m) { return std::max(0.0, margin - m); });
}
Mat pushed_points(Index n, Index d, double margin, std::mt19937_64& rng) {
  Vec w_true;
  return pushed_points(n, d, margin, rng, w_true);
}

/// Every point shifted by `margin` along w_true (as gaussian_dataset): z.w_true has a continuous law, so
/// no ties on the margin.
Mat shifted_points(Index n, Index d, double margin, std::mt19937_64& rng) {
  Vec w_true;
  return separable_points(n, d, rng, w_true, [&](double) { return margin; });
}

void expect_small_certificate(const gfsim::MaxMarginResult& mm, double bound) {
  EXPECT_LT(mm.kkt.primal_infeasibility, bound);
  EXPECT_LT(mm.kkt.dual_infeasibility, bound);
  EXPECT_LT(mm.kkt.complementarity, bound);
  EXPECT_LT(mm.kkt.stationarity, bound);
  EXPECT_LT(mm.kkt.duality_gap, bound);
  EXPECT_LT(mm.kkt.max_residual(), bound);
}

void expect_consistent(const Mat& Z, const gfsim::MaxMarginResult& mm) {
  EXPECT_NEAR(mm.gamma, 1.0 / mm.w_hat.norm(), 1e-15 * mm.gamma);
  EXPECT_LT((mm.direction - mm.w_hat / mm.w_hat.norm()).norm(), 1e-15);
  EXPECT_LT((mm.margins - Z * mm.direction).cwiseAbs().maxCoeff(), 1e-14);
  EXPECT_GE(mm.margins.minCoeff(), mm.gamma * (1 - 1e-12));
  for (Index n : mm.support) EXPECT_NEAR(mm.margins(n), mm.gamma, 1e-12 * mm.gamma) << "support point " << n;
}

std::string thrown_spec_error(const Mat& Z) {
  try {
    gfsim::max_margin(Z);
  } catch (const gfsim::SpecError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no SpecError thrown";
  return {};
}

TEST(MaxMargin, OnePointGivesItsScaledSelf) {
  const Mat Z = rows({{3.0, -4.0, 12.0}});
  const auto mm = gfsim::max_margin(Z);
  const Vec z = Z.row(0).transpose();
  EXPECT_LT((mm.w_hat - z / z.squaredNorm()).norm(), 1e-15);
  EXPECT_NEAR(mm.gamma, 13.0, 1e-13);
  EXPECT_NEAR(mm.alpha(0), 1.0 / 169.0, 1e-17);
  EXPECT_EQ(mm.support, std::vector<Index>{0});
  expect_small_certificate(mm, 1e-14);
  expect_consistent(Z, mm);
}

TEST(MaxMargin, TwoSymmetricPoints) {
  const Mat Z = rows({{1.0, 1.0}, {1.0, -1.0}});
  const auto mm = gfsim::max_margin(Z);
  EXPECT_LT((mm.w_hat - Vec::Unit(2, 0)).norm(), 1e-15);
  EXPECT_NEAR(mm.gamma, 1.0, 1e-15);
  EXPECT_LT((mm.alpha - Vec::Constant(2, 0.5)).norm(), 1e-15);
  EXPECT_EQ(mm.support, (std::vector<Index>{0, 1}));
  EXPECT_EQ(mm.on_margin, (std::vector<Index>{0, 1}));
  expect_small_certificate(mm, 1e-15);
  expect_consistent(Z, mm);
}

TEST(MaxMargin, InteriorPointGetsNoWeight) {
  // (3, 0) lies beyond the margin of the two symmetric points: z.w = 3 > 1.
  const Mat Z = rows({{1.0, 1.0}, {3.0, 0.0}, {1.0, -1.0}});
  const auto mm = gfsim::max_margin(Z);
  EXPECT_LT((mm.w_hat - Vec::Unit(2, 0)).norm(), 1e-15);
  EXPECT_EQ(mm.alpha(1), 0.0);
  EXPECT_EQ(mm.support, (std::vector<Index>{0, 2}));
  EXPECT_NEAR(mm.margins(1), 3.0, 1e-15);
  expect_small_certificate(mm, 1e-15);
}

TEST(MaxMargin, TwoSupportVectorsFromTheGramSystem) {
  // Support z1 = (2, 1), z2 = (1, 2): w = Z_S^T (Z_S Z_S^T)^{-1} 1 with Gram [[5, 4], [4, 5]] gives
  // a = (1/9, 1/9), w = (1/3, 1/3); the other points have z.w = 5/3 and 4/3.
  const Mat Z = rows({{2.0, 1.0}, {1.0, 2.0}, {4.0, 1.0}, {2.0, 2.0}});
  const Mat Z_S = Z.topRows(2);
  const Mat gram = Z_S * Z_S.transpose();
  const Vec a = (Mat(2, 2) << gram(1, 1), -gram(0, 1), -gram(1, 0), gram(0, 0)).finished() *
                Vec::Ones(2) / (gram(0, 0) * gram(1, 1) - gram(0, 1) * gram(1, 0));
  const Vec w = Z_S.transpose() * a;
  ASSERT_LT((w - Vec::Constant(2, 1.0 / 3.0)).norm(), 1e-15);
  ASSERT_TRUE((a.array() > 0).all());
  ASSERT_TRUE(((Z * w).array() >= 1 - 1e-15).all());  // feasible for every point, hence optimal

  const auto mm = gfsim::max_margin(Z);
  EXPECT_LT((mm.w_hat - w).norm(), 1e-15);
  EXPECT_LT((mm.alpha.head(2) - a).norm(), 1e-15);
  EXPECT_EQ(mm.support, (std::vector<Index>{0, 1}));
  EXPECT_NEAR(mm.gamma, 3.0 / std::sqrt(2.0), 1e-15);
  expect_small_certificate(mm, 1e-15);
  expect_consistent(Z, mm);
}

TEST(MaxMargin, MatchesBruteForceOverSupportSubsets) {
  std::mt19937_64 rng(20240611);
  std::uniform_int_distribution<int> n_dist(1, 8), d_dist(2, 3);
  for (int trial = 0; trial < 300; ++trial) {
    const Index n = n_dist(rng), d = d_dist(rng);
    const Mat Z = trial % 2 == 0 ? pushed_points(n, d, 0.1, rng) : shifted_points(n, d, 0.1, rng);

    // The optimum is w_S for some set S of <= d linearly independent margin points with multipliers >= 0
    // (Caratheodory); among the candidates feasible for all points it has the least norm.
    double best_norm = std::numeric_limits<double>::infinity();
    Vec best;
    for (unsigned mask = 1; mask < (1u << n); ++mask) {
      std::vector<Index> S;
      for (Index i = 0; i < n; ++i)
        if (mask & (1u << i)) S.push_back(i);
      if (static_cast<Index>(S.size()) > d) continue;
      const Mat Z_S = Z(S, Eigen::indexing::all);
      const Mat gram = Z_S * Z_S.transpose();
      const Eigen::FullPivLU<Mat> lu(gram);
      if (lu.rank() < gram.rows() || lu.rcond() < 1e-8) continue;
      Vec a;
      const Vec w = support_solution(Z_S, &a);
      if ((a.array() < -1e-12).any() || ((Z * w).array() < 1 - 1e-9).any()) continue;
      if (w.norm() < best_norm) {
        best_norm = w.norm();
        best = w;
      }
    }
    ASSERT_TRUE(std::isfinite(best_norm)) << "trial " << trial;

    const auto mm = gfsim::max_margin(Z);
    EXPECT_LT((mm.w_hat - best).norm(), 1e-10 * best.norm()) << "trial " << trial << " n " << n << " d " << d;
    expect_small_certificate(mm, 1e-12);
    expect_consistent(Z, mm);
  }
}

TEST(MaxMargin, CertificateOnRandomSeparableData) {
  std::mt19937_64 rng(7);
  const Mat Z = shifted_points(500, 20, 0.1, rng);
  const auto mm = gfsim::max_margin(Z);
  expect_small_certificate(mm, 1e-10);
  expect_consistent(Z, mm);
  EXPECT_GE(mm.support.size(), 1u);
  EXPECT_LE(mm.support.size(), 20u);
  EXPECT_EQ(mm.support, mm.on_margin);  // no ties: non-degenerate
  // Re-solving on the support alone reproduces w_hat.
  EXPECT_LT((support_solution(Z(mm.support, Eigen::indexing::all)) - mm.w_hat).norm(), 1e-10 * mm.w_hat.norm());
}

TEST(MaxMarginDegenerate, PushedPointsHaveTheGeneratorsMargin) {
  // Pushing puts ~8% of the points (|N(0,1)| < 0.1) on the plane z.w_true = 0.1: more than d = 20 of
  // them, with w_true in their cone for this seed, so w_hat = w_true / 0.1 exactly.
  std::mt19937_64 rng(7);
  Vec w_true;
  const Mat Z = pushed_points(500, 20, 0.1, rng, w_true);
  const auto mm = gfsim::max_margin(Z);
  expect_small_certificate(mm, 1e-10);
  expect_consistent(Z, mm);
  EXPECT_NEAR(mm.gamma, 0.1, 1e-14);
  EXPECT_LT((mm.direction - w_true).norm(), 1e-13);
  EXPECT_GT(mm.on_margin.size(), 20u);
  EXPECT_LE(mm.support.size(), 20u);
}

TEST(MaxMargin, ScaleOfThePointsScalesTheMargin) {
  std::mt19937_64 rng(11);
  const Mat Z = shifted_points(60, 5, 0.1, rng);
  const auto mm = gfsim::max_margin(Z);
  const auto scaled = gfsim::max_margin(1e-3 * Z);
  EXPECT_NEAR(scaled.gamma, 1e-3 * mm.gamma, 1e-12 * scaled.gamma);
  EXPECT_LT((scaled.direction - mm.direction).norm(), 1e-12);
  EXPECT_LT(scaled.kkt.primal_infeasibility, 1e-12);
}

TEST(MaxMargin, IllConditionedFeaturesKeepASmallCertificate) {
  // Feature scales from 1e-2 to 1e2: the active normals are ill-conditioned (cond ~ 1e4), which the
  // seminormal equations square; the orthogonal-factor polish keeps the margins at round-off.
  std::mt19937_64 rng(17);
  const Index d = 20;
  Vec scales(d);
  for (Index j = 0; j < d; ++j) scales(j) = std::pow(10.0, -2.0 + 4.0 * static_cast<double>(j) / (d - 1));
  const Mat Z = shifted_points(300, d, 0.1, rng) * scales.asDiagonal();
  const auto mm = gfsim::max_margin(Z);
  expect_small_certificate(mm, 1e-11);
  EXPECT_LT((support_solution(Z(mm.support, Eigen::indexing::all)) - mm.w_hat).norm(), 1e-8 * mm.w_hat.norm());
}

TEST(MaxMargin, OppositePointsAreNotSeparable) {
  const std::string message = thrown_spec_error(rows({{1.0, 2.0}, {-1.0, -2.0}}));
  EXPECT_NE(message.find("not linearly separable through the origin"), std::string::npos) << message;
  EXPECT_NE(message.find("0.5 z_0 + 0.5 z_1 = 0"), std::string::npos) << message;
  EXPECT_NE(message.find("Gordan"), std::string::npos) << message;
}

TEST(MaxMarginNonSeparable, ThreePointsSurroundingTheOrigin) {
  const double s = std::sqrt(3.0) / 2;
  const Mat Z = rows({{2.0, 0.0}, {-0.5, s}, {1.0, 5.0}, {-0.5, -s}});
  const std::string message = thrown_spec_error(Z);
  EXPECT_NE(message.find("not linearly separable"), std::string::npos) << message;
}

TEST(MaxMarginNonSeparable, WeaklySeparableIsNotEnough) {
  // w = (0, 1) gives margins (0, 0, 1): no w has all z_n . w > 0.
  const std::string message = thrown_spec_error(rows({{1.0, 0.0}, {-1.0, 0.0}, {0.0, 1.0}}));
  EXPECT_NE(message.find("not linearly separable"), std::string::npos) << message;
}

TEST(MaxMarginNonSeparable, ZeroPointIsNamed) {
  const std::string message = thrown_spec_error(rows({{1.0, 0.0}, {0.5, 0.5}, {0.0, 0.0}}));
  EXPECT_NE(message.find("point 2"), std::string::npos) << message;
  EXPECT_NE(message.find("is zero"), std::string::npos) << message;
}

TEST(MaxMarginNonSeparable, RandomCloudAroundTheOrigin) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal;
  Mat Z(200, 10);
  for (Index i = 0; i < Z.rows(); ++i)
    for (Index j = 0; j < Z.cols(); ++j) Z(i, j) = normal(rng);
  const std::string message = thrown_spec_error(Z);
  EXPECT_NE(message.find("relative residual"), std::string::npos) << message;
}

TEST(MaxMarginNonSeparable, NonFinitePointIsNamed) {
  const std::string message = thrown_spec_error(rows({{1.0, 0.0}, {std::nan(""), 1.0}}));
  EXPECT_NE(message.find("point 1"), std::string::npos) << message;
}

TEST(MaxMarginDegenerate, MorePointsOnTheMarginThanDimensions) {
  // z = (1, t): every point has z.e1 = 1, and (1, 0) forces w1 >= 1, so w_hat = e1 with all four on the
  // margin; the multipliers only need sum a = 1, sum a t = 0.
  const Mat Z = rows({{1.0, -1.0}, {1.0, 0.0}, {1.0, 1.0}, {1.0, 2.0}, {3.0, 0.5}});
  const auto mm = gfsim::max_margin(Z);
  EXPECT_LT((mm.w_hat - Vec::Unit(2, 0)).norm(), 1e-15);
  EXPECT_EQ(mm.on_margin, (std::vector<Index>{0, 1, 2, 3}));
  EXPECT_LE(mm.support.size(), 2u);
  EXPECT_NEAR(mm.alpha.sum(), 1.0, 1e-15);
  EXPECT_NEAR(mm.alpha.dot(Z.col(1)), 0.0, 1e-15);
  expect_small_certificate(mm, 1e-15);
  expect_consistent(Z, mm);
}

TEST(MaxMarginDegenerate, MarginPointWithoutWeight) {
  // w_hat = e1 is already forced by (1, 0); (1, 1) is on the margin but carries no multiplier.
  const Mat Z = rows({{1.0, 1.0}, {1.0, 0.0}});
  const auto mm = gfsim::max_margin(Z);
  EXPECT_LT((mm.w_hat - Vec::Unit(2, 0)).norm(), 1e-15);
  EXPECT_EQ(mm.support, std::vector<Index>{1});
  EXPECT_EQ(mm.on_margin, (std::vector<Index>{0, 1}));
  expect_small_certificate(mm, 1e-15);
}

TEST(MaxMarginDegenerate, ManyMarginPointsAndDuplicatesInThreeDimensions) {
  // 40 points on the plane z.e1 = 1 around (1, 0, 0) (a ring, so e1 is optimal: the multipliers average
  // the ring to (1, 0, 0)), each one twice, and 40 random points beyond the margin.
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  Mat Z(120, 3);
  for (Index i = 0; i < 40; ++i) {
    const double angle = 2 * std::numbers::pi * static_cast<double>(i) / 40;
    Z.row(2 * i) << 1.0, std::cos(angle), std::sin(angle);
    Z.row(2 * i + 1) = Z.row(2 * i);
  }
  for (Index i = 80; i < 120; ++i) Z.row(i) << 1.5 + std::abs(normal(rng)), normal(rng), normal(rng);
  const auto mm = gfsim::max_margin(Z);
  EXPECT_LT((mm.w_hat - Vec::Unit(3, 0)).norm(), 1e-14);
  EXPECT_EQ(mm.on_margin.size(), 80u);
  EXPECT_LE(mm.support.size(), 3u);
  expect_small_certificate(mm, 1e-14);
  expect_consistent(Z, mm);
}

TEST(MaxMarginDegenerate, DuplicatedSupportVectors) {
  const Mat Z = rows({{1.0, 1.0}, {1.0, 1.0}, {1.0, -1.0}, {1.0, -1.0}, {1.0, -1.0}});
  const auto mm = gfsim::max_margin(Z);
  EXPECT_LT((mm.w_hat - Vec::Unit(2, 0)).norm(), 1e-15);
  EXPECT_NEAR(mm.alpha(0) + mm.alpha(1), 0.5, 1e-15);
  EXPECT_NEAR(mm.alpha(2) + mm.alpha(3) + mm.alpha(4), 0.5, 1e-15);
  EXPECT_EQ(mm.on_margin.size(), 5u);
  expect_small_certificate(mm, 1e-15);
}

TEST(MaxMargin, FewerPointsThanDimensionsAreAllSupport) {
  // Generic z_n with n < d: every point is on the margin and w_hat = Z^T (Z Z^T)^{-1} 1 when a > 0.
  std::mt19937_64 rng(13);
  const Mat Z = shifted_points(6, 30, 0.5, rng);
  Vec a;
  const Vec w = support_solution(Z, &a);
  const auto mm = gfsim::max_margin(Z);
  ASSERT_TRUE((a.array() > 0).all()) << "the generator gave a point without weight: pick another seed";
  EXPECT_LT((mm.w_hat - w).norm(), 1e-12 * w.norm());
  EXPECT_EQ(mm.support.size(), 6u);
  expect_small_certificate(mm, 1e-12);
  expect_consistent(Z, mm);
}

}  // namespace
