// The sliding-set solver (box-constrained complementarity of Filippov sliding) against brute-force
// enumeration of all 3^C active sets on affine problems, closed forms, degenerate blocks and a
// multi-affine problem with a known root.
#include <gtest/gtest.h>

#include <Eigen/SVD>

#include <Eigen/LU>
#include <Eigen/QR>
#include <cmath>
#include <limits>
#include <random>

#include "gfsim/sliding_set.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

SlidingRates affine(const Vec& r0, const Mat& A) {
  return [r0, A](const Vec& m, Vec& r, Mat* J) {
    r = r0 + A * m;
    if (J) *J = A;
  };
}

// Every m in [0,1]^C satisfying the sliding conditions for r = r0 + A m, found by trying each
// assignment of the C entries to {at 0, at 1, interior} and solving the interior block exactly
// (nonsingular blocks only: the enumeration is the reference for the P-matrix problems).
std::vector<Vec> enumerate_solutions(const Vec& r0, const Mat& A, double tol = 1e-9) {
  const Index C = r0.size();
  std::vector<Vec> found;
  Index total = 1;
  for (Index j = 0; j < C; ++j) total *= 3;
  for (Index code = 0; code < total; ++code) {
    Vec m = Vec::Zero(C);
    std::vector<Index> interior;
    Index c = code;
    for (Index j = 0; j < C; ++j, c /= 3) {
      if (c % 3 == 1) m[j] = 1.0;
      if (c % 3 == 2) interior.push_back(j);
    }
    if (!interior.empty()) {
      const Index ni = Index(interior.size());
      Mat AII(ni, ni);
      Vec rhs(ni);
      for (Index p = 0; p < ni; ++p) {
        rhs[p] = -(r0[interior[p]] + A.row(interior[p]).dot(m));
        for (Index q = 0; q < ni; ++q) AII(p, q) = A(interior[p], interior[q]);
      }
      Eigen::FullPivLU<Mat> lu(AII);
      if (!lu.isInvertible()) continue;
      const Vec x = lu.solve(rhs);
      for (Index p = 0; p < ni; ++p) m[interior[p]] = x[p];
    }
    const Vec r = r0 + A * m;
    bool ok = true;
    for (Index j = 0; j < C && ok; ++j) {
      if (m[j] < -tol || m[j] > 1 + tol) ok = false;
      else if (m[j] <= tol) ok = r[j] <= tol;
      else if (m[j] >= 1 - tol) ok = r[j] >= -tol;
      else ok = std::abs(r[j]) <= tol;
    }
    if (ok) found.push_back(m);
  }
  return found;
}

// True if the conditions hold at (m, r) to tol.
bool consistent(const Vec& m, const Vec& r, double tol) {
  for (Index j = 0; j < m.size(); ++j) {
    if (m[j] < 0 || m[j] > 1) return false;
    if (m[j] > 0 && m[j] < 1 && std::abs(r[j]) > tol) return false;
    if (m[j] == 0 && r[j] > tol) return false;
    if (m[j] == 1 && r[j] < -tol) return false;
  }
  return true;
}

TEST(SlidingSet, RandomPMatricesMatchEnumeration) {
  // -A = B B^T + D (symmetric positive definite, a P-matrix) plus a skew part (still a P-matrix:
  // positive definite non-symmetric): the solution is unique, so enumeration finds exactly one.
  std::mt19937_64 gen(7);
  std::normal_distribution<double> normal;
  int interior_total = 0, bound_total = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const Index C = 1 + trial % 6;
    Mat B(C, C), S(C, C);
    for (Index i = 0; i < C; ++i)
      for (Index j = 0; j < C; ++j) B(i, j) = normal(gen), S(i, j) = normal(gen);
    const Mat A = -(B * B.transpose() + 0.1 * Mat::Identity(C, C) + 0.5 * (S - S.transpose()));
    Vec r0(C);
    for (Index j = 0; j < C; ++j) r0[j] = 2.0 * normal(gen);
    const auto reference = enumerate_solutions(r0, A);
    ASSERT_EQ(reference.size(), 1u) << "trial " << trial;
    const auto res = solve_sliding_set(affine(r0, A), Vec::Zero(C));
    ASSERT_TRUE(res.converged) << "trial " << trial << " residual " << res.residual;
    EXPECT_LE((res.m - reference[0]).lpNorm<Eigen::Infinity>(), 1e-10) << "trial " << trial;
    EXPECT_TRUE(consistent(res.m, res.r, 1e-9 * (1 + A.norm())));
    for (Index j = 0; j < C; ++j) (res.m[j] > 0 && res.m[j] < 1 ? interior_total : bound_total)++;
  }
  // The family exercises both kinds of entries.
  EXPECT_GT(interior_total, 50);
  EXPECT_GT(bound_total, 50);
}

TEST(SlidingSet, TwoNearlyParallelSurfacesOfOneUnitClosedForm) {
  // The iris 4-6-1 case (kinks diagnosis, Case B): r(0) and dr/dm at the spin point; the joint
  // solution is interior and equals A^{-1}(-r0) by Cramer's rule.
  Vec r0(2);
  r0 << 0.7633, 0.6449;
  Mat A(2, 2);
  A << -73.94, -61.76, -61.76, -52.81;
  const double det = A(0, 0) * A(1, 1) - A(0, 1) * A(1, 0);
  const double m0 = (-r0[0] * A(1, 1) + r0[1] * A(0, 1)) / det;
  const double m1 = (-A(0, 0) * r0[1] + A(1, 0) * r0[0]) / det;
  ASSERT_GT(m0, 0);
  ASSERT_GT(m1, 0);
  const auto res = solve_sliding_set(affine(r0, A), Vec::Zero(2));
  ASSERT_TRUE(res.converged);
  EXPECT_NEAR(res.m[0], m0, 1e-13);
  EXPECT_NEAR(res.m[1], m1, 1e-13);
  EXPECT_LE(res.r.lpNorm<Eigen::Infinity>(), 1e-12 * 127);
}

