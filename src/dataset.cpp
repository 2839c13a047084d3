// Data sets: the two random generators (separable Gaussian, ReLU teacher) and the CSV reader.
#include "gfsim/dataset.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace gfsim {
namespace {

/// The one source of randomness of a generator: every N(0,1) number it uses, in draw order.
class NormalStream {
 public:
  explicit NormalStream(std::uint64_t seed) : engine_(seed) {}
  double operator()() { return normal_(engine_); }

 private:
  std::mt19937_64 engine_;
  std::normal_distribution<double> normal_;
};

Mat draw_matrix(Index rows, Index cols, NormalStream& normal) {
  Mat m(rows, cols);
  for (Index i = 0; i < rows; ++i)
    for (Index j = 0; j < cols; ++j) m(i, j) = normal();
  return m;
}

Vec draw_vector(Index size, NormalStream& normal) {
  Vec v(size);
  for (Index i = 0; i < size; ++i) v(i) = normal();
  return v;
}

Vec draw_unit_vector(int dim, NormalStream& normal) {
  Vec v = draw_vector(dim, normal);
  while (v.norm() == 0.0) v = draw_vector(dim, normal);  // probability zero; keeps the result unit
  return v / v.norm();
}

ReluTeacher draw_teacher(int dim, int hidden, NormalStream& normal) {
  ReluTeacher teacher;
  teacher.B = draw_matrix(hidden, dim, normal);
  teacher.a = draw_vector(hidden, normal);
  return teacher;
}

double sign_label(double value) { return value >= 0.0 ? 1.0 : -1.0; }

void require_count(std::string_view generator, std::string_view name, long long value) {
  if (value < 1) throw SpecError(fmt::format("{} data: {} = {}: must be >= 1", generator, name, value));
}

Mat with_bias_column(const Mat& X) {
  Mat extended(X.rows(), X.cols() + 1);
  extended << X, Vec::Ones(X.rows());
  return extended;
}

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t";
  const std::size_t first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(kSpace) - first + 1);
}

/// One comma-separated field, trimmed, with the 1-based character column where it starts.
struct Field {
  std::string_view text;
  std::size_t column;
};

std::vector<Field> split_fields(std::string_view line) {
  std::vector<Field> fields;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = std::min(line.find(',', start), line.size());
    const std::string_view raw = line.substr(start, comma - start);
    const std::size_t lead = std::min(raw.find_first_not_of(" \t"), raw.size());
    fields.push_back({trim(raw), start + lead + 1});
    if (comma == line.size()) return fields;
    start = comma + 1;
  }
}

/// The whole field as a double (a leading '+' allowed), or nothing.
std::optional<double> parse_number(std::string_view text) {
  if (text.size() > 1 && text.front() == '+' && text[1] != '-' && text[1] != '+') text.remove_prefix(1);
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

[[noreturn]] void csv_error(const std::string& path, int line, std::size_t column,
                            std::string_view what) {
  throw SpecError(fmt::format("{}:{}:{}: {}", path, line, column, what));
}

}  // namespace

double ReluTeacher::operator()(const Vec& x) const { return a.dot((B * x).cwiseMax(0.0)); }

Vec gaussian_separator(int dim, std::uint64_t seed) {
  require_count("gaussian", "dim", dim);
  NormalStream normal(seed);
  return draw_unit_vector(dim, normal);
}

Dataset gaussian_dataset(int n, int dim, double margin, bool bias, std::uint64_t seed) {
  require_count("gaussian", "n", n);
  require_count("gaussian", "dim", dim);
  if (!(margin >= 0.0) || !std::isfinite(margin))
    throw SpecError(fmt::format("gaussian data: margin = {}: must be >= 0 and finite", margin));
  NormalStream normal(seed);
  const Vec w_true = draw_unit_vector(dim, normal);
  Dataset data{draw_matrix(n, dim, normal), Vec(n)};
  for (Index i = 0; i < n; ++i) {
    data.y(i) = sign_label(data.X.row(i).dot(w_true));
    // The component along w_true becomes w_true.x + y margin, so y w_true.x >= margin.
    data.X.row(i) += (data.y(i) * margin) * w_true.transpose();
  }
  if (bias) data.X = with_bias_column(data.X);
  return data;
}

