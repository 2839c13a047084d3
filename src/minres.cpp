#include "gfsim/minres.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gfsim {

// Lanczos tridiagonalization with a QR factorization of the tridiagonal matrix updated by Givens
// rotations (the unpreconditioned form of SciPy's and Paige-Saunders' minres).
MinresResult minres(const std::function<void(const Vec& v, Vec& Av)>& apply, const Vec& b,
                    const MinresOptions& o) {
  const Index n = b.size();
  MinresResult r;
  r.x = Vec::Zero(n);
  const double beta1 = b.norm();
  if (!(beta1 > 0)) {
    r.converged = true;
    return r;
  }
  const Index max_it = o.max_iterations > 0 ? o.max_iterations : 5 * n;
  Vec r1 = b, r2 = b, y = b, v(n), w = Vec::Zero(n), w1(n), w2 = Vec::Zero(n);
  double oldb = 0, beta = beta1, dbar = 0, epsln = 0, phibar = beta1, cs = -1, sn = 0;
  for (Index it = 1; it <= max_it; ++it) {
    v = y / beta;
    apply(v, y);
    if (it >= 2) y -= (beta / oldb) * r1;
    const double alfa = v.dot(y);
    y -= (alfa / beta) * r2;
    r1.swap(r2);
    r2 = y;
    oldb = beta;
    beta = y.norm();
    const double oldeps = epsln;
    const double delta = cs * dbar + sn * alfa;
    const double gbar = sn * dbar - cs * alfa;
    epsln = sn * beta;
    dbar = -cs * beta;
    const double gamma = std::max(std::hypot(gbar, beta), std::numeric_limits<double>::epsilon());
    cs = gbar / gamma;
    sn = beta / gamma;
    const double phi = cs * phibar;
    phibar = sn * phibar;
    w1.swap(w2);
    w2.swap(w);
    w = (v - oldeps * w1 - delta * w2) / gamma;
    r.x += phi * w;
    r.iterations = it;
    r.residual = phibar;
    if (phibar <= o.rtol * beta1) {
      r.converged = true;
      break;
    }
    if (!(beta > 0)) {  // invariant Krylov space: the solution in it is exact
      r.converged = true;
      break;
    }
  }
  return r;
}

}  // namespace gfsim
