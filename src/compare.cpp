// `gfsim compare` (compare.hpp): runs the listed flows through the ordinary run path (run_model),
// then measures margin gap and direction error against the reference, the cost of reaching each
// threshold and the fitted rates. The report's JSON and table are in compare_output.cpp.
#include "gfsim/compare.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gfsim/build.hpp"
#include "gfsim/enum_names.hpp"
#include "gfsim/errors.hpp"
#include "gfsim/kkt.hpp"
#include "gfsim/law_fits.hpp"
#include "gfsim/law_measurement.hpp"
#include "gfsim/max_margin.hpp"
#include "gfsim/verify_thresholds.hpp"

namespace gfsim {

RateFit fit_rates(const std::vector<double>& t, const std::vector<double>& values, double floor) {
  RateFit fit;
  std::vector<double> log_t, log_v, lin_t;
  for (std::size_t i = 0; i < t.size(); ++i)
    if (t[i] >= std::exp(1.0) && values[i] > floor && std::isfinite(values[i]))
      log_t.push_back(std::log(t[i])), log_v.push_back(std::log(values[i])), lin_t.push_back(t[i]);
  if (log_t.size() < 3) return fit;
  const double half = 0.5 * (log_t.front() + log_t.back());
  std::vector<double> x_power, x_log, x_lin, y;
  for (std::size_t i = 0; i < log_t.size(); ++i)
    if (log_t[i] >= half)
      x_power.push_back(log_t[i]), x_log.push_back(std::log(log_t[i])), x_lin.push_back(lin_t[i]), y.push_back(log_v[i]);
  if (y.size() < 3) return fit;
  const LineFit p = fit_line(x_power, y), l = fit_line(x_log, y), e = fit_line(x_lin, y);
  fit.power = -p.slope, fit.power_r2 = p.r2;
  fit.log_power = -l.slope, fit.log_power_r2 = l.r2;
  fit.exp_rate = -e.slope, fit.exp_rate_r2 = e.r2;
  fit.points = Index(y.size());
  return fit;
}

Index first_index_below_for_good(const std::vector<double>& values, double threshold) {
  Index first = -1;
  for (Index i = Index(values.size()) - 1; i >= 0; --i) {
    if (!(values[std::size_t(i)] <= threshold)) break;
    first = i;
  }
  return first;
}

std::vector<FlowKind> parse_flow_list(const std::string& list) {
  std::vector<FlowKind> kinds;
  std::string known;
  for (const auto& [kind, name] : EnumNames<FlowKind>::table) known += fmt::format("{}{}", known.empty() ? "" : ", ", name);
  std::stringstream in(list);
  std::string name;
  while (std::getline(in, name, ',')) {
    const auto entry = std::find_if(EnumNames<FlowKind>::table.begin(), EnumNames<FlowKind>::table.end(),
                                     [&](const auto& e) { return name == e.second; });
    if (entry == EnumNames<FlowKind>::table.end())
      throw SpecError(fmt::format("--flows {}: unknown flow \"{}\" (known flows: {})", list, name, known));
    if (std::find(kinds.begin(), kinds.end(), entry->first) != kinds.end())
      throw SpecError(fmt::format("--flows {}: flow \"{}\" is listed twice", list, name));
    kinds.push_back(entry->first);
  }
  if (kinds.empty()) throw SpecError(fmt::format("--flows \"{}\": needs at least one flow, e.g. gd,wn", list));
  return kinds;
}

namespace {

/// Cost of the solver at each accepted step: physical time, RHS evaluations, wall time.
struct StepLog {
  std::vector<double> t, rhs, wall;
};

/// The first step that reached time T (samples are interpolated inside the step that covers them).
void cost_at(const StepLog& steps, double T, double& rhs, double& wall) {
  const auto it = std::lower_bound(steps.t.begin(), steps.t.end(), T * (1 - 1e-12));
  if (it == steps.t.end()) {
    rhs = steps.rhs.empty() ? 0.0 : steps.rhs.back();
    wall = steps.wall.empty() ? 0.0 : steps.wall.back();
    return;
  }
  const std::size_t i = std::size_t(it - steps.t.begin());
  rhs = steps.rhs[i], wall = steps.wall[i];
}

std::vector<Reach> reaches(const std::vector<double>& values, const FlowComparison& f) {
  std::vector<Reach> out;
  for (double threshold : kCompareThresholds) {
    Reach r;
    r.threshold = threshold;
    const Index i = first_index_below_for_good(values, threshold);
    if (i >= 0) {
      r.reached = true;
      r.t = f.t[std::size_t(i)];
      r.rhs_evals = f.rhs_evals[std::size_t(i)];
      r.wall_seconds = f.wall_seconds[std::size_t(i)];
    }
    out.push_back(r);
  }
  return out;
}

}  // namespace

CompareReport compare_model(const ModelSpec& spec, const CompareOptions& options) {
  namespace fs = std::filesystem;
  const auto start = std::chrono::steady_clock::now();
  if (options.flows.empty()) throw SpecError("compare: --flows needs at least one flow, e.g. gd,wn");
  CompareReport r;
  r.model_name = spec.name;
  const fs::path out = options.output.empty() ? fs::path(spec.output.path) : fs::path(options.output);
  const fs::path dir = out.parent_path();
  const std::string stem = out.stem().string();
  r.json_path = (dir / (stem + "_compare.json")).string();
  if (!dir.empty()) fs::create_directories(dir);

  const Dataset data = make_dataset(spec);
  const Network net = exact_network(spec, data.dim());
  r.K = net.num_layers();
  const LawProblem pb{net, data, spec.loss.kind};
  MaxMarginResult mm;
  r.has_reference = spec.network.activation == Activation::linear || net.num_layers() == 1;
  if (r.has_reference) {
    try {
      mm = max_margin(data.signed_points());
    } catch (const SpecError& e) {
      throw SpecError(fmt::format("compare: the data of model '{}' have no max-margin reference: {}", spec.name, e.what()));
    }
    r.gamma = mm.gamma;
    r.direction_measure = r.K == 1 ? "direction error ||v - v*||" : "direction error ||beta/|beta| - v*|| (end-to-end)";
  } else {
    r.direction_measure = "KKT residual (Lyu-Li)";
    r.notes.push_back("ReLU net: no independent max-margin reference; gamma is the largest normalized margin any "
                      "compared flow reached, the direction error is the Lyu-Li KKT residual");
  }
  r.floor = 100 * spec.solver.rtol;

  std::vector<std::vector<Vec>> thetas;
  for (FlowKind kind : options.flows) {
    FlowComparison f;
    f.flow = to_string(kind);
    ModelSpec s = spec;
    s.flow.kind = kind;
    f.output_path = (dir / fmt::format("{}_{}.h5", stem, f.flow)).string();
    s.output.path = f.output_path;
    s.time.samples_per_decade = std::max(s.time.samples_per_decade, 10);
    // The homogeneity-based kinds cannot integrate the smoothed ReLU: they keep its kinks as events.
    if (s.dynamics.kinks == KinkMode::smooth && !integrates_smoothed_relu(kind)) s.dynamics.kinks = KinkMode::events;
    s.resolved_toml = canonical_toml(s);
    StepLog steps;
    std::vector<Vec> theta;
    std::chrono::steady_clock::time_point t0{};
    RunOptions ro;
    ro.progress = options.progress;
    ro.stop_requested = options.stop_requested;
    ro.on_sample = [&](double t, const Vec& th, const Vec&, double margin) {
      if (t == 0.0) {
        t0 = std::chrono::steady_clock::now();
        return;
      }
      f.t.push_back(t), f.margin.push_back(margin), theta.push_back(th);
    };
    ro.on_step = [&](double t, const SolverCounters& c) {
      steps.t.push_back(t);
      steps.rhs.push_back(double(c.rhs_evals));
      steps.wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    };
    f.run = run_model(s, ro);
    if (f.run.result.status != Status::success)
      r.notes.push_back(fmt::format("{} ended with status {} at t = {:.3g} ({}): measured on its samples so far", f.flow,
                                    status_name(f.run.result.status), f.run.result.t_final, f.run.result.message));
    for (double t : f.t) {
      double rhs = 0, wall = 0;
      cost_at(steps, t, rhs, wall);
      f.rhs_evals.push_back(rhs), f.wall_seconds.push_back(wall);
    }
    r.flows.push_back(std::move(f));
    thetas.push_back(std::move(theta));
    if (options.stop_requested && options.stop_requested->load()) break;  // interrupted: measure what ran
  }

  if (!r.has_reference)
    for (const FlowComparison& f : r.flows)
      for (double m : f.margin) r.gamma = std::max(r.gamma, m);
  for (std::size_t j = 0; j < r.flows.size(); ++j) {
    FlowComparison& f = r.flows[j];
    for (std::size_t i = 0; i < f.t.size(); ++i) {
      f.gap.push_back(r.gamma > 0 ? (r.gamma - f.margin[i]) / r.gamma : std::numeric_limits<double>::quiet_NaN());
      if (r.has_reference) {
        f.direction_error.push_back((reference_direction(pb, thetas[j][i]) - mm.direction).norm());
      } else {
        const KktResidual k = kkt_residual(net, data, thetas[j][i], kVerifyThresholds.kkt_active_gap);
        f.direction_error.push_back(k.defined ? k.residual() : std::numeric_limits<double>::quiet_NaN());
      }
    }
    f.gap_reach = reaches(f.gap, f);
    f.direction_reach = reaches(f.direction_error, f);
    f.gap_rate = fit_rates(f.t, f.gap, r.floor);
    f.direction_rate = fit_rates(f.t, f.direction_error, r.floor);
  }
  r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ofstream js(r.json_path);
  if (!js) throw IoError(fmt::format("{}: cannot write the compare JSON", r.json_path));
  js << compare_json(r);
  if (!js) throw IoError(fmt::format("{}: cannot write the compare JSON", r.json_path));
  return r;
}

}  // namespace gfsim
