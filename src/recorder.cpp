// Recorder: the trajectory file of docs/file-format.md, written through hdf5_file.hpp.
#include "gfsim/recorder.hpp"
#include "gfsim/timestamp.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <set>
#include <utility>

#include "gfsim/hdf5_file.hpp"
#include "gfsim/version.hpp"

namespace gfsim {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kFileType = "gfsim-trajectory";
constexpr std::int64_t kStepTimeChunkRows = 1024;
// Root attributes written by the Recorder itself; RunMetadata's maps may not reuse them.
const std::set<std::string> kFixedRootAttributes = {
    "file_type", "format_version", "gfsim_version", "git_commit",
    "created",   "model_toml",     "model_name",    "widths"};

// ~64 KiB chunks: large enough for deflate and a small chunk index, small enough to stay in
// HDF5's 1 MiB per-dataset chunk cache between flushes.
std::int64_t value_chunk_rows(std::int64_t width) {
  return std::clamp<std::int64_t>(65536 / (8 * std::max<std::int64_t>(width, 1)), 1, 1024);
}

std::int64_t values_per_sample(const ObservableDef& observable) {
  return std::max<std::int64_t>(observable.width, 1);
}

void validate_observables(const std::vector<ObservableDef>& observables) {
  if (observables.empty()) throw std::invalid_argument("Recorder: no observables to record");
  std::set<std::string> names;
  for (const auto& observable : observables) {
    const std::string label = "Recorder: observable '" + observable.name + "'";
    if (observable.name.empty() || observable.name.find('/') != std::string::npos) {
      throw std::invalid_argument(label + ": the name must be non-empty and contain no '/'");
    }
    if (!names.insert(observable.name).second) {
      throw std::invalid_argument(label + " is defined twice");
    }
    if (observable.width < 0) {
      throw std::invalid_argument(label + ": negative width " + std::to_string(observable.width));
    }
    if (!observable.column_names.empty() &&
        static_cast<std::int64_t>(observable.column_names.size()) != observable.width) {
      throw std::invalid_argument(label + ": " + std::to_string(observable.column_names.size()) +
                                  " column names for width " + std::to_string(observable.width));
    }
  }
}

void validate_metadata_keys(const RunMetadata& meta) {
  std::set<std::string> names = kFixedRootAttributes;
  auto claim = [&names](const std::string& key) {
    if (!names.insert(key).second) {
      throw std::invalid_argument("Recorder: root attribute '" + key +
                                  "' is reserved or given twice in RunMetadata");
    }
  };
  for (const auto& entry : meta.string_attrs) claim(entry.first);
  for (const auto& entry : meta.double_attrs) claim(entry.first);
  for (const auto& entry : meta.int_attrs) claim(entry.first);
}

void write_root_attributes(h5::File& file, const RunMetadata& meta) {
  file.set_string_attr("file_type", kFileType);
  file.set_int64_attr("format_version", kFormatVersion);
  file.set_string_attr("gfsim_version", kVersion);
  file.set_string_attr("git_commit", kGitCommit);
  file.set_string_attr("created", utc_timestamp_now());
  file.set_string_attr("model_toml", meta.model_toml);
  file.set_string_attr("model_name", meta.model_name);
  file.set_int64_array_attr("widths", meta.widths);
  for (const auto& [key, value] : meta.string_attrs) file.set_string_attr(key, value);
  for (const auto& [key, value] : meta.double_attrs) file.set_double_attr(key, value);
  for (const auto& [key, value] : meta.int_attrs) file.set_int64_attr(key, value);
}

void write_h5md_group(h5::File& file) {
  const std::int32_t h5md_version[2] = {1, 1};
  file.create_group("h5md").set_int32_array_attr("version", h5md_version);
  h5::Group creator = file.create_group("h5md/creator");
  creator.set_string_attr("name", "gfsim");
  creator.set_string_attr("version", kVersion);
}

void write_solver_outcome(h5::File& file, const SolveResult& result,
                          const std::map<std::string, std::vector<double>>& extra_datasets) {
  h5::Group solver = file.create_group("solver");
  solver.set_string_attr("status", status_name(result.status));
  solver.set_string_attr("message", result.message);
  solver.set_string_attr("method", result.method);
  solver.set_string_attr("clock", result.clock);
  solver.set_double_attr("t_final", result.t_final);
  const SolverCounters& counters = result.counters;
  const std::pair<const char*, std::int64_t> integer_counters[] = {
      {"steps", counters.steps},
      {"accepted", counters.accepted},
      {"rejected", counters.rejected},
      {"rhs_evals", counters.rhs_evals},
      {"jacobian_evals", counters.jacobian_evals},
      {"jvp_evals", counters.jvp_evals},
      {"lu_decompositions", counters.lu_decompositions},
      {"events", counters.events}};
  for (const auto& [name, value] : integer_counters) solver.set_int64_attr(name, value);
  solver.set_double_attr("wall_seconds", counters.wall_seconds);
  for (const auto& [path, values] : extra_datasets) file.write_dataset(path, values);
}

}  // namespace

struct Recorder::Impl {
  std::string path;
  std::vector<ObservableDef> observables;
  RecorderOptions options;
  h5::File file;
  h5::Dataset step;  // the real step/time datasets, under the first observable
  h5::Dataset time;
  std::vector<h5::Dataset> values;  // one per observable
  // Samples appended but not yet written to the datasets.
  std::vector<std::int64_t> pending_steps;
  std::vector<double> pending_times;
  std::vector<std::vector<double>> pending_values;
  std::size_t rows_per_write = kStepTimeChunkRows;  // one chunk of the widest observable
  std::int64_t written = 0;
  std::int64_t flushed = 0;
  Clock::time_point last_flush;
  bool open = false;

