#include "gfsim/verify.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>

#include <Eigen/SVD>

#include "gfsim/build.hpp"
#include "gfsim/dataset.hpp"
#include "gfsim/hdf5_file.hpp"
#include "gfsim/kkt.hpp"
#include "gfsim/network.hpp"
#include "gfsim/recorder.hpp"
#include "gfsim/stationary.hpp"

namespace gfsim {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double mean(const std::vector<double>& v) {
  return v.empty() ? kNaN : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

// Golden-section minimisation of f on [lo, hi].
template <class F>
double golden_min(F&& f, double lo, double hi, int iterations = 100) {
  const double g = 0.5 * (std::sqrt(5.0) - 1.0);
  double a = lo, b = hi, c = b - g * (b - a), d = a + g * (b - a);
  double fc = f(c), fd = f(d);
  for (int i = 0; i < iterations && (b - a) > 1e-12 * (1 + std::abs(a) + std::abs(b)); ++i) {
    if (fc < fd) {
      b = d, d = c, fd = fc, c = b - g * (b - a), fc = f(c);
    } else {
      a = c, c = d, fc = fd, d = a + g * (b - a), fd = f(d);
    }
  }
  return fc < fd ? c : d;
}

// For a shift b: C minimising sum ((C f_i - e_i)/e_i)^2 and that sum.
std::pair<double, double> inverse_log_cost(const std::vector<double>& lt, const std::vector<double>& eps, double b) {
  double sff = 0, sf = 0;
  for (std::size_t i = 0; i < lt.size(); ++i) {
    const double r = 1.0 / ((lt[i] + b) * eps[i]);
    sff += r * r, sf += r;
  }
  const double C = sf / sff;
  double cost = 0;
  for (std::size_t i = 0; i < lt.size(); ++i) {
    const double r = C / ((lt[i] + b) * eps[i]) - 1.0;
    cost += r * r;
  }
  return {C, cost};
}

std::string escape_json(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) out += fmt::format("\\u{:04x}", int(ch));
        else out += ch;
    }
  }
  return out;
}

std::string json_number(double x) { return std::isfinite(x) ? fmt::format("{:.17g}", x) : "null"; }

std::string json_array(const std::vector<double>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + json_number(v[i]);
  return out + "]";
}

std::string fmt_pct(double x) { return std::isfinite(x) ? fmt::format("{:.3g}%", 100 * x) : "n/a"; }

}  // namespace

// ---- estimators ------------------------------------------------------------------------------------

LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y) {
  LineFit fit;
  fit.points = Index(x.size());
  if (x.size() < 2 || x.size() != y.size()) {
    fit.slope = fit.intercept = fit.r2 = kNaN;
    return fit;
  }
  const double mx = mean(x), my = mean(y);
  double sxx = 0, sxy = 0, syy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxx += (x[i] - mx) * (x[i] - mx), sxy += (x[i] - mx) * (y[i] - my), syy += (y[i] - my) * (y[i] - my);
  }
  fit.slope = sxy / sxx;
  fit.intercept = my - fit.slope * mx;
  fit.r2 = syy > 0 ? sxy * sxy / (sxx * syy) : 1.0;
  return fit;
}

InverseLogFit fit_inverse_log(const std::vector<double>& log_t, const std::vector<double>& eps, bool fit_b) {
  InverseLogFit fit;
  fit.points = Index(log_t.size());
  if (log_t.size() < (fit_b ? 3u : 2u)) return fit;
  double b = 0;
  if (fit_b) {
    const double lmin = *std::min_element(log_t.begin(), log_t.end());
    const double lmax = *std::max_element(log_t.begin(), log_t.end());
    // b + lmin ranges over (0, 1e4 (1 + lmax)): scan log-spaced offsets, then refine.
    const double lo = 1e-6 * (1 + std::abs(lmin)), hi = 1e4 * (1 + std::abs(lmax));
    double best_x = 0, best_cost = std::numeric_limits<double>::infinity();
    const int n_scan = 600;
    for (int i = 0; i <= n_scan; ++i) {
      const double x = std::log(lo) + (std::log(hi) - std::log(lo)) * i / n_scan;
      const double cost = inverse_log_cost(log_t, eps, std::exp(x) - lmin).second;
      if (cost < best_cost) best_cost = cost, best_x = x;
    }
    const double step = (std::log(hi) - std::log(lo)) / n_scan;
    const double x = golden_min([&](double x) { return inverse_log_cost(log_t, eps, std::exp(x) - lmin).second; },
                                best_x - step, best_x + step);
    b = std::exp(x) - lmin;
  }
  fit.b = b;
  fit.C = inverse_log_cost(log_t, eps, b).first;
  double max_rel = 0, ss_res = 0, ss_tot = 0;
  std::vector<double> le(eps.size());
  for (std::size_t i = 0; i < eps.size(); ++i) le[i] = std::log(eps[i]);
  const double mle = mean(le);
  for (std::size_t i = 0; i < eps.size(); ++i) {
    const double model = fit.C / (log_t[i] + b);
    max_rel = std::max(max_rel, std::abs(model - eps[i]) / eps[i]);
    const double r = std::log(model) - le[i];
    ss_res += r * r, ss_tot += (le[i] - mle) * (le[i] - mle);
  }
  fit.max_rel_residual = max_rel;
  fit.r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : 1.0;
  return fit;
}

