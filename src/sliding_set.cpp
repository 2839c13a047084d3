#include "gfsim/sliding_set.hpp"

#include <Eigen/QR>

#include <algorithm>
#include <cmath>
#include <vector>

namespace gfsim {

Vec sliding_set_residual(const Vec& m, const Vec& r, double s) {
  // Zero exactly at a consistent set: interior m_j with r_j = 0, m_j = 0 with r_j <= 0, m_j = 1
  // with r_j >= 0 (the natural residual of MCP(-r, [0,1]^C), scaled back to rate units).
  return s * (m - (m + r / s).cwiseMax(0.0).cwiseMin(1.0));
}

SlidingSetResult solve_sliding_set(const SlidingRates& rates, const Vec& m0, const SlidingSetOptions& opt) {
  SlidingSetResult res;
  const Index C = m0.size();
  res.m = m0.cwiseMax(0.0).cwiseMin(1.0);
  res.r.resize(C);
  if (C == 0) {
    res.converged = true;
    return res;
  }
  Mat J(C, C), Jt(C, C);
  Vec rt(C);
  rates(res.m, res.r, J);
  res.evaluations = 1;
  // Rate scale: dr_j/dm_j is the normal speed change between the two sides (the jump of the
  // field across surface j seen by h_j), the natural unit of the complementarity residual.
  double s = J.diagonal().cwiseAbs().maxCoeff();
  if (!(s > 0)) s = J.cwiseAbs().maxCoeff();
  if (!(s > 0)) s = std::max(res.r.cwiseAbs().maxCoeff(), 1.0);
  const double tol = opt.rel_tol * (res.r.cwiseAbs().maxCoeff() + s);
  Vec phi = sliding_set_residual(res.m, res.r, s);
  double merit = phi.squaredNorm();
  std::vector<Index> interior;
  Vec step(C), trial(C);
  for (; res.iterations < opt.max_iterations; ++res.iterations) {
    res.residual = phi.lpNorm<Eigen::Infinity>();
    if (res.residual <= tol) {
      res.converged = true;
      return res;
    }
    // Active-set Newton step on Phi: entries whose z = m + r/s leaves [0,1] go to that bound, the
    // others solve J_II step_I = -(r_I + J_IB step_B) (the linearized rates vanish there).
    interior.clear();
    for (Index j = 0; j < C; ++j) {
      const double z = res.m[j] + res.r[j] / s;
      if (z <= 0.0)
        step[j] = -res.m[j];
      else if (z >= 1.0)
        step[j] = 1.0 - res.m[j];
      else
        interior.push_back(j);
    }
    if (!interior.empty()) {
      const Index ni = Index(interior.size());
      Mat JII(ni, ni);
      Vec rhs(ni);
      for (Index p = 0; p < ni; ++p) {
        const Index j = interior[std::size_t(p)];
        rhs[p] = -res.r[j];
        for (Index q = 0; q < C; ++q) {
          const bool q_interior = std::binary_search(interior.begin(), interior.end(), q);
          if (!q_interior) rhs[p] -= J(j, q) * step[q];
        }
        for (Index q = 0; q < ni; ++q) JII(p, q) = J(j, interior[std::size_t(q)]);
      }
      // Least-norm step: coincident surfaces (singular block) share the correction equally.
      Eigen::CompleteOrthogonalDecomposition<Mat> cod(JII);
      cod.setThreshold(1e-13);
      const Vec si = cod.solve(rhs);
      for (Index p = 0; p < ni; ++p) step[interior[std::size_t(p)]] = si[p];
    }
    // Projected step with Armijo backtracking on |Phi|^2; a full step when no decrease is found
    // (the iteration count bounds the work either way).
    double lambda = 1.0, trial_merit = 0.0;
    Vec trial_phi;
    bool accepted = false;
    for (int back = 0; back < 30; ++back, lambda *= 0.5) {
      trial = (res.m + lambda * step).cwiseMax(0.0).cwiseMin(1.0);
      rates(trial, rt, Jt);
      ++res.evaluations;
      trial_phi = sliding_set_residual(trial, rt, s);
      trial_merit = trial_phi.squaredNorm();
      if (trial_merit <= (1.0 - 1e-4 * lambda) * merit) {
        accepted = true;
        break;
      }
    }
    if (!accepted) {
      trial = (res.m + step).cwiseMax(0.0).cwiseMin(1.0);
      rates(trial, rt, Jt);
      ++res.evaluations;
      trial_phi = sliding_set_residual(trial, rt, s);
      trial_merit = trial_phi.squaredNorm();
    }
    res.m.swap(trial);
    res.r.swap(rt);
    J.swap(Jt);
    phi.swap(trial_phi);
    merit = trial_merit;
  }
  res.residual = phi.lpNorm<Eigen::Infinity>();
  res.converged = res.residual <= tol;
  return res;
}

}  // namespace gfsim
