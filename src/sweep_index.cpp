// The sweep index (sweep_index.hpp, docs/sweeps.md): rows read from the run files, written as an
// HDF5 table and a CSV copy, each renamed into place so readers never see a partial index.
#include "gfsim/sweep_index.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "gfsim/errors.hpp"
#include "gfsim/generalization.hpp"
#include "gfsim/hdf5_file.hpp"

namespace gfsim {

namespace {

namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

const std::vector<std::string>& solver_counters() {
  static const std::vector<std::string> names = {
      "steps",     "accepted",        "rejected",       "rhs_evals",     "jacobian_evals", "jvp_evals",
      "lu_decompositions", "events", "sliding_entries", "kink_crossings", "sliding_exits"};
  return names;
}

const std::vector<std::string>& scalar_observables() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n = {"log_loss", "margin", "grad_norm"};
    // train_/test_/gap_ generalization observables (generalization.hpp); NaN where not recorded
    n.insert(n.end(), generalization_observable_names().begin(), generalization_observable_names().end());
    return n;
  }();
  return names;
}

/// The value of a TOML value text as a number, when it is one (integers, floats, inf, nan).
bool as_number(const std::string& text, double& out) {
  if (text.empty()) return false;
  std::string t = text;
  if (t == "inf" || t == "+inf") t = "inf";
  char* end = nullptr;
  out = std::strtod(t.c_str(), &end);
  return end == t.c_str() + t.size();
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string csv_number(double value) { return std::isnan(value) ? "nan" : fmt::format("{}", value); }

/// The displayed form of a varied value: TOML strings without their quotes.
std::string display(const std::string& text) {
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') return text.substr(1, text.size() - 2);
  return text;
}

void rename_into_place(const std::string& partial, const std::string& path) {
  std::error_code error;
  fs::rename(partial, path, error);
  if (error) throw IoError(fmt::format("{}: cannot rename {} onto it: {}", path, partial, error.message()));
}

}  // namespace

const std::vector<std::string>& sweep_numeric_columns() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n = {"t_final", "rho"};
    n.insert(n.end(), scalar_observables().begin(), scalar_observables().end());
    n.insert(n.end(), solver_counters().begin(), solver_counters().end());
    n.push_back("wall_seconds");
    n.push_back("process_seconds");
    return n;
  }();
  return names;
}

bool run_file_complete(const std::string& path) {
  if (!fs::is_regular_file(path)) return false;
  try {
    const h5::File file = h5::File::open(path, h5::Access::read_only);
    return file.contains("solver") && file.open_group("solver").has_attr("status");
  } catch (const IoError&) {
    return false;
  }
}

SweepRow read_run_row(const std::string& path) {
  SweepRow row;
  row.file = fs::path(path).filename().string();
  if (!fs::is_regular_file(path)) {
    row.status = "missing";
    return row;
  }
  if (!run_file_complete(path)) {
    row.status = "incomplete";
    return row;
  }
  const h5::File file = h5::File::open(path, h5::Access::read_only);
  const h5::Group solver = file.open_group("solver");
  row.status = solver.string_attr("status");
  row.numbers["t_final"] = solver.double_attr("t_final");
  row.numbers["wall_seconds"] = solver.double_attr("wall_seconds");
  for (const std::string& counter : solver_counters())
    if (solver.has_attr(counter)) row.numbers[counter] = double(solver.int64_attr(counter));
  for (const std::string& name : scalar_observables()) {
    const std::string value_path = fmt::format("observables/{}/value", name);
    if (!file.contains(value_path)) continue;
    const std::vector<double> values = file.open_dataset(value_path).read_doubles();
    if (!values.empty()) row.numbers[name] = values.back();
  }
  if (file.contains("observables/rho/value")) {
    const h5::Dataset rho = file.open_dataset("observables/rho/value");
    const auto shape = rho.shape();
    const std::vector<double> values = rho.read_doubles();
    if (shape.size() == 2 && shape[0] > 0) {
      double product = 1;
      for (std::int64_t k = 0; k < shape[1]; ++k) product *= values[std::size_t((shape[0] - 1) * shape[1] + k)];
      row.numbers["rho"] = product;
    }
  }
  return row;
}

