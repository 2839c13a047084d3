#pragma once
// A verdict per asymptotic law (holds / holds with correction / fails / not measured) from what was
// measured on the gd and wn flows (gfsim/law_measurement.hpp), with the fixed thresholds of
// gfsim/verify_thresholds.hpp.
#include <limits>
#include <string>
#include <vector>

#include "gfsim/law_measurement.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

struct LawVerdict {
  std::string law;        ///< short id: rho_slope_gd, direction_gd, ...
  std::string statement;  ///< the law as stated
  std::string expected;   ///< expected value (text)
  std::string measured;   ///< measured value (text)
  double rel_error = std::numeric_limits<double>::quiet_NaN();
  std::string verdict;    ///< "holds", "holds with correction (...)", "fails", "not measured (...)"
};

/// The verdicts of every law on both flows. `gamma` is the max-margin reference (NaN without one:
/// ReLU nets, whose rho slope is compared with 1/margin(t_end)); K the depth; rtol the solver's.
std::vector<LawVerdict> judge_laws(const FlowLaws& gd, const FlowLaws& wn, double gamma, Index K, double rtol);

/// Percentage with 3 significant digits, "n/a" when not finite.
std::string format_percent(double x);

}  // namespace gfsim
