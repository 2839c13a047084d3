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
#include <optional>
#include <random>
#include <tuple>

#include "gfsim/build.hpp"
#include "gfsim/errors.hpp"
#include "gfsim/flow_problem.hpp"
#include "gfsim/generalization.hpp"
#include "gfsim/recorder.hpp"
#include "gfsim/sphere.hpp"
#include "gfsim/tangent_spectrum.hpp"
#include "gfsim/timestamp.hpp"
#include "gfsim/version.hpp"

namespace gfsim {

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

// The rebuilt model must be the one that wrote the file: same initial weights, same state size.
void check_resume_matches(const ResumePoint& resume, const Vec& theta0, Index state_size) {
  if (resume.state.size() != state_size)
    throw SpecError(fmt::format("--resume {}: the stored state has {} values, the rebuilt model's flow {}", resume.path,
                                resume.state.size(), state_size));
  bool same = Index(resume.initial_theta.size()) == theta0.size();
  for (Index i = 0; same && i < theta0.size(); ++i)
    same = std::abs(resume.initial_theta[std::size_t(i)] - theta0[i]) <= 1e-12 * std::max(1.0, std::abs(theta0[i]));
  if (!same)
    throw SpecError(fmt::format("--resume {}: the model rebuilt from the file's model_toml does not reproduce its "
                                "/initial/theta (moved data or init files, or another gfsim version)",
                                resume.path));
}

// Writes the stored samples and series rows of a resume into the new file, in the layout's order.
// Returns the rows replayed per series path (those complete in every column the layout has).
std::map<std::string, std::size_t> replay_stored(const ResumePoint& resume, const std::vector<std::string>& observable_names,
                   const std::vector<SeriesDef>& series_defs, Recorder& recorder) {
  std::map<std::string, std::size_t> replayed;
  std::vector<const StoredObservable*> stored;
  for (const std::string& name : observable_names) {
    const auto it = resume.observables.find(name);
    if (it == resume.observables.end())
      throw SpecError(fmt::format("--resume {}: the file has no /observables/{} the model records", resume.path, name));
    stored.push_back(&it->second);
  }
  std::vector<std::span<const double>> spans(stored.size());
  for (std::size_t s = 0; s < resume.times.size(); ++s) {
    for (std::size_t i = 0; i < stored.size(); ++i) {
      const std::size_t width = std::size_t(std::max<std::int64_t>(stored[i]->width, 1));
      if (stored[i]->values.size() < (s + 1) * width)
        throw SpecError(fmt::format("--resume {}: /observables/{} is narrower than the model's", resume.path,
                                    observable_names[i]));
      spans[i] = std::span<const double>(stored[i]->values.data() + s * width, width);
    }
    recorder.append(resume.steps[s], resume.times[s], spans);
  }
  for (std::size_t k = 0; k < series_defs.size(); ++k) {
    const auto it = resume.series.find(series_defs[k].path);
    if (it == resume.series.end()) continue;
    const StoredSeries& series = it->second;
    std::vector<const std::vector<double>*> columns;
    for (const SeriesColumn& column : series_defs[k].columns) {
      const auto at = std::find(series.column_names.begin(), series.column_names.end(), column.name);
      if (at == series.column_names.end())
        throw SpecError(fmt::format("--resume {}: the file has no /{}/{}", resume.path, series_defs[k].path, column.name));
      columns.push_back(&series.columns[std::size_t(at - series.column_names.begin())]);
    }
    std::size_t rows = series.rows;
    for (std::size_t c = 0; c < columns.size(); ++c)
      rows = std::min(rows, columns[c]->size() / std::size_t(std::max<std::int64_t>(series_defs[k].columns[c].width, 1)));
    replayed[series_defs[k].path] = rows;
    std::vector<std::vector<std::int64_t>> ints(columns.size());
    for (std::size_t r = 0; r < rows; ++r) {
      std::vector<ColumnValues> row;
      for (std::size_t c = 0; c < columns.size(); ++c) {
        const SeriesColumn& column = series_defs[k].columns[c];
        const std::size_t width = std::size_t(std::max<std::int64_t>(column.width, 1));
        const double* values = columns[c]->data() + r * width;
        if (column.type == h5::ElementType::float64) {
          row.emplace_back(std::span<const double>(values, width));
        } else {
          ints[c].assign(values, values + width);
          row.emplace_back(std::span<const std::int64_t>(ints[c]));
        }
      }
      recorder.append_row(k, row);
    }
  }
  return replayed;
}

/// What make_held_out_data did, stored with the data (docs/file-format.md): the test set, the
/// standardization statistics, the clean labels and the corrupted rows; nothing without them.
std::vector<StaticDataset> held_out_datasets(const HeldOutData& d) {
  auto values = [](const auto& v) { return std::vector<double>(v.data(), v.data() + v.size()); };
  std::vector<StaticDataset> out;
  if (d.has_test()) {
    const RowMat X = d.test.X;
    out.push_back({"data/X_test", values(X), {d.test.n(), d.test.dim()}, "held-out test points as rows, [n_test, d]"});
    out.push_back({"data/y_test", values(d.test.y), {}, "test labels (never corrupted)"});
  }
  if (d.feature_mean.size() > 0) {
    out.push_back({"data/feature_mean", values(d.feature_mean), {},
                   "data.standardize: training mean of each feature (before the bias column), subtracted"});
    out.push_back({"data/feature_scale", values(d.feature_scale), {},
                   "data.standardize: training standard deviation of each feature (1 for constant ones), divided by"});
  }
  if (d.clean_labels.size() > 0) {
    out.push_back({"data/y_clean", values(d.clean_labels), {}, "training labels before label_noise / random_labels"});
    std::vector<double> rows(d.corrupted_rows.begin(), d.corrupted_rows.end());
    out.push_back({"data/corrupted_rows", rows, {}, "training rows whose label differs from data/y_clean (0-based)"});
  }
  return out;
}

}  // namespace

