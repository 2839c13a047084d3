#pragma once
// Recorder: the one writer of a run's output file (H5MD-style HDF5, docs/file-format.md). The
// layout is declared up front as records: observables sampled together on the trajectory's time
// axis (each with the function computing it from (t, y)), series with their own time axes
// (spectrum samples, kink events), and datasets known at creation (data, initial weights). The
// file is created as "<path>.partial" under an OFD lock on "<path>.lock" (output_lock.hpp) and
// renamed onto `path` once its layout is on disk. With SWMR on, samples are buffered and flushed
// every `flush_interval` seconds of wall clock, so a run killed with SIGKILL leaves a file holding
// every sample up to the last flush (read it with h5py.File(FILE, "r", swmr=True) or gfsim_io).
// finish() stores the solver outcome, end datasets and any extra groups (through a callback:
// no other module re-opens the file) on a copy renamed onto `path`, and releases the lock.
//
//   RecorderLayout layout{.observables = {{"log_loss", 0, "log L", {}, log_loss_of}}};
//   Recorder rec(path, layout, provenance, {.flush_interval = 2});
//   rec.record(step, t, y);                  // evaluates every observable's compute(t, y)
//   rec.finish(result, {{"final/theta", theta}}, [&](h5::File& f) { f.create_group("verify"); });
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "gfsim/errors.hpp"
#include "gfsim/hdf5_file.hpp"
#include "gfsim/provenance.hpp"
#include "gfsim/result.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// Writes one sample of an observable into `out` (1 value for scalars, width otherwise).
using ObservableFn = std::function<void(double t, const Vec& y, std::span<double> out)>;

/// One observable of the trajectory: /observables/<name>/{step,time,value}.
struct ObservableDef {
  std::string name;
  std::int64_t width = 0;               ///< 0: scalar per sample (value [T]); else value [T, width]
  std::string description;              ///< stored as the @description attribute of value
  std::vector<std::string> column_names;  ///< optional @column_names on value
  ObservableFn compute;                 ///< needed by record(); append() takes the values instead
};

/// One column of a series: a dataset <series path>/<name> with one row per series entry.
struct SeriesColumn {
  std::string name;
  h5::ElementType type = h5::ElementType::float64;
  std::int64_t width = 0;                ///< 0: one value per row; else [rows, width]
  std::string description;
  std::vector<std::string> enum_names;   ///< int8_enum: member i has value i
};

/// A table with its own time axis (e.g. observables/hessian_eigs, events), appended row by row.
struct SeriesDef {
  std::string path;                      ///< group path, e.g. "events"
  std::string description;               ///< @description of the group
  std::vector<SeriesColumn> columns;
  std::map<std::string, std::int64_t> int_attrs;  ///< further group attributes (e.g. k)
};

/// A fixed float64 dataset: 1-D when shape is empty, else `shape` (row-major values).
struct StaticDataset {
  std::string path;
  std::vector<double> values;
  std::vector<std::int64_t> shape;
  std::string description;               ///< @description when non-empty
};

struct RecorderLayout {
  std::vector<ObservableDef> observables;
  std::vector<SeriesDef> series;
  std::vector<StaticDataset> initial_datasets;  ///< written at creation, before any sample
};

struct RecorderOptions {
  double flush_interval = 2.0;  ///< seconds of wall clock between flushes
  bool swmr = true;
};

/// One column's values in a series row: float64 columns take doubles, int64 and int8_enum ints.
using ColumnValues = std::variant<std::span<const double>, std::span<const std::int64_t>>;

/// Writes extra groups into the open file just before it closes (e.g. /verify).
using GroupWriter = std::function<void(h5::File& file)>;

class Recorder {
 public:
  /// Locks `path`, creates "<path>.partial" with the whole layout, starts SWMR and renames the
  /// file onto `path`. std::invalid_argument for an empty observable list, empty/duplicate names
  /// or names containing '/', column_names not matching width, bad series columns, or provenance
  /// attributes clashing; IoError if the file cannot be created or another run is writing it.
  Recorder(const std::string& path, RecorderLayout layout, const Provenance& provenance,
           RecorderOptions options = {});
  ~Recorder();  ///< flushes and closes (no /solver group if finish() was not called)
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  /// One sample: evaluates every observable's compute(t, y). std::logic_error if one has none.
  void record(std::int64_t step, double time, const Vec& y);
  /// One sample: values[i] holds observables[i] (size 1 for scalars, width otherwise).
  /// Samples are buffered; a chunk's worth of rows (of the widest observable) is written to the
  /// datasets, and with SWMR on, everything is written and flushed once `flush_interval` seconds
  /// have passed since the last flush (checked here: there is no background thread).
  /// std::invalid_argument on a size mismatch, std::logic_error after finish().
  void append(std::int64_t step, double time, const std::vector<std::span<const double>>& values);
  /// One row of layout.series[series]: one entry per column, in column order. Buffered and
  /// written with the trajectory's samples. std::invalid_argument on a type or size mismatch.
  void append_row(std::size_t series, const std::vector<ColumnValues>& row);
  /// Write buffered samples and rows and H5Fflush now (no-op after finish()).
  void flush();
  /// Stores /solver (status, message, method, clock, t_final, counters and `extra_counters`),
  /// the end datasets, then whatever `add_groups` writes. They are written on a copy of the closed
  /// run file, renamed onto `path` when complete: a kill at any moment leaves the prefix or the end.
  /// IoError if the output path vanished during the run; std::logic_error if called twice.
  void finish(const SolveResult& result, const std::vector<StaticDataset>& end_datasets = {},
              const GroupWriter& add_groups = {},
              const std::map<std::string, std::int64_t>& extra_counters = {});
  /// Samples written to the datasets (not counting those still buffered in memory).
  std::int64_t samples_written() const;
  /// Samples covered by the last flush: with SWMR on, these survive a SIGKILL.
  std::int64_t samples_flushed() const;
  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A fixed dataset into an open file (used by finish(); also for tests).
void write_static_dataset(h5::Group& root, const StaticDataset& dataset);

}  // namespace gfsim
