// Data sets: the two random generators (separable Gaussian, ReLU teacher) and CSV files (read
// through number_table.hpp).
#include "gfsim/dataset.hpp"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "gfsim/data_split.hpp"
#include "gfsim/number_table.hpp"

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
  if (margin > kMaxFeatureMagnitude / 2)  // features are N(0,1) plus the margin
    throw SpecError(fmt::format("gaussian data: margin = {}: must be <= {} (features above {} overflow the flow, "
                                "docs/reliability.md)", margin, kMaxFeatureMagnitude / 2, kMaxFeatureMagnitude));
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
  NumberTableFormat format;
  format.header_allowed = true;
  format.min_columns = 2;
  format.row_rule = "a label and at least one feature";
  format.check_value = [](std::size_t column, double value, std::string_view text) {
    if (column == 0)
      return value != 1.0 && value != -1.0 ? fmt::format("label \"{}\" must be -1 or +1", text) : std::string();
    return std::abs(value) > kMaxFeatureMagnitude
               ? fmt::format("feature \"{}\" has magnitude above {}: the flow squares features and would "
                             "overflow; rescale the data (features of order one)", text, kMaxFeatureMagnitude)
               : std::string();
  };
  const NumberTable table = read_number_table(path, format, "data file");
  if (table.rows() == 0)
    throw SpecError(fmt::format("{}: no data rows (the file is empty or holds only comments and a header)", path));
  const auto rows = static_cast<Index>(table.rows()), columns = static_cast<Index>(table.columns);
  const Eigen::Map<const RowMat> values(table.values.data(), rows, columns);
  Dataset data{values.rightCols(columns - 1), values.col(0)};
  if (bias) data.X = with_bias_column(data.X);
  return data;
}

Dataset make_dataset(const DataSpec& spec, const std::string& base_dir) {
  return make_held_out_data(spec, base_dir).train;  // the points, the split and the label keys: data_split.cpp
}

}  // namespace gfsim
