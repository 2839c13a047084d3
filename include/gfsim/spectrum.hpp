#pragma once
// Extreme eigenvalues of a symmetric operator given only by matrix-vector products (Spectra,
// Lanczos with implicit restarts). Spectra lives in src/spectrum.cpp only.
//
//   SymOperator op{n, [&](const double* in, double* out) { ... }};
//   ExtremeEigs e = extreme_eigenvalues(op, 10, {.tol = 1e-12});
//   e.smallest / e.largest (ascending), e.info_smallest == "successful"
//
// The smallest eigenvalues are found as the largest of (sigma I - H) with sigma the largest
// eigenvalue of H (spectrum shift: no inverse needed, one matvec per Lanczos step). This is slow
// when the smallest eigenvalues are tightly clustered relative to the spectral width (e.g. many
// zero modes); the iteration count and CompInfo are always reported.
#include <functional>
#include <string>

#include "gfsim/types.hpp"

namespace gfsim {

struct SymOperator {
  Index n = 0;
  std::function<void(const double* in, double* out)> apply;  ///< out = H in (H symmetric)
};

struct ExtremeEigsOptions {
  double tol = 1e-12;      ///< Spectra's relative convergence tolerance
  Index max_iterations = 5000;
  Index ncv = 0;           ///< Krylov dimension; 0 = max(2 nev + 1, 40), capped at n
};

struct ExtremeEigs {
  Vec smallest, largest;          ///< ascending; sizes <= nev (converged pairs only)
  Mat smallest_vectors, largest_vectors;  ///< unit columns matching the values
  std::string info_smallest, info_largest;  ///< Spectra CompInfo: successful, not_converging, ...
  Index iterations_smallest = 0, iterations_largest = 0;
  Index matvecs = 0;              ///< products with H (both solves)
  double shift = 0;               ///< sigma used for the smallest end
};

/// nev smallest and nev largest eigenpairs of op (requires 2 <= nev < n - 1).
ExtremeEigs extreme_eigenvalues(const SymOperator& op, Index nev, const ExtremeEigsOptions& options = {});

}  // namespace gfsim