void write_sweep_index(const std::string& stem, const std::vector<std::string>& varied_keys,
                       const std::vector<SweepRow>& rows, const Provenance& provenance) {
  std::vector<bool> numeric(varied_keys.size(), true);
  for (const SweepRow& row : rows)
    for (std::size_t k = 0; k < varied_keys.size(); ++k) {
      double unused = 0;
      if (!as_number(row.values.at(k), unused)) numeric[k] = false;
    }
  auto number = [](const SweepRow& row, const std::string& column) {
    const auto it = row.numbers.find(column);
    return it == row.numbers.end() ? kNaN : it->second;
  };

  {  // HDF5: /runs/<column> float64 [N] for numeric columns, string columns as attributes of /runs
    const std::string path = stem + ".h5", partial = path + ".partial";
    h5::File file = h5::File::create(partial, h5::FileFormat::earliest, path);
    write_provenance(file, provenance);
    h5::Group runs = file.create_group("runs");
    std::vector<std::string> columns = {"id", "file", "status"};
    std::vector<std::string> ids, files, statuses;
    for (const SweepRow& row : rows) {
      ids.push_back(row.id);
      files.push_back(row.file);
      statuses.push_back(row.status);
    }
    runs.set_string_array_attr("id", ids);
    runs.set_string_array_attr("file", files);
    runs.set_string_array_attr("status", statuses);
    for (std::size_t k = 0; k < varied_keys.size(); ++k) {
      columns.push_back(varied_keys[k]);
      if (numeric[k]) {
        std::vector<double> values;
        for (const SweepRow& row : rows) {
          double v = kNaN;
          as_number(row.values[k], v);
          values.push_back(v);
        }
        runs.write_dataset(varied_keys[k], values);
      } else {
        std::vector<std::string> values;
        for (const SweepRow& row : rows) values.push_back(display(row.values[k]));
        runs.set_string_array_attr(varied_keys[k], values);
      }
    }
    for (const std::string& column : sweep_numeric_columns()) {
      columns.push_back(column);
      std::vector<double> values;
      for (const SweepRow& row : rows) values.push_back(number(row, column));
      runs.write_dataset(column, values);
    }
    runs.set_string_array_attr("columns", columns);
    runs.set_string_array_attr("varied_keys", varied_keys);
    runs.set_int64_attr("rows", std::int64_t(rows.size()));
    runs = h5::Group();
    file.close();
    rename_into_place(partial, path);
  }
  {  // CSV: a header row, then one row per run
    const std::string path = stem + ".csv", partial = path + ".partial";
    std::ofstream out(partial, std::ios::trunc);
    if (!out) throw IoError(fmt::format("{}: cannot create {}", path, partial));
    std::string line = "id,file,status";
    // Appended piecewise: `"," + temporary` trips a false -Wrestrict in GCC 12's std::string insert.
    for (const std::string& key : varied_keys) line.append(",").append(csv_field(key));
    for (const std::string& column : sweep_numeric_columns()) line.append(",").append(column);
    out << line << '\n';
    for (const SweepRow& row : rows) {
      line = fmt::format("{},{},{}", row.id, csv_field(row.file), row.status);
      for (const std::string& value : row.values) line.append(",").append(csv_field(display(value)));
      for (const std::string& column : sweep_numeric_columns())
        line.append(",").append(csv_number(number(row, column)));
      out << line << '\n';
    }
    out.close();
    if (!out) throw IoError(fmt::format("{}: cannot write {}", path, partial));
    rename_into_place(partial, path);
  }
}

}  // namespace gfsim