PowerLogFit fit_power_log(const std::vector<double>& log_t, const std::vector<double>& log_eps) {
  PowerLogFit fit;
  fit.points = Index(log_t.size());
  if (log_t.size() < 4) {
    fit.a = fit.c = fit.p = fit.r2 = fit.max_abs_residual = kNaN;
    return fit;
  }
  auto solve = [&](double p) {
    std::vector<double> x(log_t.size());
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::pow(log_t[i], p);
    return fit_line(x, log_eps);
  };
  auto cost = [&](double p) {
    const LineFit l = solve(p);
    double ss = 0;
    for (std::size_t i = 0; i < log_t.size(); ++i) {
      const double r = l.intercept + l.slope * std::pow(log_t[i], p) - log_eps[i];
      ss += r * r;
    }
    return std::isfinite(ss) ? ss : std::numeric_limits<double>::infinity();
  };
  double best_p = 0.1, best = std::numeric_limits<double>::infinity();
  for (double p = 0.1; p <= 4.0 + 1e-12; p += 0.005) {
    const double c = cost(p);
    if (c < best) best = c, best_p = p;
  }
  const double p = golden_min(cost, std::max(0.05, best_p - 0.005), best_p + 0.005);
  const LineFit l = solve(p);
  fit.p = p, fit.a = l.intercept, fit.c = l.slope, fit.r2 = l.r2;
  for (std::size_t i = 0; i < log_t.size(); ++i)
    fit.max_abs_residual =
        std::max(fit.max_abs_residual, std::abs(fit.a + fit.c * std::pow(log_t[i], p) - log_eps[i]));
  return fit;
}

double orthogonal_orbit_distance(const Network& net, const Vec& A, const Vec& B, int sweeps) {
  const Index K = net.num_layers();
  auto layer = [&](const Vec& x, Index k) { return Mat(net.layer(x, k)); };
  std::vector<Mat> a, b, Q(std::size_t(K + 1));
  for (Index k = 0; k < K; ++k) a.push_back(layer(A, k)), b.push_back(layer(B, k));
  for (Index k = 0; k <= K; ++k) Q[std::size_t(k)] = Mat::Identity(net.widths()[std::size_t(k)], net.widths()[std::size_t(k)]);
  auto distance = [&] {
    double d2 = 0;
    for (Index k = 0; k < K; ++k)
      d2 += (Q[std::size_t(k + 1)] * a[std::size_t(k)] * Q[std::size_t(k)].transpose() - b[std::size_t(k)]).squaredNorm();
    return std::sqrt(d2);
  };
  if (K < 2) return distance();
  for (int s = 0; s < sweeps; ++s) {
    for (Index j = 1; j < K; ++j) {
      const std::size_t u = std::size_t(j);
      // Terms with Q_j: ||Q_j A_{j-1} Q_{j-1}^T - B_{j-1}||^2 + ||Q_{j+1} A_j Q_j^T - B_j||^2; maximize tr(Q_j M).
      const Mat M = a[u - 1] * Q[u - 1].transpose() * b[u - 1].transpose() +
                    a[u].transpose() * Q[u + 1].transpose() * b[u];
      Eigen::JacobiSVD<Mat> svd(M, Eigen::ComputeFullU | Eigen::ComputeFullV);
      Q[u] = svd.matrixV() * svd.matrixU().transpose();
    }
  }
  return std::min(distance(), (A - B).norm());
}

// ---- measurement on one flow -----------------------------------------------------------------------

namespace {

struct Collected {
  std::vector<double> t, margin;
  std::vector<Vec> theta, rho;
};

struct Problem {
  const Network& net;
  const Dataset& data;
  LossKind loss;
};

// Direction compared with v*: theta itself for K = 1, the end-to-end vector of a deep linear net.
Vec reference_direction(const Problem& pb, const Vec& theta) {
  const Vec beta = pb.net.num_layers() == 1 ? theta : end_to_end(pb.net, theta);
  return beta / beta.norm();
}

void measure_kkt(FlowLaws& f, const Collected& c, const Problem& pb) {
  const VerifyThresholds& th = kVerifyThresholds;
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < c.t.size(); ++i)
    if (c.t[i] >= 1.0 && c.margin[i] > 0) idx.push_back(i);
  const std::size_t stride = std::max<std::size_t>(1, (idx.size() + th.kkt_max_samples - 1) / th.kkt_max_samples);
  for (std::size_t j = 0; j < idx.size(); ++j) {
    if (j % stride != 0 && j + 1 != idx.size()) continue;
    const std::size_t i = idx[j];
    const KktResidual r = kkt_residual(pb.net, pb.data, c.theta[i], th.kkt_active_gap);
    if (!r.defined) continue;
    f.kkt_log_t.push_back(std::log(c.t[i]));
    f.kkt_stationarity.push_back(r.stationarity);
    f.kkt_complementarity.push_back(r.complementarity);
    f.kkt_active.push_back(double(r.active.size()));
    f.kkt_kink_points.push_back(double(r.kink_points));
  }
  if (f.kkt_log_t.empty()) return;
  f.kkt_end = std::max(f.kkt_stationarity.back(), f.kkt_complementarity.back());
  std::vector<double> x, y;
  for (std::size_t i = f.kkt_log_t.size() / 2; i < f.kkt_log_t.size(); ++i) {
    const double res = std::max(f.kkt_stationarity[i], f.kkt_complementarity[i]);
    if (f.kkt_log_t[i] > 1.0 && res > 0) x.push_back(std::log(f.kkt_log_t[i])), y.push_back(std::log(res));
  }
  f.kkt_trend = fit_line(x, y);
}

