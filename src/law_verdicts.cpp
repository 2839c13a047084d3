#include "gfsim/law_verdicts.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "gfsim/verify_thresholds.hpp"

namespace gfsim {

std::string format_percent(double x) { return std::isfinite(x) ? fmt::format("{:.3g}%", 100 * x) : "n/a"; }

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

LawVerdict slope_law(const FlowLaws& f, double gamma, bool reference) {
  const VerifyThresholds& th = kVerifyThresholds;
  LawVerdict v{"rho_slope_" + f.flow,
               reference ? fmt::format("{}: rho = (1/gamma) log t + O(1), d rho/d log t -> 1/gamma", f.flow)
                         : fmt::format("{}: rho = (1/gamma) log t + O(1), gamma = limit of the normalized margin "
                                       "(no reference: margin(t_end) used)", f.flow),
               fmt::format("{:.6g}", 1 / gamma), fmt::format("{:.6g} (last 20% of log t)", f.slope_fit.slope), kNaN, ""};
  v.rel_error = std::abs(f.slope_fit.slope * gamma - 1);
  const auto& w = f.window_slope_rel_error;
  bool decreasing = w.size() >= 2;
  for (std::size_t i = 1; i < w.size(); ++i) decreasing = decreasing && w[i] <= w[i - 1] * 1.05 + 1e-12;
  if (v.rel_error < th.slope_rel_error) {
    v.verdict = "holds";
  } else if (v.rel_error < th.slope_rel_error_trend && decreasing) {
    v.verdict = fmt::format("holds with correction (slope error falls {} -> {} over the last half of log t: an "
                            "O(1/log t) correction to the slope)", format_percent(w.front()), format_percent(w.back()));
  } else {
    v.verdict = "fails";
  }
  return v;
}

LawVerdict direction_gd_law(const FlowLaws& f, double rtol) {
  const VerifyThresholds& th = kVerifyThresholds;
  LawVerdict v{"direction_gd", "gd: eps = ||v - v*|| = O(1/log t); fit C/(log t + b)",
               fmt::format("C/(log t + b) with max rel. residual < {}", format_percent(th.direction_max_rel_residual)), "", kNaN,
               ""};
  if (f.inv_log_b.points < 3) {
    v.measured = fmt::format("eps(t_end) = {:.3e}: below the solver floor {:.1e} on the fit range", f.eps_end,
                             th.eps_floor_over_rtol * rtol);
    v.verdict = "holds (eps at solver precision: faster than 1/log t)";
    return v;
  }
  v.measured = fmt::format("C = {:.4g}, b = {:.4g}, max rel. res. {} (R2 log {:.6f}); C/log t alone: C = {:.4g}, max "
                           "rel. res. {}; log t in [{:.3g}, {:.3g}]",
                           f.inv_log_b.C, f.inv_log_b.b, format_percent(f.inv_log_b.max_rel_residual), f.inv_log_b.r2,
                           f.inv_log.C, format_percent(f.inv_log.max_rel_residual), f.fit_log_t_min, f.fit_log_t_max);
  v.rel_error = f.inv_log_b.max_rel_residual;
  if (f.inv_log_b.C > 0 && v.rel_error < th.direction_max_rel_residual)
    v.verdict = "holds";
  else
    v.verdict = fmt::format("fails (C/(log t + b) misses by {}; for degenerate data the law is O(log log t / log t))",
                            format_percent(v.rel_error));
  return v;
}

LawVerdict direction_wn_law(const FlowLaws& f, double rtol) {
  const VerifyThresholds& th = kVerifyThresholds;
  LawVerdict v{"direction_wn", "wn: eps ~ t^(-(1/2) log t), i.e. log eps = a - (1/2) (log t)^2 (paper Eq. 22)",
               "log eps = a + c (log t)^p with p = 2, c = -1/2", "", kNaN, ""};
  const PowerLogFit& p = f.power;
  if (p.points < 4) {
    v.measured = fmt::format("eps below the solver floor {:.1e} at almost every sample", th.eps_floor_over_rtol * rtol);
    v.verdict = "not measured (eps at solver precision: use a smaller solver.rtol)";
    return v;
  }
  v.measured = fmt::format("p = {:.3f}, c = {:.4g}, a = {:.4g} (R2 {:.5f}); C/(log t + b): C = {:.4g}, b = {:.4g}, max "
                           "rel. res. {}; eps(t_end) = {:.3e}",
                           p.p, p.c, p.a, p.r2, f.inv_log_b.C, f.inv_log_b.b, format_percent(f.inv_log_b.max_rel_residual),
                           f.eps_end);
  v.rel_error = std::abs(p.p - 2.0) / 2.0;
  const bool quadratic = std::abs(p.p - 2.0) <= th.wn_exponent_tolerance && p.r2 > 0.98 && p.c < 0;
  if (quadratic && std::abs(p.c + 0.5) <= 0.5 * 0.2)
    v.verdict = "holds";
  else if (quadratic)
    v.verdict = fmt::format("holds with correction (log eps ~ {:.3g} (log t)^2, not -(1/2) (log t)^2)", p.c);
  else if (f.inv_log_b.C > 0 && f.inv_log_b.max_rel_residual < th.direction_max_rel_residual)
    v.verdict = fmt::format("fails (eps ~ C/(log t + b) with C = {:.3g}: the 1/log t rate of GD, not t^(-(1/2) log t); "
                            "the fixed-rho optimum itself approaches v* like 1/rho)", f.inv_log_b.C);
  else
    v.verdict = fmt::format("fails (best power law log eps = a + c (log t)^{:.2f})", p.p);
  return v;
}

LawVerdict margin_law(const FlowLaws& f, double gamma, bool have_gamma) {
  const VerifyThresholds& th = kVerifyThresholds;
  LawVerdict v{"margin_" + f.flow,
               fmt::format("{}: normalized margin eventually non-decreasing{}", f.flow, have_gamma ? ", -> gamma" : ""),
               have_gamma ? fmt::format("{:.6g}", gamma) : "non-decreasing", "", kNaN, ""};
  const double L = f.log_t.back(), L0 = std::max(0.0, f.log_t.front());
  const bool monotone_late = std::log(f.margin_monotone_from) <= L - 0.2 * (L - L0);
  v.measured = fmt::format("{:.6g} at t_end, non-decreasing from t = {:.3g}", f.margin_end, f.margin_monotone_from);
  if (!have_gamma) {
    v.verdict = monotone_late ? "holds" : "fails (still decreasing in the last 20% of log t)";
    return v;
  }
  v.rel_error = (gamma - f.margin_end) / gamma;
  if (monotone_late && std::abs(v.rel_error) < th.margin_rel_gap)
    v.verdict = "holds";
  else if (monotone_late && v.rel_error > 0 && v.rel_error < 5 * th.margin_rel_gap)
    v.verdict = fmt::format("holds with correction (gap {} at t_end, closing like eps ~ 1/log t)", format_percent(v.rel_error));
  else
    v.verdict = monotone_late ? fmt::format("fails (gap {} at t_end)", format_percent(v.rel_error))
                              : "fails (still decreasing in the last 20% of log t)";
  return v;
}

LawVerdict kkt_law(const FlowLaws& f) {
  const VerifyThresholds& th = kVerifyThresholds;
  LawVerdict v{"kkt_" + f.flow,
               f.flow + ": the direction tends to a KKT point of min ||theta||^2 s.t. y_n f(x_n; theta) >= 1 (Lyu-Li); "
                        "residual = max(stationarity, complementarity) by NNLS on points within 5% of q_min",
               fmt::format("-> 0 (< {} at t_end, falling)", format_percent(th.kkt_residual)), "", kNaN, ""};
  if (f.kkt_log_t.empty()) {
    v.measured = "no sample with all points classified correctly (q_min > 0)";
    v.verdict = "not measured (the data are never separated on this trajectory)";
    return v;
  }
  v.rel_error = f.kkt_end;
  const double first = std::max(f.kkt_stationarity.front(), f.kkt_complementarity.front());
  v.measured = fmt::format("residual {:.3e} at t = {:.3g} -> {:.3e} at t = {:.3g} (stationarity {:.3e}, "
                           "complementarity {:.3e}, {} near-active points, {} of them on ReLU kinks); last half: residual ~ "
                           "(log t)^{:.3f}",
                           first, std::exp(f.kkt_log_t.front()), f.kkt_end, std::exp(f.kkt_log_t.back()),
                           f.kkt_stationarity.back(), f.kkt_complementarity.back(), f.kkt_active.back(),
                           f.kkt_kink_points.back(), f.kkt_trend.slope);
  const bool falling = f.kkt_trend.points >= 3 && f.kkt_trend.slope < 0;
  if (f.kkt_end < th.kkt_residual && (falling || f.kkt_end < 1e-6))
    v.verdict = "holds";
  else if (falling && f.kkt_end < 5 * th.kkt_residual)
    v.verdict = fmt::format("holds with correction (residual {} at t_end, still falling like (log t)^{:.2f})",
                            format_percent(f.kkt_end), f.kkt_trend.slope);
  else if (falling)
    v.verdict = fmt::format("fails (residual {} at t_end; it falls like (log t)^{:.2f}, too slowly to reach a KKT point "
                            "within this horizon)", format_percent(f.kkt_end), f.kkt_trend.slope);
  else
    v.verdict = fmt::format("fails (residual {} at t_end and not falling)", format_percent(f.kkt_end));
  return v;
}

LawVerdict tracking_law(const FlowLaws& f, bool reference) {
  const VerifyThresholds& th = kVerifyThresholds;
  LawVerdict v{"fixed_rho_" + f.flow,
               f.flow + ": V(t) tracks the fixed-rho stationary direction V_rho at rho = rho(t) (gfsim stationary); "
                        "||V_rho - v*|| is the part of eps the flow cannot remove at that rho",
               reference ? fmt::format("||V - V_rho|| < {} of eps(t_end)", format_percent(th.stationary_tracking))
                         : "||V - V_rho|| < 1e-2 at t_end",
               "", kNaN, ""};
  if (f.stationary.empty()) {
    v.measured = "no sample with all points classified correctly";
    v.verdict = "not measured (the data are never separated on this trajectory)";
    return v;
  }
  for (const auto& d : f.stationary)
    if (d.method == StationarySolve::skipped_on_kinks)
      v.measured += fmt::format("{}t = {:.3g} (rho {:.4g}): {}", v.measured.empty() ? "" : "; ", d.t, d.rho, d.describe());
    else
      v.measured += fmt::format("{}t = {:.3g} (rho {:.4g}): ||V - V_rho|| = {:.3e}{}{}{}", v.measured.empty() ? "" : "; ",
                                d.t, d.rho, d.distance,
                                d.raw_distance > d.distance * (1 + 1e-6)
                                    ? fmt::format(" modulo hidden-layer rotations ({:.3e} without)", d.raw_distance)
                                    : "",
                                std::isfinite(d.optimum_to_reference)
                                    ? fmt::format(", ||V_rho - v*|| = {:.3e}", d.optimum_to_reference) : "",
                                d.converged ? "" : fmt::format(" (not converged: grad/scale {:.1e})", d.grad_rel));
  const auto& last = f.stationary.back();
  if (last.method == StationarySolve::skipped_on_kinks) {
    v.verdict = fmt::format("not measured (V(t) on {} ReLU kinks (Filippov sliding): the fixed-rho objective is not "
                            "differentiable there, Newton does not apply)", last.kinks_at_sample);
    return v;
  }
  if (!last.converged) {
    v.verdict = "not measured (the stationary-point solve did not converge at t_end)";
    return v;
  }
  const double bound = reference ? th.stationary_tracking * f.eps_end : 1e-2;
  v.rel_error = reference ? last.distance / f.eps_end : last.distance;
  bool falling = f.stationary.size() >= 2;
  for (std::size_t i = 1; i < f.stationary.size(); ++i) falling = falling && f.stationary[i].distance <= f.stationary[i - 1].distance;
  if (last.distance < bound)
    v.verdict = "holds";
  else if (falling)
    v.verdict = fmt::format("holds with correction (||V - V_rho|| falls to {:.2e}, not yet below {:.2e})", last.distance, bound);
  else
    v.verdict = fmt::format("fails (||V - V_rho|| = {:.2e} at t_end, not falling)", last.distance);
  return v;
}

LawVerdict not_measured(LawVerdict v, const FlowLaws& f) {
  v.verdict = fmt::format("not measured ({} flow stopped with status {} at t = {:.3g}: {})", f.flow,
                          status_name(f.run.result.status), f.run.result.t_final, f.run.result.message);
  v.measured = "(on the samples before the stop) " + v.measured;
  v.rel_error = kNaN;
  return v;
}

}  // namespace