TEST(SlidingSet, CoincidentSurfacesShareTheControlEqually) {
  // Three identical data points of one unit (duplicate rows): A = -c g g^T with g = (1,1,1) is
  // singular; the velocity is determined (sum of masks = r0/c) but not the masks. The least-norm
  // answer gives each the same share.
  const double c = 50.2, r = 55.47;
  Mat A = Mat::Constant(3, 3, -c);
  Vec r0 = Vec::Constant(3, r);
  const auto res = solve_sliding_set(affine(r0, A), Vec::Zero(3));
  ASSERT_TRUE(res.converged);
  EXPECT_NEAR(res.m.sum(), r / c, 1e-12);
  EXPECT_NEAR(res.m[0], res.m[1], 1e-14);
  EXPECT_NEAR(res.m[1], res.m[2], 1e-14);
  // And with a fourth, independent surface coupled to them.
  Mat A4 = Mat::Zero(4, 4);
  A4.topLeftCorner(3, 3) = A;
  A4(3, 3) = -10.0;
  A4(3, 0) = A4(3, 1) = A4(3, 2) = -1.0;
  A4(0, 3) = A4(1, 3) = A4(2, 3) = -1.0;
  Vec r4(4);
  r4 << r, r, r, 4.0;
  const auto res4 = solve_sliding_set(affine(r4, A4), Vec::Zero(4));
  ASSERT_TRUE(res4.converged);
  EXPECT_TRUE(consistent(res4.m, res4.r, 1e-10));
  EXPECT_NEAR(res4.m[0], res4.m[2], 1e-14);
}

TEST(SlidingSet, RepellingSurfaceKeepsTheWarmStartSide) {
  // r = -0.3 + m: both sides move away from h = 0. m = 0, 1 and 0.3 all satisfy the conditions;
  // the solver keeps the side it starts on (the sign of h decides), deterministically.
  Vec r0(1);
  r0 << -0.3;
  Mat A(1, 1);
  A << 1.0;
  EXPECT_EQ(enumerate_solutions(r0, A).size(), 3u);
  const auto low = solve_sliding_set(affine(r0, A), Vec::Zero(1));
  const auto high = solve_sliding_set(affine(r0, A), Vec::Ones(1));
  ASSERT_TRUE(low.converged && high.converged);
  EXPECT_EQ(low.m[0], 0.0);
  EXPECT_EQ(high.m[0], 1.0);
  EXPECT_EQ(low.iterations, 0);
}

TEST(SlidingSet, CrossingSurfaceLeavesThroughTheSideOfItsRates) {
  // Both one-sided rates positive (r(0) = 3.02, r(1) = 3.17: the surface is crossed towards the
  // active side): m = 1 whatever the warm start, never an "equivalent control" outside [0,1].
  Vec r0(1);
  r0 << 3.02;
  Mat A(1, 1);
  A << 0.15;
  for (double start : {0.0, 0.5, 1.0}) {
    const auto res = solve_sliding_set(affine(r0, A), Vec::Constant(1, start));
    ASSERT_TRUE(res.converged);
    EXPECT_EQ(res.m[0], 1.0);
  }
}

TEST(SlidingSet, MultiAffineRatesConvergeQuadraticallyToTheKnownRoot) {
  // Masks of two layers at one point multiply (equations.md, sliding in deep nets): r_b depends
  // on m_a m_b. Built with a known interior root m*; the exact Jacobian gives Newton's quadratic
  // convergence from m = 0 and from a warm start near m*.
  const Index C = 4;
  const Vec mstar = (Vec(C) << 0.3, 0.7, 0.45, 0.9).finished();
  Mat A = -(Mat::Identity(C, C) * 3.0);
  A(0, 1) = A(1, 0) = -0.5;
  A(2, 3) = 0.4;
  const Vec c = (Vec(C) << 0.0, 1.2, -0.8, 0.5).finished();
  SlidingRates rates = [&](const Vec& m, Vec& r, Mat* J) {
    // r = A (m - m*) + c (m_0 m_2 - m*_0 m*_2)
    r = A * (m - mstar) + c * (m[0] * m[2] - mstar[0] * mstar[2]);
    if (!J) return;
    *J = A;
    J->col(0) += c * m[2];
    J->col(2) += c * m[0];
  };
  const auto cold = solve_sliding_set(rates, Vec::Zero(C));
  ASSERT_TRUE(cold.converged);
  EXPECT_LE((cold.m - mstar).lpNorm<Eigen::Infinity>(), 1e-12);
  EXPECT_LE(cold.iterations, 6);
  const auto warm = solve_sliding_set(rates, mstar + Vec::Constant(C, 1e-4));
  ASSERT_TRUE(warm.converged);
  EXPECT_LE(warm.iterations, 2);
  // At the root already: no Newton step, one evaluation.
  const auto at_root = solve_sliding_set(rates, mstar);
  EXPECT_EQ(at_root.iterations, 0);
  EXPECT_EQ(at_root.evaluations, 1);
  // A Jacobian kept from the earlier solve (chord steps): the same root, no fresh Jacobian when
  // the start is close, and the unboxed solve (the equivalent control of a fixed sliding set)
  // finds the same interior root.
  Mat J = Mat::Zero(C, C);
  const auto first = solve_sliding_set(rates, Vec::Zero(C), {}, &J);
  EXPECT_NE(J.norm(), 0.0);
  SlidingSetOptions unboxed;
  unboxed.box = false;
  const auto chord = solve_sliding_set(rates, mstar + Vec::Constant(C, 1e-6), unboxed, &J);
  ASSERT_TRUE(chord.converged);
  EXPECT_EQ(chord.jacobians, 0);
  EXPECT_LE((chord.m - mstar).lpNorm<Eigen::Infinity>(), 1e-12);
}