void measure_stationary(FlowLaws& f, const Collected& c, const Problem& pb, const MaxMarginResult* mm) {
  const VerifyThresholds& th = kVerifyThresholds;
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < c.t.size(); ++i)
    if (c.t[i] >= 1.0 && c.margin[i] > 0) idx.push_back(i);
  if (idx.empty()) return;
  const double L0 = std::log(c.t[idx.front()]), L1 = std::log(c.t[idx.back()]);
  std::vector<std::size_t> picks;
  for (int k = 1; k <= th.stationary_samples; ++k) {
    const double target = L0 + (L1 - L0) * double(k) / th.stationary_samples;
    std::size_t best = idx.front();
    for (std::size_t i : idx)
      if (std::abs(std::log(c.t[i]) - target) < std::abs(std::log(c.t[best]) - target)) best = i;
    if (picks.empty() || picks.back() != best) picks.push_back(best);
  }
  for (std::size_t i : picks) {
    const double rho = c.rho[i].cwiseAbs().prod();
    Flow flow(pb.net, pb.data, pb.loss, FlowKind::fixed_rho, rho);
    const SphereProblem sp(flow);
    const Vec V = sp.normalize(c.theta[i]);
    StationaryOptions so;
    FlowLaws::StationaryDistance d;
    d.t = c.t[i], d.rho = rho;
    if (pb.net.activation() == Activation::relu && pb.net.num_layers() > 1) {
      // A gd trajectory that slides on kinks (Filippov) sits where the fixed-rho objective is not
      // differentiable: Newton does not apply, and a smooth stationary point need not exist nearby.
      Network::Workspace ws;
      pb.net.forward(V, pb.data.X.transpose(), ws);
      Index on_kink = 0;
      for (Index k = 0; k + 1 < pb.net.num_layers(); ++k) {
        const Mat& h = ws.pre[std::size_t(k)];
        on_kink += (h.array().abs() <= so.kink_rel * h.cwiseAbs().maxCoeff()).count();
      }
      if (on_kink > 0) {
        d.method = fmt::format("skipped: V(t) on {} ReLU kinks", on_kink);
        d.distance = d.raw_distance = d.grad_rel = kNaN;
        f.stationary.push_back(d);
        continue;
      }
    }
    // Newton from V(t) first (cheap, and V(t) is close to V_rho late in the run); the full pipeline
    // (flow (d) to near-stationarity, then Newton) when Newton alone does not converge.
    StationaryResult r;
    r.rho = rho;
    r.V = V;
    newton_polish(sp, r, so);
    const double scale = sp.loss_scale(r.V);
    double grad = sp.gradient(r.V).norm();
    d.method = "newton from V(t)";
    if (!(grad <= 1e-10 * scale) || !r.V.allFinite()) {
      so.flow_max_steps = 2000;
      r = find_stationary(flow, V, so);
      grad = sp.gradient(r.V).norm();
      d.method = "flow + newton";
    }
    d.grad_rel = grad / sp.loss_scale(r.V);
    d.converged = d.grad_rel <= 1e-8;
    d.raw_distance = (r.V - V).norm();
    d.distance = pb.net.activation() == Activation::linear && pb.net.num_layers() > 1
                     ? orthogonal_orbit_distance(pb.net, r.V, V)
                     : d.raw_distance;
    if (mm) d.optimum_to_reference = (reference_direction(pb, r.V) - mm->direction).norm();
    f.stationary.push_back(d);
  }
}

