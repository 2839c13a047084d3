#include "gfsim/riemannian_newton.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <vector>

#include "gfsim/kink_surface.hpp"
#include "gfsim/minres.hpp"

namespace gfsim {

namespace {

// Saddle-free Newton step in an orthonormal basis W of the search space: pseudo-inverse of W^T H W
// with |lambda|; zero modes are left alone.
Vec dense_newton_step(const SphereProblem& sp, const Vec& V, const Vec& g, const Mat& W, double zero_rel) {
  const Mat Ht = projected_hessian(sp, V, W);
  Eigen::SelfAdjointEigenSolver<Mat> es(Ht);
  const Vec& lam = es.eigenvalues();
  const double thr = zero_rel * std::max(lam.cwiseAbs().maxCoeff(), 1e-300);
  const Vec gt = es.eigenvectors().transpose() * (W.transpose() * g);
  Vec y = Vec::Zero(lam.size());
  for (Index i = 0; i < lam.size(); ++i)
    if (std::abs(lam[i]) > thr) y[i] = -gt[i] / std::abs(lam[i]);
  return W * (es.eigenvectors() * y);
}

}  // namespace

Vec newton_step(const SphereProblem& sp, const Vec& V, const Vec& g, bool dense, const StationaryOptions& o,
                int& inner) {
  if (dense) {
    const Mat Bd = TangentBasis(sp.flow().network(), V).dense();
    inner = int(Bd.cols());
    return dense_newton_step(sp, V, g, Bd, o.zero_rel);
  }
  // MINRES on the tangent space: Hess maps tangent vectors to tangent vectors and is symmetric
  // there; -grad is tangent, so every Krylov vector is.
  const MinresResult m = minres([&](const Vec& v, Vec& Hv) { Hv = sp.hessian(V, v); }, -sp.project(V, g),
                                {.rtol = o.minres_rtol, .max_iterations = 4 * sp.tangent_dim()});
  inner = int(m.iterations);
  return sp.project(V, m.x);
}

void newton_polish(const SphereProblem& sp, StationaryResult& r, const StationaryOptions& o) {
  Vec V = sp.normalize(r.V);
  const std::vector<Index>& kinks = r.newton_kinks;
  const bool on_kinks = !kinks.empty();
  if (on_kinks) V = restore_kinks(sp, V, kinks);
  // On a kink surface the stationarity condition is the gradient projected onto its tangent space.
  Mat W;
  auto surface_gradient = [&](const Vec& X) {
    const Vec g = sp.gradient(X);
    if (!on_kinks) return g;
    W = kink_surface_basis(sp, X, kinks);
    return Vec(W * (W.transpose() * g));
  };
  Vec g = surface_gradient(V);
  double gn = g.norm();
  double scale = sp.loss_scale(V);
  r.grad_norms.push_back(gn);
  r.newton_converged = false;
  for (int it = 0; it < o.max_newton; ++it) {
    if (gn <= o.newton_tol * scale) {
      r.newton_converged = true;
      break;
    }
    Vec xi;
    int inner = 0;
    if (on_kinks) {
      if (sp.tangent_dim() > o.dense_newton_max) break;  // kink-surface Newton is dense only
      xi = dense_newton_step(sp, V, g, W, o.zero_rel);
      inner = int(W.cols());
    } else {
      // Inexact Newton for MINRES: relative residual ~ relative gradient (forcing term; keeps the
      // quadratic rate) and not tighter, so near-null directions (zero modes at 1e-15) are not
      // amplified by an over-solved singular system.
      // At the round-off level (relative gradient <= 1e-11, counted as converged below) MINRES
      // cannot reach a relative residual that small on the near-singular system: it ran to its
      // cap of 4 m iterations for a step the line search then rejected (99.99% of Newton's
      // Hessian products at P = 1e4, docs/spectrum_benchmarks.md). Stop instead.
      if (sp.tangent_dim() > o.dense_newton_max && gn <= 1e-11 * scale) break;
      StationaryOptions oi = o;
      oi.minres_rtol = std::clamp(gn / scale, o.minres_rtol, 1e-2);
      xi = newton_step(sp, V, g, sp.tangent_dim() <= o.dense_newton_max, oi, inner);
    }
    r.newton_hvps += inner;
    // Safeguard: accept the first step length (1, 1/2, ...) that decreases ||grad||.
    double t = 1.0;
    bool accepted = false;
    Vec Vn, gnew;
    for (int ls = 0; ls < 12; ++ls, t *= 0.5) {
      Vn = restore_kinks(sp, sp.retract(V, t * xi), kinks);
      gnew = surface_gradient(Vn);
      if (gnew.norm() < gn) {
        accepted = true;
        break;
      }
    }
    if (!accepted) break;  // stagnation: round-off reached
    V = Vn;
    g = gnew;
    gn = g.norm();
    scale = sp.loss_scale(V);
    r.step_norms.push_back(t * xi.norm());
    r.inner_iterations.push_back(inner);
    r.grad_norms.push_back(gn);
  }
  if (gn <= o.newton_tol * scale) r.newton_converged = true;
  // Stagnation at round-off also counts: relative gradient below 1e-11.
  if (!r.newton_converged && gn <= 1e-11 * scale) r.newton_converged = true;
  r.V = V;
}
}  // namespace gfsim
