// Fuzz target: the sweep file reader (sweep_plan.hpp), with a fixed valid base model.
// Input: the text of a sweep file; it is written next to a base model "base.toml" (a small linear
// model) in a private directory, so `base = "base.toml"` resolves. Contract checked: read_sweep_plan
// either throws SpecError (bad input, exit 2 in gfsim) or returns at least one run, every run with a
// 16-hex-digit id, distinct ids, one value per varied key, and a spec equal to the base model read
// with that run's overrides. Any other exception, a crash, a sanitizer report or a hang is a finding.
// The plan is capped at a few hundred runs here (read_sweep_plan's max_runs): a sweep of a million
// runs is legitimate but takes longer than one fuzz input may.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "gfsim/errors.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/sweep_plan.hpp"

namespace {

constexpr const char* kBaseModel = R"(# fuzz base model: a linear net on a tiny gaussian data set
[data]
kind = "gaussian"
n = 8
dim = 2
margin = 0.1
seed = 1
[network]
hidden = []
init_scale = 0.1
seed = 1
[loss]
kind = "exp"
[flow]
kind = "gd"
[time]
t_end = 10.0
)";

/// The private directory, removed when the process exits.
struct Directory {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("gfsim_fuzz_sweep_" + std::to_string(getpid()));
  Directory() {
    std::filesystem::create_directories(path);
    std::ofstream(path / "base.toml") << kBaseModel;
  }
  ~Directory() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

std::string directory() {
  static const Directory dir;
  return dir.path.string();
}

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = directory() + "/sweep.toml";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  gfsim::SweepPlan plan;
  try {
    plan = gfsim::read_sweep_plan(path, {}, 300);
  } catch (const gfsim::SpecError&) {
    return 0;  // refused with a message: the intended outcome for bad input
  }
  if (plan.runs.empty()) finding("a plan without runs");
  std::set<std::string> ids;
  for (const gfsim::SweepRun& run : plan.runs) {
    if (run.id.size() != 16 || run.id.find_first_not_of("0123456789abcdef") != std::string::npos)
      finding("run id is not 16 hex digits: " + run.id);
    if (!ids.insert(run.id).second) finding("two runs with the id " + run.id);
    if (run.values.size() != plan.varied_keys.size()) finding("a run without a value for every varied key");
    if (!(gfsim::load_model_spec(plan.base_path, run.overrides) == run.spec))
      finding("a run's spec differs from the base model read with its overrides");
  }
  return 0;
}
