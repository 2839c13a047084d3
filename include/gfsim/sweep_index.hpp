#pragma once
// The sweep index: one row per run of a sweep (varied values, status, final t, final observables,
// solver counters, wall time, file name), read from each run's own HDF5 file so that a row always
// says what its file says. Written as DIR/index.h5 (file_type "gfsim-sweep-index") and
// DIR/index.csv, each created under a temporary name and renamed: a reader sees the previous
// index or the new one, never a half-written row (docs/sweeps.md describes both layouts).
//
//   SweepRow row = read_run_row(dir + "/" + id + ".h5");   // status "incomplete" without /solver
//   write_sweep_index(dir + "/index", plan_keys, rows, provenance);
#include <map>
#include <string>
#include <vector>

#include "gfsim/provenance.hpp"

namespace gfsim {

struct SweepRow {
  std::string id;
  std::string file;    ///< the run file's name, relative to the index
  /// The solver status stored in the file (`success`, `max_steps`, ...); `incomplete` for a
  /// file without /solver (killed or crashed run), `missing` when there is no file, `failed`
  /// when the run process exited with an error before writing a complete file.
  std::string status;
  std::vector<std::string> values;  ///< varied values, TOML text
  std::map<std::string, double> numbers;  ///< the numeric columns below (absent = NaN)
};

/// The numeric columns of the index, in order: t_final, rho (product of the final layer norms),
/// log_loss, margin, grad_norm (final samples), the /solver counters and wall_seconds, and
/// process_seconds (wall time of the run process, measured by the sweep; NaN for runs found
/// complete and skipped).
const std::vector<std::string>& sweep_numeric_columns();

/// True if `path` holds a trajectory file that ended through Recorder::finish (has /solver).
bool run_file_complete(const std::string& path);

/// A row from a run file (id and values are the caller's). A missing or unreadable file gives
/// status `missing`; a file without /solver gives `incomplete` and NaN numbers.
SweepRow read_run_row(const std::string& path);

/// Writes `stem`.h5 and `stem`.csv atomically (each as `X.partial`, then renamed onto X).
/// Varied columns whose values are all numbers are float64 columns; others are strings.
void write_sweep_index(const std::string& stem, const std::vector<std::string>& varied_keys,
                       const std::vector<SweepRow>& rows, const Provenance& provenance);

}  // namespace gfsim