void analyze(FlowLaws& f, const Collected& c, const MaxMarginResult* mm, double rtol, const Problem& pb) {
  const VerifyThresholds& th = kVerifyThresholds;
  const Index K = pb.net.num_layers();
  for (std::size_t i = 0; i < c.t.size(); ++i) {
    if (!(c.t[i] > 0)) continue;
    f.t.push_back(c.t[i]);
    f.log_t.push_back(std::log(c.t[i]));
    f.rho.push_back(c.rho[i].cwiseAbs().prod());  // WN: rho_k may turn negative (v -> -v)
    f.margin.push_back(c.margin[i]);
    if (mm) f.eps.push_back((reference_direction(pb, c.theta[i]) - mm->direction).norm());
  }
  f.rho_k.assign(std::size_t(K), {});
  for (std::size_t i = 0; i < c.t.size(); ++i)
    if (c.t[i] > 0)
      for (Index k = 0; k < K; ++k) f.rho_k[std::size_t(k)].push_back(std::abs(c.rho[i][k]));
  if (f.t.size() < 4) return;
  const double L = f.log_t.back(), L0 = std::max(0.0, f.log_t.front()), span = L - L0;
  auto select = [&](double lo, double hi, const std::vector<double>& ys, std::vector<double>& xs_out,
                    std::vector<double>& ys_out) {
    xs_out.clear(), ys_out.clear();
    for (std::size_t i = 0; i < f.log_t.size(); ++i)
      if (f.log_t[i] >= lo - 1e-12 && f.log_t[i] <= hi + 1e-12) xs_out.push_back(f.log_t[i]), ys_out.push_back(ys[i]);
  };
  std::vector<double> xs, ys;
  select(L - 0.2 * span, L, f.rho, xs, ys);
  f.slope_fit = fit_line(xs, ys);
  // Without a reference (ReLU) the slope is compared with 1/margin(t_end): the normalized margin converges.
  const double gamma_ref = mm ? mm->gamma : f.margin.back();
  if (gamma_ref > 0) {
    for (int w = 0; w < 5; ++w) {
      const double lo = L - 0.5 * span + 0.1 * w * span;
      select(lo, lo + 0.1 * span, f.rho, xs, ys);
      const LineFit lf = fit_line(xs, ys);
      f.window_log_t.push_back(lo + 0.05 * span);
      f.window_slope_rel_error.push_back(std::abs(lf.slope * gamma_ref - 1.0));
    }
  }
  if (mm) {
    // eps fits: log t in [L0 + 10% of the range, L], eps above the solver floor.
    const double floor = th.eps_floor_over_rtol * rtol;
    auto eps_range = [&](double lo, std::vector<double>& lt, std::vector<double>& e) {
      lt.clear(), e.clear();
      for (std::size_t i = 0; i < f.log_t.size(); ++i)
        if (f.log_t[i] >= lo && f.eps[i] > floor) lt.push_back(f.log_t[i]), e.push_back(f.eps[i]);
    };
    std::vector<double> lt, e;
    eps_range(std::max(1.0, L0 + 0.1 * span), lt, e);
    if (lt.size() < 6) eps_range(1.0, lt, e);
    if (!lt.empty()) f.fit_log_t_min = lt.front(), f.fit_log_t_max = lt.back();
    f.inv_log = fit_inverse_log(lt, e, false);
    f.inv_log_b = fit_inverse_log(lt, e, true);
    std::vector<double> le(e.size());
    for (std::size_t i = 0; i < e.size(); ++i) le[i] = std::log(e[i]);
    f.power = fit_power_log(lt, le);
    f.eps_end = f.eps.back();
  }
  f.margin_end = f.margin.back();
  f.margin_monotone_from = f.t.front();
  for (std::size_t i = f.margin.size() - 1; i-- > 0;)
    if (f.margin[i + 1] < f.margin[i] - 10 * rtol * std::abs(f.margin[i])) {
      f.margin_monotone_from = f.t[i + 1];
      break;
    }
  if (K > 1) {
    for (Index k = 0; k < K; ++k) {
      std::vector<double> x, y;
      for (std::size_t i = 0; i < f.log_t.size(); ++i)
        if (f.log_t[i] >= std::max(1.0, L - 0.2 * span)) {
          x.push_back(std::log(f.log_t[i]));
          y.push_back(std::log(f.rho_k[std::size_t(k)][i]));
        }
      f.layer_exponents.push_back(fit_line(x, y).slope);
    }
  }
  measure_kkt(f, c, pb);
  measure_stationary(f, c, pb, mm);
}

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
                            "O(1/log t) correction to the slope)", fmt_pct(w.front()), fmt_pct(w.back()));
  } else {
    v.verdict = "fails";
  }
  return v;
}

LawVerdict direction_gd_law(const FlowLaws& f, double rtol) {
  const VerifyThresholds& th = kVerifyThresholds;
  LawVerdict v{"direction_gd", "gd: eps = ||v - v*|| = O(1/log t); fit C/(log t + b)",
               fmt::format("C/(log t + b) with max rel. residual < {}", fmt_pct(th.direction_max_rel_residual)), "", kNaN,
               ""};
  if (f.inv_log_b.points < 3) {
    v.measured = fmt::format("eps(t_end) = {:.3e}: below the solver floor {:.1e} on the fit range", f.eps_end,
                             th.eps_floor_over_rtol * rtol);
    v.verdict = "holds (eps at solver precision: faster than 1/log t)";
    return v;
  }
  v.measured = fmt::format("C = {:.4g}, b = {:.4g}, max rel. res. {} (R2 log {:.6f}); C/log t alone: C = {:.4g}, max "
                           "rel. res. {}; log t in [{:.3g}, {:.3g}]",
                           f.inv_log_b.C, f.inv_log_b.b, fmt_pct(f.inv_log_b.max_rel_residual), f.inv_log_b.r2,
                           f.inv_log.C, fmt_pct(f.inv_log.max_rel_residual), f.fit_log_t_min, f.fit_log_t_max);
  v.rel_error = f.inv_log_b.max_rel_residual;
  if (f.inv_log_b.C > 0 && v.rel_error < th.direction_max_rel_residual)
    v.verdict = "holds";
  else
    v.verdict = fmt::format("fails (C/(log t + b) misses by {}; for degenerate data the law is O(log log t / log t))",
                            fmt_pct(v.rel_error));
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
                           p.p, p.c, p.a, p.r2, f.inv_log_b.C, f.inv_log_b.b, fmt_pct(f.inv_log_b.max_rel_residual),
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
    v.verdict = fmt::format("holds with correction (gap {} at t_end, closing like eps ~ 1/log t)", fmt_pct(v.rel_error));
  else
    v.verdict = monotone_late ? fmt::format("fails (gap {} at t_end)", fmt_pct(v.rel_error))
                              : "fails (still decreasing in the last 20% of log t)";
  return v;
}

