// Data sets: the generators keep their promises (separability, margin, reproducibility, bias column),
// and the CSV reader accepts good files and rejects bad ones with path:line:column.
#include "gfsim/dataset.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace gfsim {
namespace {

namespace fs = std::filesystem;

TEST(GaussianDataset, SeparatedByWTrueWithTheMargin) {
  const int n = 500, dim = 7;
  const double margin = 0.3;
  const Dataset data = gaussian_dataset(n, dim, margin, false, 5);
  ASSERT_EQ(data.n(), n);
  ASSERT_EQ(data.dim(), dim);
  const Vec w_true = gaussian_separator(dim, 5);
  EXPECT_NEAR(w_true.norm(), 1.0, 1e-15);
  EXPECT_TRUE((data.y.array().abs() == 1.0).all());
  const Vec margins = data.signed_points() * w_true;
  EXPECT_GE(margins.minCoeff(), margin - 1e-12);
  // The shift only adds the margin: some points sit close to it, so the margin is attained.
  EXPECT_LT(margins.minCoeff(), margin + 0.05);
  EXPECT_GT((data.y.array() > 0).count(), 0);
  EXPECT_GT((data.y.array() < 0).count(), 0);
}

TEST(GaussianDataset, ZeroMarginStillLabelsBySide) {
  const Dataset data = gaussian_dataset(200, 3, 0.0, false, 9);
  EXPECT_GE((data.signed_points() * gaussian_separator(3, 9)).minCoeff(), 0.0);
}

TEST(GaussianDataset, ReproducibleForASeedAndDifferentForAnother) {
  const Dataset a = gaussian_dataset(50, 4, 0.1, false, 42);
  const Dataset b = gaussian_dataset(50, 4, 0.1, false, 42);
  const Dataset c = gaussian_dataset(50, 4, 0.1, false, 43);
  EXPECT_EQ(a.X, b.X);
  EXPECT_EQ(a.y, b.y);
  EXPECT_GT((a.X - c.X).norm(), 1.0);
}

TEST(GaussianDataset, BiasAppendsAConstantOneColumn) {
  const Dataset plain = gaussian_dataset(30, 4, 0.2, false, 3);
  const Dataset biased = gaussian_dataset(30, 4, 0.2, true, 3);
  ASSERT_EQ(biased.dim(), 5);
  EXPECT_TRUE((biased.X.col(4).array() == 1.0).all());
  EXPECT_EQ(Mat(biased.X.leftCols(4)), plain.X);
  EXPECT_EQ(biased.y, plain.y);
  Vec w_extended = Vec::Zero(5);
  w_extended.head(4) = gaussian_separator(4, 3);
  EXPECT_GE((biased.signed_points() * w_extended).minCoeff(), 0.2 - 1e-12);
}

TEST(GaussianDataset, RejectsImpossibleParameters) {
  EXPECT_THROW(gaussian_dataset(0, 3, 0.1, false, 1), SpecError);
  EXPECT_THROW(gaussian_dataset(10, 0, 0.1, false, 1), SpecError);
  EXPECT_THROW(gaussian_dataset(10, 3, -1.0, false, 1), SpecError);
}

TEST(TeacherDataset, LabelsAreTheTeachersSigns) {
  const int n = 300, dim = 6, hidden = 8;
  const Dataset data = teacher_dataset(n, dim, hidden, false, 17);
  const ReluTeacher teacher = relu_teacher(dim, hidden, 17);
  ASSERT_EQ(teacher.B.rows(), hidden);
  ASSERT_EQ(teacher.B.cols(), dim);
  ASSERT_EQ(data.n(), n);
  for (Index i = 0; i < n; ++i) {
    const double output = teacher(data.X.row(i).transpose());
    EXPECT_GT(data.y(i) * output, 0.0) << "point " << i;  // strictly separated by the teacher
  }
  EXPECT_GT((data.y.array() > 0).count(), 0);
  EXPECT_GT((data.y.array() < 0).count(), 0);
}

TEST(TeacherDataset, ReproducibleAndWithBias) {
  const Dataset a = teacher_dataset(40, 3, 4, true, 8);
  const Dataset b = teacher_dataset(40, 3, 4, true, 8);
  const Dataset c = teacher_dataset(40, 3, 4, true, 9);
  EXPECT_EQ(a.X, b.X);
  EXPECT_EQ(a.y, b.y);
  EXPECT_GT((a.X - c.X).norm(), 1.0);
  ASSERT_EQ(a.dim(), 4);
  EXPECT_TRUE((a.X.col(3).array() == 1.0).all());
  const ReluTeacher teacher = relu_teacher(3, 4, 8);
  for (Index i = 0; i < a.n(); ++i) EXPECT_GT(a.y(i) * teacher(a.X.row(i).head(3).transpose()), 0.0);
}

TEST(MakeDataset, DispatchesOnKind) {
  DataSpec spec;
  spec.n = 20;
  spec.dim = 3;
  spec.seed = 4;
  EXPECT_EQ(make_dataset(spec).X, gaussian_dataset(20, 3, spec.margin, false, 4).X);
  spec.kind = DataKind::teacher;
  spec.teacher_hidden = 5;
  EXPECT_EQ(make_dataset(spec).y, teacher_dataset(20, 3, 5, false, 4).y);
}

TEST(MakeDataset, ExampleOnePointCsv) {
  DataSpec spec;
  spec.kind = DataKind::csv;
  spec.path = "data/one_point.csv";
  const Dataset data = make_dataset(spec, std::string(GFSIM_SOURCE_DIR) + "/models");
  ASSERT_EQ(data.n(), 1);
  ASSERT_EQ(data.dim(), 2);
  EXPECT_EQ(data.y(0), 1.0);
  EXPECT_EQ(data.X(0, 0), 0.6);
  EXPECT_EQ(data.X(0, 1), 0.8);
}

/// A fresh folder per test for CSV files.
class CsvDataset : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("gfsim_test_dataset_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) const {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  /// The message of the SpecError that reading `text` throws, with the file path replaced by "F".
  std::string error_for(const std::string& text) const {
    const std::string path = write("bad.csv", text);
    try {
      read_csv_dataset(path, false);
    } catch (const SpecError& error) {
      std::string message = error.what();
      if (message.rfind(path, 0) == 0) message.replace(0, path.size(), "F");
      return message;
    }
    ADD_FAILURE() << "no SpecError for:\n" << text;
    return {};
  }

  fs::path dir_;
};

TEST_F(CsvDataset, ReadsCommentsHeaderBlankLinesAndCrlf) {
  const std::string path = write("good.csv",
                                 "# two points in the plane\r\n"
                                 "label, x1, x2\r\n"
                                 "\r\n"
                                 " +1, 0.5, -2\r\n"
                                 "# a comment between rows\r\n"
                                 "-1,1e-3,+4.25\r\n");
  const Dataset data = read_csv_dataset(path, false);
  ASSERT_EQ(data.n(), 2);
  ASSERT_EQ(data.dim(), 2);
  EXPECT_EQ(data.y, Vec((Vec(2) << 1, -1).finished()));
  EXPECT_EQ(data.X, Mat((Mat(2, 2) << 0.5, -2, 1e-3, 4.25).finished()));

  const Dataset biased = read_csv_dataset(path, true);
  ASSERT_EQ(biased.dim(), 3);
  EXPECT_TRUE((biased.X.col(2).array() == 1.0).all());
}

TEST_F(CsvDataset, WithoutHeader) {
  const Dataset data = read_csv_dataset(write("plain.csv", "1,0.6,0.8\n-1,0.1,0.2\n1,3,4"), false);
  ASSERT_EQ(data.n(), 3);
  EXPECT_EQ(data.X(2, 1), 4.0);
}

TEST_F(CsvDataset, RelativePathResolvesAgainstBaseDir) {
  write("rel.csv", "1,2\n");
  DataSpec spec;
  spec.kind = DataKind::csv;
  spec.path = "rel.csv";
  EXPECT_EQ(make_dataset(spec, dir_.string()).X(0, 0), 2.0);
}

TEST_F(CsvDataset, BadLabel) {
  EXPECT_EQ(error_for("1,0.5\n0,0.5\n"), "F:2:1: label \"0\" must be -1 or +1");
  EXPECT_EQ(error_for("y,x\n1,0.5\n 2,0.5\n"), "F:3:2: label \"2\" must be -1 or +1");
}

TEST_F(CsvDataset, RaggedRow) {
  EXPECT_EQ(error_for("1,0.5,0.5\n-1,0.5\n"), "F:2:7: row has 2 columns, expected 3 as on line 1");
  EXPECT_EQ(error_for("1,0.5\n# c\n-1,0.5,7\n"), "F:3:8: row has 3 columns, expected 2 as on line 1");
}

TEST_F(CsvDataset, NotANumber) {
  EXPECT_EQ(error_for("1,0.5,0.5\n-1,abc,0.5\n"), "F:2:4: \"abc\" is not a number");
  EXPECT_EQ(error_for("1,0.5,\n"), "F:1:7: \"\" is not a number");
  EXPECT_EQ(error_for("1,nan\n"), "F:1:3: \"nan\" is not a finite number");
}

TEST_F(CsvDataset, LabelWithoutFeatures) {
  EXPECT_EQ(error_for("1\n"), "F:1:2: a row needs a label and at least one feature");
}

TEST_F(CsvDataset, EmptyFile) {
  EXPECT_EQ(error_for(""), "F: no data rows (the file is empty or holds only comments and a header)");
  EXPECT_EQ(error_for("# only\nlabel,x\n\n"),
            "F: no data rows (the file is empty or holds only comments and a header)");
}

TEST_F(CsvDataset, MissingFile) {
  const std::string path = (dir_ / "missing.csv").string();
  try {
    read_csv_dataset(path, false);
    FAIL() << "no SpecError";
  } catch (const SpecError& error) {
    EXPECT_EQ(std::string(error.what()), path + ": cannot read data file: No such file or directory");
  }
}

}  // namespace
}  // namespace gfsim
