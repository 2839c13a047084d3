// Recorder: the output file of docs/file-format.md, written through hdf5_file.hpp.
#include "gfsim/recorder.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <set>
#include <utility>

#include "gfsim/output_lock.hpp"
#include "gfsim/version.hpp"

namespace gfsim {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::int64_t kStepTimeChunkRows = 1024;
constexpr std::int64_t kSeriesChunkRows = 256;

// ~64 KiB chunks: large enough for deflate and a small chunk index, small enough to stay in
// HDF5's 1 MiB per-dataset chunk cache between flushes.
std::int64_t value_chunk_rows(std::int64_t width) {
  return std::clamp<std::int64_t>(65536 / (8 * std::max<std::int64_t>(width, 1)), 1, 1024);
}

std::int64_t values_per_row(std::int64_t width) { return std::max<std::int64_t>(width, 1); }

void check_name(const std::string& what, const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) {
    throw std::invalid_argument("Recorder: " + what + " '" + name +
                                "': the name must be non-empty and contain no '/'");
  }
}

void validate_layout(const RecorderLayout& layout) {
  if (layout.observables.empty()) throw std::invalid_argument("Recorder: no observables to record");
  std::set<std::string> names;
  for (const auto& observable : layout.observables) {
    const std::string label = "Recorder: observable '" + observable.name + "'";
    check_name("observable", observable.name);
    if (!names.insert(observable.name).second) throw std::invalid_argument(label + " is defined twice");
    if (observable.width < 0) {
      throw std::invalid_argument(label + ": negative width " + std::to_string(observable.width));
    }
    if (!observable.column_names.empty() &&
        static_cast<std::int64_t>(observable.column_names.size()) != observable.width) {
      throw std::invalid_argument(label + ": " + std::to_string(observable.column_names.size()) +
                                  " column names for width " + std::to_string(observable.width));
    }
  }
  std::set<std::string> series_paths;
  for (const auto& series : layout.series) {
    const std::string label = "Recorder: series '" + series.path + "'";
    if (series.path.empty() || series.columns.empty() || !series_paths.insert(series.path).second) {
      throw std::invalid_argument(label + ": empty path, no columns, or defined twice");
    }
    const std::string observables_prefix = "observables/";
    if (series.path.starts_with(observables_prefix) &&
        names.contains(series.path.substr(observables_prefix.size()))) {
      throw std::invalid_argument(label + " clashes with the observable of that name");
    }
    std::set<std::string> columns;
    for (const auto& column : series.columns) {
      check_name("column of series '" + series.path + "'", column.name);
      const bool is_enum = column.type == h5::ElementType::int8_enum;
      if (!columns.insert(column.name).second || column.width < 0 ||
          is_enum != !column.enum_names.empty() || (is_enum && column.width != 0)) {
        throw std::invalid_argument(label + ": column '" + column.name +
                                    "' is repeated, has a negative width, or enum names that do "
                                    "not match its type (enums are one value per row)");
      }
    }
  }
}

struct SeriesBuffer {
  SeriesDef def;
  std::vector<h5::Dataset> datasets;  // one per column
  std::vector<std::vector<double>> doubles;        // pending rows of float64 columns
  std::vector<std::vector<std::int64_t>> ints;     // pending rows of int64 columns
  std::vector<std::vector<std::int8_t>> enums;     // pending rows of enum columns
  std::size_t pending_rows = 0;
};

}  // namespace

void write_static_dataset(h5::Group& root, const StaticDataset& dataset) {
  h5::Dataset written =
      dataset.shape.empty() ? root.write_dataset(dataset.path, dataset.values)
                            : root.write_dataset(dataset.path, dataset.values, dataset.shape);
  if (!dataset.description.empty()) written.set_string_attr("description", dataset.description);
}

