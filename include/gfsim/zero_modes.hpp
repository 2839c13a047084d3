#pragma once
// Zero modes of the tangent Hessian explained by named mechanisms: exact families of stationary
// points that keep f and every layer norm (hidden-layer rotations of linear nets, ReLU units with
// parallel rows and columns, vanished or dead units). Each mechanism proposes analytic tangent
// vectors; those the Hessian annihilates are the verified null vectors.
#include <string>
#include <utility>
#include <vector>

#include "gfsim/network.hpp"
#include "gfsim/sphere.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

struct ZeroModeMechanism {
  std::string name;        ///< "orthogonal", "relu_group", "vanished"
  Index candidates = 0;    ///< analytic tangent vectors generated
  Index verified = 0;      ///< of which ||H v|| <= verify threshold
  Index span_dim = 0;      ///< dimension of the span of the verified vectors
  Index explained = 0;     ///< null-space dimension inside that span
  double max_residual = 0; ///< max ||H v||/||v|| over verified vectors
};

/// Analytic candidate null vectors (columns, tangent at V) of one mechanism.
Mat orthogonal_symmetry_vectors(const Network& net, const Vec& V);
Mat relu_group_vectors(const Network& net, const Vec& V, double tol = 1e-7);
Mat vanished_unit_vectors(const SphereProblem& sp, const Vec& V, double tol = 1e-9);

/// The candidates of every mechanism at V, by name (none for K = 1).
std::vector<std::pair<std::string, Mat>> zero_mode_candidates(const SphereProblem& sp, const Vec& V);

/// Explain the null space N (orthonormal P-space columns) by the candidates: per mechanism, the
/// candidates projected onto the tangent space (onto span(W) if W is given) span Q; the Hessian on Q
/// has a null space whose vectors with ||H v|| <= verify_rel * lmax are the verified analytic null
/// vectors. Fills `out` (one entry per mechanism), adds the Hessian products to `hvps`, and returns
/// the dimension of N inside the span of all verified vectors.
Index explain_null_space(const SphereProblem& sp, const Vec& V, const Mat& N,
                         const std::vector<std::pair<std::string, Mat>>& candidates, const Mat* W, double lmax,
                         double verify_rel, std::vector<ZeroModeMechanism>& out, Index& hvps);

}  // namespace gfsim
