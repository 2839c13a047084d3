#pragma once
// The asymptotic quantities of equations.md section 6 measured on one flow's recorded samples: the
// growth of rho and of each rho_k against log t, the distance eps of the direction to the max-margin
// reference and its fits (gfsim/law_fits.hpp), the normalized margin, the Lyu-Li KKT residual
// (gfsim/kkt.hpp), and the distance to the fixed-rho stationary direction at rho(t)
// (gfsim/stationary.hpp).
#include <array>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "gfsim/dataset.hpp"
#include "gfsim/law_fits.hpp"
#include "gfsim/max_margin.hpp"
#include "gfsim/network.hpp"
#include "gfsim/run.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// The recorded samples of one run: time, weights, per-layer norms, normalized margin.
struct SampleSeries {
  std::vector<double> t, margin;
  std::vector<Vec> theta, rho;
};

/// The problem the samples belong to.
struct LawProblem {
  const Network& net;
  const Dataset& data;
  LossKind loss;
};

/// How the fixed-rho stationary direction at a sample was found: Newton from V(t), the full
/// pipeline (flow (d) then Newton) when that did not converge, or not at all because V(t) sits on
/// ReLU kinks (Filippov sliding: the fixed-rho objective is not differentiable there).
enum class StationarySolve { newton_from_sample, flow_and_newton, skipped_on_kinks };
inline constexpr std::array<std::string_view, 3> kStationarySolveNames{"newton from V(t)", "flow + newton", "skipped"};
inline std::string_view to_string(StationarySolve s) { return kStationarySolveNames[std::size_t(s)]; }

/// What was measured on one flow's samples.
struct FlowLaws {
  std::string flow;                  ///< "gd" or "wn"
  std::vector<double> t, log_t, rho, margin, eps;  ///< samples with t > 0 (eps empty without v*)
  std::vector<std::vector<double>> rho_k;          ///< per-layer norms, [k][sample]
  LineFit slope_fit;                 ///< rho vs log t on the last 20% of log t
  std::vector<double> window_log_t, window_slope_rel_error;  ///< slope error on successive windows
  InverseLogFit inv_log, inv_log_b;  ///< eps fits: C/log t and C/(log t + b)
  PowerLogFit power;                 ///< log eps vs powers of log t
  double fit_log_t_min = 0, fit_log_t_max = 0;  ///< range of log t used by the eps fits
  double eps_end = std::numeric_limits<double>::quiet_NaN();
  double margin_end = 0, margin_monotone_from = 0;  ///< first t after which the margin is non-decreasing
  std::vector<double> layer_exponents;  ///< K > 1: d log rho_k / d log log t on the last 20%
  // Lyu-Li KKT residual (gfsim/kkt.hpp) at a subset of the samples with q_min > 0.
  std::vector<double> kkt_log_t, kkt_stationarity, kkt_complementarity, kkt_active, kkt_kink_points;
  LineFit kkt_trend;                   ///< log residual vs log log t on the last half of the KKT samples
  double kkt_end = std::numeric_limits<double>::quiet_NaN();
  // Distance to the fixed-rho stationary direction V_rho at rho = rho(t) (gfsim/stationary.hpp).
  struct StationaryDistance {
    double t = 0, rho = 0;
    double distance = 0;          ///< ||V(t) - V_rho||, V = per-layer unit directions concatenated; deep
                                  ///< linear nets: to the orbit of V_rho under hidden-layer rotations
    double raw_distance = 0;      ///< ||V(t) - V_rho|| without the symmetry reduction
    double optimum_to_reference = std::numeric_limits<double>::quiet_NaN();  ///< ||dir(V_rho) - v*||
    double grad_rel = 0;          ///< final Riemannian gradient / loss scale
    bool converged = false;
    StationarySolve method = StationarySolve::newton_from_sample;
    Index kinks_at_sample = 0;    ///< skipped_on_kinks: (unit, point) pairs of V(t) on ReLU kinks
    /// The method in words ("newton from V(t)", "flow + newton", "skipped: V(t) on N ReLU kinks").
    std::string describe() const;
  };
  std::vector<StationaryDistance> stationary;
  bool stopped_early = false;          ///< the run did not reach t_end (status != success)
  RunReport run;
};

/// Direction compared with v*: theta itself for K = 1, the end-to-end vector of a deep linear net.
Vec reference_direction(const LawProblem& pb, const Vec& theta);

/// Measures f (f.flow and f.run set by the caller) on the samples: the series with t > 0, the
/// fits, the KKT residual and the stationary distances. `mm` is the max-margin reference (nullptr
/// without one); `rtol` the solver tolerance of the run (eps below 100 rtol is noise).
void measure_flow_laws(FlowLaws& f, const SampleSeries& samples, const MaxMarginResult* mm, double rtol,
                       const LawProblem& pb);

}  // namespace gfsim
