#include "gfsim/run.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <tuple>

#include "gfsim/flow_problem.hpp"
#include "gfsim/hdf5_file.hpp"
#include "gfsim/recorder.hpp"
#include "gfsim/sphere.hpp"
#include "gfsim/tangent_spectrum.hpp"

namespace gfsim {

std::vector<Index> network_widths(const ModelSpec& spec, Index data_dim) {
  std::vector<Index> widths{data_dim};
  for (int h : spec.network.hidden) widths.push_back(h);
  widths.push_back(1);
  return widths;
}

Network flow_network(const ModelSpec& spec, Index data_dim) {
  const double eps = spec.dynamics.kinks == KinkMode::smooth ? spec.dynamics.kink_width : 0.0;
  return Network(network_widths(spec, data_dim), spec.network.activation, eps);
}

Vec initial_weights(const ModelSpec& spec, const Network& net) {
  const Index P = net.num_params();
  Vec theta = Vec::Zero(P);
  if (!spec.network.init_file.empty()) {
    const auto& path = spec.network.init_file;
    std::ifstream in(path);
    if (!in) throw SpecError(fmt::format("network.init_file = \"{}\": cannot open the file", path));
    std::string line;
    Index count = 0;
    for (int lineno = 1; std::getline(in, line); ++lineno) {
      const auto first = line.find_first_not_of(" \t\r");
      if (first == std::string::npos || line[first] == '#') continue;
      std::size_t used = 0;
      double value = 0;
      try {
        value = std::stod(line.substr(first), &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || line.find_first_not_of(" \t\r", first + used) != std::string::npos || !std::isfinite(value))
        throw SpecError(fmt::format("{}:{}: \"{}\" is not a finite number (one number per line)", path, lineno, line));
      if (count >= P)
        throw SpecError(fmt::format("{}:{}: more numbers than the P = {} parameters of the network {}", path, lineno,
                                    P, net.describe()));
      theta[count++] = value;
    }
    if (count != P)
      throw SpecError(fmt::format("{}: {} numbers, the network {} has P = {} parameters (theta layout: W_1..W_K, "
                                  "each row-major)", path, count, net.describe(), P));
    return theta;
  }
  std::mt19937_64 gen(spec.network.seed);
  std::normal_distribution<double> normal;
  for (Index k = 0; k < net.num_layers(); ++k) {
    const double scale = spec.network.init_scale / std::sqrt(double(net.layer_cols(k)));
    for (Index i = 0; i < net.layer_size(k); ++i) theta[net.layer_offset(k) + i] = scale * normal(gen);
  }
  return theta;
}

SolverOptions resolve_solver(const ModelSpec& spec) {
  SolverOptions o;
  o.rtol = spec.solver.rtol;
  o.atol = spec.solver.atol;
  o.max_steps = spec.solver.max_steps;
  o.max_wall_seconds = spec.solver.max_wall_seconds;
  o.clock = spec.solver.clock;
  if (o.clock == ClockKind::auto_select) o.clock = spec.time.t_end > 1e3 ? ClockKind::log : ClockKind::t;
  o.method = spec.solver.method;
  if (o.method == Method::auto_select) {
    // Late-time flows are stiff (the loss concentrates on the support vectors): CVODE's BDF,
    // dense exact Jacobian up to 400 state components, matrix-free SPGMR on exact J v above.
    // Measured 4x faster than rosenbrock4 and 12x than dopri5 on the issue-5 problem to t = 1e12
    // (docs/benchmarks.md).
    o.method = Method::cvode;
    // ReLU kinks as events: every crossing restarts the integrator, which costs CVODE ~8 steps
    // (back up from order 1) and dopri5 one; measured 2-11x faster with dopri5 over whole runs
    // (thousands of crossings, docs/relu_late_benchmarks.md). cvode stays available for late,
    // crossing-free stretches.
    const bool relu_events = spec.network.activation == Activation::relu && !spec.network.hidden.empty() &&
                             spec.dynamics.kinks == KinkMode::events;
    if (relu_events) o.method = Method::dopri5;
  }
  return o;
}

namespace {

class ProgressLine {
 public:
  explicit ProgressLine(bool enabled, double t_end) : enabled_(enabled), t_end_(t_end) {}
  void update(double t, const SolverCounters& c) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double frac = t_end_ > 0 ? std::log1p(t) / std::log1p(t_end_) : 1.0;
    fmt::print(stderr, "\r  t = {:<10.4g} ({:5.1f}% of log(1+t_end))  steps {:>9}  rhs {:>10}   ", t, 100 * frac,
               c.accepted, c.rhs_evals);
    shown_ = true;
  }
  void clear() {
    if (shown_) fmt::print(stderr, "\r{:80}\r", "");
  }

 private:
  bool enabled_, shown_ = false;
  double t_end_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

RunReport run_model(const ModelSpec& spec, const RunOptions& options) {
  // Eigen parallelises its large matrix products (GEMM) with OpenMP; 1 thread unless asked.
  configure_kernels(spec.solver.threads);
  const Dataset data = make_dataset(spec.data);
  const bool relu = spec.network.activation == Activation::relu && !spec.network.hidden.empty();
  const bool use_events = relu && spec.dynamics.kinks == KinkMode::events;
  Network net = flow_network(spec, data.dim());
  Flow flow(net, data, spec.loss.kind, spec.flow.kind, spec.flow.rho);
  const Vec theta0 = initial_weights(spec, net);
  const Vec y0 = flow.initial_state(theta0);
  const SolverOptions solver = resolve_solver(spec);
  if (use_events && solver.method != Method::dopri5 && solver.method != Method::rosenbrock4 &&
      solver.method != Method::cvode)
    throw SpecError(fmt::format("solver.method = \"{}\": dynamics.kinks = \"events\" needs a method with dense "
                                "output (dopri5, rosenbrock4, cvode)", to_string(solver.method)));
  const Index K = net.num_layers(), P = net.num_params();

  RunReport report;
  report.output_path = spec.output.path;
  report.num_params = P;
  report.state_size = flow.state_size();
  report.network = net.describe();
  report.flow = to_string(spec.flow.kind);
  report.uses_events = use_events;
  report.loss = to_string(spec.loss.kind);

  RunMetadata meta;
  meta.model_toml = spec.resolved_toml;
  meta.model_name = spec.name;
  meta.string_attrs = {{"flow", report.flow},
                       {"loss", report.loss},
                       {"activation", to_string(net.activation())},
                       {"method", to_string(solver.method)},
                       {"clock", to_string(solver.clock)},
                       {"theta_layout", "W_1..W_K, each row-major (d_k x d_{k-1}), concatenated"},
                       {"relu_derivative_at_zero", "0"},
                       {"kinks", use_events ? "events: activation pattern switched at located crossings (TOMS 748 on "
                                              "dense output); Filippov sliding by equivalent control, mask values "
                                              "m in [0,1] with dh/dt = 0 on every sliding surface"
                                            : !relu ? "none"
                                            : spec.dynamics.kinks == KinkMode::smooth
                                                ? "smooth: ReLU replaced by eps log(1 + exp(z/eps)), eps = kink_width "
                                                  "(pre-activation units); a smooth flow, no events"
                                                : "ignore: ReLU'(0) = 0, plain integration"}};
  meta.int_attrs = {{"K", K}, {"P", P}, {"n", data.n()}, {"data_seed", std::int64_t(spec.data.seed)},
                    {"network_seed", std::int64_t(spec.network.seed)}};
  meta.double_attrs = {{"t_end", spec.time.t_end}, {"rtol", solver.rtol}, {"atol", solver.atol}};
  if (net.kink_width() > 0) meta.double_attrs["kink_width"] = net.kink_width();
  if (spec.flow.kind == FlowKind::fixed_rho) meta.double_attrs["rho"] = spec.flow.rho;
  for (Index w : net.widths()) meta.widths.push_back(w);

  std::vector<std::string> layer_names;
  for (Index k = 1; k <= K; ++k) layer_names.push_back(fmt::format("rho_{}", k));
  std::vector<ObservableDef> defs{
      {"theta", P, "weights W_1..W_K (theta layout); fixed_rho: V_k scaled to rho_k = rho^(1/K)", {}},
      {"direction", P, "normalized weights V_k = W_k/||W_k||, concatenated", {}},
      {"rho", K, "per-layer Frobenius norms rho_k = ||W_k||", layer_names},
      {"log_loss", 0, "log L(W), L = sum_n l(y_n f(x_n))", {}},
      {"margin", 0, "normalized margin min_n y_n f(V; x_n)", {}},
      {"grad_norm", 0, "||grad_W L|| (fixed_rho: Riemannian gradient norm)", {}},
      {"balance", 0, "Lemma 2 drift: max_k |(rho_k^2 - rho_1^2)(t) - (rho_k^2 - rho_1^2)(0)|", {}},
  };
  Recorder recorder(spec.output.path, defs, meta, {spec.output.flush_interval, spec.output.swmr});

  const Vec rho0_sq = flow.layer_norms(y0).array().square();
  auto balance_of = [&](const Vec& rho) {
    double drift = 0;
    const Vec r2 = rho.array().square();
    for (Index k = 1; k < K; ++k) drift = std::max(drift, std::abs((r2[k] - r2[0]) - (rho0_sq[k] - rho0_sq[0])));
    return drift;
  };
  // [spectrum]: tangent-space Hessian eigenvalues at the current direction and rho(t); its sample
  // times are added to the output grid.
  std::vector<double> spectrum_times, spectrum_done_t, spectrum_values;
  std::vector<std::int64_t> spectrum_steps;
  const Index spectrum_k = spec.spectrum.k;
  if (spec.spectrum.enabled())
    spectrum_times = spec.spectrum.samples_per_decade > 0
                         ? log_spaced_times(spec.time.t_first, spec.time.t_end, spec.spectrum.samples_per_decade)
                         : spec.spectrum.times;
  std::size_t spectrum_next = 0;
  auto sample_spectrum = [&](std::int64_t step, double t, const Vec& y) {
    const double tol = 1e-9 * std::max(1.0, t);
    while (spectrum_next < spectrum_times.size() && spectrum_times[spectrum_next] < t - tol) ++spectrum_next;
    if (spectrum_next >= spectrum_times.size() || std::abs(spectrum_times[spectrum_next] - t) > tol) return;
    ++spectrum_next;
    // rho from the weights W_k themselves (polar states may carry |V_k| != 1 within tolerance).
    const Vec V = flow.direction(y);
    Flow at_rho(net, data, spec.loss.kind, FlowKind::fixed_rho, net.layer_norms(flow.theta(y)).prod());
    const Vec eig = tangent_extreme_eigenvalues(SphereProblem(at_rho), V, spectrum_k);
    spectrum_done_t.push_back(t);
    spectrum_steps.push_back(step);
    spectrum_values.insert(spectrum_values.end(), eig.data(), eig.data() + eig.size());
  };
  double observe_seconds = 0;  // sample recording (diagnostics + HDF5), inside the solver's wall time
  auto observe = [&](std::int64_t step, double t, const Vec& y) {
    const auto observe_start = std::chrono::steady_clock::now();
    if (!spectrum_times.empty()) sample_spectrum(step, t, y);
    const Vec theta = flow.theta(y), direction = flow.direction(y), rho = flow.layer_norms(y);
    const FlowDiagnostics d = flow.diagnostics(y);
    const double balance = balance_of(rho);
    report.balance_drift = std::max(report.balance_drift, balance);
    ++report.samples;
    recorder.append(step, t,
                    {{theta.data(), std::size_t(P)}, {direction.data(), std::size_t(P)},
                     {rho.data(), std::size_t(K)}, {&d.log_loss, 1}, {&d.margin, 1}, {&d.grad_norm, 1}, {&balance, 1}});
    if (options.on_sample) options.on_sample(t, theta, rho, d.margin);
    observe_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - observe_start).count();
  };
  ProgressLine progress(options.progress, spec.time.t_end);
  auto monitor = [&](double t, const Vec&, const SolverCounters& c) {
    progress.update(t, c);
    return !(options.stop_requested && options.stop_requested->load());
  };
  std::vector<double> times = log_spaced_times(spec.time.t_first, spec.time.t_end, spec.time.samples_per_decade);
  if (!spectrum_times.empty()) {
    times.insert(times.end(), spectrum_times.begin(), spectrum_times.end());
    std::sort(times.begin(), times.end());
    times.erase(std::unique(times.begin(), times.end(),
                            [](double a, double b) { return std::abs(a - b) <= 1e-12 * std::max(1.0, std::abs(b)); }),
                times.end());
  }
  std::vector<double> event_t, event_layer, event_unit, event_point, event_kind;
  double sliding_since = 0;
  std::map<std::tuple<Index, Index, Index>, double> sliding_start;
  const OdeProblem problem =
      use_events ? to_event_problem(flow, y0,
                                    [&](double t, Index layer, Index unit, Index point, KinkEvent kind) {
                                      event_t.push_back(t);
                                      event_layer.push_back(double(layer));
                                      event_unit.push_back(double(unit));
                                      event_point.push_back(double(point));
                                      event_kind.push_back(double(kind));
                                      const auto key = std::make_tuple(layer, unit, point);
                                      if (kind == KinkEvent::sliding_entry) sliding_start[key] = t;
                                      if (kind == KinkEvent::sliding_exit) {
                                        sliding_since += t - sliding_start[key];
                                        sliding_start.erase(key);
                                      }
                                    })
                 : to_ode_problem(flow);
  report.result = integrate(problem, y0, times, solver, observe, monitor);
  for (const auto& [key, t0] : sliding_start) sliding_since += report.result.t_final - t0;
  report.sliding_time = sliding_since;
  for (double k : event_kind) {
    if (k == double(KinkEvent::crossing)) ++report.kink_crossings;
    if (k == double(KinkEvent::sliding_entry)) ++report.sliding_entries;
    if (k == double(KinkEvent::sliding_exit)) ++report.sliding_exits;
  }
  progress.clear();

  const Vec& yf = report.result.y_final;
  report.rho = flow.layer_norms(yf);
  report.final = flow.diagnostics(yf);
  const Vec theta_final = flow.theta(yf);
  std::map<std::string, std::vector<double>> extra{
      {"initial/theta", std::vector<double>(theta0.data(), theta0.data() + P)},
      {"final/theta", std::vector<double>(theta_final.data(), theta_final.data() + P)},
      {"data/y", std::vector<double>(data.y.data(), data.y.data() + data.n())},
      {"timing/observe_seconds", {observe_seconds}},
  };
  if (use_events) {
    extra["events/time"] = event_t;
    extra["events/layer"] = event_layer;
    extra["events/unit"] = event_unit;
    extra["events/point"] = event_point;
    extra["events/kind"] = event_kind;  // 0 crossing, 1 sliding entry, 2 sliding exit
    extra["events/summary"] = {double(report.kink_crossings), double(report.sliding_entries),
                               double(report.sliding_exits), report.sliding_time};
  }
  const RowMat X = data.X;
  extra["data/X_rowmajor"] = std::vector<double>(X.data(), X.data() + X.size());
  recorder.finish(report.result, extra);
  if (!spectrum_times.empty()) {
    // Its own time axis: a subset of the output samples, [T, 2k] values.
    auto file = h5::File::open(spec.output.path, h5::Access::read_write);
    {
    auto g = file.create_group("observables/hessian_eigs");
    g.set_string_attr("description",
                      "k smallest then k largest eigenvalues (ascending) of the Riemannian Hessian of "
                      "V -> L(rho f~(V)) on the tangent space of the product of unit spheres, at V(t) and "
                      "rho(t) = prod_k rho_k (equations.md section 7); NaN where the tangent dimension < k");
    g.set_int64_attr("k", spectrum_k);
    g.create_extendible_dataset("time", h5::ElementType::float64, 0, 64).append_rows(std::span<const double>(spectrum_done_t));
    g.create_extendible_dataset("step", h5::ElementType::int64, 0, 64).append_rows(std::span<const std::int64_t>(spectrum_steps));
    g.create_extendible_dataset("value", h5::ElementType::float64, 2 * spectrum_k, 64)
        .append_rows(std::span<const double>(spectrum_values));
    }
    file.close();
  }
  report.spectrum_samples = Index(spectrum_done_t.size());
  return report;
}

void print_summary(std::ostream& out, const RunReport& r) {
  const auto& s = r.result;
  const auto& c = s.counters;
  std::string rho;
  for (Index k = 0; k < r.rho.size(); ++k) rho += fmt::format("{}{:.6g}", k ? ", " : "", r.rho[k]);
  fmt::print(out, "\n");
  fmt::print(out, "  {:<22} {}\n", "status", fmt::format("{} ({})", status_name(s.status), s.message));
  fmt::print(out, "  {:<22} {} (P = {}), {} loss, {} flow\n", "model", r.network, r.num_params, r.loss, r.flow);
  fmt::print(out, "  {:<22} {} in the {} clock\n", "solver", s.method, s.clock);
  fmt::print(out, "  {:<22} {:.6g}\n", "final t", s.t_final);
  fmt::print(out, "  {:<22} {}\n", "rho_k", rho);
  fmt::print(out, "  {:<22} {:.6g}\n", "rho = prod rho_k", r.rho.prod());
  fmt::print(out, "  {:<22} {:.10g}\n", "log loss", r.final.log_loss);
  fmt::print(out, "  {:<22} {:.10g}\n", "normalized margin", r.final.margin);
  fmt::print(out, "  {:<22} {:.3e}\n", "gradient norm", r.final.grad_norm);
  fmt::print(out, "  {:<22} {:.3e}\n", "balance drift", r.balance_drift);
  fmt::print(out, "  {:<22} {} accepted, {} rejected\n", "steps", c.accepted, c.rejected);
  if (r.uses_events)
    fmt::print(out, "  {:<22} {} kink crossings, {} sliding entries, {} exits, {:.4g} unit-time sliding\n",
               "kink events", r.kink_crossings, r.sliding_entries, r.sliding_exits, r.sliding_time);
  if (c.jvp_evals > 0)  // matrix-free Krylov: Jacobian-vector products instead of Jacobians and LUs
    fmt::print(out, "  {:<22} {} rhs, {} J v products\n", "evaluations", c.rhs_evals, c.jvp_evals);
  else
    fmt::print(out, "  {:<22} {} rhs, {} jacobians, {} LU\n", "evaluations", c.rhs_evals, c.jacobian_evals,
               c.lu_decompositions);
  fmt::print(out, "  {:<22} {:.3f} s\n", "wall time", c.wall_seconds);
  fmt::print(out, "  {:<22} {} ({} samples)\n", "output", r.output_path, r.samples);
}

}  // namespace gfsim