struct Recorder::Impl {
  std::string path;
  RecorderLayout layout;
  RecorderOptions options;
  std::optional<OutputLock> lock;  // held from before creation until after the final close
  h5::File file;
  h5::Dataset step;  // the real step/time datasets, under the first observable
  h5::Dataset time;
  std::vector<h5::Dataset> values;  // one per observable
  std::vector<SeriesBuffer> series;
  // Samples appended but not yet written to the datasets.
  std::vector<std::int64_t> pending_steps;
  std::vector<double> pending_times;
  std::vector<std::vector<double>> pending_values;
  std::vector<double> sample_buffer;  // record(): the values of one sample, all observables
  std::size_t rows_per_write = kStepTimeChunkRows;  // one chunk of the widest observable
  std::int64_t written = 0;
  std::int64_t flushed = 0;
  Clock::time_point last_flush;
  bool open = false;

  void create_layout(const Provenance& provenance);
  void write_pending();
  void write_pending_series(SeriesBuffer& buffer);
  void flush_to_disk();
  void close();
};

void Recorder::Impl::create_layout(const Provenance& provenance) {
  write_provenance(file, provenance);
  const std::int32_t h5md_version[2] = {1, 1};
  file.create_group("h5md").set_int32_array_attr("version", h5md_version);
  h5::Group creator = file.create_group("h5md/creator");
  creator.set_string_attr("name", "gfsim");
  creator.set_string_attr("version", kVersion);

  h5::Group observables_group = file.create_group("observables");
  for (const ObservableDef& observable : layout.observables) {
    h5::Group group = observables_group.create_group(observable.name);
    h5::Dataset value = group.create_extendible_dataset(
        "value", h5::ElementType::float64, observable.width, value_chunk_rows(observable.width));
    value.set_string_attr("description", observable.description);
    if (!observable.column_names.empty()) {
      value.set_string_array_attr("column_names", observable.column_names);
    }
    if (values.empty()) {
      step = group.create_extendible_dataset("step", h5::ElementType::int64, 0, kStepTimeChunkRows);
      time = group.create_extendible_dataset("time", h5::ElementType::float64, 0, kStepTimeChunkRows);
      time.set_string_attr("unit", "1");
    } else {
      // All observables are sampled together: one step/time pair, shared by hard links (H5MD).
      group.create_hard_link(step.name(), "step");
      group.create_hard_link(time.name(), "time");
    }
    values.push_back(std::move(value));
    rows_per_write = std::min<std::size_t>(rows_per_write, value_chunk_rows(observable.width));
  }
  pending_values.resize(layout.observables.size());

  for (const SeriesDef& def : layout.series) {
    SeriesBuffer buffer;
    buffer.def = def;
    h5::Group group = file.create_group(def.path);
    if (!def.description.empty()) group.set_string_attr("description", def.description);
    for (const auto& [key, value] : def.int_attrs) group.set_int64_attr(key, value);
    for (const SeriesColumn& column : def.columns) {
      h5::Dataset dataset = group.create_extendible_dataset(
          column.name, column.type, column.width,
          std::min(kSeriesChunkRows, value_chunk_rows(column.width)), column.enum_names);
      if (!column.description.empty()) dataset.set_string_attr("description", column.description);
      buffer.datasets.push_back(std::move(dataset));
    }
    buffer.doubles.resize(def.columns.size());
    buffer.ints.resize(def.columns.size());
    buffer.enums.resize(def.columns.size());
    series.push_back(std::move(buffer));
  }
  for (const StaticDataset& dataset : layout.initial_datasets) write_static_dataset(file, dataset);
}

void Recorder::Impl::write_pending_series(SeriesBuffer& buffer) {
  if (buffer.pending_rows == 0) return;
  for (std::size_t c = 0; c < buffer.datasets.size(); ++c) {
    switch (buffer.def.columns[c].type) {
      case h5::ElementType::float64: buffer.datasets[c].append_rows(std::span<const double>(buffer.doubles[c])); break;
      case h5::ElementType::int64: buffer.datasets[c].append_rows(std::span<const std::int64_t>(buffer.ints[c])); break;
      case h5::ElementType::int8_enum: buffer.datasets[c].append_rows(std::span<const std::int8_t>(buffer.enums[c])); break;
    }
    buffer.doubles[c].clear();
    buffer.ints[c].clear();
    buffer.enums[c].clear();
  }
  buffer.pending_rows = 0;
}

