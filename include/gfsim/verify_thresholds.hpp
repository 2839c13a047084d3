#pragma once
// The fixed thresholds of `gfsim verify` (models/README.md): what the measurements use and where a
// law's verdict changes. Not tuned per data set.

namespace gfsim {

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

}  // namespace gfsim
