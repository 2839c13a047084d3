#pragma once
// `gfsim run`: one model file -> one trajectory file. Builds data, network and flow from a
// ModelSpec, resolves the automatic choices (method, clock), integrates with output at
// log-spaced times, records every sample to HDF5 and returns what the summary table shows.
//
//   auto spec = load_model_spec("models/linear_exp.toml", {"time.t_end=1e100"});
//   RunReport report = run_model(spec, {.progress = isatty(2)});
//   print_summary(std::cout, report);
#include <atomic>
#include <functional>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "gfsim/build.hpp"
#include "gfsim/dataset.hpp"
#include "gfsim/flow.hpp"
#include "gfsim/integrate.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/recorder.hpp"
#include "gfsim/result.hpp"
#include "gfsim/run_resume.hpp"

namespace gfsim {

struct RunReport {
  SolveResult result;
  std::string output_path;
  std::int64_t samples = 0;
  Index spectrum_samples = 0;  ///< [spectrum] samples stored in /observables/hessian_eigs
  Vec rho;                  ///< per-layer norms at t_final
  FlowDiagnostics final;    ///< log loss, normalized margin, gradient norm at t_final
  /// Generalization observables at t_final (generalization.hpp), (name, value) in record order.
  std::vector<std::pair<std::string, double>> generalization;
  double balance_drift = 0; ///< max_k |(rho_k^2 - rho_1^2)(t) - (...)(0)| over the samples
  Index num_params = 0, state_size = 0;
  std::string network;      ///< e.g. "10-16-1 relu"
  std::string flow, loss;
  bool uses_events = false;         ///< ReLU network integrated with kink events
  std::int64_t kink_crossings = 0, sliding_entries = 0, sliding_exits = 0;
  double sliding_time = 0;          ///< summed over sliding (unit, point) pairs, physical time
  bool screening = false;           ///< [solver] screening = true
  std::int64_t screens = 0;         ///< full passes that re-chose the kept points
  Index kept_points = 0;            ///< points kept at the end
};

/// [solver] screening: the certified budget per unit of log clock, as a fraction of atol
/// (equations.md section 9).
inline constexpr double kScreeningFraction = 1e-3;

struct RunOptions {
  bool progress = false;                          ///< a \r progress line on stderr
  const std::atomic<bool>* stop_requested = nullptr;  ///< set by a signal handler: stop cleanly
  /// Optional in-memory sink, called at every recorded sample (after it is appended to the file):
  /// time, theta (theta layout), per-layer norms rho_k, normalized margin. Used by `gfsim verify`.
  std::function<void(double t, const Vec& theta, const Vec& rho, double margin)> on_sample;
  /// Optional: called after every accepted solver step with the physical time reached and the
  /// counters so far (RHS evaluations, ...). Used by `gfsim compare` for the cost of reaching a time.
  std::function<void(double t, const SolverCounters& counters)> on_step;
  /// Optional: writes further groups into the output file before it closes (e.g. /verify), so
  /// that no module re-opens the file. Called once the run is over, with its complete report.
  std::function<void(h5::File& file, const RunReport& report)> write_extra_groups;
  /// Optional: continue the run stored in resume->path (read_resume_point; `spec` is resume->spec)
  /// from its last complete sample: the file is rewritten with its stored samples and events, then
  /// the continuation, under the same lock and rename as a new run (recorder.hpp).
  const ResumePoint* resume = nullptr;
};

/// Run the model. Throws SpecError / IoError for bad input; numerical outcomes are in the status.
RunReport run_model(const ModelSpec& spec, const RunOptions& options = {});

void print_summary(std::ostream& out, const RunReport& report);

}  // namespace gfsim
