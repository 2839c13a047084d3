#pragma once
// ReLU kink surfaces of the fixed-rho problem: the sets h_j(c V) = 0 where a hidden pre-activation
// (unit, point) vanishes. A flow that slides (Filippov) or stalls on kinks ends on such surfaces, and
// the stationary point is then one of F restricted to them: its tangent space is the sphere tangent
// space minus the kink normals.
#include <vector>

#include "gfsim/flow.hpp"
#include "gfsim/sphere.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// Indices (into Flow::preactivations) with |h| <= rel * max|h|.
std::vector<Index> kink_indices(const Flow& flow, const Vec& V, double rel);

/// Orthonormal basis (P x dim) of the tangent space of the spheres and of the kink surfaces
/// h_j = 0, j in `kinks`; `rank` = rank of the kink normals on the sphere tangent space.
Mat kink_surface_basis(const SphereProblem& sp, const Vec& V, const std::vector<Index>& kinks, Index* rank = nullptr);

/// V pulled back onto h_j = 0 (j in `kinks`) after a step off the surfaces: minimum-norm
/// Gauss-Newton corrections on the sphere tangent space, then the retraction.
Vec restore_kinks(const SphereProblem& sp, Vec V, const std::vector<Index>& kinks);

}  // namespace gfsim
