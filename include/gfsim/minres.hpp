#pragma once
// MINRES (Paige & Saunders 1975) for A x = b with A symmetric, possibly indefinite or singular,
// given only by products: the Newton system of the Riemannian Hessian on the tangent space and the
// shift-invert solves of the spectrum. For singular A with b in range(A) and x_0 = 0 the iterates
// stay in the Krylov space of b, inside range(A), so the limit is the minimum-norm solution.
//
//   MinresResult r = minres([&](const Vec& v, Vec& Av) { Av = H * v; }, b, {.rtol = 1e-12});
#include <functional>

#include "gfsim/types.hpp"

namespace gfsim {

struct MinresOptions {
  double rtol = 1e-12;       ///< stop when the residual estimate <= rtol ||b||
  Index max_iterations = 0;  ///< 0 = 5 * size
};

struct MinresResult {
  Vec x;
  Index iterations = 0;
  double residual = 0;  ///< MINRES's estimate of ||b - A x||
  bool converged = false;
};

MinresResult minres(const std::function<void(const Vec& v, Vec& Av)>& apply, const Vec& b,
                    const MinresOptions& options = {});

}  // namespace gfsim
