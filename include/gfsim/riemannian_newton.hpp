#pragma once
// Riemannian Newton on the sphere product: Hess xi = -grad on the tangent space (dense saddle-free
// pseudo-inverse for small problems, MINRES with Hessian-vector products otherwise), retraction
// V_k <- (V_k + xi_k)/||V_k + xi_k||, a step-halving safeguard on ||grad||; on kink surfaces
// (r.newton_kinks) the same in the surfaces' tangent space, with the point pulled back onto them.
#include "gfsim/sphere.hpp"
#include "gfsim/stationary_result.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// Newton polish only (appends to r.grad_norms etc.; r.V is the start and the result).
void newton_polish(const SphereProblem& sp, StationaryResult& r, const StationaryOptions& options);

/// Newton step on the tangent space (minus Hess^-1 grad): dense pseudo-inverse with |lambda|
/// (saddle-free) when `dense`, else MINRES with HVPs (the minimum-norm solution).
Vec newton_step(const SphereProblem& sp, const Vec& V, const Vec& grad, bool dense, const StationaryOptions& options,
                int& inner_iterations);

}  // namespace gfsim
