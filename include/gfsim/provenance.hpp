#pragma once
// Provenance: what every gfsim output file (trajectory, stationary) says about how it was made,
// written in one place so that all file kinds agree (docs/file-format.md, "Root attributes").
//
//   Provenance p{.file_type = "gfsim-trajectory", .model_toml = spec.resolved_toml,
//                .model_name = spec.name, .seeds = {{"data_seed", 1}, {"network_seed", 2}}};
//   write_provenance(file, p);                 // root attributes, before any sample
//   write_solver_outcome(file, result, {{"sliding_exits", 675}});   // the /solver group
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "gfsim/hdf5_file.hpp"
#include "gfsim/result.hpp"

namespace gfsim {

struct Provenance {
  std::string file_type;   ///< "gfsim-trajectory", "gfsim-stationary"
  std::string model_toml;  ///< the resolved model (every key, defaults filled in)
  std::string model_name;
  std::map<std::string, std::int64_t> seeds;  ///< data_seed, network_seed, ... (root attributes)
  /// Further root attributes describing the run (flow, loss, K, P, widths, t_end, ...).
  std::map<std::string, std::string> string_attrs;
  std::map<std::string, double> double_attrs;
  std::map<std::string, std::int64_t> int_attrs;
  std::map<std::string, std::vector<std::int64_t>> int_array_attrs;
};

/// The compiler and the instruction-set extensions this build was compiled for, e.g.
/// "gcc 12.2.0, x86-64 avx avx2 fma avx512f": results agree to the bit only between equal targets.
std::string build_target();

/// Root attributes written by write_provenance itself; Provenance's maps may not reuse them.
const std::vector<std::string>& fixed_provenance_attributes();

/// std::invalid_argument if two attributes of `p` (or one and a fixed attribute) share a name.
void validate_provenance(const Provenance& p);

/// Root attributes: file_type, format_version, gfsim_version, git_commit, build_target, created (UTC),
/// model_toml, model_name, the seeds, then p's further attributes. Validates `p` first.
void write_provenance(h5::Group& root, const Provenance& p);

/// The /solver group under `parent`: status, message, method, clock, t_final, every counter of
/// SolverCounters (steps .. sliding_entries, wall_seconds), then `extra_counters` (counts the
/// caller keeps, e.g. sliding_exits, kink_crossings). std::invalid_argument if an extra counter
/// reuses a name.
void write_solver_outcome(h5::Group& parent, const SolveResult& result,
                          const std::map<std::string, std::int64_t>& extra_counters = {});

}  // namespace gfsim
