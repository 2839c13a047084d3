#pragma once
// The spectrum of the Riemannian Hessian on a tangent space of the sphere product (the spheres'
// own, or that of the active kink surfaces too): eigenvalues, residuals, inertia under the zero
// rule |lambda| <= zero_rel * max|lambda|, the zero modes' explanation and the curvature class.
#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "gfsim/sphere.hpp"
#include "gfsim/types.hpp"
#include "gfsim/zero_modes.hpp"

namespace gfsim {

/// How the spectrum was computed: every eigenvalue (dense), or the extremes only (Spectra).
enum class SpectrumMethod { none, dense, spectra };
inline constexpr std::array<std::string_view, 3> kSpectrumMethodNames{"none", "dense", "spectra"};
inline std::string_view to_string(SpectrumMethod m) { return kSpectrumMethodNames[std::size_t(m)]; }

/// Curvature class from the inertia: hyperbolic (no zero, no negative eigenvalue), degenerate
/// (zero modes, none negative: not hyperbolic), saddle (negative modes: not a minimum).
enum class Curvature { hyperbolic, degenerate, saddle };
inline constexpr std::array<std::string_view, 3> kCurvatureNames{"hyperbolic", "degenerate", "saddle"};
inline std::string_view to_string(Curvature c) { return kCurvatureNames[std::size_t(c)]; }

struct TangentSpectrum {
  Vec eigenvalues;  ///< ascending (dense: all; Spectra: the smallest then the largest)
  Vec residuals;    ///< ||H x - lambda x|| (HVP-based) for each eigenvalue
  Index n_negative = 0, n_zero = 0, n_positive = 0;
  double zero_threshold = 0;  ///< |lambda| <= zero_threshold counts as zero
  Index null_dim = 0, explained = 0, unexplained = 0;
  std::vector<ZeroModeMechanism> mechanisms;
  Curvature curvature = Curvature::hyperbolic;
  std::string verdict;  ///< the curvature class in words, with the zero modes' explanation

  /// Counts the inertia with threshold `zero_threshold` and sets the curvature class; returns the
  /// indices of the zero eigenvalues.
  std::vector<Index> classify(double zero_threshold);
  /// Sets verdict from the inertia and the mechanisms ("at least" when only extremes are known).
  void describe(bool partial);
};

/// B^T Hess B (m x m, m = P - K, symmetrized) in the implicit orthonormal tangent basis B at V
/// (TangentBasis): m Riemannian Hessian products, O(m^2) memory (B is never formed; the dense
/// spectrum route and its benchmark).
Mat tangent_hessian_matrix(const SphereProblem& sp, const Vec& V);

/// The k smallest then the k largest eigenvalues (ascending within each end) of the Riemannian
/// Hessian on the tangent space at V (any V, stationary or not): dense up to tangent dimension
/// dense_max, else Spectra (shift-invert low end). NaN where the tangent dimension is below k.
Vec tangent_extreme_eigenvalues(const SphereProblem& sp, const Vec& V, Index k, Index dense_max = 2000,
                                Index* hvps = nullptr);

}  // namespace gfsim