LawVerdict kkt_law(const FlowLaws& f) {
  const VerifyThresholds& th = kVerifyThresholds;
  LawVerdict v{"kkt_" + f.flow,
               f.flow + ": the direction tends to a KKT point of min ||theta||^2 s.t. y_n f(x_n; theta) >= 1 (Lyu-Li); "
                        "residual = max(stationarity, complementarity) by NNLS on points within 5% of q_min",
               fmt::format("-> 0 (< {} at t_end, falling)", fmt_pct(th.kkt_residual)), "", kNaN, ""};
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
                            fmt_pct(f.kkt_end), f.kkt_trend.slope);
  else if (falling)
    v.verdict = fmt::format("fails (residual {} at t_end; it falls like (log t)^{:.2f}, too slowly to reach a KKT point "
                            "within this horizon)", fmt_pct(f.kkt_end), f.kkt_trend.slope);
  else
    v.verdict = fmt::format("fails (residual {} at t_end and not falling)", fmt_pct(f.kkt_end));
  return v;
}

LawVerdict tracking_law(const FlowLaws& f, bool reference) {
  const VerifyThresholds& th = kVerifyThresholds;
  LawVerdict v{"fixed_rho_" + f.flow,
               f.flow + ": V(t) tracks the fixed-rho stationary direction V_rho at rho = rho(t) (gfsim stationary); "
                        "||V_rho - v*|| is the part of eps the flow cannot remove at that rho",
               reference ? fmt::format("||V - V_rho|| < {} of eps(t_end)", fmt_pct(th.stationary_tracking))
                         : "||V - V_rho|| < 1e-2 at t_end",
               "", kNaN, ""};
  if (f.stationary.empty()) {
    v.measured = "no sample with all points classified correctly";
    v.verdict = "not measured (the data are never separated on this trajectory)";
    return v;
  }
  for (const auto& d : f.stationary)
    if (d.method.rfind("skipped", 0) == 0)
      v.measured += fmt::format("{}t = {:.3g} (rho {:.4g}): {}", v.measured.empty() ? "" : "; ", d.t, d.rho, d.method);
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
  if (last.method.rfind("skipped", 0) == 0) {
    v.verdict = fmt::format("not measured ({} (Filippov sliding): the fixed-rho objective is not differentiable "
                            "there, Newton does not apply)", last.method.substr(9));
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

void write_h5(const VerifyReport& r, const std::string& json) {
  auto file = h5::File::open(r.gd_path, h5::Access::read_write);
  {
    auto g = file.create_group("verify");
    g.set_string_attr("json", json);
    g.set_string_attr("wn_file", r.wn_path);
    g.set_int64_attr("K", r.K);
    g.set_double_attr("wall_seconds", r.wall_seconds);
    if (r.has_reference) {
      g.set_double_attr("gamma", r.mm.gamma);
      auto vec = [](const Vec& v) { return std::vector<double>(v.data(), v.data() + v.size()); };
      g.write_dataset("v_star", vec(r.mm.direction));
      g.write_dataset("w_hat", vec(r.mm.w_hat));
      g.write_dataset("alpha", vec(r.mm.alpha));
      std::vector<double> idx(r.near_support.begin(), r.near_support.end());
      if (!idx.empty()) {
        g.write_dataset("near_support/index", idx);
        g.write_dataset("near_support/margin", r.near_margins);
        g.write_dataset("near_support/exponent", r.near_exponents);
      }
    }
    for (const FlowLaws* f : {&r.gd, &r.wn}) {
      if (f->log_t.empty()) continue;
      g.write_dataset(f->flow + "/log_t", f->log_t);
      g.write_dataset(f->flow + "/rho", f->rho);
      g.write_dataset(f->flow + "/margin", f->margin);
      if (!f->eps.empty()) g.write_dataset(f->flow + "/eps", f->eps);
      for (std::size_t k = 0; k < f->rho_k.size(); ++k) g.write_dataset(fmt::format("{}/rho_{}", f->flow, k + 1), f->rho_k[k]);
      if (!f->kkt_log_t.empty()) {
        g.write_dataset(f->flow + "/kkt/log_t", f->kkt_log_t);
        g.write_dataset(f->flow + "/kkt/stationarity", f->kkt_stationarity);
        g.write_dataset(f->flow + "/kkt/complementarity", f->kkt_complementarity);
        g.write_dataset(f->flow + "/kkt/active", f->kkt_active);
      }
      if (!f->stationary.empty()) {
        std::vector<double> t, rho, dist, raw, opt;
        for (const auto& d : f->stationary)
          t.push_back(d.t), rho.push_back(d.rho), dist.push_back(d.distance), raw.push_back(d.raw_distance),
              opt.push_back(d.optimum_to_reference);
        g.write_dataset(f->flow + "/stationary/raw_distance", raw);
        g.write_dataset(f->flow + "/stationary/t", t);
        g.write_dataset(f->flow + "/stationary/rho", rho);
        g.write_dataset(f->flow + "/stationary/distance", dist);
        g.write_dataset(f->flow + "/stationary/optimum_to_reference", opt);
      }
    }
    for (const auto& law : r.laws) {
      auto lg = g.create_group("laws/" + law.law);
      lg.set_string_attr("statement", law.statement);
      lg.set_string_attr("expected", law.expected);
      lg.set_string_attr("measured", law.measured);
      lg.set_double_attr("rel_error", law.rel_error);
      lg.set_string_attr("verdict", law.verdict);
    }
  }
  file.close();
}

}  // namespace

// ---- verify ----------------------------------------------------------------------------------------

VerifyReport verify_model(const ModelSpec& spec, const VerifyOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  VerifyReport r;
  r.model_name = spec.name;
  r.loss = to_string(spec.loss.kind);
  namespace fs = std::filesystem;
  const fs::path out = options.output.empty() ? fs::path(spec.output.path) : fs::path(options.output);
  const fs::path dir = out.parent_path();
  const std::string stem = out.stem().string();
  r.gd_path = (dir / (stem + "_gd.h5")).string();
  r.wn_path = (dir / (stem + "_wn.h5")).string();
  r.json_path = (dir / (stem + ".json")).string();
  if (!dir.empty()) fs::create_directories(dir);

  const Dataset data = make_dataset(spec);
  r.K = Index(spec.network.hidden.size()) + 1;
  r.activation = to_string(spec.network.activation);
  const Network net = exact_network(spec, data.dim());
  if (spec.network.activation == Activation::linear) {
    // Independent reference: throws SpecError for non-separable data (with the certificate). For a deep
    // linear net f = beta(theta) . x, and the max-margin problem in parameter space is solved by balanced
    // rank-1 factorizations of the SVM direction: the same reference for the end-to-end vector beta.
    try {
      r.mm = max_margin(data.signed_points());
    } catch (const SpecError& e) {
      throw SpecError(fmt::format("verify: the data of model '{}' have no max-margin reference: {}", spec.name, e.what()));
    }
    r.has_reference = true;
    const double gamma = r.mm.gamma;
    for (Index n = 0; n < data.n(); ++n)
      if (r.mm.margins[n] <= (1 + kVerifyThresholds.near_support_fraction) * gamma) {
        r.near_support.push_back(n);
        r.near_margins.push_back(r.mm.margins[n]);
        r.near_exponents.push_back(r.mm.margins[n] / gamma - 1);
      }
    if (r.K > 1)
      r.notes.push_back("deep linear net: v(t), eps and the margin refer to the end-to-end vector W_K ... W_1");
  } else {
    r.notes.push_back("ReLU net: no independent max-margin reference (non-convex); the rho slope is compared with "
                      "1/margin(t_end), and convergence in direction with the Lyu-Li KKT residual");
  }
  const Problem pb{net, data, spec.loss.kind};
  if (spec.dynamics.kinks == KinkMode::smooth && net.num_layers() > 1 && net.activation() == Activation::relu)
    r.notes.push_back("dynamics.kinks = \"smooth\" replaced by \"events\": the laws are checked on the exact ReLU flow");

  for (FlowLaws* f : {&r.gd, &r.wn}) {
    f->flow = f == &r.gd ? "gd" : "wn";
    std::vector<std::string> overrides{fmt::format("flow.kind=\"{}\"", f->flow),
                                       fmt::format("output.path=\"{}\"", f == &r.gd ? r.gd_path : r.wn_path)};
    if (spec.time.samples_per_decade < 4) overrides.push_back("time.samples_per_decade=4");
    // The laws are those of the ReLU flow, and wn needs a homogeneous net: exact kinks.
    if (spec.dynamics.kinks == KinkMode::smooth) overrides.push_back("dynamics.kinks=\"events\"");
    const ModelSpec s = parse_model_spec(spec.resolved_toml, spec.source_path.empty() ? spec.name : spec.source_path,
                                         overrides);
    Collected c;
    RunOptions ro;
    ro.progress = options.progress;
    ro.stop_requested = options.stop_requested;
    ro.on_sample = [&](double t, const Vec& theta, const Vec& rho, double margin) {
      c.t.push_back(t), c.theta.push_back(theta), c.rho.push_back(rho), c.margin.push_back(margin);
    };
    f->run = run_model(s, ro);
    f->stopped_early = f->run.result.status != Status::success;
    if (f->stopped_early)
      r.notes.push_back(fmt::format("{} flow ended with status {} at t = {:.3g} ({}): its laws are not measured", f->flow,
                                    status_name(f->run.result.status), f->run.result.t_final, f->run.result.message));
    analyze(*f, c, r.has_reference ? &r.mm : nullptr, s.solver.rtol, pb);
  }

  const double rtol = spec.solver.rtol;
  for (const FlowLaws* f : {&r.gd, &r.wn}) {
    std::vector<LawVerdict> laws;
    if (f->t.size() < 4) {
      // Nothing to fit: every law of this flow is listed as not measured, with the reason.
      std::vector<std::string> names{"rho_slope", r.has_reference ? "direction" : "",
                                     "margin"};
      if (r.K > 1) names.insert(names.end(), {"balance", "deep_rho", "kkt"});
      names.push_back("fixed_rho");
      for (const auto& n : names) {
        if (n.empty()) continue;
        LawVerdict l{n + "_" + f->flow, "see the other flow's entry", "", fmt::format("{} samples", f->t.size()), kNaN,
                     fmt::format("not measured (fewer than 4 samples with t > 0, t_final = {:.3g})",
                                 f->run.result.t_final)};
        r.laws.push_back(f->stopped_early ? not_measured(l, *f) : l);
      }
      continue;
    }
    if (r.has_reference) {
      laws.push_back(slope_law(*f, r.mm.gamma, true));
      laws.push_back(f == &r.gd ? direction_gd_law(*f, rtol) : direction_wn_law(*f, rtol));
      laws.push_back(margin_law(*f, r.mm.gamma, true));
    } else {
      if (f->margin_end > 0) laws.push_back(slope_law(*f, f->margin_end, false));
      laws.push_back(margin_law(*f, 0, false));
    }
    if (r.K > 1) {
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
        worst = std::max(worst, std::abs(e * double(r.K) - 1));
      }
      LawVerdict d{"deep_rho_" + f->flow, f->flow + ": each rho_k grows like (log t)^(1/K)",
                   fmt::format("exponent 1/K = {:.3f}", 1.0 / double(r.K)),
                   fmt::format("d log rho_k / d log log t = {} (last 20% of log t)", exps), worst, ""};
      d.verdict = worst < 0.1   ? "holds"
                  : worst < 0.3 ? "holds with correction (log log t terms)"
                                : "fails";
      laws.push_back(d);
      laws.push_back(kkt_law(*f));
    }
    laws.push_back(tracking_law(*f, r.has_reference));
    for (auto& l : laws) r.laws.push_back(f->stopped_early ? not_measured(l, *f) : l);
  }
  if (r.K == 1)
    r.laws.push_back({"balance", "||W_k||^2 - ||W_j||^2 constant (Lemma 2)", "0", "K = 1: nothing to compare", kNaN,
                      "not applicable (K = 1)"});
  r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string json = verify_json(r);
  {
    std::ofstream js(r.json_path);
    if (!js) throw IoError(fmt::format("{}: cannot write the verify JSON", r.json_path));
    js << json;
  }
  write_h5(r, json);
  return r;
}