RunReport run_model(const ModelSpec& spec, const RunOptions& options) {
  // Eigen parallelises its large matrix products (GEMM) with OpenMP; 1 thread unless asked.
  configure_kernels(spec.solver.threads);
  const HeldOutData held_out = make_held_out_data(spec);
  const Dataset& data = held_out.train;
  const bool relu = spec.network.activation == Activation::relu && !spec.network.hidden.empty();
  const bool use_events = relu && spec.dynamics.kinks == KinkMode::events;
  Network net = flow_network(spec, data.dim());
  Flow flow = make_flow(spec, net, data);
  const Vec theta0 = initial_weights(spec, net);
  const Vec y0 = initial_state(spec, flow, theta0);  // translates DomainError into the keys
  const ResumePoint* const resume = options.resume;
  if (resume) check_resume_matches(*resume, theta0, flow.state_size());
  SolverOptions solver = resolve_solver(spec);
  solver.stop_requested = options.stop_requested;
  // Safe screening (equations.md section 9): the dropped points' total stays below this per unit of
  // log clock, so over a whole run to t = 1e300 (s = 691) they move the state by less than atol.
  if (spec.solver.screening) flow.enable_screening(kScreeningFraction * solver.atol);
  if (use_events && !has_dense_output(solver.method))
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

  Provenance provenance;
  provenance.file_type = "gfsim-trajectory";
  provenance.model_toml = spec.resolved_toml;
  provenance.model_name = spec.name;
  provenance.seeds = {{"data_seed", std::int64_t(spec.data.seed)}, {"network_seed", std::int64_t(spec.network.seed)}};
  provenance.string_attrs = {{"flow", report.flow},
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
  if (use_events)
    // Filippov solutions need not be unique where several surfaces meet: the selection made there.
    provenance.string_attrs["kink_selection"] =
        "where several consistent sliding sets exist: the one the box-constrained Newton solve of the "
        "complementarity conditions reaches from the current masks (then from all 0, all 1, then with "
        "natural-monotonicity damping); the masks of one point in several layers multiply (multi-affine "
        "equivalent control); coincident deeper surfaces share one mask; a joint switch that changes "
        "nothing where its surface is hit again at zero distance is replaced by switches one at a time "
        "(docs/events.md, Sliding sets)";
  provenance.int_attrs = {{"K", K}, {"P", P}, {"n", data.n()}, {"n_test", held_out.test.n()}};
  provenance.double_attrs = {{"t_end", spec.time.t_end}, {"rtol", solver.rtol}, {"atol", solver.atol}};
  if (net.kink_width() > 0) provenance.double_attrs["kink_width"] = net.kink_width();
  if (spec.flow.kind == FlowKind::fixed_rho) provenance.double_attrs["rho"] = spec.flow.rho;
  std::vector<std::int64_t> widths;
  for (Index w : net.widths()) widths.push_back(w);
  provenance.int_array_attrs = {{"widths", widths}};
  if (resume) {
    provenance.string_attrs["resumes"] =
        resume->resume_history + fmt::format("{} resumed from t = {:.17g} (sample {}, step {}) by gfsim {} git {}\n",
                                             utc_timestamp_now(), resume->t, resume->times.size() - 1, resume->step,
                                             kVersion, git_commit());
    provenance.string_attrs["original_created"] = resume->original_created;
    provenance.string_attrs["original_git_commit"] = resume->original_git_commit;
    provenance.double_attrs["resumed_from_t"] = resume->t;
  }

  const Vec rho0_sq = flow.layer_norms(y0).array().square();
  auto balance_of = [&](const Vec& rho) {
    double drift = 0;
    const Vec r2 = rho.array().square();
    for (Index k = 1; k < K; ++k) drift = std::max(drift, std::abs((r2[k] - r2[0]) - (rho0_sq[k] - rho0_sq[0])));
    return drift;
  };
  // Observables: each computes its values from (t, y). The diagnostics (loss, margin, gradient
  // norm) cost a gradient; they are evaluated once per sample, by the first observable needing them.
  std::optional<FlowDiagnostics> sample_diagnostics;
  auto diagnostics_at = [&](const Vec& y) -> const FlowDiagnostics& {
    if (!sample_diagnostics) sample_diagnostics = flow.diagnostics(y);
    return *sample_diagnostics;
  };
  auto copy_to = [](std::span<double> out, const Vec& v) { std::copy(v.data(), v.data() + v.size(), out.begin()); };
  std::vector<std::string> layer_names;
  for (Index k = 1; k <= K; ++k) layer_names.push_back(fmt::format("rho_{}", k));
  RecorderLayout layout;
  layout.observables = {
      {"theta", P, "weights W_1..W_K (theta layout); fixed_rho: V_k scaled to rho_k = rho^(1/K)", {},
       [&](double, const Vec& y, std::span<double> out) { copy_to(out, flow.theta(y)); }},
      {"direction", P, "normalized weights V_k = W_k/||W_k||, concatenated", {},
       [&](double, const Vec& y, std::span<double> out) { copy_to(out, flow.direction(y)); }},
      {"rho", K, "per-layer Frobenius norms rho_k = ||W_k||", layer_names,
       [&](double, const Vec& y, std::span<double> out) { copy_to(out, flow.layer_norms(y)); }},
      {"log_loss", 0, "log L(W), L = sum_n l(y_n f(x_n))", {},
       [&](double, const Vec& y, std::span<double> out) { out[0] = diagnostics_at(y).log_loss; }},
      {"margin", 0, "normalized margin min_n y_n f(V; x_n)", {},
       [&](double, const Vec& y, std::span<double> out) { out[0] = diagnostics_at(y).margin; }},
      {"grad_norm", 0, "||grad_W L|| (fixed_rho: Riemannian gradient norm)", {},
       [&](double, const Vec& y, std::span<double> out) { out[0] = diagnostics_at(y).grad_norm; }},
      {"balance", 0, "Lemma 2 drift: max_k |(rho_k^2 - rho_1^2)(t) - (rho_k^2 - rho_1^2)(0)|", {},
       [&](double, const Vec& y, std::span<double> out) {
         out[0] = balance_of(flow.layer_norms(y));
         report.balance_drift = std::max(report.balance_drift, out[0]);
       }},
  };
  if (spec.solver.screening)
    layout.observables.push_back({"kept_points", 0, "screening: data points in the last evaluation of the field", {},
                                  [&](double, const Vec&, std::span<double> out) {
                                    out[0] = double(flow.screening_state().kept);
                                  }});
  // The ODE state itself where it is not theta: what --resume restarts from (run_resume.hpp).
  if (spec.flow.kind != FlowKind::gd)
    layout.observables.push_back({"state", flow.state_size(), "ODE state y of the flow kind (restart state of --resume)",
                                  {}, [&](double, const Vec& y, std::span<double> out) { copy_to(out, y); }});
  // Generalization observables (generalization.hpp): training set, and test set and gap if held out.
  GeneralizationObserver generalization(flow.network(), data, &held_out.test, spec.loss.kind, spec.generalization.rho);
  for (ObservableDef& observable : generalization.observables([&](const Vec& y) { return flow.theta(y); }))
    layout.observables.push_back(std::move(observable));
  // [spectrum]: tangent-space Hessian eigenvalues at the current direction and rho(t); its sample
  // times are added to the output grid, and it has its own time axis (a subset of the samples).
  std::vector<double> spectrum_times;
  const Index spectrum_k = spec.spectrum.k;
  if (spec.spectrum.enabled())
    spectrum_times = spec.spectrum.samples_per_decade > 0
                         ? log_spaced_times(spec.time.t_first, spec.time.t_end, spec.spectrum.samples_per_decade)
                         : spec.spectrum.times;
  const std::size_t no_series = std::size_t(-1);
  std::size_t spectrum_series = no_series, events_series = no_series;
  if (!spectrum_times.empty()) {
    spectrum_series = layout.series.size();
    layout.series.push_back(
        {"observables/hessian_eigs",
         "k smallest then k largest eigenvalues (ascending) of the Riemannian Hessian of V -> L(rho f~(V)) on the "
         "tangent space of the product of unit spheres, at V(t) and rho(t) = prod_k rho_k (equations.md section 7); "
         "NaN where the tangent dimension < k; ReLU: the Hessian of the activation pattern sign(h) at the sample, "
         "so on a sliding surface, where h is rounding, that of either side (docs/relu_deep.md, session 19)",
         {{"step", h5::ElementType::int64, 0, "solver step of the sample", {}},
          {"time", h5::ElementType::float64, 0, "physical time t", {}},
          {"value", h5::ElementType::float64, 2 * spectrum_k, "eigenvalues, [samples, 2k]", {}}},
         {{"k", spectrum_k}}});
  }
  if (use_events) {
    events_series = layout.series.size();
    layout.series.push_back(
        {"events", "ReLU kink events in the order located (docs/events.md)",
         {{"time", h5::ElementType::float64, 0, "physical time of the event", {}},
          {"layer", h5::ElementType::int64, 0, "hidden layer k (0-based)", {}},
          {"unit", h5::ElementType::int64, 0, "unit i of the layer", {}},
          {"point", h5::ElementType::int64, 0, "data point n", {}},
          {"kind", h5::ElementType::int8_enum, 0, "crossing, sliding_entry or sliding_exit",
           {"crossing", "sliding_entry", "sliding_exit"}}},
         {}});
  }
  // The points row-major for the output, without keeping a row-major copy of X for the whole run
  // (n = 1e6, dim = 50: 400 MB).
  auto row_major = [](const Mat& M) {
    const RowMat R = M;
    return std::vector<double>(R.data(), R.data() + R.size());
  };
  auto layer_datasets = [&](const std::string& group, const Vec& theta) {
    std::vector<StaticDataset> out{{group + "/theta", std::vector<double>(theta.data(), theta.data() + P), {}, ""}};
    for (Index k = 0; k < K; ++k) {
      const double* W = theta.data() + net.layer_offset(k);
      out.push_back({fmt::format("{}/W_{}", group, k + 1), std::vector<double>(W, W + net.layer_size(k)),
                     {net.layer_rows(k), net.layer_cols(k)}, fmt::format("W_{} [d_{}, d_{}]", k + 1, k + 1, k)});
    }
    return out;
  };
  layout.initial_datasets = layer_datasets("initial", theta0);
  layout.initial_datasets.push_back({"data/X", row_major(data.X),
                                     {data.n(), data.dim()}, "data points x_n as rows, [n, d]"});
  layout.initial_datasets.push_back(
      {"data/y", std::vector<double>(data.y.data(), data.y.data() + data.n()), {}, "labels y_n"});
  for (StaticDataset& dataset : held_out_datasets(held_out)) layout.initial_datasets.push_back(std::move(dataset));
  std::vector<std::string> observable_names;
  for (const ObservableDef& observable : layout.observables) observable_names.push_back(observable.name);
  const std::vector<SeriesDef> series_defs = layout.series;
  Recorder recorder(spec.output.path, std::move(layout), provenance, {spec.output.flush_interval, spec.output.swmr});

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
    recorder.append_row(spectrum_series, {std::span<const std::int64_t>(&step, 1), std::span<const double>(&t, 1),
                                          std::span<const double>(eig.data(), std::size_t(eig.size()))});
    ++report.spectrum_samples;
  };
  double observe_seconds = 0;  // sample recording (diagnostics + HDF5), inside the solver's wall time
  bool restart_sample_stored = resume != nullptr;  // the first sample of a resume is the stored last one
  const std::int64_t step_offset = resume ? resume->step : 0;
  // While entries slide, the flow's masks are the equivalent control of its last evaluation, which
  // may be at another state (a trial stage, an event search, a dip test): a sample's observables
  // (the gradient norm on a kink) take the control at the sample itself.
  KinkPattern* sliding_pattern = nullptr;
  const Clock sample_clock{solver.clock};
  auto settle_masks_at = [&](double t, const Vec& y) {
    if (!sliding_pattern || sliding_pattern->sliding().empty()) return;
    Vec dy;
    sliding_pattern->rhs(sample_clock.at(sample_clock.tau(t)), y, dy);
  };
  auto observe = [&](std::int64_t solver_step, double t, const Vec& y) {
    if (restart_sample_stored) {
      restart_sample_stored = false;
      return;
    }
    settle_masks_at(t, y);
    const std::int64_t step = solver_step + step_offset;
    const auto observe_start = std::chrono::steady_clock::now();
    if (!spectrum_times.empty()) sample_spectrum(step, t, y);
    sample_diagnostics.reset();
    recorder.record(step, t, y);
    ++report.samples;
    if (options.on_sample) options.on_sample(t, flow.theta(y), flow.layer_norms(y), diagnostics_at(y).margin);
    observe_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - observe_start).count();
  };
  ProgressLine progress(options.progress, spec.time.t_end);
  auto monitor = [&](double t, const Vec&, const SolverCounters& c) -> std::optional<Status> {
    progress.update(t, c);
    if (options.on_step) options.on_step(t, c);
    return std::nullopt;  // a stop request is read by the solver itself (solver.stop_requested)
  };
  std::vector<double> times = log_spaced_times(spec.time.t_first, spec.time.t_end, spec.time.samples_per_decade);
  if (!spectrum_times.empty()) {
    times.insert(times.end(), spectrum_times.begin(), spectrum_times.end());
    std::sort(times.begin(), times.end());
    times.erase(std::unique(times.begin(), times.end(),
                            [](double a, double b) { return std::abs(a - b) <= 1e-12 * std::max(1.0, std::abs(b)); }),
                times.end());
  }
  double sliding_since = 0;
  std::map<std::tuple<Index, Index, Index>, double> sliding_start;
  auto count_event = [&](double t, const std::tuple<Index, Index, Index>& key, KinkEvent kind) {
    if (kind == KinkEvent::crossing) ++report.kink_crossings;
    if (kind == KinkEvent::sliding_entry) {
      ++report.sliding_entries;
      sliding_start[key] = t;
    }
    if (kind == KinkEvent::sliding_exit) {
      ++report.sliding_exits;
      sliding_since += t - sliding_start[key];
      sliding_start.erase(key);
    }
  };
  if (resume) {
    const auto replayed = replay_stored(*resume, observable_names, series_defs, recorder);
    report.samples = std::int64_t(resume->times.size());
    if (resume->observables.contains("balance"))
      for (double b : resume->observables.at("balance").values) report.balance_drift = std::max(report.balance_drift, b);
    if (events_series != no_series && resume->series.contains("events")) {
      const StoredSeries& stored = resume->series.at("events");
      auto column = [&](const char* name) -> const std::vector<double>& {
        const auto at = std::find(stored.column_names.begin(), stored.column_names.end(), name);
        return stored.columns[std::size_t(at - stored.column_names.begin())];
      };
      const auto &time = column("time"), &layer = column("layer"), &unit = column("unit"), &point = column("point"),
                 &kind = column("kind");
      for (std::size_t r = 0; r < replayed.at("events"); ++r)
        count_event(time[r], {Index(layer[r]), Index(unit[r]), Index(point[r])}, KinkEvent(int(kind[r])));
    }
  }
  // A resume re-derives the kink pattern at its restart state (run_resume.hpp); the sliding entries
  // to_event_problem reports while settling them are the stored ones, already counted.
  bool settling_restart = resume != nullptr;
  const Vec& y_start = resume ? resume->state : y0;
  KinkPattern pattern(flow);  // the discrete state of kinks = "events" (unused otherwise)
  if (use_events) sliding_pattern = &pattern;
  // The field's arguments at the start (a resume settles its kinks with the field at the restart time).
  const Clock start_clock{solver.clock};
  const TimePoint start_time = start_clock.at(start_clock.tau(resume ? resume->t : 0.0));
  const OdeProblem problem =
      use_events ? to_event_problem(pattern, y_start,
                                    [&](double t, Index layer, Index unit, Index point, KinkEvent kind) {
                                      if (settling_restart) return;
                                      const std::int64_t ids[4] = {layer, unit, point, std::int64_t(kind)};
                                      recorder.append_row(events_series, {std::span<const double>(&t, 1),
                                                                          std::span<const std::int64_t>(ids, 1),
                                                                          std::span<const std::int64_t>(ids + 1, 1),
                                                                          std::span<const std::int64_t>(ids + 2, 1),
                                                                          std::span<const std::int64_t>(ids + 3, 1)});
                                      count_event(t, std::make_tuple(layer, unit, point), kind);
                                    },
                                    start_time)
                 : to_ode_problem(flow);
  settling_restart = false;
  if (resume) {
    // The continuation: from the restart time through the grid times beyond it.
    const double t0 = resume->t, tol = 1e-12 * std::max(1.0, t0);
    times.erase(times.begin(), std::upper_bound(times.begin(), times.end(), t0 + tol));
    times.insert(times.begin(), t0);
  }
  report.result = integrate(problem, y_start, times, solver, observe, monitor);
  // The solver names no model keys: the keys that would change the outcome are added here.
  switch (report.result.status) {
    case Status::max_steps: report.result.message += " (raise solver.max_steps)"; break;
    case Status::wall_clock: report.result.message += " (raise solver.max_wall_seconds)"; break;
    case Status::stalled_at_kink:
    case Status::step_collapse:
      if (relu && !use_events)
        report.result.message += " (integrate across kinks with dynamics.kinks = \"events\", or \"smooth\" for "
                                 "large nets)";
      break;
    default: break;
  }
  for (const auto& [key, t0] : sliding_start) sliding_since += report.result.t_final - t0;
  report.sliding_time = sliding_since;
  progress.clear();

  const Vec& yf = report.result.y_final;
  report.rho = flow.layer_norms(yf);
  settle_masks_at(report.result.t_final, yf);
  report.final = flow.diagnostics(yf);
  report.generalization = generalization.values_at(flow.theta(yf));
  std::vector<StaticDataset> end = layer_datasets("final", flow.theta(yf));
  end.push_back({"timing/observe_seconds", {observe_seconds}, {}, "seconds spent recording samples"});
  std::map<std::string, std::int64_t> event_counters;
  if (spec.solver.screening) {
    const ScreeningState sc = flow.screening_state();
    report.screening = true;
    report.screens = sc.screens;
    report.kept_points = sc.kept;
    end.push_back({"screening/summary", {double(sc.screens), double(sc.kept), double(data.n())}, {},
                   "screening: full passes that re-chose the kept points, points kept at the end, all points"});
  }
  if (use_events) {
    end.push_back({"events/summary",
                   {double(report.kink_crossings), double(report.sliding_entries), double(report.sliding_exits),
                    report.sliding_time},
                   {},
                   "kink crossings, sliding entries, sliding exits, unit-time spent sliding (summed over pairs)"});
    event_counters = {{"kink_crossings", report.kink_crossings}, {"sliding_exits", report.sliding_exits}};
  }
  if (report.screening) {
    event_counters["screens"] = report.screens;
    event_counters["kept_points"] = std::int64_t(report.kept_points);
  }
  GroupWriter extra_groups;
  if (options.write_extra_groups) extra_groups = [&](h5::File& file) { options.write_extra_groups(file, report); };
  recorder.finish(report.result, end, extra_groups, event_counters);
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
  for (const auto& [name, value] : r.generalization) fmt::print(out, "  {:<22} {:.6g}\n", name, value);
  fmt::print(out, "  {:<22} {} accepted, {} rejected\n", "steps", c.accepted, c.rejected);
  if (r.uses_events)
    fmt::print(out, "  {:<22} {} kink crossings, {} sliding entries, {} exits, {:.4g} unit-time sliding\n",
               "kink events", r.kink_crossings, r.sliding_entries, r.sliding_exits, r.sliding_time);
  if (c.discontinuities > 0)  // stops at the field's known jumps (integrate.hpp, Discontinuities)
    fmt::print(out, "  {:<22} {} stepper restarts\n", "discontinuities", c.discontinuities);
  if (c.reanchors > 0)  // fast transients far from the stepper's time origin (Stepper::reanchor)
    fmt::print(out, "  {:<22} {} stepper restarts at a new time origin\n", "reanchors", c.reanchors);
  if (c.jvp_evals > 0)  // matrix-free Krylov: Jacobian-vector products instead of Jacobians and LUs
    fmt::print(out, "  {:<22} {} rhs, {} J v products\n", "evaluations", c.rhs_evals, c.jvp_evals);
  else
    fmt::print(out, "  {:<22} {} rhs, {} jacobians, {} LU\n", "evaluations", c.rhs_evals, c.jacobian_evals,
               c.lu_decompositions);
  if (r.screening)
    fmt::print(out, "  {:<22} {} points kept at the end, {} screens\n", "screening", r.kept_points, r.screens);
  fmt::print(out, "  {:<22} {:.3f} s\n", "wall time", c.wall_seconds);
  fmt::print(out, "  {:<22} {} ({} samples)\n", "output", r.output_path, r.samples);
}

}  // namespace gfsim
