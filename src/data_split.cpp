// Held-out data and label corruption (data_split.hpp): the points of a data kind, then the test
// set, standardization, label noise and the bias feature, in that order.
#include "gfsim/data_split.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <stdexcept>

#include "gfsim/errors.hpp"

namespace gfsim {
namespace {

Mat with_bias_column(const Mat& X) {
  Mat extended(X.rows(), X.cols() + 1);
  extended << X, Vec::Ones(X.rows());
  return extended;
}

Dataset rows_of(const Dataset& data, const std::vector<Index>& rows) {
  Dataset out{Mat(Index(rows.size()), data.dim()), Vec(Index(rows.size()))};
  for (std::size_t i = 0; i < rows.size(); ++i) {
    out.X.row(Index(i)) = data.X.row(rows[i]);
    out.y(Index(i)) = data.y(rows[i]);
  }
  return out;
}

std::string resolved(const std::string& path, const std::string& base_dir) {
  std::filesystem::path p(path);
  if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
  return p.string();
}

/// The points of the data kind without the bias feature; generators draw test_n more after them.
Dataset source_points(const DataSpec& spec, const std::string& base_dir) {
  const long long total = static_cast<long long>(spec.n) + spec.test_n;
  if (total > std::numeric_limits<int>::max())
    throw SpecError(fmt::format("data.test_n = {}: data.n + data.test_n must be <= {}", spec.test_n,
                                std::numeric_limits<int>::max()));
  switch (spec.kind) {
    case DataKind::gaussian: return gaussian_dataset(int(total), spec.dim, spec.margin, false, spec.seed);
    case DataKind::teacher: return teacher_dataset(int(total), spec.dim, spec.teacher_hidden, false, spec.seed);
    case DataKind::csv: return read_csv_dataset(resolved(spec.path, base_dir), false);
  }
  throw std::logic_error("source_points: unhandled DataKind");
}

/// Rows 0..n-1 of the generated points train, the rest test (data.test_n).
SplitRows first_rows(Index n_total, Index n_train) {
  SplitRows rows;
  for (Index i = 0; i < n_total; ++i) (i < n_train ? rows.train : rows.test).push_back(i);
  return rows;
}

std::vector<Index> sorted(std::vector<Index> rows) {
  std::sort(rows.begin(), rows.end());
  return rows;
}

}  // namespace

std::uint64_t uniform_below(std::mt19937_64& engine, std::uint64_t m) {
  if (m == 0) throw std::invalid_argument("uniform_below: m must be >= 1");
  // Accept draws below the largest multiple of m: every residue then has the same probability.
  const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() - std::numeric_limits<std::uint64_t>::max() % m;
  std::uint64_t x = engine();
  while (x >= limit) x = engine();
  return x % m;
}

SplitRows stratified_split(const Vec& y, double fraction, std::uint64_t seed) {
  if (!(fraction > 0 && fraction < 1)) throw DomainError(fmt::format("test fraction {} is not in (0, 1)", fraction));
  std::mt19937_64 engine(seed ^ kSplitStream);
  SplitRows split;
  for (double label : {-1.0, 1.0}) {
    std::vector<Index> rows;
    for (Index i = 0; i < y.size(); ++i)
      if (y(i) == label) rows.push_back(i);
    if (rows.empty()) continue;
    for (std::size_t i = rows.size() - 1; i > 0; --i) std::swap(rows[i], rows[uniform_below(engine, i + 1)]);
    const auto n_test = std::size_t(std::lround(fraction * double(rows.size())));
    if (n_test == 0 || n_test == rows.size())
      throw DomainError(fmt::format("class {:+g} has {} points: round({} x {}) = {} leaves it with no {} point",
                                    label, rows.size(), fraction, rows.size(), n_test,
                                    n_test == 0 ? "test" : "training"));
    split.test.insert(split.test.end(), rows.begin(), rows.begin() + std::ptrdiff_t(n_test));
    split.train.insert(split.train.end(), rows.begin() + std::ptrdiff_t(n_test), rows.end());
  }
  split.train = sorted(split.train);
  split.test = sorted(split.test);
  return split;
}

std::vector<Index> flip_labels(Vec& y, double fraction, std::uint64_t seed) {
  if (!(fraction >= 0 && fraction < 1)) throw DomainError(fmt::format("label noise {} is not in [0, 1)", fraction));
  std::mt19937_64 engine(seed ^ kLabelStream);
  const auto n = std::size_t(y.size());
  const auto count = std::size_t(std::lround(fraction * double(n)));
  std::vector<Index> rows(n);
  for (std::size_t i = 0; i < n; ++i) rows[i] = Index(i);
  for (std::size_t i = 0; i < count; ++i) std::swap(rows[i], rows[i + uniform_below(engine, n - i)]);  // partial Fisher-Yates
  rows.resize(count);
  for (Index row : rows) y(row) = -y(row);
  return sorted(rows);
}

std::vector<Index> randomize_labels(Vec& y, std::uint64_t seed) {
  std::mt19937_64 engine(seed ^ kLabelStream);
  std::vector<Index> changed;
  for (Index i = 0; i < y.size(); ++i) {
    const double label = (engine() >> 63) ? 1.0 : -1.0;
    if (label != y(i)) changed.push_back(i);
    y(i) = label;
  }
  return changed;
}

void standardization_of(const Mat& X, Vec& mean, Vec& scale) {
  mean = X.colwise().mean().transpose();
  scale = ((X.rowwise() - mean.transpose()).array().square().colwise().mean()).sqrt().transpose();
  for (Index j = 0; j < scale.size(); ++j)
    if (!(scale(j) > 0)) scale(j) = 1.0;  // a constant feature is only centred
}

HeldOutData make_held_out_data(const DataSpec& spec, const std::string& base_dir) {
  const Dataset points = source_points(spec, base_dir);
  HeldOutData out;
  if (spec.test_fraction > 0) {
    SplitRows split;
    try {
      split = stratified_split(points.y, spec.test_fraction, spec.seed);
    } catch (const DomainError& error) {
      throw SpecError(fmt::format("data.test_fraction = {}: the split is refused: {} (change the fraction or the data)",
                                  spec.test_fraction, error.what()));
    }
    out.train = rows_of(points, split.train);
    out.test = rows_of(points, split.test);
  } else if (spec.test_n > 0) {
    const SplitRows split = first_rows(points.n(), spec.n);
    out.train = rows_of(points, split.train);
    out.test = rows_of(points, split.test);
  } else {
    out.train = points;
    out.test = Dataset{Mat(0, points.dim()), Vec(0)};
  }
  if (!spec.test_path.empty()) {
    out.test = read_csv_dataset(resolved(spec.test_path, base_dir), false);
    if (out.test.dim() != out.train.dim())
      throw SpecError(fmt::format("data.test_path = \"{}\": {} features per point, the training data have {}",
                                  spec.test_path, out.test.dim(), out.train.dim()));
  }
  if (spec.standardize) {
    standardization_of(out.train.X, out.feature_mean, out.feature_scale);
    auto apply = [&](Mat& X) {
      X = (X.rowwise() - out.feature_mean.transpose()).array().rowwise() / out.feature_scale.transpose().array();
    };
    apply(out.train.X);
    apply(out.test.X);
  }
  if (spec.label_noise > 0 || spec.random_labels) {
    out.clean_labels = out.train.y;
    out.corrupted_rows = spec.random_labels ? randomize_labels(out.train.y, spec.seed)
                                            : flip_labels(out.train.y, spec.label_noise, spec.seed);
  }
  if (spec.bias) {
    out.train.X = with_bias_column(out.train.X);
    out.test.X = with_bias_column(out.test.X);
  }
  return out;
}

}  // namespace gfsim
