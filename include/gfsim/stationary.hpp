#pragma once
// Stationary points of the fixed-rho flow (d) on the product of unit spheres (equations.md section
// 7) and the spectrum of the Riemannian Hessian there (gfsim/sphere.hpp for the geometry).
//
// Pipeline (find_stationary): integrate flow (d) in the log clock until the Riemannian gradient is
// below flow_tol * loss_scale (run_flow_phase), then Riemannian Newton (gfsim/riemannian_newton.hpp)
// until the gradient is at round-off; then the tangent spectrum (dense or Spectra), the zero modes
// and their explanation by named mechanisms (gfsim/zero_modes.hpp), ReLU kinks and the spectrum on
// their surfaces (gfsim/kink_surface.hpp), and the hyperbolicity verdict.
//
//   Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, rho);
//   StationaryResult r = find_stationary(flow, V0, {});
//   std::cout << r.verdict;
#include "gfsim/flow.hpp"
#include "gfsim/kink_surface.hpp"
#include "gfsim/riemannian_newton.hpp"
#include "gfsim/sphere.hpp"
#include "gfsim/stationary_result.hpp"
#include "gfsim/tangent_spectrum.hpp"
#include "gfsim/types.hpp"
#include "gfsim/zero_modes.hpp"

namespace gfsim {

/// The whole pipeline at flow.fixed_rho() from the direction V0 (normalized per layer first):
/// locate_stationary, then analyse_stationary.
/// ReLU flows run with kink events (crossings; a stop stalled on a kink ends the flow phase there,
/// and Newton continues on that kink surface); the pattern is cleared again on return.
StationaryResult find_stationary(Flow& flow, const Vec& V0, const StationaryOptions& options);
/// The point only: flow phase and Newton polish (r.V, flow_* and Newton fields, log_loss, margin,
/// loss_scale); no spectrum (its cost grows faster than the point's at large P: benchmarks).
StationaryResult locate_stationary(Flow& flow, const Vec& V0, const StationaryOptions& options);

/// The flow phase alone: flow (d) from the unit direction V (r.rho set) until the gradient is below
/// flow_tol * loss_scale; sets r.flow_* (and r.newton_kinks when it ends on kinks) and returns the
/// direction where it stopped (normalized).
Vec run_flow_phase(Flow& flow, const Vec& V, const StationaryOptions& options, StationaryResult& r);

/// Spectrum, inertia, zero modes, kinks, verdict at r.V.
void analyse_stationary(const SphereProblem& sp, StationaryResult& r, const StationaryOptions& options);

}  // namespace gfsim
