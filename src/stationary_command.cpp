#include "gfsim/stationary_command.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <ostream>
#include <span>
#include <sstream>

#include "gfsim/build.hpp"
#include "gfsim/dataset.hpp"
#include "gfsim/errors.hpp"
#include "gfsim/flow_problem.hpp"
#include "gfsim/hdf5_file.hpp"
#include "gfsim/integrate.hpp"
#include "gfsim/provenance.hpp"
#include "gfsim/recorder.hpp"
#include "gfsim/run.hpp"
#include "gfsim/stationary.hpp"
#include "gfsim/timestamp.hpp"
#include "gfsim/version.hpp"

namespace gfsim {

namespace {

std::vector<double> parse_sweep(const std::string& s) {
  double a = 0, b = 0;
  long n = 0;
  char c1 = 0, c2 = 0;
  std::istringstream in(s);
  if (!(in >> a >> c1 >> b >> c2 >> n) || c1 != ':' || c2 != ':' || !(a > 0) || !(b > 0) || n < 1 || !in.eof())
    throw SpecError(fmt::format("--rho-sweep \"{}\": expected a:b:n with a, b > 0 and n >= 1 (log-spaced)", s));
  std::vector<double> rhos;
  for (long i = 0; i < n; ++i)
    rhos.push_back(n == 1 ? a : std::exp(std::log(a) + (std::log(b) - std::log(a)) * double(i) / double(n - 1)));
  return rhos;
}

SweepPoint sweep_point(const StationaryResult& r) {
  // On kink surfaces (the flow slid there and Newton was held on them) the kink-surface spectrum
  // describes the point; the plain one (ReLU'(0) = 0) does not.
  const TangentSpectrum& s = r.describing_spectrum();
  const Vec& eig = s.eigenvalues;
  SweepPoint p;
  p.rho = r.rho;
  p.lambda_min = eig.size() ? eig.minCoeff() : 0;
  p.lambda_max = eig.size() ? eig.maxCoeff() : 0;
  p.lambda_min_nonzero = std::numeric_limits<double>::quiet_NaN();
  for (Index i = 0; i < eig.size(); ++i)
    if (eig[i] > r.spectrum.zero_threshold) {
      p.lambda_min_nonzero = eig[i];
      break;
    }
  p.margin = r.margin;
  p.grad = r.grad_norms.empty() ? 0 : r.grad_norms.back();
  p.n_zero = s.n_zero;
  p.n_negative = s.n_negative;
  p.verdict = r.verdict;
  p.eigenvalues = eig;
  p.direction = r.V;
  return p;
}

// Least-squares fit of log lambda = a + p log rho - q rho; reports p, q and the rms residual.
std::string fit_decay(const std::vector<SweepPoint>& sweep) {
  std::vector<std::pair<double, double>> pts;
  for (const auto& s : sweep)
    if (std::isfinite(s.lambda_min_nonzero) && s.lambda_min_nonzero > 0) pts.push_back({s.rho, s.lambda_min_nonzero});
  if (pts.size() < 3) return "fewer than 3 points with a positive smallest nonzero eigenvalue: no fit";
  const bool three = pts.size() >= 4;
  Mat A(Index(pts.size()), three ? 3 : 2);
  Vec y(Index(pts.size()));
  for (std::size_t i = 0; i < pts.size(); ++i) {
    A(Index(i), 0) = 1;
    A(Index(i), 1) = std::log(pts[i].first);
    if (three) A(Index(i), 2) = -pts[i].first;
    y[Index(i)] = std::log(pts[i].second);
  }
  const Vec c = A.colPivHouseholderQr().solve(y);
  const double rms = std::sqrt((A * c - y).squaredNorm() / double(pts.size()));
  // Pure power law for comparison.
  const Vec c2 = A.leftCols(2).colPivHouseholderQr().solve(y);
  const double rms2 = std::sqrt((A.leftCols(2) * c2 - y).squaredNorm() / double(pts.size()));
  std::string s = fmt::format("power law lambda_min ~ {:.4g} rho^{:.4f} (rms log residual {:.2e})", std::exp(c2[0]),
                              c2[1], rms2);
  if (three)
    s += fmt::format("; lambda_min ~ {:.4g} rho^{:.4f} exp(-{:.5g} rho) (rms log residual {:.2e})", std::exp(c[0]), c[1],
                     c[2], rms);
  return s;
}

void write_stationary_file(const std::string& path, const ModelSpec& spec, const StationaryReport& rep,
                           const StationaryOptions& o) {
  auto file = h5::File::create(path, h5::FileFormat::earliest);
  write_provenance(file, {.file_type = "gfsim-stationary",
                          .model_toml = spec.resolved_toml,
                          .model_name = spec.name,
                          .seeds = {{"data_seed", std::int64_t(spec.data.seed)},
                                    {"network_seed", std::int64_t(spec.network.seed)}},
                          .string_attrs = {{"loss", rep.loss},
                                           {"network", rep.network},
                                           {"theta_layout", "W_1..W_K, each row-major (d_k x d_{k-1}), concatenated"}},
                          .double_attrs = {},
                          .int_attrs = {{"K", rep.K}, {"P", rep.P}, {"n", rep.n}},
                          .int_array_attrs = {}});
  const StationaryResult& r = rep.result;
  auto g = file.create_group("stationary");
  g.set_double_attr("rho", r.rho);
  g.set_string_attr("verdict", r.verdict);
  g.set_string_attr("notes", r.notes);
  g.set_string_attr("flow_status", r.flow_status);
  g.set_string_attr("flow_message", r.flow_message);
  g.set_int64_attr("flow_at_kink", r.flow_at_kink ? 1 : 0);
  g.set_int64_attr("flow_kink_events", r.flow_kink_events);
  g.set_double_attr("flow_t", r.flow_t);
  g.set_int64_attr("flow_steps", r.flow_steps);
  g.set_int64_attr("newton_converged", r.newton_converged ? 1 : 0);
  g.set_int64_attr("newton_steps", std::int64_t(r.step_norms.size()));
  g.set_double_attr("loss_scale", r.loss_scale);
  g.set_double_attr("log_loss", r.log_loss);
  g.set_double_attr("margin", r.margin);
  g.set_string_attr("spectrum_method", std::string(to_string(r.spectrum_method)));
  g.set_string_attr("spectra_info_smallest", r.info_smallest);
  g.set_string_attr("spectra_info_largest", r.info_largest);
  g.set_int64_attr("hessian_vector_products", r.hvps);
  g.set_double_attr("spectrum_seconds", r.spectrum_seconds);
  g.set_double_attr("zero_rel", o.zero_rel);
  g.set_double_attr("zero_threshold", r.spectrum.zero_threshold);
  g.set_string_attr("zero_rule", "|lambda| <= zero_rel * max|lambda| counts as zero");
  g.set_int64_array_attr("inertia", std::vector<std::int64_t>{r.spectrum.n_negative, r.spectrum.n_zero, r.spectrum.n_positive});
  g.set_string_attr("inertia_order", "negative, zero, positive");
  auto span = [](const Vec& v) { return std::span<const double>(v.data(), std::size_t(v.size())); };
  g.write_dataset("direction", span(r.V));
  g.write_dataset("grad_norms", r.grad_norms);
  g.write_dataset("step_norms", r.step_norms);
  g.write_dataset("eigenvalues", span(r.spectrum.eigenvalues));
  g.write_dataset("residuals", span(r.spectrum.residuals));
  {
    auto ev = g.write_dataset("eigenvectors", std::span<const double>(r.eigenvectors.data(),
                                                                        std::size_t(r.eigenvectors.size())));
    ev.set_int64_array_attr("shape", std::vector<std::int64_t>{r.eigenvectors.cols(), r.eigenvectors.rows()});
    ev.set_string_attr("description", "unit eigenvectors (rows, theta layout) of the lowest eigenvalues, "
                                      "the whole null space included");
  }
  auto z = g.create_group("zero_modes");
  z.set_int64_attr("null_dim", r.spectrum.null_dim);
  z.set_int64_attr("explained_total", r.spectrum.explained);
  z.set_int64_attr("unexplained", r.spectrum.unexplained);
  std::vector<std::string> names;
  std::vector<std::int64_t> cand, ver, spn, expl;
  std::vector<double> res;
  for (const auto& m : r.spectrum.mechanisms) {
    names.push_back(m.name);
    cand.push_back(m.candidates);
    ver.push_back(m.verified);
    spn.push_back(m.span_dim);
    expl.push_back(m.explained);
    res.push_back(m.max_residual);
  }
  z.set_string_array_attr("mechanisms", names);
  z.set_int64_array_attr("candidates", cand);
  z.set_int64_array_attr("verified", ver);
  z.set_int64_array_attr("span_dim", spn);
  z.set_int64_array_attr("explained", expl);
  z.set_double_array_attr("max_residual", res);
  auto kg = g.create_group("kinks");
  kg.set_int64_attr("count", std::int64_t(r.kinks.size()));
  kg.set_double_attr("kink_rel", o.kink_rel);
  kg.set_string_attr("kink_rule", "|h| <= kink_rel * max|h| sits on a kink (h: hidden pre-activations at theta = rho^(1/K) V)");
  kg.set_string_attr("surface_spectrum_status", std::string(to_string(r.kink_spectrum_status)));
  kg.set_string_attr("surface_verdict", r.kink_spectrum.verdict);
  kg.set_int64_attr("surface_dim", r.kink_surface_dim);
  kg.set_int64_attr("constraint_rank", r.kink_constraint_rank);
  kg.set_double_attr("surface_grad_norm", r.kink_grad);
  kg.set_int64_array_attr("surface_inertia",
                          std::vector<std::int64_t>{r.kink_spectrum.n_negative, r.kink_spectrum.n_zero, r.kink_spectrum.n_positive});
  kg.set_int64_attr("surface_null_dim", r.kink_spectrum.null_dim);
  kg.set_int64_attr("surface_explained", r.kink_spectrum.explained);
  kg.set_int64_attr("surface_unexplained", r.kink_spectrum.unexplained);
  kg.set_int64_attr("newton_constraints", std::int64_t(r.newton_kinks.size()));
  kg.write_dataset("surface_eigenvalues", span(r.kink_spectrum.eigenvalues));
  kg.write_dataset("surface_residuals", span(r.kink_spectrum.residuals));
  std::vector<double> kl, ku, kp;
  for (const auto& k : r.kinks) {
    kl.push_back(double(k[0]));
    ku.push_back(double(k[1]));
    kp.push_back(double(k[2]));
  }
  kg.write_dataset("layer", kl);
  kg.write_dataset("unit", ku);
  kg.write_dataset("point", kp);
  kg.write_dataset("preactivation", r.kink_preactivations);
  if (!rep.sweep.empty()) {
    auto s = g.create_group("sweep");
    std::vector<double> rho, lmin, lmax, lnz, marg, grad, nz, nn;
    for (const auto& p : rep.sweep) {
      rho.push_back(p.rho);
      lmin.push_back(p.lambda_min);
      lmax.push_back(p.lambda_max);
      lnz.push_back(p.lambda_min_nonzero);
      marg.push_back(p.margin);
      grad.push_back(p.grad);
      nz.push_back(double(p.n_zero));
      nn.push_back(double(p.n_negative));
    }
    s.write_dataset("rho", rho);
    s.write_dataset("lambda_min", lmin);
    s.write_dataset("lambda_max", lmax);
    s.write_dataset("lambda_min_nonzero", lnz);
    s.write_dataset("margin", marg);
    s.write_dataset("grad_norm", grad);
    s.write_dataset("n_zero", nz);
    s.write_dataset("n_negative", nn);
    std::vector<double> gd_t, gd_d;
    for (const auto& p : rep.sweep) {
      gd_t.push_back(p.gd_time);
      gd_d.push_back(p.gd_distance);
    }
    s.write_dataset("gd_time", gd_t);
    s.write_dataset("gd_distance", gd_d);
    s.set_string_attr("fit", rep.sweep_fit);
    {
      std::vector<double> rows;
      for (const auto& p : rep.sweep) rows.insert(rows.end(), p.direction.data(), p.direction.data() + p.direction.size());
      auto dir = s.create_extendible_dataset("direction", h5::ElementType::float64, rep.P, 64);
      dir.append_rows(std::span<const double>(rows));
      dir.set_string_attr("description", "stationary direction V (theta layout, unit layers) per sweep rho");
    }
    // [n_rho, width]: every rho's spectrum (same width for all: same method at every rho).
    Index width = rep.sweep.front().eigenvalues.size();
    for (const auto& p : rep.sweep) width = std::min(width, p.eigenvalues.size());
    if (width > 0) {
      std::vector<double> rows;
      for (const auto& p : rep.sweep) rows.insert(rows.end(), p.eigenvalues.data(), p.eigenvalues.data() + width);
      auto ev = s.create_extendible_dataset("eigenvalues", h5::ElementType::float64, width, 64);
      ev.append_rows(std::span<const double>(rows));
      ev.set_string_attr("description", "tangent-space Hessian eigenvalues (ascending) per rho, one row per sweep rho");
    }
  }
  file.close();
}

}  // namespace

namespace {
// Lemma 3: the gradient flow's direction at the time its rho(t) = prod_k ||W_k|| passes a sweep rho
// and the fixed-rho stationary direction at that rho have the same limit. One gd run (kink events for
// ReLU) from the model's initial weights, sampled 20 times per decade of t, stopped once rho(t)
// exceeds the largest sweep rho; V_gd at rho is interpolated linearly in rho between the two
// bracketing samples (each layer renormalised).
void compare_with_gradient_descent(const ModelSpec& spec, const Network& net, const Dataset& data,
                                   const Vec& theta0, std::vector<SweepPoint>& sweep) {
  double rho_max = 0;
  for (auto& p : sweep) {
    rho_max = std::max(rho_max, p.rho);
    p.gd_time = p.gd_distance = std::numeric_limits<double>::quiet_NaN();
  }
  Flow gd(net, data, spec.loss.kind, FlowKind::gd);
  const bool relu = gd.num_preactivations() > 0;
  KinkPattern pattern(gd);
  const OdeProblem problem = relu ? to_event_problem(pattern, theta0) : to_ode_problem(gd);
  SolverOptions so;
  so.method = relu ? Method::dopri5 : Method::rosenbrock4;
  so.clock = ClockKind::log;
  so.rtol = 1e-9;
  so.atol = 1e-12;
  so.max_steps = 2000000;
  so.max_wall_seconds = 300;
  std::vector<double> ts, rhos;
  std::vector<Vec> dirs;
  integrate(problem, theta0, log_spaced_times(1e-2, 1e300, 20), so,
            [&](std::int64_t, double t, const Vec& y) {
              ts.push_back(t);
              rhos.push_back(net.layer_norms(y).prod());
              dirs.push_back(gd.direction(y));
            },
            [&](double, const Vec& y, const SolverCounters&) -> std::optional<Status> {
              if (net.layer_norms(y).prod() <= 1.05 * rho_max) return std::nullopt;
              return Status::converged;  // past the sweep's largest rho: the comparison has its path
            });
  for (auto& p : sweep)
    for (std::size_t i = 0; i + 1 < rhos.size(); ++i) {
      if (!(rhos[i] <= p.rho && p.rho < rhos[i + 1])) continue;
      const double w = (p.rho - rhos[i]) / (rhos[i + 1] - rhos[i]);
      Vec V = (1 - w) * dirs[i] + w * dirs[i + 1];
      for (Index k = 0; k < net.num_layers(); ++k) V.segment(net.layer_offset(k), net.layer_size(k)).normalize();
      p.gd_time = std::exp((1 - w) * std::log(std::max(ts[i], 1e-300)) + w * std::log(ts[i + 1]));
      p.gd_distance = (V - p.direction).norm();
      break;
    }
}
}  // namespace

StationaryReport stationary_model(const ModelSpec& spec, const StationaryCliOptions& options) {
  const Dataset data = make_dataset(spec);
  Network net = exact_network(spec, data.dim());
  const Vec theta0 = initial_weights(spec, net);
  StationaryReport rep;
  rep.network = net.describe();
  rep.loss = to_string(spec.loss.kind);
  rep.P = net.num_params();
  rep.K = net.num_layers();
  rep.n = data.n();
  if (options.output.empty()) {
    std::filesystem::path p(spec.output.path);
    rep.output_path = (p.parent_path() / (p.stem().string() + "_stationary.h5")).string();
  } else {
    rep.output_path = options.output;
  }
  std::vector<double> rhos;
  if (!options.rho_sweep.empty()) rhos = parse_sweep(options.rho_sweep);
  else rhos = {options.rho > 0 ? options.rho : spec.flow.rho};
  Vec V;
  for (double rho : rhos) {
    if (!(rho > 0)) throw SpecError(fmt::format("--rho = {}: must be > 0", rho));
    Flow flow = make_flow(spec, net, data, FlowKind::fixed_rho, rho, options.rho > 0 || rhos.size() > 1 ? "--rho" : "flow.rho");
    if (V.size() == 0) V = initial_state(spec, flow, theta0);
    rep.result = find_stationary(flow, V, options.numerics);
    V = rep.result.V;
    if (rhos.size() > 1) rep.sweep.push_back(sweep_point(rep.result));
  }
  if (!rep.sweep.empty()) {
    rep.sweep_fit = fit_decay(rep.sweep);
    compare_with_gradient_descent(spec, net, data, theta0, rep.sweep);
  }
  write_stationary_file(rep.output_path, spec, rep, options.numerics);
  return rep;
}

void print_stationary_summary(std::ostream& out, const StationaryReport& rep) {
  const StationaryResult& r = rep.result;
  auto line = [&](const std::string& k, const std::string& v) { fmt::print(out, "  {:<24} {}\n", k, v); };
  fmt::print(out, "\n");
  line("model", fmt::format("{} (P = {}, K = {}), {} loss, n = {}", rep.network, rep.P, rep.K, rep.loss, rep.n));
  line("rho", fmt::format("{:.6g}", r.rho));
  line("flow phase", fmt::format("{} (t = {:.3g}, {} steps, {} kink events, |grad| = {:.3e})", r.flow_status,
                                 r.flow_t, r.flow_steps, r.flow_kink_events, r.flow_grad));
  if (r.flow_at_kink) line("flow phase ended at kink", r.flow_message);
  std::string gn;
  for (std::size_t i = 0; i < r.grad_norms.size(); ++i) gn += fmt::format("{}{:.2e}", i ? " " : "", r.grad_norms[i]);
  line("Newton |grad| per step", gn);
  line("Newton", fmt::format("{} steps, {} (loss scale rho*L = {:.3e}, relative |grad| = {:.2e})",
                             r.step_norms.size(), r.newton_converged ? "converged" : "NOT converged", r.loss_scale,
                             r.grad_norms.empty() ? 0.0 : r.grad_norms.back() / r.loss_scale));
  line("log loss / margin", fmt::format("{:.10g} / {:.10g}", r.log_loss, r.margin));
  const TangentSpectrum& s = r.spectrum;
  line("spectrum", fmt::format("{} on the tangent space (dim {}), {} eigenvalues, {} HVPs, {:.3f} s",
                               to_string(r.spectrum_method), rep.P - rep.K, s.eigenvalues.size(), r.hvps,
                               r.spectrum_seconds));
  if (r.spectrum_method == SpectrumMethod::spectra)
    line("Spectra CompInfo", fmt::format("smallest {}, largest {}", r.info_smallest, r.info_largest));
  const Index show = std::min<Index>(s.eigenvalues.size(), 6);
  std::string lo, hi;
  for (Index i = 0; i < show; ++i) lo += fmt::format("{}{:.6e}", i ? " " : "", s.eigenvalues[i]);
  for (Index i = s.eigenvalues.size() - show; i < s.eigenvalues.size(); ++i)
    hi += fmt::format("{}{:.6e}", i > s.eigenvalues.size() - show ? " " : "", s.eigenvalues[i]);
  line("smallest eigenvalues", lo);
  line("largest eigenvalues", hi);
  line("max residual", fmt::format("{:.2e}", s.residuals.size() ? s.residuals.maxCoeff() : 0.0));
  line("inertia (-, 0, +)", fmt::format("{}, {}, {} (zero: |lambda| <= {:.3e})", s.n_negative, s.n_zero, s.n_positive,
                                        s.zero_threshold));
  for (const auto& m : s.mechanisms)
    line("zero modes: " + m.name, fmt::format("{} candidates, {} verified (max |Hv| {:.1e}), span {}, explains {}",
                                              m.candidates, m.verified, m.max_residual, m.span_dim, m.explained));
  line("zero modes", fmt::format("{} in the null space: {} explained, {} unexplained", s.null_dim, s.explained,
                                 s.unexplained));
  std::string kinks = fmt::format("{} (unit, point) pairs", r.kinks.size());
  for (std::size_t i = 0; i < std::min<std::size_t>(r.kinks.size(), 5); ++i)
    kinks += fmt::format("{} (layer {}, unit {}, point {})", i ? "," : ":", r.kinks[i][0], r.kinks[i][1], r.kinks[i][2]);
  line("ReLU kinks", kinks);
  if (!r.kinks.empty()) {
    const TangentSpectrum& ks = r.kink_spectrum;
    line("kink-surface spectrum", fmt::format("{}: dim {} (constraint rank {}), |projected grad| = {:.2e}",
                                              to_string(r.kink_spectrum_status), r.kink_surface_dim,
                                              r.kink_constraint_rank, r.kink_grad));
    if (ks.eigenvalues.size())
      line("kink-surface inertia", fmt::format("{}, {}, {} (lambda in [{:.6e}, {:.6e}])", ks.n_negative, ks.n_zero,
                                               ks.n_positive, ks.eigenvalues.minCoeff(), ks.eigenvalues.maxCoeff()));
    line("kink-surface verdict", ks.verdict);
  }
  line("verdict", r.verdict);
  if (!r.notes.empty()) line("notes", r.notes);
  if (!rep.sweep.empty()) {
    fmt::print(out, "\n  {:>12} {:>14} {:>14} {:>14} {:>12} {:>7} {:>5} {:>11} {:>11}\n", "rho", "lambda_min",
               "lambda_min_nz", "lambda_max", "margin", "zero", "neg", "gd t", "|V_gd - V|");
    for (const auto& p : rep.sweep)
      fmt::print(out, "  {:>12.5g} {:>14.6e} {:>14.6e} {:>14.6e} {:>12.8f} {:>7} {:>5} {:>11.3e} {:>11.3e}\n", p.rho,
                 p.lambda_min, p.lambda_min_nonzero, p.lambda_max, p.margin, p.n_zero, p.n_negative, p.gd_time,
                 p.gd_distance);
    line("decay fit", rep.sweep_fit);
  }
  line("output", rep.output_path);
}
}  // namespace gfsim