std::string verify_json(const VerifyReport& r) {
  std::string s = "{\n";
  auto str = [&](const char* key, const std::string& v) { s += fmt::format("  \"{}\": \"{}\",\n", key, escape_json(v)); };
  str("model", r.model_name);
  str("loss", r.loss);
  str("activation", r.activation);
  str("gd_file", r.gd_path);
  str("wn_file", r.wn_path);
  s += fmt::format("  \"K\": {},\n  \"wall_seconds\": {},\n", r.K, json_number(r.wall_seconds));
  s += fmt::format("  \"has_reference\": {},\n", r.has_reference ? "true" : "false");
  if (r.has_reference) {
    std::vector<double> v(r.mm.direction.data(), r.mm.direction.data() + r.mm.direction.size());
    std::vector<double> idx(r.near_support.begin(), r.near_support.end());
    s += fmt::format("  \"gamma\": {},\n  \"v_star\": {},\n  \"kkt_max_residual\": {},\n", json_number(r.mm.gamma),
                     json_array(v), json_number(r.mm.kkt.max_residual()));
    s += fmt::format("  \"near_support\": {{\"index\": {}, \"margin\": {}, \"exponent\": {}}},\n", json_array(idx),
                     json_array(r.near_margins), json_array(r.near_exponents));
  }
  for (const FlowLaws* f : {&r.gd, &r.wn}) {
    s += fmt::format("  \"{}\": {{\"status\": \"{}\", \"t_final\": {}, \"samples\": {}, \"rho_slope\": {}, "
                     "\"window_log_t\": {}, \"window_slope_rel_error\": {}, \"eps_end\": {}, ",
                     f->flow, status_name(f->run.result.status), json_number(f->run.result.t_final), f->run.samples,
                     json_number(f->slope_fit.slope), json_array(f->window_log_t),
                     json_array(f->window_slope_rel_error), json_number(f->eps_end));
    s += fmt::format("\"fit_c_over_log_t\": {{\"C\": {}, \"max_rel_residual\": {}, \"r2_log\": {}}}, ",
                     json_number(f->inv_log.C), json_number(f->inv_log.max_rel_residual), json_number(f->inv_log.r2));
    s += fmt::format("\"fit_c_over_log_t_plus_b\": {{\"C\": {}, \"b\": {}, \"max_rel_residual\": {}, \"r2_log\": {}}}, ",
                     json_number(f->inv_log_b.C), json_number(f->inv_log_b.b),
                     json_number(f->inv_log_b.max_rel_residual), json_number(f->inv_log_b.r2));
    s += fmt::format("\"fit_log_eps_power\": {{\"a\": {}, \"c\": {}, \"p\": {}, \"r2\": {}}}, ", json_number(f->power.a),
                     json_number(f->power.c), json_number(f->power.p), json_number(f->power.r2));
    s += fmt::format("\"fit_log_t_range\": [{}, {}], \"margin_end\": {}, \"margin_monotone_from\": {}, "
                     "\"balance_drift\": {}, \"layer_exponents\": {}}},\n",
                     json_number(f->fit_log_t_min), json_number(f->fit_log_t_max), json_number(f->margin_end),
                     json_number(f->margin_monotone_from), json_number(f->run.balance_drift),
                     json_array(f->layer_exponents));
    s.pop_back(), s.pop_back(), s.pop_back();  // reopen the flow object: "},\n"
    std::vector<std::vector<double>> st(7);
    std::string methods;
    for (const auto& d : f->stationary) {
      st[0].push_back(d.t), st[1].push_back(d.rho), st[2].push_back(d.distance);
      st[3].push_back(d.optimum_to_reference), st[4].push_back(d.grad_rel), st[5].push_back(d.converged);
      st[6].push_back(d.raw_distance);
      methods += fmt::format("{}\"{}\"", methods.empty() ? "" : ", ", escape_json(d.method));
    }
    s += fmt::format(", \"stopped_early\": {}, \"kkt\": {{\"log_t\": {}, \"stationarity\": {}, \"complementarity\": {}, "
                     "\"active\": {}, \"residual_end\": {}, \"trend_exponent_log_t\": {}}}, ",
                     f->stopped_early ? "true" : "false", json_array(f->kkt_log_t), json_array(f->kkt_stationarity),
                     json_array(f->kkt_complementarity), json_array(f->kkt_active), json_number(f->kkt_end),
                     json_number(f->kkt_trend.slope));
    s += fmt::format("\"stationary\": {{\"t\": {}, \"rho\": {}, \"distance\": {}, \"raw_distance\": {}, "
                     "\"optimum_to_reference\": {}, \"grad_rel\": {}, \"converged\": {}, \"method\": [{}]}}}},\n",
                     json_array(st[0]), json_array(st[1]), json_array(st[2]), json_array(st[6]), json_array(st[3]),
                     json_array(st[4]), json_array(st[5]), methods);
  }
  s += "  \"notes\": [";
  for (std::size_t i = 0; i < r.notes.size(); ++i) s += fmt::format("{}\"{}\"", i ? ", " : "", escape_json(r.notes[i]));
  s += "],\n  \"laws\": [\n";
  for (std::size_t i = 0; i < r.laws.size(); ++i) {
    const auto& l = r.laws[i];
    s += fmt::format("    {{\"law\": \"{}\", \"statement\": \"{}\", \"expected\": \"{}\", \"measured\": \"{}\", "
                     "\"rel_error\": {}, \"verdict\": \"{}\"}}{}\n",
                     escape_json(l.law), escape_json(l.statement), escape_json(l.expected), escape_json(l.measured),
                     json_number(l.rel_error), escape_json(l.verdict), i + 1 < r.laws.size() ? "," : "");
  }
  s += "  ]\n}\n";
  return s;
}

