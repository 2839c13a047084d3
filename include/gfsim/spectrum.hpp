#pragma once
// Extreme eigenvalues of a symmetric operator given only by matrix-vector products (Spectra,
// Lanczos with implicit restarts). Spectra lives in src/spectrum.cpp only.
//
//   SymOperator op{n, [&](const double* in, double* out) { ... }};
//   ExtremeEigs e = extreme_eigenvalues(op, 10, {.tol = 1e-12});
//   e.smallest / e.largest (ascending), e.info_smallest == "successful"
//
// The smallest eigenvalues: first estimated as the largest of (lambda_max I - H) (no inverse, one
// matvec per Lanczos step; but it may report success while missing copies of an exactly repeated
// eigenvalue, measured: 2 of 8 zero copies of a 12-fold zero block, and it is slow when the low end
// is clustered relative to the spectral width). By default (automatic) that result stands unless
// it did not converge or holds a repeated value; then shift-invert: Lanczos on (H - sigma I)^{-1},
// sigma just below that estimate, MINRES inner solves, which finds the multiplicities (about 15x
// the products at P = 10500 without clusters: 11042 vs 783). Counts and CompInfo always reported.
#include <functional>
#include <string>

#include "gfsim/types.hpp"

namespace gfsim {

struct SymOperator {
  Index n = 0;
  std::function<void(const double* in, double* out)> apply;  ///< out = H in (H symmetric)
};

enum class SmallestMethod {
  automatic,     ///< flip; then shift_invert if it did not converge or found a repeated eigenvalue
  flip,          ///< Lanczos on sigma I - H (one product per step; slow for clustered low ends)
  shift_invert,  ///< Lanczos on (H - sigma I)^{-1}, inner MINRES solves (robust to clusters)
};

struct ExtremeEigsOptions {
  double tol = 1e-12;      ///< Spectra's relative convergence tolerance
  Index max_iterations = 5000;
  Index ncv = 0;           ///< Krylov dimension; 0 = max(2 nev + 1, 40), capped at n
  SmallestMethod smallest = SmallestMethod::automatic;
  double cluster_rel = 1e-8;   ///< automatic: |lambda_i+1 - lambda_i| <= cluster_rel * max|lambda| is a repeat
  double shift_offset = 1e-3;  ///< shift-invert: sigma = (estimated lambda_min) - shift_offset * max|lambda|
  double inner_rtol = 1e-13;   ///< shift-invert: relative residual of the inner MINRES solves
};

struct ExtremeEigs {
  Vec smallest, largest;          ///< ascending; sizes <= nev (converged pairs only)
  Mat smallest_vectors, largest_vectors;  ///< unit columns matching the values
  std::string info_smallest, info_largest;  ///< Spectra CompInfo: successful, not_converging, ...
  Index iterations_smallest = 0, iterations_largest = 0;
  Index matvecs = 0;              ///< products with H (both solves)
  double shift = 0;               ///< sigma of the flipped operator sigma I - H (= lambda_max)
  double sigma = 0;               ///< shift-invert: the shift (NaN-free only when used)
  Index inner_solves = 0;         ///< shift-invert: MINRES solves (their products are in matvecs)
  bool used_shift_invert = false; ///< the smallest end comes from shift-invert
};

/// nev smallest and nev largest eigenpairs of op (requires 2 <= nev < n - 1).
ExtremeEigs extreme_eigenvalues(const SymOperator& op, Index nev, const ExtremeEigsOptions& options = {});

}  // namespace gfsim
