#pragma once
// `gfsim stationary MODEL`: find_stationary at the model's rho (or --rho), or a log-spaced sweep
// in rho with continuation (--rho-sweep a:b:n) plus a fit of the smallest nonzero eigenvalue's decay
// and a comparison with a long gradient-descent run (Lemma 3); writes STEM_stationary.h5
// (docs/file-format.md) and prints a summary.
#include <iosfwd>
#include <string>
#include <vector>

#include "gfsim/model_spec.hpp"
#include "gfsim/stationary_result.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

struct StationaryCliOptions {
  double rho = 0;                  ///< 0: the model's flow.rho
  std::string rho_sweep;           ///< "a:b:n" log-spaced, empty = none
  std::string output;              ///< empty: <output.path stem>_stationary.h5
  StationaryOptions numerics;
};

struct SweepPoint {
  double rho = 0, lambda_min = 0, lambda_max = 0, lambda_min_nonzero = 0, margin = 0, grad = 0;
  Index n_zero = 0, n_negative = 0;
  std::string verdict;
  Vec eigenvalues;  ///< the tangent spectrum at this rho (dense: all; Spectra: the extremes)
  Vec direction;    ///< the stationary direction V at this rho
  /// Lemma 3: a long gradient-descent run from the model's initial weights passes rho(t) = rho at
  /// time gd_time; gd_distance = ||V_gd(gd_time) - V|| (NaN when the run never reaches rho).
  double gd_time = 0, gd_distance = 0;
};

struct StationaryReport {
  std::string output_path, network, loss;
  Index P = 0, K = 0, n = 0;
  StationaryResult result;          ///< at rho (or at the last sweep rho)
  std::vector<SweepPoint> sweep;
  std::string sweep_fit;            ///< law fitted to lambda_min_nonzero(rho)
};

/// Throws SpecError / IoError for bad input.
StationaryReport stationary_model(const ModelSpec& spec, const StationaryCliOptions& options);
void print_stationary_summary(std::ostream& out, const StationaryReport& report);

}  // namespace gfsim