  void create_layout(const RunMetadata& meta);
  void write_pending();
  void flush_to_disk();
  void close();
};

void Recorder::Impl::create_layout(const RunMetadata& meta) {
  write_root_attributes(file, meta);
  write_h5md_group(file);
  h5::Group observables_group = file.create_group("observables");
  for (const ObservableDef& observable : observables) {
    h5::Group group = observables_group.create_group(observable.name);
    h5::Dataset value = group.create_extendible_dataset(
        "value", h5::ElementType::float64, observable.width, value_chunk_rows(observable.width));
    value.set_string_attr("description", observable.description);
    if (!observable.column_names.empty()) {
      value.set_string_array_attr("column_names", observable.column_names);
    }
    if (values.empty()) {
      step = group.create_extendible_dataset("step", h5::ElementType::int64, 0,
                                             kStepTimeChunkRows);
      time = group.create_extendible_dataset("time", h5::ElementType::float64, 0,
                                             kStepTimeChunkRows);
      time.set_string_attr("unit", "1");
    } else {
      // All observables are sampled together: one step/time pair, shared by hard links (H5MD).
      group.create_hard_link(step.name(), "step");
      group.create_hard_link(time.name(), "time");
    }
    values.push_back(std::move(value));
    rows_per_write = std::min<std::size_t>(rows_per_write, value_chunk_rows(observable.width));
  }
  pending_values.resize(observables.size());
}

void Recorder::Impl::write_pending() {
  if (pending_steps.empty()) return;
  // step last: it is the dataset readers take the sample count from.
  for (std::size_t i = 0; i < values.size(); ++i) {
    values[i].append_rows(std::span<const double>(pending_values[i]));
    pending_values[i].clear();
  }
  time.append_rows(std::span<const double>(pending_times));
  step.append_rows(std::span<const std::int64_t>(pending_steps));
  written += static_cast<std::int64_t>(pending_steps.size());
  pending_times.clear();
  pending_steps.clear();
}

void Recorder::Impl::flush_to_disk() {
  write_pending();
  file.flush();
  flushed = written;
  last_flush = Clock::now();
}

void Recorder::Impl::close() {
  open = false;
  for (h5::Dataset& value : values) value.close();
  step.close();
  time.close();
  file.close();
  flushed = written;
}

Recorder::Recorder(const std::string& path, std::vector<ObservableDef> observables,
                   const RunMetadata& meta, RecorderOptions options)
    : impl_(std::make_unique<Impl>()) {
  validate_observables(observables);
  validate_metadata_keys(meta);
  Impl& s = *impl_;
  s.path = path;
  s.observables = std::move(observables);
  s.options = options;
  s.file = h5::File::create(path, options.swmr ? h5::FileFormat::v110 : h5::FileFormat::earliest);
  s.open = true;
  s.create_layout(meta);
  // SWMR forbids creating objects from here on; H5Fstart_swmr_write also flushes the layout.
  if (options.swmr) s.file.start_swmr_write();
  s.last_flush = Clock::now();
}

Recorder::~Recorder() {
  if (!impl_->open) return;
  try {
    impl_->write_pending();
    impl_->close();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "gfsim: warning: %s\n", error.what());
  }
}

void Recorder::append(std::int64_t step, double time,
                      const std::vector<std::span<const double>>& values) {
  Impl& s = *impl_;
  if (!s.open) throw std::logic_error("Recorder::append after finish() on " + s.path);
  if (values.size() != s.observables.size()) {
    throw std::invalid_argument("Recorder::append: " + std::to_string(values.size()) +
                                " value arrays for " + std::to_string(s.observables.size()) +
                                " observables");
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::int64_t expected = values_per_sample(s.observables[i]);
    if (static_cast<std::int64_t>(values[i].size()) != expected) {
      throw std::invalid_argument("Recorder::append: observable '" + s.observables[i].name +
                                  "' takes " + std::to_string(expected) + " values, got " +
                                  std::to_string(values[i].size()));
    }
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    s.pending_values[i].insert(s.pending_values[i].end(), values[i].begin(), values[i].end());
  }
  s.pending_times.push_back(time);
  s.pending_steps.push_back(step);

  const std::chrono::duration<double> since_flush = Clock::now() - s.last_flush;
  if (s.options.swmr && since_flush.count() >= s.options.flush_interval) {
    s.flush_to_disk();
  } else if (s.pending_steps.size() >= s.rows_per_write) {
    s.write_pending();
  }
}

void Recorder::flush() {
  if (impl_->open) impl_->flush_to_disk();
}

void Recorder::finish(const SolveResult& result,
                      const std::map<std::string, std::vector<double>>& extra_datasets) {
  Impl& s = *impl_;
  if (!s.open) throw std::logic_error("Recorder::finish called twice on " + s.path);
  s.write_pending();
  if (!s.options.swmr) {
    write_solver_outcome(s.file, result, extra_datasets);
    s.close();
    return;
  }
  // No new objects in SWMR mode: close (which also clears the SWMR flag) and reopen normally.
  s.close();
  h5::File file = h5::File::open(s.path, h5::Access::read_write);
  write_solver_outcome(file, result, extra_datasets);
  file.close();
}

std::int64_t Recorder::samples_written() const { return impl_->written; }

std::int64_t Recorder::samples_flushed() const { return impl_->flushed; }

const std::string& Recorder::path() const { return impl_->path; }

}  // namespace gfsim
