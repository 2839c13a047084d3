// gfsim: thin command-line front end (CLI11 lives only here). Exit codes: 0 success,
// 1 numerical failure (the status says which), 2 bad input or I/O error.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <fmt/format.h>
#include <fmt/ostream.h>
#include <iostream>

#include "gfsim/model_spec.hpp"
#include "gfsim/recorder.hpp"
#include "gfsim/run.hpp"
#include "gfsim/version.hpp"

namespace {

std::atomic<bool> g_stop_requested{false};  // the one piece of global state: signals need it

extern "C" void request_stop(int) { g_stop_requested.store(true); }

int run_command(const std::string& model, const std::vector<std::string>& sets, const std::string& output,
                bool quiet) {
  auto overrides = sets;
  if (!output.empty()) overrides.push_back(fmt::format("output.path=\"{}\"", output));
  const gfsim::ModelSpec spec = gfsim::load_model_spec(model, overrides);
  if (!quiet) {
    fmt::print("# gfsim {} ({}) running {}\n# resolved model:\n", gfsim::kVersion, gfsim::kGitCommit, model);
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
  const auto report = gfsim::run_model(spec, options);
  gfsim::print_summary(std::cout, report);
  return gfsim::exit_code(report.result.status);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gfsim: gradient-flow simulator for neural-network training dynamics"};
  app.set_version_flag("--version", fmt::format("gfsim {} (git {}, file format {})", gfsim::kVersion,
                                                gfsim::kGitCommit, gfsim::kFormatVersion));
  app.require_subcommand(1);

  auto* run = app.add_subcommand("run", "integrate the flow of a model file and write its trajectory (HDF5)");
  std::string model, output;
  std::vector<std::string> sets;
  bool quiet = false;
  run->add_option("MODEL", model, "model file (TOML), see models/README.md")->required();
  run->add_option("--set", sets, "override a key: --set section.key=value (TOML value; repeatable)");
  run->add_option("-o,--output", output, "output file (overrides output.path)");
  run->add_flag("-q,--quiet", quiet, "no configuration echo and no progress line");

  CLI11_PARSE(app, argc, argv);
  try {
    if (run->parsed()) return run_command(model, sets, output, quiet);
  } catch (const gfsim::SpecError& e) {
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