TEST(SlidingSet, KeptInverseFollowsBroydensUpdateAcrossSolves) {
  // The equivalent control along a run: nearby problems solved with the Jacobian and its inverse
  // kept from the last solve (KinkPattern::sliding_rhs). The inverse stays the inverse of the
  // Broyden-updated Jacobian (Sherman-Morrison), and the roots are those of solves from scratch.
  const Index C = 5;
  Mat A = -(Mat::Identity(C, C) * 2.0);
  A(0, 3) = 0.6;
  A(3, 1) = -0.4;
  A(4, 2) = 0.3;
  const Vec c = (Vec(C) << 0.5, -1.0, 0.8, 0.2, -0.3).finished();
  Vec mstar = (Vec(C) << 0.3, 0.6, 0.45, 0.8, 0.2).finished();
  SlidingRates rates = [&](const Vec& m, Vec& r, Mat* J) {
    r = A * (m - mstar) + c * (m[1] * m[4] - mstar[1] * mstar[4]);
    if (!J) return;
    *J = A;
    J->col(1) += c * m[4];
    J->col(4) += c * m[1];
  };
  SlidingSetOptions unboxed;
  unboxed.box = false;
  Mat J, Jinv;
  Vec m = Vec::Constant(C, 0.5);
  int fresh = 0;
  for (int k = 0; k < 20; ++k) {
    mstar[1] += 1e-3;  // the problem drifts as the state moves along the surfaces
    mstar[3] -= 2e-3;
    const auto kept = solve_sliding_set(rates, m, unboxed, &J, &Jinv);
    const auto scratch = solve_sliding_set(rates, m, unboxed);
    ASSERT_TRUE(kept.converged) << "solve " << k;
    ASSERT_TRUE(scratch.converged) << "solve " << k;
    EXPECT_LE((kept.m - mstar).lpNorm<Eigen::Infinity>(), 1e-10) << "solve " << k;
    EXPECT_LE((kept.m - scratch.m).lpNorm<Eigen::Infinity>(), 1e-10) << "solve " << k;
    ASSERT_EQ(Jinv.rows(), C);
    EXPECT_LE((Jinv * J - Mat::Identity(C, C)).lpNorm<Eigen::Infinity>(), 1e-9) << "solve " << k;
    fresh += kept.jacobians;
    m = kept.m;
  }
  EXPECT_LE(fresh, 3);  // the first solve's, and rarely another: chord and Broyden steps do the rest
}

TEST(SlidingSet, RestThatNoMaskChangesIsTheRoundingFloorUnlessLarge) {
  // Entry 2's rate does not depend on any mask (a pre-activation identically zero, its rate
  // round-off): the others are solved and the rest, if at rounding level, is accepted; a rest of
  // the size of the rates is an inconsistent set and fails.
  Mat A(3, 3);
  A << -2.0, 0.5, 0.0, 0.3, -1.5, 0.0, 0.0, 0.0, 0.0;
  const Vec mstar = (Vec(3) << 0.4, 0.7, 0.5).finished();
  SlidingSetOptions unboxed;
  unboxed.box = false;
  for (double rest : {3e-11, 0.5}) {
    Vec r0 = -A * mstar;
    r0[2] = rest;
    const auto res = solve_sliding_set(affine(r0, A), Vec::Constant(3, 0.5), unboxed);
    if (rest < 1e-6) {
      ASSERT_TRUE(res.converged) << res.residual;
      EXPECT_TRUE(res.at_rounding_floor);
      EXPECT_LE(std::abs(res.m[0] - mstar[0]) + std::abs(res.m[1] - mstar[1]), 1e-12);
    } else {
      EXPECT_FALSE(res.converged);
      EXPECT_FALSE(res.at_rounding_floor);
      EXPECT_LE(res.jacobians, SlidingSetOptions{}.max_jacobians + 1);
    }
  }
  // Rank-deficient coupling with the rates outside its range: no solution, at any size.
  Mat B(2, 2);
  B << 1.0, 1.0, 1.0, 1.0;
  SlidingSetOptions few = unboxed;
  few.max_jacobians = 4;
  const auto none = solve_sliding_set(affine((Vec(2) << 0.0, 1.0).finished(), B), Vec::Zero(2), few);
  EXPECT_FALSE(none.converged);
  EXPECT_LE(none.jacobians, few.max_jacobians + 1);
}

TEST(SlidingSet, EntryWhoseMaskMovesNoRateTakesTheSideOfItsRate) {
  // Measured at a joint switch of [8,8,8,8] gd (seed 3, t = 1.855e6, rates scaled by e^s): a
  // surface hit on its active side (warm start m = 1) whose unit has no backward signal at that
  // point (its column of J zero: both one-sided fields are one field) and rate -0.0112, beside a
  // dead point's sliding entry whose own derivative (-1.26e8) sets the largest scale, and an
  // ordinary sliding entry. The Filippov solution (the enumeration: unique) puts the inert surface
  // on its inactive side; the solver kept it at 1 and accepted its rate as the rounding floor.
  Mat A(3, 3);
  A << -1.26e8, 0.0, 0.0, 0.1, -0.4, 0.0, 0.005, 0.002, 0.0;
  const Vec r0 = (Vec(3) << 0.0126, 0.272 - 1e-11, -0.0112).finished();
  const auto solutions = enumerate_solutions(r0, A);
  ASSERT_EQ(solutions.size(), 1u);
  const Vec& filippov = solutions.front();
  EXPECT_EQ(filippov[2], 0.0);
  const auto res = solve_sliding_set(affine(r0, A), (Vec(3) << 1e-10, 0.68, 1.0).finished());
  ASSERT_TRUE(res.converged) << res.residual;
  EXPECT_FALSE(res.at_rounding_floor) << res.residual;
  EXPECT_EQ(res.m[2], 0.0);
  EXPECT_NEAR(res.m[0], filippov[0], 1e-20);
  EXPECT_NEAR(res.m[1], filippov[1], 1e-12);
  EXPECT_TRUE(consistent(res.m, r0 + A * res.m, 1e-9));
  // Rising instead: the active side, from either warm start.
  const Vec r0_up = (Vec(3) << 0.0126, 0.272 - 1e-11, 0.0112).finished();
  for (double start : {0.0, 0.5}) {
    const auto up = solve_sliding_set(affine(r0_up, A), (Vec(3) << 1e-10, 0.68, start).finished());
    ASSERT_TRUE(up.converged) << up.residual;
    EXPECT_EQ(up.m[2], 1.0);
  }
}

