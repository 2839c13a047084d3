// gfsim: thin command-line front end (CLI11 lives only here). Exit codes: 0 success,
// 1 numerical failure (the status says which), 2 bad input or I/O error.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdlib>
#include <csignal>
#include <fmt/format.h>
#include <fmt/ostream.h>
#include <iostream>
#include <optional>
#include <tuple>

#include "gfsim/compare.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/recorder.hpp"
#include "gfsim/run.hpp"
#include "gfsim/stationary_command.hpp"
#include "gfsim/sweep_runner.hpp"
#ifdef GFSIM_MPI
#include "gfsim/sweep_mpi.hpp"
#endif
#include "gfsim/verify_output.hpp"
#include "gfsim/provenance.hpp"
#include "gfsim/version.hpp"

namespace {

std::atomic<bool> g_stop_requested{false};  // the one piece of global state: signals need it

extern "C" void request_stop(int) { g_stop_requested.store(true); }

int run_command(const std::string& model, const std::vector<std::string>& sets, const std::string& output,
                const std::string& resume_file, bool quiet) {
  if (model.empty() == resume_file.empty())
    throw gfsim::SpecError("gfsim run: give either MODEL or --resume FILE (exactly one)");
  if (!resume_file.empty() && !output.empty())
    throw gfsim::SpecError(fmt::format("gfsim run --resume {}: -o {}: a resume appends to its own file", resume_file,
                                       output));
  auto overrides = sets;
  if (!output.empty()) overrides.push_back(fmt::format("output.path=\"{}\"", output));
  std::optional<gfsim::ResumePoint> resume;
  if (!resume_file.empty()) resume = gfsim::read_resume_point(resume_file, sets);
  const gfsim::ModelSpec spec = resume ? resume->spec : gfsim::load_model_spec(model, overrides);
  if (!quiet) {
    if (resume)
      fmt::print("# gfsim {} ({}) resuming {} from t = {:.6g} to t_end = {:.6g}\n# resolved model:\n", gfsim::kVersion,
                 gfsim::git_commit(), resume_file, resume->t, spec.time.t_end);
    else
      fmt::print("# gfsim {} ({}) running {}\n# resolved model:\n", gfsim::kVersion, gfsim::git_commit(), model);
    std::string line;
    std::istringstream in(spec.resolved_toml);
    while (std::getline(in, line)) fmt::print("#   {}\n", line);
    std::cout.flush();
  }
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  gfsim::RunOptions options;
  options.progress = !quiet && isatty(STDERR_FILENO);
  options.stop_requested = &g_stop_requested;
  if (resume) options.resume = &*resume;
  const auto report = gfsim::run_model(spec, options);
  gfsim::print_summary(std::cout, report);
  return gfsim::exit_code(report.result.status);
}

// `gfsim verify`: GD and WN flows from the same start, the section 6 laws, a verdict table.
// Exit 0 when both runs succeeded (whatever the verdicts), 1 on a numerical failure, 2 bad input.
int verify_command(const std::string& model, const std::vector<std::string>& sets, const std::string& t_end,
                   const std::string& output, bool quiet) {
  std::vector<std::string> overrides = sets;  // the horizon is the model's time.t_end unless --t-end
  if (!t_end.empty()) overrides.push_back(fmt::format("time.t_end={}", t_end));
  const gfsim::ModelSpec spec = gfsim::load_model_spec(model, overrides);
  if (!quiet) fmt::print("# gfsim {} ({}) verify {}\n", gfsim::kVersion, gfsim::git_commit(), model);
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  gfsim::VerifyOptions options;
  options.output = output;
  options.progress = !quiet && isatty(STDERR_FILENO);
  options.stop_requested = &g_stop_requested;
  const auto report = gfsim::verify_model(spec, options);
  gfsim::print_verify(std::cout, report);
  return std::max(gfsim::exit_code(report.gd.run.result.status), gfsim::exit_code(report.wn.run.result.status));
}

// `gfsim stationary`: stationary point of the fixed-rho flow, tangent Hessian spectrum, verdict.
// Exit 0 when Newton converged, 1 otherwise, 2 bad input.
int stationary_command(const std::string& model, const std::vector<std::string>& sets,
                       const gfsim::StationaryCliOptions& options, bool quiet) {
  const gfsim::ModelSpec spec = gfsim::load_model_spec(model, sets);
  if (!quiet) fmt::print("# gfsim {} ({}) stationary {}\n", gfsim::kVersion, gfsim::git_commit(), model);
  const auto report = gfsim::stationary_model(spec, options);
  gfsim::print_stationary_summary(std::cout, report);
  return report.result.newton_converged ? 0 : 1;
}

// `gfsim compare`: the listed flows from the same start, the cost of reaching margin-gap and
// direction thresholds, fitted rates. Exit 0 when every run succeeded, 1 on a numerical failure, 2 bad input.
int compare_command(const std::string& model, const std::vector<std::string>& sets, const std::string& flows,
                    const std::string& output, bool quiet) {
  const gfsim::ModelSpec spec = gfsim::load_model_spec(model, sets);
  if (!quiet) fmt::print("# gfsim {} ({}) compare {}\n", gfsim::kVersion, gfsim::git_commit(), model);
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  gfsim::CompareOptions options;
  options.flows = gfsim::parse_flow_list(flows);
  options.output = output;
  options.progress = !quiet && isatty(STDERR_FILENO);
  options.stop_requested = &g_stop_requested;
  const auto report = gfsim::compare_model(spec, options);
  gfsim::print_compare(std::cout, report);
  int code = 0;
  for (const auto& f : report.flows) code = std::max(code, gfsim::exit_code(f.run.result.status));
  return code;
}

int print_sweep_summary(const gfsim::SweepSummary& summary);

// `gfsim sweep`: every run of a sweep file, then DIR/index.h5 + DIR/index.csv (docs/sweeps.md).
// Exit 0 when every run ended with status success, 1 otherwise, 2 bad input (before any run).
int sweep_command(const std::string& sweep_file, const std::vector<std::string>& sets, gfsim::SweepOptions options,
                  const std::string& shard, bool quiet) {
  const gfsim::SweepPlan plan = gfsim::read_sweep_plan(sweep_file, sets);
  if (!shard.empty()) std::tie(options.shard_index, options.shard_count) = gfsim::parse_shard(shard);
  bool root = true;  // under mpirun only rank 0 prints
#ifdef GFSIM_MPI
  if (const char* rank = std::getenv("OMPI_COMM_WORLD_RANK")) root = std::string(rank) == "0";
#endif
  if (!quiet && root)
    fmt::print("# gfsim {} ({}) sweep {}: {} runs of {}, {} varied key(s), --jobs {}\n", gfsim::kVersion,
               gfsim::git_commit(), sweep_file, plan.runs.size(), plan.base_path, plan.varied_keys.size(),
               options.jobs);
  std::cout.flush();
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  options.progress = !quiet && isatty(STDERR_FILENO);
  options.stop_requested = &g_stop_requested;
#ifdef GFSIM_MPI
  if (gfsim::started_by_mpirun()) {
    int rank = 0;
    const gfsim::SweepSummary summary = gfsim::run_sweep_mpi(plan, options, &rank);
    if (rank != 0) return 0;  // rank 0 reports the sweep
    return print_sweep_summary(summary);
  }
#endif
  return print_sweep_summary(gfsim::run_sweep(plan, options));
}

int print_sweep_summary(const gfsim::SweepSummary& summary) {
  std::string statuses;
  for (const auto& [status, count] : summary.by_status) statuses += fmt::format(" {} {},", status, count);
  if (!statuses.empty()) statuses.pop_back();
  fmt::print("sweep: {} runs ({} run now, {} complete before):{}; {:.2f} s; index {}.h5 and .csv{}\n", summary.runs,
             summary.ran, summary.skipped, statuses, summary.seconds, summary.index_stem,
             summary.interrupted ? " (interrupted: run again to finish)" : "");
  return summary.all_success() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  gfsim::configure_kernels(1);  // OpenMP GEMM threads: solver.threads raises it for gfsim run
  CLI::App app{"gfsim: gradient-flow simulator for neural-network training dynamics"};
  app.set_version_flag("--version", fmt::format("gfsim {} (git {}, file format {}; {})", gfsim::kVersion,
                                                gfsim::git_commit(), gfsim::kFormatVersion, gfsim::build_target()));
  app.require_subcommand(1);

  auto* run = app.add_subcommand("run", "integrate the flow of a model file and write its trajectory (HDF5)");
  std::string model, output;
  std::vector<std::string> sets;
  bool quiet = false;
  std::string resume_file;
  run->add_option("MODEL", model, "model file (TOML), see models/README.md");
  run->add_option("--resume", resume_file,
                  "FILE: continue the run stored in FILE from its last complete sample to a later time.t_end "
                  "(--set time.t_end=...), appending to FILE");
  run->add_option("--set", sets, "override a key: --set section.key=value (TOML value; repeatable)");
  run->add_option("-o,--output", output, "output file (overrides output.path)");
  run->add_flag("-q,--quiet", quiet, "no configuration echo and no progress line");

  auto* verify = app.add_subcommand("verify", "run the GD and WN flows and check the asymptotic laws (equations.md 6)");
  std::string t_end;
  verify->add_option("MODEL", model, "model file (TOML), see models/README.md")->required();
  verify->add_option("--t-end", t_end, "horizon (default: the model's time.t_end)");
  verify->add_option("--set", sets, "override a key: --set section.key=value (TOML value; repeatable)");
  verify->add_option("-o,--output", output, "FILE: writes FILE-stem_gd.h5, _wn.h5 and FILE-stem.json");
  verify->add_flag("-q,--quiet", quiet, "no progress line");

  auto* stationary = app.add_subcommand(
      "stationary", "stationary point of the fixed-rho flow, tangent Hessian spectrum, hyperbolicity verdict");
  gfsim::StationaryCliOptions stat_options;
  stationary->add_option("MODEL", model, "model file (TOML), see models/README.md")->required();
  stationary->add_option("--rho", stat_options.rho, "fixed rho (default: the model's flow.rho)");
  stationary->add_option("--rho-sweep", stat_options.rho_sweep, "a:b:n log-spaced continuation in rho");
  stationary->add_option("--set", sets, "override a key: --set section.key=value (TOML value; repeatable)");
  stationary->add_option("-o,--output", stat_options.output, "output file (default: <output.path stem>_stationary.h5)");
  stationary->add_option("--flow-tol", stat_options.numerics.flow_tol, "flow phase ends at |grad| <= tol * rho L");
  stationary->add_option("--newton-tol", stat_options.numerics.newton_tol, "Newton ends at |grad| <= tol * rho L");
  stationary->add_option("--nev", stat_options.numerics.nev, "Spectra: eigenvalues at each end");
  stationary->add_option("--dense-max", stat_options.numerics.dense_max, "dense spectrum up to this tangent dim");
  stationary->add_option("--zero-rel", stat_options.numerics.zero_rel, "|lambda| <= zero_rel * max|lambda| is zero");
  stationary->add_flag("-q,--quiet", quiet, "no header line");

  auto* compare = app.add_subcommand("compare", "run several flows from the same start: cost and rate of reaching the max-margin direction");
  std::string compare_flows = "gd,wn";
  compare->add_option("MODEL", model, "model file (TOML), see models/README.md")->required();
  compare->add_option("--flows", compare_flows, "comma-separated flow kinds (default gd,wn)");
  compare->add_option("--set", sets, "override a key: --set section.key=value (TOML value; repeatable)");
  compare->add_option("-o,--output", output, "FILE: writes FILE-stem_<flow>.h5 and FILE-stem_compare.json");
  compare->add_flag("-q,--quiet", quiet, "no progress line");

  auto* sweep = app.add_subcommand("sweep", "run every model of a sweep file and write a summary index (docs/sweeps.md)");
  std::string sweep_file, shard;
  gfsim::SweepOptions sweep_options;
  sweep->add_option("SWEEP", sweep_file, "sweep file (TOML), see docs/sweeps.md")->required();
  sweep->add_option("--out", sweep_options.out_dir, "directory of the run files and index.h5/index.csv")->required();
  sweep->add_option("-j,--jobs", sweep_options.jobs, "runs at once (each with one kernel thread)");
  sweep->add_option("--shard", shard, "i/N: run only runs r with r % N == i, index DIR/index_shard<i>of<N>");
  sweep->add_option("--set", sets, "override a key of every run: --set section.key=value (repeatable)");
  sweep->add_flag("-q,--quiet", quiet, "no header line and no progress line");

  CLI11_PARSE(app, argc, argv);
  try {
    if (run->parsed()) return run_command(model, sets, output, resume_file, quiet);
    if (verify->parsed()) return verify_command(model, sets, t_end, output, quiet);
    if (stationary->parsed()) return stationary_command(model, sets, stat_options, quiet);
    if (compare->parsed()) return compare_command(model, sets, compare_flows, output, quiet);
    if (sweep->parsed()) return sweep_command(sweep_file, sets, sweep_options, shard, quiet);
  } catch (const gfsim::SpecError& e) {
    fmt::print(stderr, "gfsim: error: {}\n", e.what());
    return 2;
  } catch (const gfsim::DomainError& e) {  // a model whose objects break a mathematical precondition
    fmt::print(stderr, "gfsim: error: {}\n", e.what());
    return 2;
  } catch (const gfsim::IoError& e) {
    fmt::print(stderr, "gfsim: I/O error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "gfsim: internal error: {}\n", e.what());
    return 3;
  }
  return 0;
}
