#pragma once
// `gfsim compare MODEL --flows gd,wn,...`: every listed flow from the same initial weights (hence
// the same initial direction), and per flow the time t, RHS evaluations and wall time it needs to
// bring the relative margin gap (gamma - margin)/gamma and the direction error below 1e-2, 1e-3,
// 1e-4, with the rates fitted to both against t and against log t (issue 15).
// Reference: linear networks (any K) the independent max-margin solution (max_margin.hpp): gamma
// and v*, the direction error ||v(t) - v*|| of the end-to-end vector. ReLU nets (no independent
// reference): the direction error is the Lyu-Li KKT residual (kkt.hpp), and gamma is the largest
// normalized margin any compared flow reached (stated in the report).
//
//   CompareReport r = compare_model(spec, {.flows = {FlowKind::gd, FlowKind::wn}});
//   print_compare(std::cout, r);   // JSON written to r.json_path
#include <atomic>
#include <limits>
#include <string>
#include <vector>

#include "gfsim/enums.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/run.hpp"

namespace gfsim {

inline constexpr double kCompareThresholds[3] = {1e-2, 1e-3, 1e-4};

/// values ~ C t^-power, values ~ C (log t)^-log_power and values ~ C e^{-exp_rate t}: least-squares
/// lines of log value against log t, log log t and t, on the samples with t >= e and value > floor
/// in the last half of their log t range.
struct RateFit {
  double power = std::numeric_limits<double>::quiet_NaN(), power_r2 = 0;
  double log_power = std::numeric_limits<double>::quiet_NaN(), log_power_r2 = 0;
  double exp_rate = std::numeric_limits<double>::quiet_NaN(), exp_rate_r2 = 0;
  Index points = 0;
};
RateFit fit_rates(const std::vector<double>& t, const std::vector<double>& values, double floor);

/// The first index from which values[i] <= threshold at every later index (the quantity has been
/// brought below it for good); -1 when the last value is above it.
Index first_index_below_for_good(const std::vector<double>& values, double threshold);

/// When a series first went below a threshold for good: at sample t, and what it had cost then.
struct Reach {
  double threshold = 0;
  bool reached = false;
  double t = std::numeric_limits<double>::quiet_NaN();
  double rhs_evals = std::numeric_limits<double>::quiet_NaN();  ///< up to the step that reached t
  double wall_seconds = std::numeric_limits<double>::quiet_NaN();  ///< from the start of the integration
};

struct FlowComparison {
  std::string flow, output_path;
  RunReport run;
  std::vector<double> t, margin, gap, direction_error, rhs_evals, wall_seconds;  ///< samples with t > 0
  std::vector<Reach> gap_reach, direction_reach;  ///< one per kCompareThresholds entry
  RateFit gap_rate, direction_rate;
};

struct CompareReport {
  std::string model_name, json_path;
  Index K = 1;
  bool has_reference = false;  ///< linear network: independent max-margin reference
  double gamma = 0;            ///< reference margin (see above)
  std::string direction_measure;  ///< "direction error ||v - v*||" or "KKT residual"
  double floor = 0;            ///< values below this (100 rtol) are solver noise: not fitted
  std::vector<FlowComparison> flows;
  std::vector<std::string> notes;
  double wall_seconds = 0;
};

struct CompareOptions {
  std::vector<FlowKind> flows;
  std::string output;  ///< FILE: writes FILE-stem_<flow>.h5 and FILE-stem_compare.json (default output.path)
  bool progress = false;
  const std::atomic<bool>* stop_requested = nullptr;
};

/// "gd,wn,..." -> flow kinds; SpecError naming --flows for an unknown or repeated name.
std::vector<FlowKind> parse_flow_list(const std::string& list);

/// Runs the flows and measures them. Throws SpecError for bad input (e.g. no flow); a flow whose run
/// stops early is measured on the samples it has, with a note.
CompareReport compare_model(const ModelSpec& spec, const CompareOptions& options);

/// The report as JSON (keys in a fixed order; NaN as null), written to report.json_path by compare_model.
std::string compare_json(const CompareReport& report);
void print_compare(std::ostream& out, const CompareReport& report);

}  // namespace gfsim