// A layer-2 surface a sliding at a point whose only active layer-3 unit b there has just gone
// inactive: b's mask gates a's backward signal, so dr_a/dm_a = -2.484 m_b vanishes at m_b = 0, and
// a's mask moves only b's rate (through the tangent of relu(h_a), W[b, a] m_a r_a). The two masks'
// model, bilinear through the rates measured at the [8,8,8] gd seed-2 stop (t = 0.4616, layer 2
// unit 1 and layer 3 unit 5 at point 170, the other 19 candidates solved for each pair of masks):
//   r_a = 0.2358 - 0.0997 m_b - 2.484 m_a m_b,  r_b = -0.4522 + 0.3679 m_a - 0.0898 m_b - 4.1868 m_a m_b.
// r_b < 0 on the whole box, so b stays inactive; there r_a = 0.2358 whatever m_a: a crosses to its
// active side. (1, 0) is the only consistent set. From the warm start (0.0553, 0) (a sliding, b
// just crossed) and from 0, b's bound left a's interior column zero, the least-norm step kept m_a
// and the residual stayed at r_a (0.236) whatever the damping.
TEST(SlidingSet, InteriorEntryWhoseMaskMovesOnlyBoundRatesTakesTheSideOfItsRate) {
  const SlidingRates rates = [](const Vec& m, Vec& r, Mat* J) {
    r.resize(2);
    r << 0.2358 - 0.0997 * m[1] - 2.484 * m[0] * m[1], -0.4522 + 0.3679 * m[0] - 0.0898 * m[1] - 4.1868 * m[0] * m[1];
    if (!J) return;
    J->resize(2, 2);
    *J << -2.484 * m[1], -0.0997 - 2.484 * m[0], 0.3679 - 4.1868 * m[1], -0.0898 - 4.1868 * m[0];
  };
  // b's rate is negative on the whole box (its largest value -0.0843 at (1, 0)), hence m_b = 0 and
  // then m_a = 1: the only consistent set.
  for (int i = 0; i <= 100; ++i)
    for (int k = 0; k <= 100; ++k) {
      Vec r;
      rates((Vec(2) << i / 100.0, k / 100.0).finished(), r, nullptr);
      ASSERT_LT(r[1], -0.08) << i << " " << k;
    }
  for (bool natural : {false, true})
    for (const Vec& m0 : {Vec((Vec(2) << 0.05528, 0.0).finished()), Vec(Vec::Zero(2)), Vec(Vec::Ones(2))}) {
      SlidingSetOptions opt;
      opt.natural_monotonicity = natural;
      const SlidingSetResult res = solve_sliding_set(rates, m0, opt);
      ASSERT_TRUE(res.converged) << "natural " << natural << " from " << m0.transpose() << ": " << res.residual;
      EXPECT_FALSE(res.at_rounding_floor);
      EXPECT_EQ(res.m[0], 1.0);
      EXPECT_EQ(res.m[1], 0.0);
      Vec r;
      rates(res.m, r, nullptr);
      EXPECT_NEAR(res.r[0], 0.2358, 1e-15);    // a's rate on its active side, into it
      EXPECT_NEAR(res.r[1], -0.4522 + 0.3679, 1e-15);  // b's on its inactive side, into it
      EXPECT_TRUE(consistent(res.m, r, 0.0));
      EXPECT_EQ(sliding_set_residual(res.m, r, Vec::Ones(2)).lpNorm<Eigen::Infinity>(), 0.0);
    }
}

// Candidates whose rates and scales span many decades (one hidden layer late in the log clock: a
// misclassified point at output 0 has loss weight 1, a well-classified one 1e-12, and both slide on
// one unit; the 100-16-1 copy of relu_large at t = 1.47e9, docs/relu_deep.md session 18). Entry 0:
// the large one, s = 1e10, its control 1e-13; it couples into entry 1's rate (2e8 per unit of m_0).
// Entry 1 slides with m_1 = (0.002 + 2e8 m_0) / 0.007; entry 2 was hit with its mask at 0 and both
// one-sided rates positive (0.005, 0.007): it crosses to its active side. From the warm start
// (1e-13, 0.5, 0) the largest natural residual is 0.002, below the single tolerance 1e-12 (|r|_inf +
// max s) = 0.01: that solve returns the warm start as converged, entry 2 on the side its rates
// leave and entry 1 off its equivalent control. Against their own scales each entry is solved.
TEST(SlidingSet, EntriesOfManyScalesAreEachSolvedAgainstTheirOwnScale) {
  Mat A(3, 3);
  A << -1e10, 0, 0,  //
      2e8, -0.007, 0,  //
      0, 0, 0.002;
  const Vec r0 = (Vec(3) << 1e-3, 0.002, 0.005).finished();
  const Vec m0 = (Vec(3) << 1e-13, 0.5, 0.0).finished();
  const SlidingSetResult shared = solve_sliding_set(affine(r0, A), m0);
  EXPECT_TRUE(shared.converged);
  EXPECT_EQ(shared.iterations, 0);  // the defect: nothing solved
  SlidingSetOptions opt;
  opt.per_entry_tolerance = true;
  const SlidingSetResult res = solve_sliding_set(affine(r0, A), m0, opt);
  ASSERT_TRUE(res.converged) << res.residual;
  const double m_0 = 1e-13, m_1 = (0.002 + 2e8 * m_0) / 0.007;
  EXPECT_NEAR(res.m[0], m_0, 1e-12 * m_0);
  EXPECT_NEAR(res.m[1], m_1, 1e-12);
  EXPECT_EQ(res.m[2], 1.0);
  Vec r;
  affine(r0, A)(res.m, r, nullptr);
  // Each entry's rate against its own scale: both slides tangent, the crossing's rate away from
  // its surface on the side it went to.
  EXPECT_LE(std::abs(r[0]), 1e-12 * (1e-3 + 1e10));
  EXPECT_LE(std::abs(r[1]), 1e-12 * (0.0015 + 0.007));
  EXPECT_NEAR(r[2], 0.007, 1e-15);
  // The rates are affine in the masks (one hidden layer): the start's Jacobian serves every step.
  opt.affine = true;
  const SlidingSetResult once = solve_sliding_set(affine(r0, A), m0, opt);
  ASSERT_TRUE(once.converged) << once.residual;
  EXPECT_EQ(once.jacobians, 1);
  EXPECT_NEAR(once.m[1], m_1, 1e-12);
  EXPECT_EQ(once.m[2], 1.0);
}

