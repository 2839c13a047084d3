// Held-out data and label corruption (data_split.hpp): splits reproducible by seed, disjoint and
// stratified; label noise flips exactly the stated fraction; standardization uses the training
// statistics only; bad keys are refused with one line naming the key.
#include "gfsim/data_split.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <string>

#include "gfsim/build.hpp"
#include "gfsim/model_spec.hpp"

namespace gfsim {
namespace {

std::string source(const std::string& rel) { return std::string(GFSIM_SOURCE_DIR) + "/" + rel; }

ModelSpec spec_of(const std::string& toml) { return parse_model_spec(toml, source("models/x.toml")); }

std::string spec_error(const std::string& toml) {
  try {
    make_held_out_data(spec_of(toml));
  } catch (const SpecError& error) {
    return error.what();
  }
  return "";
}

Vec labels(std::initializer_list<double> values) {
  Vec y(Index(values.size()));
  Index i = 0;
  for (double v : values) y(i++) = v;
  return y;
}

TEST(StratifiedSplit, DisjointCompleteStratifiedAndReproducible) {
  Vec y(103);
  for (Index i = 0; i < y.size(); ++i) y(i) = (i % 3 == 0) ? -1.0 : 1.0;  // 35 negative, 68 positive
  const SplitRows a = stratified_split(y, 0.25, 7), b = stratified_split(y, 0.25, 7), c = stratified_split(y, 0.25, 8);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.test, b.test);
  EXPECT_NE(a.test, c.test);
  std::vector<Index> all(a.train);
  all.insert(all.end(), a.test.begin(), a.test.end());
  std::sort(all.begin(), all.end());
  std::vector<Index> expected(std::size_t(y.size()));
  std::iota(expected.begin(), expected.end(), Index(0));
  EXPECT_EQ(all, expected);  // disjoint and complete
  EXPECT_TRUE(std::is_sorted(a.train.begin(), a.train.end()));
  auto count = [&](const std::vector<Index>& rows, double label) {
    return std::count_if(rows.begin(), rows.end(), [&](Index r) { return y(r) == label; });
  };
  EXPECT_EQ(count(a.test, -1.0), std::lround(0.25 * 35));  // 9
  EXPECT_EQ(count(a.test, 1.0), std::lround(0.25 * 68));   // 17
}

TEST(StratifiedSplit, RefusesAClassLeftEmpty) {
  EXPECT_THROW(stratified_split(labels({1, 1, 1, -1}), 0.25, 1), DomainError);  // -1: round(0.25) = 0 test
  EXPECT_THROW(stratified_split(labels({1, 1, -1, -1}), 0.9, 1), DomainError);  // round(1.8) = 2: no training
  EXPECT_NO_THROW(stratified_split(labels({1, 1, -1, -1}), 0.5, 1));
}

TEST(LabelNoise, FlipsExactlyTheStatedFraction) {
  for (double fraction : {0.0, 0.1, 0.25, 0.5, 0.99}) {
    Vec y = Vec::Ones(200);
    y.head(50).setConstant(-1.0);
    const Vec clean = y;
    const std::vector<Index> flipped = flip_labels(y, fraction, 3);
    const auto expected = std::size_t(std::lround(fraction * 200));
    EXPECT_EQ(flipped.size(), expected) << fraction;
    EXPECT_EQ(std::set<Index>(flipped.begin(), flipped.end()).size(), expected);  // distinct rows
    EXPECT_EQ(Index((y.array() != clean.array()).count()), Index(expected));
    for (Index r : flipped) EXPECT_EQ(y(r), -clean(r));
  }
  Vec a = Vec::Ones(40), b = Vec::Ones(40);
  EXPECT_EQ(flip_labels(a, 0.3, 5), flip_labels(b, 0.3, 5));
  EXPECT_THROW(flip_labels(a, 1.0, 5), DomainError);
}

TEST(RandomLabels, FairDrawsIndependentOfTheCleanLabels) {
  Vec y = Vec::Ones(4000);
  const std::vector<Index> changed = randomize_labels(y, 11);
  EXPECT_EQ(Index(changed.size()), (y.array() < 0).count());
  // 4000 fair coins: the count of -1 is 2000 +- 31.6 (one sd); 5 sd allowed.
  EXPECT_NEAR(double(changed.size()), 2000.0, 160.0);
}

TEST(UniformBelow, CoversTheRangeUniformly) {
  std::mt19937_64 engine(1);
  std::vector<int> hits(7, 0);
  for (int i = 0; i < 70000; ++i) ++hits[uniform_below(engine, 7)];
  for (int h : hits) EXPECT_NEAR(h, 10000, 500);  // sd 93
}

TEST(HeldOutData, CsvSplitStandardizedWithTrainingStatistics) {
  const ModelSpec spec = spec_of(
      "[data]\nkind = \"csv\"\npath = \"data/wine_0_1.csv\"\ntest_fraction = 0.3\nstandardize = true\nbias = true\n");
  const HeldOutData d = make_held_out_data(spec);
  EXPECT_EQ(d.train.n() + d.test.n(), 130);
  EXPECT_EQ(d.test.n(), std::lround(0.3 * 59) + std::lround(0.3 * 71));
  ASSERT_EQ(d.train.dim(), 14);  // 13 features and the bias
  const Mat features = d.train.X.leftCols(13);
  EXPECT_LT(features.colwise().mean().cwiseAbs().maxCoeff(), 1e-12);
  const Vec variance = (features.array().square().colwise().mean()).transpose();
  EXPECT_LT((variance.array() - 1.0).abs().maxCoeff(), 1e-12);
  EXPECT_TRUE((d.train.X.col(13).array() == 1.0).all());
  EXPECT_TRUE((d.test.X.col(13).array() == 1.0).all());
  // The test set is transformed with the training statistics (so it is not exactly standardized).
  const ModelSpec raw_spec = spec_of("[data]\nkind = \"csv\"\npath = \"data/wine_0_1.csv\"\ntest_fraction = 0.3\n");
  const HeldOutData raw = make_held_out_data(raw_spec);
  const Mat expected_test =
      (raw.test.X.rowwise() - d.feature_mean.transpose()).array().rowwise() / d.feature_scale.transpose().array();
  EXPECT_LT((expected_test - d.test.X.leftCols(13)).cwiseAbs().maxCoeff(), 1e-12);
}

TEST(HeldOutData, GeneratorTestSetFollowsTheTrainingPoints) {
  const ModelSpec with = spec_of("[data]\nkind = \"teacher\"\nn = 30\ntest_n = 20\nbias = true\n");
  const ModelSpec without = spec_of("[data]\nkind = \"teacher\"\nn = 30\nbias = true\n");
  const HeldOutData a = make_held_out_data(with);
  const Dataset b = make_dataset(without);
  EXPECT_EQ(a.train.X, b.X);  // the training data do not change when a test set is drawn
  EXPECT_EQ(a.train.y, b.y);
  EXPECT_EQ(a.test.n(), 20);
  const ReluTeacher teacher = relu_teacher(5, 8, 1);
  for (Index i = 0; i < a.test.n(); ++i)
    EXPECT_EQ(a.test.y(i), teacher(a.test.X.row(i).head(5).transpose()) >= 0 ? 1.0 : -1.0);
}

TEST(HeldOutData, LabelNoiseOnTrainingLabelsOnly) {
  const ModelSpec spec = spec_of("[data]\nkind = \"gaussian\"\nn = 40\ntest_n = 40\nlabel_noise = 0.25\n");
  const HeldOutData d = make_held_out_data(spec);
  const HeldOutData clean = make_held_out_data(spec_of("[data]\nkind = \"gaussian\"\nn = 40\ntest_n = 40\n"));
  EXPECT_EQ(d.corrupted_rows.size(), 10u);
  EXPECT_EQ((d.train.y.array() != clean.train.y.array()).count(), 10);
  EXPECT_EQ(d.clean_labels, clean.train.y);
  EXPECT_EQ(d.test.y, clean.test.y);
}

TEST(HeldOutData, BadKeysAreOneLineErrorsNamingTheKey) {
  const std::string csv = "[data]\nkind = \"csv\"\npath = \"data/wine_0_1.csv\"\n";
  auto expect_error = [](const std::string& message, const std::string& key) {
    EXPECT_NE(message.find(key), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  };
  for (const char* value : {"0", "1", "1.5", "-0.2"})
    expect_error(spec_error(csv + "test_fraction = " + value + "\n"), "data.test_fraction = ");
  for (const char* value : {"1", "1.0", "-0.1"})
    expect_error(spec_error(csv + "label_noise = " + value + "\n"), "data.label_noise = ");
  // A split leaving a class empty: one data point of one class.
  expect_error(spec_error("[data]\nkind = \"csv\"\npath = \"data/one_point.csv\"\ntest_fraction = 0.5\n"),
               "data.test_fraction = 0.5: the split is refused: class");
  expect_error(spec_error(csv + "test_fraction = 0.3\ntest_n = 10\n"), "data.test_n");
  expect_error(spec_error("[data]\nkind = \"gaussian\"\ntest_fraction = 0.3\ntest_n = 10\n"), "data.test_n");
  expect_error(spec_error(csv + "label_noise = 0.1\nrandom_labels = true\n"), "data.random_labels");
  expect_error(spec_error(csv + "test_path = \"data/iris_setosa_versicolor.csv\"\n"), "data.test_path");
  expect_error(spec_error("[generalization]\nrho = 0\n"), "generalization.rho = 0");
}

TEST(HeldOutData, ResolvedModelReadsBackTheSame) {
  const ModelSpec spec = spec_of(
      "[data]\nkind = \"csv\"\npath = \"data/wine_0_1.csv\"\ntest_fraction = 0.3\nstandardize = true\n"
      "random_labels = true\n[generalization]\nrho = 4\n");
  const ModelSpec again = parse_model_spec(spec.resolved_toml, source("models/y.toml"));
  EXPECT_EQ(again.data, spec.data);
  EXPECT_EQ(again.generalization, spec.generalization);
  // Models without the new keys keep their canonical text (and so their sweep run ids).
  EXPECT_EQ(spec_of("").resolved_toml.find("test_"), std::string::npos);
  EXPECT_EQ(spec_of("").resolved_toml.find("[generalization]"), std::string::npos);
}

}  // namespace
}  // namespace gfsim
