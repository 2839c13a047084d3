#pragma once
// `gfsim verify`: the asymptotic laws of docs/equations.md section 6, measured on one model.
// Runs the GD flow and the WN flow from the same start (run_model on copies of the spec, outputs
// STEM_gd.h5 and STEM_wn.h5), computes the max-margin reference independently of the trajectories
// (linear nets of any depth: gfsim::max_margin on the signed points, compared with the end-to-end
// vector), measures each law on the recorded samples, and for K > 1 the Lyu-Li KKT residual
// (gfsim/kkt.hpp); at a few sample times it solves for the fixed-rho stationary direction at rho(t)
// (gfsim/stationary.hpp). Each law gets a verdict with fixed, documented thresholds
// (kVerifyThresholds below, models/README.md).
// The verdict table is printed, written as /verify into STEM_gd.h5 and as JSON to STEM.json.
//
//   auto spec = load_model_spec("models/verify_closed_form.toml", {"time.t_end=1e100"});
//   VerifyReport r = verify_model(spec, {.output = "out/cf.h5"});
//   print_verify(std::cout, r);
#include <atomic>
#include <iosfwd>
#include <limits>
#include <string>
#include <vector>

#include "gfsim/max_margin.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/network.hpp"
#include "gfsim/run.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

// ---- estimators (exposed for tests) --------------------------------------------------------------

/// Ordinary least squares y = slope x + intercept.
struct LineFit {
  double slope = 0, intercept = 0, r2 = 0;
  Index points = 0;
};
LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y);

/// eps ~ C / (log t + b) by relative least squares (minimises sum ((C f - eps)/eps)^2, f = 1/(log t + b)):
/// closed form for C given b, b by a scan plus golden-section refinement over b > -min(log t).
/// fit_b = false fixes b = 0 (the plain C/log t law). r2 is computed on log eps.
struct InverseLogFit {
  double C = 0, b = 0, r2 = 0, max_rel_residual = std::numeric_limits<double>::infinity();
  Index points = 0;
};
InverseLogFit fit_inverse_log(const std::vector<double>& log_t, const std::vector<double>& eps, bool fit_b);

/// log eps = a + c (log t)^p: p on a grid in [0.1, 4] (step 0.005) then golden refinement, a and c by
/// least squares for each p. The paper's WN law eps ~ t^(-(1/2) log t) is p = 2, c = -1/2.
struct PowerLogFit {
  double a = 0, c = 0, p = 0, r2 = 0, max_abs_residual = 0;
  Index points = 0;
};
PowerLogFit fit_power_log(const std::vector<double>& log_t, const std::vector<double>& log_eps);

/// Deep linear nets (K > 1): f is invariant under W_k -> Q_k W_k Q_{k-1}^T for orthogonal Q_k on every hidden
/// layer (Q_0 = I, Q_K = 1), and so is every fixed-rho stationary set. Distance from B to the orbit of A:
/// min over the Q_k of ||(Q_k A_k Q_{k-1}^T)_k - B||, by alternating orthogonal Procrustes (each Q_k given
/// the others: Q_k = V U^T from the SVD U S V^T of its coupling matrix), `sweeps` sweeps from Q_k = I.
/// The result is <= ||A - B|| and is 0 on the orbit (up to the convergence of the sweeps).
double orthogonal_orbit_distance(const Network& net, const Vec& A, const Vec& B, int sweeps = 50);

// ---- verify ----------------------------------------------------------------------------------------

/// Fixed verdict thresholds (not tuned per data set).
struct VerifyThresholds {
  double slope_rel_error = 0.05;        ///< rho slope holds: |slope - 1/gamma| gamma < 5% on the last 20% of log t
  double slope_rel_error_trend = 0.25;  ///< ... holds with correction: < 25% and decreasing over the last windows
  double direction_max_rel_residual = 0.10;  ///< GD direction holds: C/(log t + b) max rel. residual < 10%
  double margin_rel_gap = 0.05;         ///< margin holds: (gamma - margin(t_end))/gamma < 5% and monotone
  double wn_exponent_tolerance = 0.25;  ///< WN law holds: fitted p within 2 +- 0.25 and r2 > 0.98
  double near_support_fraction = 0.05;  ///< near-support: z_n.v* <= (1 + 5%) gamma
  double eps_floor_over_rtol = 100.0;   ///< eps below 100 rtol is solver noise: excluded from fits
  double kkt_active_gap = 0.05;         ///< KKT residual uses points with q_n <= (1 + 5%) q_min
  double kkt_residual = 0.05;           ///< KKT law holds: residual(t_end) < 5% and falling over the last half;
                                        ///< with correction: < 25% and falling
  double stationary_tracking = 0.10;    ///< tracking holds: ||V(t_end) - V_rho|| < 10% of the start-to-end
                                        ///< distance scale (eps(t_end) with a reference, else 1e-2 absolute)
  int stationary_samples = 4;           ///< fixed-rho stationary directions at 4 log-spaced sample times
  int kkt_max_samples = 300;            ///< KKT residual at <= 300 samples (evenly spaced in the sample list)
};
inline constexpr VerifyThresholds kVerifyThresholds{};

struct LawVerdict {
  std::string law;        ///< short id: rho_slope_gd, direction_gd, ...
  std::string statement;  ///< the law as stated
  std::string expected;   ///< expected value (text)
  std::string measured;   ///< measured value (text)
  double rel_error = std::numeric_limits<double>::quiet_NaN();
  std::string verdict;    ///< "holds", "holds with correction (...)", "fails", "not measured (...)"
};

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
    std::string method;           ///< "newton from V(t)" or "flow + newton"
  };
  std::vector<StationaryDistance> stationary;
  bool stopped_early = false;          ///< the run did not reach t_end (status != success)
  RunReport run;
};

struct VerifyReport {
  std::string model_name, gd_path, wn_path, json_path;
  Index K = 1;
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

/// Run and measure. Throws SpecError (bad input, non-separable data) and IoError.
VerifyReport verify_model(const ModelSpec& spec, const VerifyOptions& options = {});
void print_verify(std::ostream& out, const VerifyReport& report);
std::string verify_json(const VerifyReport& report);

}  // namespace gfsim
