#include "gfsim/law_fits.hpp"

#include <boost/math/tools/minima.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <utility>

namespace gfsim {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double mean(const std::vector<double>& v) {
  return v.empty() ? kNaN : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

// Minimiser of f on [lo, hi] by Brent's method (parabolic steps, golden-section fallback), to
// Boost's best attainable precision for a minimum of a double function (half the mantissa bits:
// near a minimum f changes only quadratically in x).
template <class F>
double brent_min(F&& f, double lo, double hi) {
  std::uintmax_t max_iterations = 200;
  return boost::math::tools::brent_find_minima(f, lo, hi, std::numeric_limits<double>::digits / 2, max_iterations)
      .first;
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

}  // namespace

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
    const double x = brent_min([&](double x) { return inverse_log_cost(log_t, eps, std::exp(x) - lmin).second; },
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
  const double p = brent_min(cost, std::max(0.05, best_p - 0.005), best_p + 0.005);
  const LineFit l = solve(p);
  fit.p = p, fit.a = l.intercept, fit.c = l.slope, fit.r2 = l.r2;
  for (std::size_t i = 0; i < log_t.size(); ++i)
    fit.max_abs_residual =
        std::max(fit.max_abs_residual, std::abs(fit.a + fit.c * std::pow(log_t[i], p) - log_eps[i]));
  return fit;
}

}  // namespace gfsim
