#pragma once
// Sweep plan: a sweep file (TOML) -> the list of runs it names, each a set of model-key overrides
// of one base model, resolved and validated before any run starts, with a stable id.
// The sweep file forms (docs/sweeps.md):
//
//   base = "model.toml"                 # relative to the sweep file
//   seeds = 10                          # or a list; varies `seed_key` (default "network.seed")
//   [set]   "solver.rtol" = 1e-10       # fixed overrides of every run
//   [grid]  "network.init_scale" = [0.1, 0.5]   # product of the lists
//   [zip]   "data.n" = [10, 20]  "data.dim" = [2, 3]   # lists varied together
//   [[runs]] "flow.kind" = "gd"         # an explicit table of runs (same keys in every entry)
//
// The blocks present multiply: grid (first key slowest) x zip x seeds x runs. Every error is a
// SpecError naming the sweep file and key, thrown before any run starts.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gfsim/model_spec.hpp"

namespace gfsim {

/// One run of a sweep: the varied values (TOML text, in the plan's varied_keys order), the
/// resolved model and its id.
struct SweepRun {
  std::vector<std::string> values;  ///< TOML text of each varied key's value, e.g. "0.5", "[16]"
  std::vector<std::string> overrides;  ///< "section.key=value" for `gfsim run --set` (fixed + varied)
  ModelSpec spec;                   ///< base model with the overrides applied
  std::string id;                   ///< run_id(spec)
};

struct SweepPlan {
  std::string sweep_path;
  std::string base_path;            ///< the base model file (resolved against the sweep file)
  std::vector<std::string> varied_keys;  ///< "section.key", in the order of the sweep file
  std::vector<SweepRun> runs;
};

/// 64-bit FNV-1a of the bytes of `text` (offset basis 14695981039346656037, prime 1099511628211):
/// a fixed, documented function, so ids agree across machines, compilers and releases.
std::uint64_t fnv1a64(std::string_view text);

/// The text a run id hashes: the canonical TOML of `spec` with the [output] section at its
/// defaults (where a run is written does not change what it computes), solver.threads = 1 and data.path /
/// network.init_file replaced by the FNV-1a hash of the file contents (paths differ between
/// machines, contents do not).
std::string run_identity_text(const ModelSpec& spec);
/// 16 lowercase hex digits of fnv1a64(run_identity_text(spec)).
std::string run_id(const ModelSpec& spec);

/// Most runs one sweep file may expand to (a plan holds every resolved model in memory).
inline constexpr std::uint64_t kMaxSweepRuns = 1000000;

/// Reads and expands a sweep file; `extra_sets` are further "section.key=value" overrides given
/// on the command line (applied to every run, before the varied values). A product of the varied
/// lists beyond `max_runs` is refused before it is formed. Throws SpecError.
SweepPlan read_sweep_plan(const std::string& sweep_path, const std::vector<std::string>& extra_sets = {},
                          std::uint64_t max_runs = kMaxSweepRuns);

}  // namespace gfsim
