#include "gfsim/law_measurement.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "gfsim/kkt.hpp"
#include "gfsim/orbit_distance.hpp"
#include "gfsim/stationary.hpp"
#include "gfsim/verify_thresholds.hpp"

namespace gfsim {

Vec reference_direction(const LawProblem& pb, const Vec& theta) {
  const Vec beta = pb.net.num_layers() == 1 ? theta : end_to_end(pb.net, theta);
  return beta / beta.norm();
}

std::string FlowLaws::StationaryDistance::describe() const {
  if (method == StationarySolve::skipped_on_kinks)
    return fmt::format("{}: V(t) on {} ReLU kinks", to_string(method), kinks_at_sample);
  return std::string(to_string(method));
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void measure_kkt(FlowLaws& f, const SampleSeries& c, const LawProblem& pb) {
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

void measure_stationary(FlowLaws& f, const SampleSeries& c, const LawProblem& pb, const MaxMarginResult* mm) {
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
        d.method = StationarySolve::skipped_on_kinks;
        d.kinks_at_sample = on_kink;
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
    d.method = StationarySolve::newton_from_sample;
    if (!(grad <= 1e-10 * scale) || !r.V.allFinite()) {
      so.flow_max_steps = 2000;
      r = find_stationary(flow, V, so);
      grad = sp.gradient(r.V).norm();
      d.method = StationarySolve::flow_and_newton;
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

}  // namespace

void measure_flow_laws(FlowLaws& f, const SampleSeries& c, const MaxMarginResult* mm, double rtol,
                       const LawProblem& pb) {
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

}  // namespace gfsim