TEST(SlidingSet, OneUnitsPointsWithWeightsTwelveDecadesApartSlideTogether) {
  // One hidden unit late in the log clock (the 100-16-1 copy of relu_large at t = 1e9): the joint
  // switch's rates are r(m) = r0 + J m with J = -K diag(w), K the Gram matrix of the unit's
  // sliding points and w their loss weights times e^s, misclassified points at 1e11, well-
  // classified ones at 0.1..1. cond(J) ~ 1e13, well above the least-norm solve's rank threshold,
  // while the columns equilibrated are as well conditioned as K. The exact answer: every entry
  // slides at m* (r0 = -J m*), the heavy points' masks at 1e-12.
  const Index C = 12, dim = 30;
  const Mat X = Eigen::Map<const Mat>(test::random_vector(dim * C, 7).data(), dim, C);
  const Mat K = X.transpose() * X;
  Vec w(C), mstar(C);
  for (Index j = 0; j < C; ++j) {
    const bool heavy = j % 4 == 0;
    w[j] = heavy ? 1e11 * (1.0 + 0.5 * j) : 0.1 + 0.07 * j;
    mstar[j] = heavy ? 2e-12 / (1.0 + 0.5 * j) : 0.15 + 0.06 * j;
  }
  const Mat J = -K * w.asDiagonal();
  const Vec r0 = -J * mstar;
  Eigen::JacobiSVD<Mat> svd(J);
  ASSERT_GT(svd.singularValues()[0] / svd.singularValues()[C - 1], 1e13) << "the test needs the bad scaling";
  // The unboxed answer by the equilibrated least-norm solve (the joint switch's start from every
  // candidate sliding): every mask to 1e-9 of itself.
  const Vec control = equilibrated_least_norm_solve(J, -r0);
  for (Index j = 0; j < C; ++j) EXPECT_NEAR(control[j], mstar[j], 1e-9 * mstar[j]) << j;
  SlidingSetOptions opt;
  opt.per_entry_tolerance = opt.affine = true;
  // From the signs (a restart: no stored control) and from the answer with the light masks moved
  // by 0.1 (a warm start whose rates are 1e-2 off: accepted as converged by a tolerance taken
  // from the start's rates and jumps).
  Vec signs = Vec::Zero(C), warm = mstar;
  for (Index j = 0; j < C; ++j) {
    if (j % 4 != 0) warm[j] += 0.1;
    signs[j] = j % 3 == 0 ? 1.0 : 0.0;
  }
  for (const Vec& m0 : {signs, warm}) {
    const SlidingSetResult res = solve_sliding_set(affine(r0, J), m0, opt);
    ASSERT_TRUE(res.converged) << res.residual;
    EXPECT_GT(res.iterations, 0);
    for (Index j = 0; j < C; ++j) EXPECT_NEAR(res.m[j], mstar[j], 1e-9 * mstar[j]) << j;
    // Each rate at its rounding: 1e-12 of the terms it is summed from.
    const Vec terms = r0.cwiseAbs() + J.cwiseAbs() * res.m;
    for (Index j = 0; j < C; ++j) EXPECT_LE(std::abs(res.r[j]), 1e-12 * terms[j]) << j;
  }
}

TEST(SlidingSet, UnboxedEntriesConvergeAgainstTheirOwnRatesRounding) {
  // A deep net's sliding field (no box, rates multi-affine in the masks): entry 0 beside a dead
  // point, dr/dm 1e12 (growing like t late in the log clock), entries 1 and 2 with jumps ~1 whose
  // rates are what is left of larger terms of the rest of the field (1e6 here) that cancel. A
  // tolerance shared by all entries (1e-12 of the largest rate and jump, ~2) accepts masks whose
  // light rates are 1e-3 off: the drift of docs/relu_deep.md, session 20. Per entry, each rate is
  // converged against its own scale: the terms its masks add and, where given, the magnitude of
  // the terms that cancel in it (rate_rounding).
  const Index C = 3;
  const double big = 1e6;
  Mat A(C, C);
  A << 2e12, 1e11, 0.0,
       1.0, 1.5, 0.3,
       0.5, -0.2, 1.2;
  const Vec q = (Vec(C) << 3.0, 0.1, -0.2).finished();  // r_j += q_j m_1 m_2: not affine
  const Vec mstar = (Vec(C) << 1e-12, 0.4, 0.6).finished();
  const Vec c = -(A * mstar + q * (mstar[1] * mstar[2]));
  auto exact_rates = [&](const Vec& m) { return Vec(c + A * m + q * (m[1] * m[2])); };
  const SlidingRates rates = [&](const Vec& m, Vec& r, Mat* J) {
    r = exact_rates(m);
    for (Index j = 1; j < C; ++j) r[j] = (r[j] + big * (1.0 + 0.1 * j)) - big * (1.0 + 0.1 * j);
    if (!J) return;
    *J = A;
    J->col(1) += q * m[2];
    J->col(2) += q * m[1];
  };
  // Light masks 1e-3 off, the heavy one where its rate vanishes with them.
  auto warm_start = [&](double off) {
    Vec m = mstar;
    m[1] += off;
    m[2] -= off;
    m[0] -= exact_rates(m)[0] / A(0, 0);
    return m;
  };
  const Vec warm = warm_start(1e-3);
  ASSERT_LT(std::abs(exact_rates(warm)[0]), 1.0);
  SlidingSetOptions shared;
  shared.box = false;
  const SlidingSetResult loose = solve_sliding_set(rates, warm, shared);
  ASSERT_TRUE(loose.converged);
  EXPECT_GT(exact_rates(loose.m).tail(2).cwiseAbs().minCoeff(), 1e-4) << "the shared tolerance must accept the warm start";

  SlidingSetOptions per_entry = shared;
  per_entry.per_entry_tolerance = true;
  const Vec rounding = (Vec(C) << 0.0, 2.2 * big, 2.4 * big).finished();  // |c_j + big| + big
  per_entry.rate_rounding = &rounding;
  const SlidingSetResult res = solve_sliding_set(rates, warm, per_entry);
  ASSERT_TRUE(res.converged) << res.residual;
  EXPECT_GT(res.iterations, 0);
  for (Index j = 1; j < C; ++j) EXPECT_NEAR(res.m[j], mstar[j], 1e-5) << j;
  EXPECT_LE(exact_rates(res.m).tail(2).cwiseAbs().maxCoeff(), 1e-12 * 2.4 * big + 1e-12);
  // The tolerance counts rate_rounding: light rates ~1e-6, above 1e-12 of their mask terms but
  // within 1e-12 of the cancelling terms, are converged with it and iterated on without it.
  const Vec close = warm_start(6e-7);
  EXPECT_EQ(solve_sliding_set(rates, close, per_entry).iterations, 0);
  per_entry.rate_rounding = nullptr;
  EXPECT_GT(solve_sliding_set(rates, close, per_entry).iterations, 0);
}

