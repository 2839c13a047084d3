#pragma once
// `gfsim verify`: the asymptotic laws of docs/equations.md section 6, measured on one model.
// Runs the GD flow and the WN flow from the same start (run_model on copies of the spec, outputs
// STEM_gd.h5 and STEM_wn.h5), computes the max-margin reference independently of the trajectories
// (linear nets of any depth: gfsim::max_margin on the signed points, compared with the end-to-end
// vector), measures each law on the recorded samples, and for K > 1 the Lyu-Li KKT residual
// (gfsim/kkt.hpp); at a few sample times it solves for the fixed-rho stationary direction at rho(t)
// (gfsim/stationary.hpp). Each law gets a verdict with fixed, documented thresholds
// (gfsim/verify_thresholds.hpp, models/README.md). Both runs go to the model's time.t_end.
// The verdict table is printed, written as /verify into STEM_gd.h5 and as JSON to STEM.json
// (gfsim/verify_output.hpp).
//
//   auto spec = load_model_spec("models/verify_closed_form.toml");
//   VerifyReport r = verify_model(spec, {.output = "out/cf.h5"});
//   print_verify(std::cout, r);
#include <atomic>
#include <string>
#include <vector>

#include "gfsim/law_fits.hpp"
#include "gfsim/law_measurement.hpp"
#include "gfsim/law_verdicts.hpp"
#include "gfsim/max_margin.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/orbit_distance.hpp"
#include "gfsim/types.hpp"
#include "gfsim/verify_thresholds.hpp"

namespace gfsim {

struct VerifyReport {
  std::string model_name, gd_path, wn_path, json_path;
  Index K = 1;
  double t_end = 0;  ///< the horizon of both runs: the model's time.t_end
  std::string loss;
  std::string activation;
  bool has_reference = false;  ///< linear network (any K): max-margin SVM of the z_n computed; for K > 1
                               ///< eps and margins refer to the end-to-end vector W_K ... W_1
  MaxMarginResult mm;
  std::vector<Index> near_support;        ///< z_n.v* within 5% of gamma (support vectors included)
  std::vector<double> near_margins, near_exponents;  ///< z_n.v*, and m_n/gamma - 1
  FlowLaws gd, wn;
  std::vector<LawVerdict> laws;
  double wall_seconds = 0;
  std::vector<std::string> notes;  ///< what was not measured, and why
};

struct VerifyOptions {
  std::string output;  ///< FILE: outputs FILE-stem_gd.h5, _wn.h5, .json; empty = spec.output.path
  bool progress = false;
  const std::atomic<bool>* stop_requested = nullptr;
};

/// Run and measure, to the model's horizon time.t_end; writes the JSON report and the /verify group
/// (gfsim/verify_output.hpp). Throws SpecError (bad input, non-separable data) and IoError.
VerifyReport verify_model(const ModelSpec& spec, const VerifyOptions& options = {});

}  // namespace gfsim
