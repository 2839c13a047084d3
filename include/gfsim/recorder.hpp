#pragma once
// Recorder: writes a run's trajectory to an H5MD-style HDF5 file (the public file format,
// docs/file-format.md). All groups and datasets are created up front; with SWMR on, samples are
// buffered and flushed every `flush_interval` seconds of wall clock, so a run killed with SIGKILL
// leaves a file holding every sample up to the last flush (open it with `h5clear -s FILE` first,
// or with h5py.File(FILE, "r", swmr=True)). finish() stores the solver outcome and closes cleanly.
//
//   Recorder rec(path, {{"theta", P}, {"rho", K}, {"log_loss", 0}}, meta, {.flush_interval = 2});
//   rec.append(step, t, {theta_span, rho_span, {&log_loss, 1}});
//   rec.finish(result);
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "gfsim/errors.hpp"
#include "gfsim/result.hpp"

namespace gfsim {

/// One time-dependent observable: /observables/<name>/{step,time,value}.
struct ObservableDef {
  std::string name;
  std::int64_t width = 0;               ///< 0: scalar per sample (value [T]); else value [T, width]
  std::string description;              ///< stored as the @description attribute of value
  std::vector<std::string> column_names;  ///< optional @column_names on value
};

struct RunMetadata {
  std::string model_toml;   ///< the resolved model file (root @model_toml)
  std::string model_name;
  std::map<std::string, std::string> string_attrs;  ///< extra root attributes (flow, loss, ...)
  std::map<std::string, double> double_attrs;
  std::map<std::string, std::int64_t> int_attrs;    ///< K, P, n, seeds, ...
  std::vector<std::int64_t> widths;                 ///< d_0..d_K (root @widths)
};

struct RecorderOptions {
  double flush_interval = 2.0;  ///< seconds of wall clock between flushes
  bool swmr = true;
};


class Recorder {
 public:
  /// Creates (truncating) `path` with the whole layout. std::invalid_argument for an empty
  /// observable list, empty/duplicate names or names containing '/', column_names not matching
  /// width, or metadata keys clashing with each other or with the fixed root attributes;
  /// IoError if the file cannot be created.
  Recorder(const std::string& path, std::vector<ObservableDef> observables, const RunMetadata& meta,
           RecorderOptions options = {});
  ~Recorder();  ///< flushes and closes (no /solver group if finish() was not called)
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  /// One sample: values[i] holds observables[i] (size 1 for scalars, width otherwise).
  /// Samples are buffered; a chunk's worth of rows (of the widest observable) is written to the
  /// datasets, and with SWMR on, everything is written and flushed once `flush_interval` seconds
  /// have passed since the last flush (checked here: there is no background thread).
  /// std::invalid_argument on a size mismatch, std::logic_error after finish().
  void append(std::int64_t step, double time, const std::vector<std::span<const double>>& values);
  /// Write buffered samples and H5Fflush now (no-op after finish()).
  void flush();
  /// Store /solver (status, message, method, clock, t_final, counters) and extra datasets, then
  /// close the file. `extra_datasets` maps "group/name" -> array written as a 1-D float64
  /// dataset (intermediate groups are created). std::logic_error if called twice.
  void finish(const SolveResult& result,
              const std::map<std::string, std::vector<double>>& extra_datasets = {});
  /// Samples written to the datasets (not counting those still buffered in memory).
  std::int64_t samples_written() const;
  /// Samples covered by the last flush: with SWMR on, these survive a SIGKILL.
  std::int64_t samples_flushed() const;
  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gfsim