std::vector<LawVerdict> judge_laws(const FlowLaws& gd, const FlowLaws& wn, double gamma, Index K, double rtol) {
  const bool has_reference = std::isfinite(gamma);
  std::vector<LawVerdict> laws_out;
  for (const FlowLaws* f : {&gd, &wn}) {
    std::vector<LawVerdict> laws;
    if (f->t.size() < 4) {
      // Nothing to fit: every law of this flow is listed as not measured, with the reason.
      std::vector<std::string> names{"rho_slope", has_reference ? "direction" : "",
                                     "margin"};
      if (K > 1) names.insert(names.end(), {"balance", "deep_rho", "kkt"});
      names.push_back("fixed_rho");
      for (const auto& n : names) {
        if (n.empty()) continue;
        LawVerdict l{n + "_" + f->flow, "see the other flow's entry", "", fmt::format("{} samples", f->t.size()), kNaN,
                     fmt::format("not measured (fewer than 4 samples with t > 0, t_final = {:.3g})",
                                 f->run.result.t_final)};
        laws_out.push_back(f->stopped_early ? not_measured(l, *f) : l);
      }
      continue;
    }
    if (has_reference) {
      laws.push_back(slope_law(*f, gamma, true));
      laws.push_back(f == &gd ? direction_gd_law(*f, rtol) : direction_wn_law(*f, rtol));
      laws.push_back(margin_law(*f, gamma, true));
    } else {
      if (f->margin_end > 0) laws.push_back(slope_law(*f, f->margin_end, false));
      laws.push_back(margin_law(*f, 0, false));
    }
    if (K > 1) {
      const double scale = 1.0 + (f->run.rho.size() ? f->run.rho.array().square().maxCoeff() : 0.0);
      LawVerdict b{"balance_" + f->flow, f->flow + ": ||W_k||^2 - ||W_1||^2 constant (Lemma 2)", "0",
                   fmt::format("max drift {:.3e} (max_k rho_k^2 = {:.3g})", f->run.balance_drift, scale - 1),
                   f->run.balance_drift / scale, ""};
      b.verdict = b.rel_error < 1e3 * rtol ? "holds" : "fails";
      laws.push_back(b);
      std::string exps;
      double worst = 0;
      for (double e : f->layer_exponents) {
        exps += fmt::format("{}{:.3f}", exps.empty() ? "" : ", ", e);
        worst = std::max(worst, std::abs(e * double(K) - 1));
      }
      LawVerdict d{"deep_rho_" + f->flow, f->flow + ": each rho_k grows like (log t)^(1/K)",
                   fmt::format("exponent 1/K = {:.3f}", 1.0 / double(K)),
                   fmt::format("d log rho_k / d log log t = {} (last 20% of log t)", exps), worst, ""};
      d.verdict = worst < 0.1   ? "holds"
                  : worst < 0.3 ? "holds with correction (log log t terms)"
                                : "fails";
      laws.push_back(d);
      laws.push_back(kkt_law(*f));
    }
    laws.push_back(tracking_law(*f, has_reference));
    for (auto& l : laws) laws_out.push_back(f->stopped_early ? not_measured(l, *f) : l);
  }
  if (K == 1)
    laws_out.push_back({"balance", "||W_k||^2 - ||W_j||^2 constant (Lemma 2)", "0", "K = 1: nothing to compare", kNaN,
                      "not applicable (K = 1)"});
  return laws_out;
}

}  // namespace gfsim