void print_verify(std::ostream& out, const VerifyReport& r) {
  fmt::print(out, "\n  verify {} (K = {}, {}, {} loss)\n", r.model_name, r.K, r.activation, r.loss);
  if (r.has_reference) {
    fmt::print(out, "  max-margin reference: gamma = {:.10g}, 1/gamma = {:.10g}, {} support vectors, KKT max residual "
                    "{:.1e}\n", r.mm.gamma, 1 / r.mm.gamma, r.mm.support.size(), r.mm.kkt.max_residual());
    std::string ns;
    for (std::size_t i = 0; i < r.near_support.size() && i < 12; ++i)
      ns += fmt::format("{}{} ({:.3g})", i ? ", " : "", r.near_support[i], r.near_exponents[i]);
    if (r.near_support.size() > 12) ns += ", ...";
    fmt::print(out, "  near-support points (z_n.v* <= 1.05 gamma): {}; point (exponent m_n/gamma - 1 of the loss-weight "
                    "decay t^-(m_n/gamma - 1)): {}\n", r.near_support.size(), ns);
  }
  for (const FlowLaws* f : {&r.gd, &r.wn})
    fmt::print(out, "  {} flow: {} at t = {:.3g}, {} samples, eps(t_end) = {:.3e}, wall {:.2f} s\n", f->flow,
               status_name(f->run.result.status), f->run.result.t_final, f->run.samples, f->eps_end,
               f->run.result.counters.wall_seconds);
  fmt::print(out, "\n  {:<14} {:<10} {:<14} {}\n", "law", "rel.error", "expected", "verdict / measured");
  for (const auto& l : r.laws) {
    fmt::print(out, "  {:<14} {:<10} {:<14} {}\n", l.law, fmt_pct(l.rel_error), l.expected.substr(0, 14), l.verdict);
    fmt::print(out, "  {:<14} {:<10} {:<14}   statement: {}\n", "", "", "", l.statement);
    fmt::print(out, "  {:<14} {:<10} {:<14}   measured:  {}\n", "", "", "", l.measured);
  }
  for (const auto& n : r.notes) fmt::print(out, "  note: {}\n", n);
  fmt::print(out, "  files: {}, {}, {}\n  wall time {:.2f} s\n", r.gd_path, r.wn_path, r.json_path, r.wall_seconds);
}

}  // namespace gfsim