void Recorder::Impl::write_pending() {
  for (SeriesBuffer& buffer : series) write_pending_series(buffer);
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
  for (SeriesBuffer& buffer : series) {
    for (h5::Dataset& dataset : buffer.datasets) dataset.close();
  }
  step.close();
  time.close();
  file.close();
  flushed = written;
}

Recorder::Recorder(const std::string& path, RecorderLayout layout, const Provenance& provenance,
                   RecorderOptions options)
    : impl_(std::make_unique<Impl>()) {
  validate_layout(layout);
  validate_provenance(provenance);
  Impl& s = *impl_;
  s.path = path;
  s.layout = std::move(layout);
  s.options = options;
  s.lock.emplace(path);
  s.file = h5::File::create(s.lock->partial_path(),
                            options.swmr ? h5::FileFormat::v110 : h5::FileFormat::earliest, path);
  s.open = true;
  s.create_layout(provenance);
  // SWMR forbids creating objects from here on; H5Fstart_swmr_write also flushes the layout.
  if (options.swmr) {
    s.file.start_swmr_write();
  } else {
    s.file.flush();
  }
  // Only now does `path` name the new file: a kill before this leaves `path` as it was.
  s.lock->publish();
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

void Recorder::record(std::int64_t step, double time, const Vec& y) {
  Impl& s = *impl_;
  std::size_t total = 0;
  for (const ObservableDef& observable : s.layout.observables) total += values_per_row(observable.width);
  s.sample_buffer.resize(total);
  std::vector<std::span<const double>> spans;
  spans.reserve(s.layout.observables.size());
  std::size_t offset = 0;
  for (const ObservableDef& observable : s.layout.observables) {
    if (!observable.compute) {
      throw std::logic_error("Recorder::record: observable '" + observable.name + "' has no compute function");
    }
    const std::span<double> out(s.sample_buffer.data() + offset, values_per_row(observable.width));
    observable.compute(time, y, out);
    spans.emplace_back(out);
    offset += out.size();
  }
  append(step, time, spans);
}

void Recorder::append(std::int64_t step, double time,
                      const std::vector<std::span<const double>>& values) {
  Impl& s = *impl_;
  if (!s.open) throw std::logic_error("Recorder::append after finish() on " + s.path);
  const auto& observables = s.layout.observables;
  if (values.size() != observables.size()) {
    throw std::invalid_argument("Recorder::append: " + std::to_string(values.size()) +
                                " value arrays for " + std::to_string(observables.size()) +
                                " observables");
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::int64_t expected = values_per_row(observables[i].width);
    if (static_cast<std::int64_t>(values[i].size()) != expected) {
      throw std::invalid_argument("Recorder::append: observable '" + observables[i].name +
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

void Recorder::append_row(std::size_t series, const std::vector<ColumnValues>& row) {
  Impl& s = *impl_;
  if (!s.open) throw std::logic_error("Recorder::append_row after finish() on " + s.path);
  if (series >= s.series.size()) {
    throw std::invalid_argument("Recorder::append_row: no series " + std::to_string(series));
  }
  SeriesBuffer& buffer = s.series[series];
  const auto& columns = buffer.def.columns;
  if (row.size() != columns.size()) {
    throw std::invalid_argument("Recorder::append_row: " + std::to_string(row.size()) +
                                " columns for series '" + buffer.def.path + "' of " +
                                std::to_string(columns.size()));
  }
  for (std::size_t c = 0; c < columns.size(); ++c) {
    const bool wants_doubles = columns[c].type == h5::ElementType::float64;
    const std::size_t size = std::visit([](auto span) { return span.size(); }, row[c]);
    if (std::holds_alternative<std::span<const double>>(row[c]) != wants_doubles ||
        static_cast<std::int64_t>(size) != values_per_row(columns[c].width)) {
      throw std::invalid_argument("Recorder::append_row: column '" + columns[c].name + "' of '" +
                                  buffer.def.path + "' has the wrong type or size");
    }
    if (columns[c].type != h5::ElementType::int8_enum) continue;
    for (const std::int64_t value : std::get<std::span<const std::int64_t>>(row[c])) {
      if (value < 0 || value >= static_cast<std::int64_t>(columns[c].enum_names.size())) {
        throw std::invalid_argument("Recorder::append_row: " + std::to_string(value) +
                                    " is not a value of enum column '" + columns[c].name + "'");
      }
    }
  }
  // Checked first, so a rejected row leaves every column as it was.
  for (std::size_t c = 0; c < columns.size(); ++c) {
    if (columns[c].type == h5::ElementType::float64) {
      const auto values = std::get<std::span<const double>>(row[c]);
      buffer.doubles[c].insert(buffer.doubles[c].end(), values.begin(), values.end());
      continue;
    }
    const auto values = std::get<std::span<const std::int64_t>>(row[c]);
    if (columns[c].type == h5::ElementType::int64) {
      buffer.ints[c].insert(buffer.ints[c].end(), values.begin(), values.end());
      continue;
    }
    for (const std::int64_t value : values) buffer.enums[c].push_back(static_cast<std::int8_t>(value));
  }
  if (++buffer.pending_rows >= static_cast<std::size_t>(kSeriesChunkRows)) s.write_pending_series(buffer);
}

void Recorder::flush() {
  if (impl_->open) impl_->flush_to_disk();
}

void Recorder::finish(const SolveResult& result, const std::vector<StaticDataset>& end_datasets,
                      const GroupWriter& add_groups,
                      const std::map<std::string, std::int64_t>& extra_counters) {
  Impl& s = *impl_;
  if (!s.open) throw std::logic_error("Recorder::finish called twice on " + s.path);
  s.write_pending();
  // HDF5 has no transactions: a kill while end objects are created or flushed can leave a link
  // whose object header never reached the disk (a file h5py cannot read; CI stop 25). So the
  // finished file is built on a copy: the run's file, closed with every sample, stays at `path`
  // until the copy with the end objects is complete and renamed onto it. A kill at any moment
  // leaves either the closed prefix file (resumable) or the finished one.
  // Through its open handle the run would write on into an unlinked file and succeed: a path that
  // vanished during the run (its directory removed, the file deleted) is an I/O error.
  std::error_code ec;
  if (!std::filesystem::exists(s.path, ec))
    throw IoError("HDF5 file '" + s.path + "': vanished during the run (deleted, or its directory removed); "
                  "nothing more can be written to it");
  s.close();
  const std::string partial = s.lock->partial_path();
  try {
    std::filesystem::copy_file(s.path, partial, std::filesystem::copy_options::overwrite_existing);
    h5::File finished = h5::File::open(partial, h5::Access::read_write, s.path);
    write_solver_outcome(finished, result, extra_counters);
    for (const StaticDataset& dataset : end_datasets) write_static_dataset(finished, dataset);
    if (add_groups) add_groups(finished);
    finished.close();
  } catch (const std::filesystem::filesystem_error& error) {
    std::filesystem::remove(partial, ec);
    throw IoError("HDF5 file '" + s.path + "': cannot copy it to '" + partial + "' to add the run's end: " +
                  error.code().message());
  } catch (...) {
    std::filesystem::remove(partial, ec);
    throw;
  }
  s.lock->publish();
  s.lock.reset();
}

std::int64_t Recorder::samples_written() const { return impl_->written; }

std::int64_t Recorder::samples_flushed() const { return impl_->flushed; }

const std::string& Recorder::path() const { return impl_->path; }

}  // namespace gfsim
