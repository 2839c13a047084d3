// The joint switch's last fallback, Gauss-Seidel sweeps of the one-entry problems followed by
// Newton (solve_sliding_set_by_sweeps), on crowded gradient-flow sliding problems: more surfaces
// than the velocity has directions, masks that multiply, every rate falling with its own mask.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "gfsim/sliding_set.hpp"

namespace gfsim {
namespace {

// A gradient flow's sliding problem in miniature (docs/events.md, "Sliding sets"): the velocity
// v(m) = a + sum_j m_j B_j + sum_(j,l) m_j m_l B_jl is multi-affine in the masks (masks of two
// layers at one point multiply), and the rates are r_j = -(dphi/dm_j) / w_j for phi = |v|^2 / 2
// and weights w_j > 0: dv/dm_j = c_j grad h_j in a ReLU net, so phi's partial derivatives are the
// rates times -c_j. Each r_j is affine in m_j and falls with it (dr_j/dm_j = -|dv/dm_j|^2 / w_j),
// and the consistent sets are the KKT points of min phi over the box.
struct CrowdedProblem {
  Mat B;                                  // P x C, column j: B_j
  Vec a, w;                               // P; C
  std::vector<std::pair<Index, Index>> pairs;
  std::vector<Vec> B_pair;                // P each

  // The masks move the velocity within a D-dimensional subspace of its P dimensions (D < C: the
  // surfaces' normals are dependent), and a has components outside it, so |v| stays away from 0.
  CrowdedProblem(Index P, Index D, Index C, std::mt19937& rng) : B(P, C), a(P), w(C) {
    std::normal_distribution<double> normal;
    std::uniform_real_distribution<double> log_weight(-2.0, 2.0);
    Mat U(P, D);
    for (Index i = 0; i < P; ++i)
      for (Index d = 0; d < D; ++d) U(i, d) = normal(rng);
    for (Index i = 0; i < P; ++i) a[i] = normal(rng);
    Vec x(D);
    for (Index j = 0; j < C; ++j) {
      for (Index d = 0; d < D; ++d) x[d] = normal(rng);
      B.col(j) = U * x;
      w[j] = std::pow(10.0, log_weight(rng));
    }
    for (Index j = 0; j + 1 < C; j += 2) {  // a deeper surface's mask multiplies a shallower one's
      pairs.emplace_back(j, j + 1);
      for (Index d = 0; d < D; ++d) x[d] = 0.7 * normal(rng);
      B_pair.push_back(U * x);
    }
  }
  Index size() const { return B.cols(); }
  Vec velocity(const Vec& m) const {
    Vec v = a + B * m;
    for (std::size_t q = 0; q < pairs.size(); ++q) v += m[pairs[q].first] * m[pairs[q].second] * B_pair[q];
    return v;
  }
  Vec dv(const Vec& m, Index j) const {  // dv/dm_j, independent of m_j
    Vec d = B.col(j);
    for (std::size_t q = 0; q < pairs.size(); ++q) {
      if (pairs[q].first == j) d += m[pairs[q].second] * B_pair[q];
      if (pairs[q].second == j) d += m[pairs[q].first] * B_pair[q];
    }
    return d;
  }
  double phi(const Vec& m) const { return 0.5 * velocity(m).squaredNorm(); }
  SlidingRates rates() const {
    return [this](const Vec& m, Vec& r, Mat* J) {
      const Index C = size();
      const Vec v = velocity(m);
      r.resize(C);
      for (Index j = 0; j < C; ++j) r[j] = -dv(m, j).dot(v) / w[j];
      if (!J) return;
      J->resize(C, C);
      for (Index l = 0; l < C; ++l) J->col(l) = mask_jacobian_column([this](const Vec& x, Vec& rx) {
        const Vec vx = velocity(x);
        rx.resize(size());
        for (Index j = 0; j < size(); ++j) rx[j] = -dv(x, j).dot(vx) / w[j];
      }, m, l);
    };
  }
};

// The largest violation of the sliding conditions at m, relative to each rate's scale: |r_j|
// inside, the wrong-signed part at a bound.
double violation(const CrowdedProblem& p, const Vec& m) {
  Vec r;
  p.rates()(m, r, nullptr);
  double worst = 0;
  for (Index j = 0; j < p.size(); ++j) {
    if (m[j] < 0 || m[j] > 1) return INFINITY;
    const double scale = p.dv(m, j).norm() * p.velocity(m).norm() / p.w[j] + 1e-300;
    const double err = m[j] == 0 ? std::max(r[j], 0.0) : m[j] == 1 ? std::max(-r[j], 0.0) : std::abs(r[j]);
    worst = std::max(worst, err / scale);
  }
  return worst;
}

TEST(SlidingSweeps, CrowdedGradientProblemsAreSolvedWhereNewtonStalls) {
  // 16 surfaces whose masks move the velocity in 8 directions (as 20 surfaces of one layer-4 unit
  // with 8 inputs in the crowded clusters of [8,8,8,8] nets), warm-started at random masks: where
  // Newton from the warm start fails (10 of the 60 instances), the sweeps and Newton after them
  // find a consistent set.
  std::mt19937 rng(20261207);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const Index P = 40, D = 8, C = 16;
  int newton_failures = 0;
  for (int instance = 0; instance < 60; ++instance) {
    const CrowdedProblem p(P, D, C, rng);
    Vec m0(C);
    for (Index j = 0; j < C; ++j) m0[j] = unit(rng);
    const SlidingRates rates = p.rates();
    const SlidingSetResult newton = solve_sliding_set(rates, m0);
    if (newton.converged) continue;
    ++newton_failures;
    const SlidingSetResult swept = solve_sliding_set_by_sweeps(rates, m0, {}, 600 * int(C));
    EXPECT_TRUE(swept.converged) << "instance " << instance << ": residual " << swept.residual;
    EXPECT_LE(violation(p, swept.m), 1e-9) << "instance " << instance;
    EXPECT_LE(swept.evaluations, 600 * int(C)) << "instance " << instance;
  }
  // The instances are hard for Newton from the warm start alone (else this test would not show
  // what the sweeps add).
  EXPECT_GE(newton_failures, 5);
}

TEST(SlidingSweeps, EachSweepLowersTheVelocitysNormWhenEveryRateFallsWithItsMask) {
  // Coordinate descent: one entry's update is the exact minimization of phi over its mask, so phi
  // never rises from sweep to sweep (one sweep per call: a budget of 2C evaluations, and no Newton
  // iteration after it).
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const Index P = 30, D = 6, C = 12;
  for (int instance = 0; instance < 20; ++instance) {
    const CrowdedProblem p(P, D, C, rng);
    Vec m(C);
    for (Index j = 0; j < C; ++j) m[j] = unit(rng);
    double phi = p.phi(m);
    for (int sweep = 0; sweep < 3; ++sweep) {
      SlidingSetOptions no_newton;
      no_newton.max_iterations = 0;
      const SlidingSetResult one = solve_sliding_set_by_sweeps(p.rates(), m, no_newton, 2 * int(C));
      const double next = p.phi(one.m);
      EXPECT_LE(next, phi * (1 + 1e-14) + 1e-300) << "instance " << instance << " sweep " << sweep;
      phi = next;
      m = one.m;
    }
  }
}

}  // namespace
}  // namespace gfsim