ReluTeacher relu_teacher(int dim, int hidden, std::uint64_t seed) {
  require_count("teacher", "dim", dim);
  require_count("teacher", "teacher_hidden", hidden);
  NormalStream normal(seed);
  return draw_teacher(dim, hidden, normal);
}

Dataset teacher_dataset(int n, int dim, int hidden, bool bias, std::uint64_t seed) {
  require_count("teacher", "n", n);
  require_count("teacher", "dim", dim);
  require_count("teacher", "teacher_hidden", hidden);
  NormalStream normal(seed);
  const ReluTeacher teacher = draw_teacher(dim, hidden, normal);
  Dataset data{Mat(n, dim), Vec(n)};
  for (Index i = 0; i < n; ++i) {
    Vec x;
    double output = 0.0;
    do {  // f(x) = 0 means every unit is off: no label with a positive teacher margin
      x = draw_vector(dim, normal);
      output = teacher(x);
    } while (output == 0.0);
    data.X.row(i) = x.transpose();
    data.y(i) = sign_label(output);
  }
  if (bias) data.X = with_bias_column(data.X);
  return data;
}

Dataset read_csv_dataset(const std::string& path, bool bias) {
  if (std::filesystem::is_directory(path))
    throw SpecError(fmt::format("{}: cannot read data file: it is a directory", path));
  std::ifstream file(path);
  if (!file) throw SpecError(fmt::format("{}: cannot read data file: {}", path, std::strerror(errno)));

  std::vector<double> values;  // row by row: label, features
  std::size_t columns = 0;     // fixed by the first data row
  int columns_line = 0;
  bool header_possible = true;
  std::string line;
  for (int line_number = 1; std::getline(file, line); ++line_number) {
    std::string_view text = line;
    if (line_number == 1 && text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 BOM
    if (text.ends_with('\r')) text.remove_suffix(1);                                  // CRLF files
    if (trim(text).empty() || trim(text).front() == '#') continue;

    const std::vector<Field> fields = split_fields(text);
    if (header_possible) {
      header_possible = false;
      if (!parse_number(fields.front().text)) continue;
    }
    if (columns == 0) {
      if (fields.size() < 2)
        csv_error(path, line_number, text.size() + 1,
                  "a row needs a label and at least one feature");
      columns = fields.size();
      columns_line = line_number;
    } else if (fields.size() != columns) {
      const std::size_t column = fields.size() > columns ? fields[columns].column : text.size() + 1;
      csv_error(path, line_number, column,
                fmt::format("row has {} columns, expected {} as on line {}", fields.size(), columns,
                            columns_line));
    }
    for (std::size_t k = 0; k < fields.size(); ++k) {
      const Field& field = fields[k];
      const std::optional<double> value = parse_number(field.text);
      if (!value) csv_error(path, line_number, field.column, fmt::format("\"{}\" is not a number", field.text));
      if (!std::isfinite(*value))
        csv_error(path, line_number, field.column, fmt::format("\"{}\" is not a finite number", field.text));
      if (k == 0 && *value != 1.0 && *value != -1.0)
        csv_error(path, line_number, field.column,
                  fmt::format("label \"{}\" must be -1 or +1", field.text));
      values.push_back(*value);
    }
  }
  if (file.bad()) throw SpecError(fmt::format("{}: cannot read data file: {}", path, std::strerror(errno)));
  if (columns == 0)
    throw SpecError(fmt::format("{}: no data rows (the file is empty or holds only comments and a header)", path));

  const Index rows = static_cast<Index>(values.size() / columns);
  const Eigen::Map<const RowMat> table(values.data(), rows, static_cast<Index>(columns));
  Dataset data{table.rightCols(static_cast<Index>(columns) - 1), table.col(0)};
  if (bias) data.X = with_bias_column(data.X);
  return data;
}

Dataset make_dataset(const DataSpec& spec, const std::string& base_dir) {
  switch (spec.kind) {
    case DataKind::gaussian:
      return gaussian_dataset(spec.n, spec.dim, spec.margin, spec.bias, spec.seed);
    case DataKind::teacher:
      return teacher_dataset(spec.n, spec.dim, spec.teacher_hidden, spec.bias, spec.seed);
    case DataKind::csv: {
      std::filesystem::path path(spec.path);
      if (path.is_relative()) path = std::filesystem::path(base_dir) / path;
      return read_csv_dataset(path.string(), spec.bias);
    }
  }
  throw std::logic_error("make_dataset: unhandled DataKind");
}

}  // namespace gfsim
