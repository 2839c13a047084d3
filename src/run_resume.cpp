// Reading a trajectory file for `gfsim run --resume` (run_resume.hpp).
#include "gfsim/run_resume.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "gfsim/errors.hpp"
#include "gfsim/hdf5_file.hpp"
#include "gfsim/output_lock.hpp"
#include "gfsim/version.hpp"

namespace gfsim {
namespace fs = std::filesystem;

namespace {

std::int64_t rows_of(const h5::Dataset& dataset) {
  const auto shape = dataset.shape();
  return shape.empty() ? 0 : shape[0];
}

h5::File open_for_reading(const std::string& path) {
  if (!fs::is_regular_file(path)) throw IoError(fmt::format("--resume {}: no such file", path));
  try {
    return h5::File::open(path, h5::Access::read_only);
  } catch (const IoError&) {
    // A killed SWMR writer leaves the file marked open for writing: SWMR reading still works.
    try {
      return h5::File::open(path, h5::Access::swmr_read);
    } catch (const IoError&) {
      throw IoError(fmt::format("--resume {}: not an HDF5 file HDF5 can open (a gfsim run file is needed)", path));
    }
  }
}

StoredSeries read_series(const h5::Group& group, double t_max) {
  StoredSeries series;
  const h5::Dataset time = group.open_dataset("time");
  const std::vector<double> times = time.read_doubles();
  // Series rows are written before the samples they precede: keep those up to the restart time.
  series.rows = std::size_t(std::upper_bound(times.begin(), times.end(), t_max) - times.begin());
  for (const std::string& name : group.children()) {
    const h5::Dataset column = group.open_dataset(name);
    const auto shape = column.shape();
    const std::size_t per_row = shape.size() == 2 ? std::size_t(shape[1]) : 1;
    const std::size_t keep = std::min<std::size_t>(series.rows, shape.empty() ? 0 : std::size_t(shape[0])) * per_row;
    series.column_names.push_back(name);
    std::vector<double> values;
    if (column.enum_names().empty()) {
      values = column.read_doubles();
    } else {
      const std::vector<std::int64_t> members = column.read_int64s();
      values.assign(members.begin(), members.end());
    }
    values.resize(std::min(values.size(), keep));
    series.columns.push_back(std::move(values));
  }
  return series;
}

std::string attr_or(const h5::File& file, const char* name, const std::string& fallback) {
  return file.has_attr(name) ? file.string_attr(name) : fallback;
}

}  // namespace

const std::vector<std::string>& resumable_keys() {
  static const std::vector<std::string> keys = {"time.t_end",         "solver.max_steps", "solver.max_wall_seconds",
                                                "solver.threads",     "output.flush_interval", "output.swmr"};
  return keys;
}

ResumePoint read_resume_point(const std::string& path, const std::vector<std::string>& overrides) {
  for (const std::string& assignment : overrides) {
    const std::string key = assignment.substr(0, assignment.find('='));
    if (std::find(resumable_keys().begin(), resumable_keys().end(), key) == resumable_keys().end())
      throw SpecError(fmt::format("--resume {}: --set {}: only time.t_end, solver.max_steps, solver.max_wall_seconds, "
                                  "solver.threads, output.flush_interval and output.swmr may change on a resume (the "
                                  "stored trajectory must stay the resumed model's)",
                                  path, assignment));
  }
  ResumePoint from;
  from.path = path;
  if (!fs::is_regular_file(path)) throw IoError(fmt::format("--resume {}: no such file", path));
  try {
    // Refuse at once if a run is writing the file; released before the Recorder locks it again.
    const OutputLock probe(path);
  } catch (const IoError&) {
    throw IoError(fmt::format("--resume {}: the file is still open by a writer (lock {}.lock is held): wait for that "
                              "run to end or stop it",
                              path, path));
  }
  const h5::File file = open_for_reading(path);
  if (!file.has_attr("file_type") || file.string_attr("file_type") != "gfsim-trajectory")
    throw SpecError(fmt::format("--resume {}: not a gfsim run file (file_type {}, expected gfsim-trajectory)", path,
                                file.has_attr("file_type") ? "\"" + file.string_attr("file_type") + "\"" : "missing"));
  const std::int64_t version = file.has_attr("format_version") ? file.int64_attr("format_version") : -1;
  if (version > kFormatVersion)
    throw SpecError(fmt::format("--resume {}: format_version {} is newer than this gfsim's {} (written by gfsim {}); "
                                "resume it with that version",
                                path, version, kFormatVersion, attr_or(file, "gfsim_version", "?")));
  if (version < 1 || !file.has_attr("model_toml"))
    throw SpecError(fmt::format("--resume {}: format_version {} holds no resolved model to resume", path, version));

  // The resolved model holds every key with paths as the first run resolved them (relative to its
  // working directory): parsed under a bare file name, they are taken as they are.
  const std::string source = fs::path(path).filename().string();
  std::vector<std::string> sets = overrides;
  sets.push_back(fmt::format("output.path=\"{}\"", path));
  from.spec = parse_model_spec(file.string_attr("model_toml"), source, sets);

  // The sample count: step is written last (recorder.cpp), values of a killed run may run ahead.
  const h5::Group observables = file.open_group("observables");
  std::vector<std::string> names;
  const std::vector<std::string> children = observables.children();
  const h5::Group first = observables.open_group("theta");  // holds the shared step/time (recorder.cpp)
  const h5::Dataset step = first.open_dataset("step");
  std::int64_t samples = std::min(rows_of(step), rows_of(first.open_dataset("time")));
  for (const std::string& name : children) {
    const h5::Group group = observables.open_group(name);
    if (!group.contains("step") || !group.open_dataset("step").is_same_object(step)) continue;  // a series
    names.push_back(name);
    samples = std::min(samples, rows_of(group.open_dataset("value")));
  }
  if (samples < 1) throw SpecError(fmt::format("--resume {}: no complete sample to resume from", path));
  from.steps = step.read_int64s();
  from.times = first.open_dataset("time").read_doubles();
  from.steps.resize(std::size_t(samples));
  from.times.resize(std::size_t(samples));
  from.t = from.times.back();
  from.step = from.steps.back();
  for (const std::string& name : names) {
    const h5::Dataset value = observables.open_group(name).open_dataset("value");
    const auto shape = value.shape();
    StoredObservable stored;
    stored.width = shape.size() == 2 ? shape[1] : 0;
    stored.values = value.read_doubles();
    stored.values.resize(std::size_t(samples * std::max<std::int64_t>(stored.width, 1)));
    from.observables[name] = std::move(stored);
  }
  for (const std::string& name : children)
    if (std::find(names.begin(), names.end(), name) == names.end())
      from.series["observables/" + name] = read_series(observables.open_group(name), from.t);
  if (file.contains("events/time")) from.series["events"] = read_series(file.open_group("events"), from.t);

  const std::string state_name = from.observables.contains("state") ? "state" : "theta";
  const StoredObservable& state = from.observables.at(state_name);
  const std::size_t width = std::size_t(std::max<std::int64_t>(state.width, 1));
  from.state = Eigen::Map<const Vec>(state.values.data() + (samples - 1) * width, Index(width));
  if (!from.state.allFinite())
    throw SpecError(fmt::format("--resume {}: the stored state at t = {} is not finite", path, from.t));
  if (file.contains("initial/theta")) from.initial_theta = file.open_dataset("initial/theta").read_doubles();

  // A run killed after its last sample but before its end was written (/solver) is finished by a
  // resume to the same t_end: no integration, only the end. A finished run needs a later t_end.
  const bool finished = file.contains("solver");
  if (finished ? !(from.spec.time.t_end > from.t) : !(from.spec.time.t_end >= from.t))
    throw SpecError(fmt::format("--resume {}: time.t_end = {} is not beyond the stored t = {} (--set time.t_end=...)",
                                path, from.spec.time.t_end, from.t));
  from.resume_history = attr_or(file, "resumes", "");
  from.original_created = attr_or(file, "original_created", attr_or(file, "created", ""));
  from.original_git_commit = attr_or(file, "original_git_commit", attr_or(file, "git_commit", ""));
  return from;
}

}  // namespace gfsim
