#include "gfsim/verify.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "gfsim/build.hpp"
#include "gfsim/dataset.hpp"
#include "gfsim/errors.hpp"
#include "gfsim/network.hpp"
#include "gfsim/run.hpp"
#include "gfsim/verify_output.hpp"

namespace gfsim {

VerifyReport verify_model(const ModelSpec& spec, const VerifyOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  VerifyReport r;
  r.model_name = spec.name;
  r.t_end = spec.time.t_end;
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
  const LawProblem pb{net, data, spec.loss.kind};
  if (spec.dynamics.kinks == KinkMode::smooth && net.num_layers() > 1 && net.activation() == Activation::relu)
    r.notes.push_back("dynamics.kinks = \"smooth\" replaced by \"events\": the laws are checked on the exact ReLU flow");

  r.gd.flow = "gd";
  r.wn.flow = "wn";
  auto flow_spec = [&](const FlowLaws& f) {
    const bool gd = &f == &r.gd;
    ModelSpec s = spec;
    s.flow.kind = gd ? FlowKind::gd : FlowKind::wn;
    s.output.path = gd ? r.gd_path : r.wn_path;
    s.time.samples_per_decade = std::max(s.time.samples_per_decade, 4);
    // The laws are those of the ReLU flow, and wn needs a homogeneous net: exact kinks.
    if (s.dynamics.kinks == KinkMode::smooth) s.dynamics.kinks = KinkMode::events;
    s.resolved_toml = canonical_toml(s);  // the model each output file records
    return s;
  };
  auto run_options = [&](SampleSeries& c) {
    RunOptions ro;
    ro.progress = options.progress;
    ro.stop_requested = options.stop_requested;
    ro.on_sample = [&c](double t, const Vec& theta, const Vec& rho, double margin) {
      c.t.push_back(t), c.theta.push_back(theta), c.rho.push_back(rho), c.margin.push_back(margin);
    };
    return ro;
  };
  auto measure = [&](FlowLaws& f, const RunReport& report, const SampleSeries& c, const ModelSpec& s) {
    f.run = report;
    f.stopped_early = f.run.result.status != Status::success;
    measure_flow_laws(f, c, r.has_reference ? &r.mm : nullptr, s.solver.rtol, pb);
  };

  // The wn flow first; then the gd flow, whose output file receives /verify through its
  // write_extra_groups before it closes: the laws are judged inside that hook, with both flows
  // measured, so no file is opened again after its run.
  const ModelSpec wn_spec = flow_spec(r.wn), gd_spec = flow_spec(r.gd);
  SampleSeries wn_samples, gd_samples;
  measure(r.wn, run_model(wn_spec, run_options(wn_samples)), wn_samples, wn_spec);
  std::string json;
  RunOptions gd_options = run_options(gd_samples);
  gd_options.write_extra_groups = [&](h5::File& file, const RunReport& report) {
    measure(r.gd, report, gd_samples, gd_spec);
    for (const FlowLaws* f : {&r.gd, &r.wn})
      if (f->stopped_early)
        r.notes.push_back(fmt::format("{} flow ended with status {} at t = {:.3g} ({}): its laws are not measured",
                                      f->flow, status_name(f->run.result.status), f->run.result.t_final,
                                      f->run.result.message));
    r.laws = judge_laws(r.gd, r.wn, r.has_reference ? r.mm.gamma : std::numeric_limits<double>::quiet_NaN(), r.K,
                        spec.solver.rtol);
    r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    json = verify_json(r);
    write_verify_group(file, r, json);
  };
  run_model(gd_spec, gd_options);
  std::ofstream js(r.json_path);
  if (!js) throw IoError(fmt::format("{}: cannot write the verify JSON", r.json_path));
  js << json;
  return r;
}

}  // namespace gfsim
