// The one reader of number tables (CSV data, network.init_file): what it accepts, and that every
// rejection names source:line:column of the offending field.
#include "gfsim/number_table.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gfsim/errors.hpp"

namespace gfsim {
namespace {

std::string error_for(std::string_view text, const NumberTableFormat& format = {}) {
  try {
    parse_number_table(text, "F", format);
  } catch (const SpecError& error) {
    return error.what();
  }
  return "no error";
}

NumberTableFormat csv_like() {
  NumberTableFormat format;
  format.header_allowed = true;
  format.min_columns = 2;
  format.row_rule = "a label and a feature";
  return format;
}

TEST(NumberTable, RowsColumnsAndValues) {
  const NumberTable table = parse_number_table("1, 2.5,-3\n\n# comment\n  +4,5e-1 ,\t6\n", "F", {});
  ASSERT_EQ(table.columns, 3u);
  ASSERT_EQ(table.rows(), 2u);
  EXPECT_EQ(table.at(0, 1), 2.5);
  EXPECT_EQ(table.at(0, 2), -3.0);
  EXPECT_EQ(table.at(1, 0), 4.0);
  EXPECT_EQ(table.at(1, 1), 0.5);
  EXPECT_EQ(table.at(1, 2), 6.0);
}

TEST(NumberTable, ExactDecimalRoundTrip) {
  // from_chars: the nearest double, so a value printed with 17 digits reads back bit for bit.
  const NumberTable table = parse_number_table("0.33333333333333331\n0.1\n", "F", {});
  EXPECT_EQ(table.values[0], 1.0 / 3.0);
  EXPECT_EQ(table.values[1], 0.1);
}

TEST(NumberTable, HeaderBomAndCrlf) {
  const NumberTable table = parse_number_table("\xEF\xBB\xBFlabel,x\r\n1,2\r\n-1,3\r\n", "F", csv_like());
  ASSERT_EQ(table.rows(), 2u);
  EXPECT_EQ(table.at(1, 1), 3.0);
  // Without header_allowed the header is an error at its first field.
  EXPECT_EQ(error_for("label,x\n1,2\n", {}), "F:1:1: \"label\" is not a number");
}

TEST(NumberTable, ErrorsNameLineAndColumn) {
  EXPECT_EQ(error_for("1,2,3\n4,5\n"), "F:2:4: row has 2 columns, expected 3 as on line 1");
  EXPECT_EQ(error_for("1,2\n\n4,5,6\n"), "F:3:5: row has 3 columns, expected 2 as on line 1");
  EXPECT_EQ(error_for("1,2\n4,  abc\n"), "F:2:5: \"abc\" is not a number");
  EXPECT_EQ(error_for("1,inf\n"), "F:1:3: \"inf\" is not a finite number");
  EXPECT_EQ(error_for("1,1e999\n"), "F:1:3: \"1e999\" is not a number");  // out of range
  EXPECT_EQ(error_for("1\n", csv_like()), "F:1:2: a row needs a label and a feature");
}

TEST(NumberTable, OneNumberPerLine) {
  NumberTableFormat list;
  list.exact_columns = 1;
  list.row_rule = "one number per line";
  const NumberTable table = parse_number_table("# theta\n0.5\n-1\n", "F", list);
  EXPECT_EQ(table.values, (std::vector<double>{0.5, -1.0}));
  EXPECT_EQ(error_for("0.5\n1,2\n", list), "F:2:3: row has 2 fields, expected 1 (one number per line)");
  EXPECT_EQ(error_for("0.5 0.25\n", list), "F:1:1: \"0.5 0.25\" is not a number");
}

TEST(NumberTable, ValueRule) {
  NumberTableFormat format = csv_like();
  format.check_value = [](std::size_t column, double value, std::string_view) {
    return column == 0 && value != 1.0 && value != -1.0 ? std::string("label must be -1 or +1") : std::string();
  };
  EXPECT_EQ(parse_number_table("1,0\n-1,0\n", "F", format).rows(), 2u);
  EXPECT_EQ(error_for("1,0\n  0,0\n", format), "F:2:3: label must be -1 or +1");
}

TEST(NumberTable, EmptyTable) {
  const NumberTable table = parse_number_table("# nothing\n\n", "F", {});
  EXPECT_EQ(table.rows(), 0u);
  EXPECT_EQ(table.columns, 0u);
}

TEST(NumberTable, FileErrorsNameTheFileAndTheKey) {
  const auto dir = std::filesystem::temp_directory_path() / ("gfsim_number_table_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string missing = (dir / "missing.txt").string();
  try {
    read_number_table(missing, {}, "network.init_file");
    FAIL() << "no SpecError";
  } catch (const SpecError& error) {
    EXPECT_EQ(std::string(error.what()), missing + ": cannot read network.init_file: No such file or directory");
  }
  const std::string present = (dir / "t.txt").string();
  std::ofstream(present) << "1\n2\nx\n";
  try {
    read_number_table(present, {});
    FAIL() << "no SpecError";
  } catch (const SpecError& error) {
    EXPECT_EQ(std::string(error.what()), present + ":3:1: \"x\" is not a number");
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gfsim