TEST(SlidingSet, UnboxedPerEntryFallsBackToTheSharedToleranceWhereJIsSingular) {
  // A rank-deficient cluster (more surfaces of one unit than its inputs): entries 1 and 2 have
  // parallel rows, r_2 = 2 r_1 + delta, where delta (1e-8) is what rounding and the nonlinear rest
  // leave in J's null direction; entry 0 is a heavy entry (jump 1e6) whose scale sets the shared
  // tolerance (1e-12 of it and the start's rates, ~1e-6). No mask removes delta, so the per-entry
  // tolerances (1e-12 of each light entry's ~2) cannot be met and Newton only stalls; with J
  // numerically singular the solve takes the shared tolerance ([8,8,8] seed 4's 2448 failed
  // solves; docs/relu_deep.md, session 20). A regular J keeps the per-entry test (above).
  const double delta = 1e-8;
  const SlidingRates rates = [&](const Vec& m, Vec& r, Mat* J) {
    r.resize(3);
    r[0] = 1e6 * (m[0] - 0.3);
    r[1] = (m[1] + m[2] - 1.0);
    r[2] = 2.0 * (m[1] + m[2] - 1.0) + delta;
    if (J) *J = (Mat(3, 3) << 1e6, 0, 0, 0, 1, 1, 0, 2, 2).finished();
  };
  const Vec m0 = (Vec(3) << 0.2, 0.5, 0.2).finished();
  SlidingSetOptions opt;
  opt.box = false;
  opt.per_entry_tolerance = true;
  const SlidingSetResult res = solve_sliding_set(rates, m0, opt);
  ASSERT_TRUE(res.converged) << res.residual;
  EXPECT_NEAR(res.m[0], 0.3, 1e-12);
  // The least-norm answer: r_1 and r_2 - delta balanced in the range, m_1 + m_2 = 1 - 2 delta / 5.
  EXPECT_NEAR(res.m[1] + res.m[2], 1.0 - 0.4 * delta, 1e-13);
  EXPECT_LE(res.r.cwiseAbs().maxCoeff(), 1e-12 * (1e6 * 0.1 + 1e6));  // the shared tolerance
  EXPECT_GT(res.r.tail(2).cwiseAbs().maxCoeff(), 1e-12 * 4.0);       // above any per-entry one
}

TEST(SlidingSet, NumericallySingularJacobianTakesTheLeastNormStep) {
  // J with a singular value below the rank threshold (1e-13 relative) but above the
  // decomposition's default one: the unboxed solve steps in J's range only, so m keeps m0's
  // component along the near-null direction, and the root in the range is found. (The threshold
  // was once set after the decomposition, whose Householder data then did not match the rank used
  // by solve(): uninitialized reads, results that depended on the heap; valgrind.)
  const Index C = 3;
  const Vec entries = test::random_vector(C * C, 91);
  const Eigen::HouseholderQR<Mat> qr(Eigen::Map<const Mat>(entries.data(), C, C));
  const Mat Q = qr.householderQ();
  const Vec sigma = (Vec(C) << 2.0, 1.0, 1e-15).finished();
  const Mat A = -Q * sigma.asDiagonal() * Q.transpose();
  const Vec mstar = (Vec(C) << 0.3, 0.6, 0.45).finished();
  const Vec m0 = Vec::Constant(C, 0.5);
  SlidingSetOptions unboxed;
  unboxed.box = false;
  const auto res = solve_sliding_set(affine(-A * mstar, A), m0, unboxed);
  ASSERT_TRUE(res.converged) << res.residual;
  const Vec null_dir = Q.col(2);
  EXPECT_NEAR(null_dir.dot(res.m), null_dir.dot(m0), 1e-12);
  const Mat P = Q.leftCols(2) * Q.leftCols(2).transpose();  // projector on the range
  EXPECT_LE((P * (res.m - mstar)).lpNorm<Eigen::Infinity>(), 1e-12);
}

TEST(SlidingSet, NonFiniteRatesFailAtOnce) {
  SlidingRates nan_rates = [](const Vec& m, Vec& r, Mat* J) {
    r = Vec::Constant(m.size(), std::numeric_limits<double>::quiet_NaN());
    if (J) *J = Mat::Identity(m.size(), m.size());
  };
  for (bool box : {true, false}) {
    SlidingSetOptions o;
    o.box = box;
    const auto res = solve_sliding_set(nan_rates, Vec::Constant(3, 0.5), o);
    EXPECT_FALSE(res.converged);
    EXPECT_LE(res.evaluations, 1);
  }
}

TEST(SlidingSet, UnboxedSolveReturnsMasksOutsideTheBox) {
  // Without the box the equivalent control of a fixed sliding set may leave [0,1] (its event).
  Vec r0(2);
  r0 << 3.0, -1.0;
  Mat A(2, 2);
  A << -1.0, 0.2, 0.1, -2.0;
  SlidingSetOptions unboxed;
  unboxed.box = false;
  const auto res = solve_sliding_set(affine(r0, A), Vec::Zero(2), unboxed);
  ASSERT_TRUE(res.converged);
  const Vec exact = A.fullPivLu().solve(-r0);
  EXPECT_LE((res.m - exact).lpNorm<Eigen::Infinity>(), 1e-13);
  EXPECT_GT(res.m[0], 1.0);
  EXPECT_LT(res.m[1], 0.0);
}

TEST(SlidingSet, UnboxedNewtonStepsSolveByLUAndFallBackToLeastNorm) {
  // Without the box an affine problem with a nonsingular Jacobian is solved by one Newton step
  // (the LU's), to the root from an independent full-pivot solve; coincident surfaces (a singular
  // Jacobian, where the LU's pivots vanish) still share the control equally (least-norm step).
  std::mt19937_64 gen(91);
  std::normal_distribution<double> normal;
  const Index C = 6;
  Mat A(C, C);
  Vec r0(C);
  for (Index i = 0; i < C; ++i) {
    r0[i] = normal(gen);
    for (Index j = 0; j < C; ++j) A(i, j) = normal(gen) - (i == j ? 4.0 : 0.0);
  }
  SlidingSetOptions unboxed;
  unboxed.box = false;
  const auto res = solve_sliding_set(affine(r0, A), Vec::Zero(C), unboxed);
  ASSERT_TRUE(res.converged);
  EXPECT_LE(res.iterations, 2);
  const Vec exact = A.fullPivLu().solve(-r0);
  EXPECT_LE((res.m - exact).lpNorm<Eigen::Infinity>(), 1e-13 * exact.lpNorm<Eigen::Infinity>());
  const double c = 50.2, r = 55.47;
  const auto shared = solve_sliding_set(affine(Vec::Constant(3, r), Mat::Constant(3, 3, -c)), Vec::Zero(3), unboxed);
  ASSERT_TRUE(shared.converged);
  EXPECT_NEAR(shared.m.sum(), r / c, 1e-12);
  EXPECT_NEAR(shared.m[0], shared.m[1], 1e-14);
  EXPECT_NEAR(shared.m[1], shared.m[2], 1e-14);
}

TEST(SlidingSet, BothRatesPositiveWithAnAntiMonotoneCouplingTakesTheActiveSide) {
  // Measured at an event of the 3-layer net (20-16-8-1): a sliding layer-1 entry and a layer-2
  // entry whose rate rises with its own mask (r = 0.085 at m = 0, 0.134 at m = 1: crossed into the
  // active side). The unique solution has m_2 = 1 and m_1 from r_1 = 0.00508 - 0.1116 m_1 = 0.
  const Vec r00 = (Vec(2) << 0.00703172, 0.0845396).finished();
  const Vec r01 = (Vec(2) << 0.00507983, 0.134114).finished();
  const Vec r10 = (Vec(2) << -0.104539, 0.0870254).finished();
  const Vec r11 = (Vec(2) << -0.106491, 0.136599).finished();
  // Bilinear interpolation of the four corners: r(m) = r00 + a m1 + b m2 + c m1 m2.
  const Vec a = r10 - r00, b = r01 - r00, c = r11 - r10 - r01 + r00;
  SlidingRates rates = [&](const Vec& m, Vec& r, Mat* J) {
    r = r00 + a * m[0] + b * m[1] + c * (m[0] * m[1]);
    if (!J) return;
    J->resize(2, 2);
    J->col(0) = a + c * m[1];
    J->col(1) = b + c * m[0];
  };
  const auto res = solve_sliding_set(rates, (Vec(2) << 0.0630246, 0.0).finished());
  ASSERT_TRUE(res.converged) << res.residual;
  EXPECT_EQ(res.m[1], 1.0);
  EXPECT_NEAR(res.m[0], -r01[0] / (a[0] + c[0]), 1e-12);
}

// Two coincident entries (one surface met at two points, h_1 = 2.5 h_0): rows and columns of A
// parallel, the masks entering the field through m_0 + 2.5 m_1 only; a third entry apart.
struct CoincidentPair {
  Mat A = (Mat(3, 3) << -1.0, -2.5, 0.4, -1.5, -3.75, 0.6, 0.3, 0.75, -2.0).finished();
  Vec r0 = (Vec(3) << 0.9, 1.35, 0.7).finished();
  Vec null = (Vec(3) << 2.5, -1.0, 0.0).finished().normalized();  // A null = 0
  double combination(const Vec& m) const { return m[0] + 2.5 * m[1]; }
};

TEST(SlidingSet, CoincidentEntriesShareOneMask) {
  // From an uneven split, least-norm Newton steps keep the split's null-space part; with
  // share_coincident the pair ends with one mask and the same combination (the same field).
  const CoincidentPair c;
  const Vec m0 = (Vec(3) << 0.7, 0.01, 0.5).finished();
  for (bool box : {true, false}) {
    SlidingSetOptions opt;
    opt.box = box;
    const auto kept = solve_sliding_set(affine(c.r0, c.A), m0, opt);
    ASSERT_TRUE(kept.converged);
    EXPECT_GT(std::abs(kept.m[0] - kept.m[1]), 0.1);  // the split of the start, moved along A's rows
    opt.share_coincident = true;
    const auto shared = solve_sliding_set(affine(c.r0, c.A), m0, opt);
    ASSERT_TRUE(shared.converged) << "box " << box;
    EXPECT_NEAR(shared.m[0], shared.m[1], 1e-14) << "box " << box;
    EXPECT_NEAR(c.combination(shared.m), c.combination(kept.m), 1e-13) << "box " << box;
    EXPECT_NEAR(shared.m[2], kept.m[2], 1e-13) << "box " << box;
    EXPECT_LE((c.r0 + c.A * shared.m).lpNorm<Eigen::Infinity>(), 1e-12) << "box " << box;
  }
}

TEST(SlidingSet, SingularKeptJacobianIsEvaluatedBeforeItSteps) {
  // A kept Jacobian after an entry joined the set: the new entry's column fresh, its row zero,
  // the old column stale (from an earlier state). Singular, and its pseudo-inverse's steps (with
  // Broyden's updates of it) are not those of the exact J: they moved the masks along A's null
  // space, where the residual does not see them. Evaluated afresh, the steps are the exact J's
  // least-norm ones: the null-space part of the masks stays the warm start's.
  const CoincidentPair c;
  const Vec m0 = (Vec(3) << 0.4, 0.2, 0.5).finished();
  Mat kept = c.A;
  kept.col(0) *= 1.02;  // stale
  kept.row(1).setZero();  // the new entry's row, completed later
  Mat inverse;
  SlidingSetOptions unboxed;
  unboxed.box = false;
  const auto res = solve_sliding_set(affine(c.r0, c.A), m0, unboxed, &kept, &inverse);
  ASSERT_TRUE(res.converged);
  EXPECT_LE((c.r0 + c.A * res.m).lpNorm<Eigen::Infinity>(), 1e-12);
  EXPECT_NEAR(c.null.dot(res.m - m0), 0.0, 1e-13);
  EXPECT_EQ(inverse.size(), 0);  // a pseudo-inverse is not kept
}

TEST(SlidingSet, ResidualVanishesExactlyOnConsistentSets) {
  Vec m(3), r(3);
  m << 0.0, 1.0, 0.4;
  r << -2.0, 5.0, 0.0;
  EXPECT_EQ(sliding_set_residual(m, r, Vec::Constant(3, 3.0)).lpNorm<Eigen::Infinity>(), 0.0);
  r << 2.0, 5.0, 0.0;  // m = 0 with r > 0: the state would leave into the active side
  EXPECT_NEAR(sliding_set_residual(m, r, Vec::Constant(3, 3.0))[0], -2.0, 1e-15);  // -r_j while m_j + r_j/s stays in [0,1]
  r << -2.0, 5.0, 0.1;  // an interior mask with a non-zero rate
  EXPECT_NEAR(sliding_set_residual(m, r, Vec::Constant(3, 3.0))[2], -0.1, 1e-15);
}

// Two surfaces at one point in consecutive layers, the deeper unit fed by the other (h_b =
// W[b, a] relu(h_a) + rest), where the point's activations below span two directions: both
// surfaces constrain the same direction of them, so rest's rate is a multiple of h_a's up to the
// weights' own motion (small) and the rows of J are nearly dependent, r_b = (c0 + c1 m_a) r_a + e.
// The model problem (the [8,8,8,8] seed-2 stop at t = 1.6529, layer 2 unit 1 and layer 3 unit 5 at
// point 27, reduced to their two masks: root (0.757, 0.0337), warm start (0.0098, 1) in the valley
// as there, r_b = -0.035 there):
//   r_a = 100 (c - m_b (m_a + d)),  r_b = (0.14 + 1.54 m_a) r_a + 0.03 (m_a - 0.757),
// c and d such that the valley r_a = 0, m_b = c / (m_a + d), passes through both.
// Its only consistent set is the root (checked below on a grid of the box's edges). |Phi|^2 has a
// curved valley along r_a = 0; Armijo's damped steps crawl along it (1e-2 of the Newton step) and
// 50 do not get there; the natural monotonicity test measures the simplified Newton correction,
// blind to the rows' near-dependence, and converges.
TEST(SlidingSet, NearlyDependentBilinearRowsConvergeWithNaturalMonotonicity) {
  constexpr double ma_root = 0.757, mb_root = 0.0337, ma0 = 0.0098;
  const double dd = (mb_root * ma_root - ma0) / (1.0 - mb_root), c = ma0 + dd;  // through (ma0, 1) and the root
  const SlidingRates rates = [&](const Vec& m, Vec& r, Mat* J) {
    const double ra = 100 * (c - m[1] * (m[0] + dd)), k = 0.14 + 1.54 * m[0];
    r.resize(2);
    r << ra, k * ra + 0.03 * (m[0] - ma_root);
    if (!J) return;
    J->resize(2, 2);
    const double ra0 = -100 * m[1], ra1 = -100 * (m[0] + dd);
    *J << ra0, ra1, 1.54 * ra + k * ra0 + 0.03, k * ra1;
  };
  // The root is the problem's only consistent set: on a grid of the box's edges no other.
  for (int i = 0; i <= 200; ++i) {
    const double u = i / 200.0;
    for (const Vec& m : {Vec((Vec(2) << 0.0, u).finished()), Vec((Vec(2) << 1.0, u).finished()),
                         Vec((Vec(2) << u, 0.0).finished()), Vec((Vec(2) << u, 1.0).finished())}) {
      Vec r;
      rates(m, r, nullptr);
      const Vec s = Vec::Ones(2);
      EXPECT_GT(sliding_set_residual(m, r, s).lpNorm<Eigen::Infinity>(), 1e-4) << m.transpose();
    }
  }
  const Vec m0 = (Vec(2) << 0.0098, 1.0).finished();
  SlidingSetOptions armijo;
  const SlidingSetResult crawl = solve_sliding_set(rates, m0, armijo);
  EXPECT_FALSE(crawl.converged);  // Armijo: residual 0.021 after 50 steps, at (0.018, 0.77)
  SlidingSetOptions natural;
  natural.natural_monotonicity = true;
  const SlidingSetResult res = solve_sliding_set(rates, m0, natural);
  ASSERT_TRUE(res.converged);  // 41 steps
  EXPECT_NEAR(res.m[0], ma_root, 1e-9);
  EXPECT_NEAR(res.m[1], mb_root, 1e-9);
  EXPECT_LT(res.r.lpNorm<Eigen::Infinity>(), 1e-9);
  // Without the box (the sliding field's own solve) the same.
  natural.box = false;
  const SlidingSetResult unboxed = solve_sliding_set(rates, m0, natural);
  ASSERT_TRUE(unboxed.converged);
  EXPECT_NEAR(unboxed.m[0], ma_root, 1e-9);
  EXPECT_NEAR(unboxed.m[1], mb_root, 1e-9);
}

}  // namespace
}  // namespace gfsim
