#pragma once
// One reader for text tables of numbers: the CSV data files and network.init_file (one number per
// line) both go through it, so both give the same file:line:column errors.
//
// Format: fields separated by commas (no quoting), spaces and tabs around a field ignored, a
// leading '+' allowed; blank lines and lines whose first non-blank character is '#' skipped; a
// UTF-8 BOM and CRLF line ends accepted. Every value must be a finite number.
//
//   NumberTableFormat format{.header_allowed = true, .min_columns = 2};
//   NumberTable table = read_number_table("data.csv", format);   // throws SpecError
//   double v = table.at(row, column);
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace gfsim {

struct NumberTableFormat {
  /// Skip one header line: the first non-comment line, if its first field is not a number.
  bool header_allowed = false;
  /// Rows need at least this many fields (the first row fixes the count for the others).
  std::size_t min_columns = 1;
  /// > 0: every row has exactly this many fields (e.g. 1 for a list of numbers).
  std::size_t exact_columns = 0;
  /// What a row holds, for the too-few-columns message (e.g. "a label and at least one feature").
  std::string row_rule = "at least one number";
  /// Optional rule on each value: returns "" when (column, value) is acceptable, else the rule
  /// broken (reported at the value's file:line:column).
  std::function<std::string(std::size_t column, double value, std::string_view text)> check_value;
};

struct NumberTable {
  std::vector<double> values;  ///< row-major
  std::size_t columns = 0;
  std::size_t rows() const { return columns ? values.size() / columns : 0; }
  double at(std::size_t row, std::size_t column) const { return values[row * columns + column]; }
};

/// Parse a table from text; `source_name` prefixes every message (source:line:column: what).
/// An empty table (no data rows) is returned as such: the caller knows whether that is an error.
NumberTable parse_number_table(std::string_view text, const std::string& source_name,
                               const NumberTableFormat& format);
/// Read a table from a file; SpecError "path: cannot read <file_kind>: reason" when it cannot be read.
NumberTable read_number_table(const std::string& path, const NumberTableFormat& format,
                              std::string_view file_kind = "the file");

}  // namespace gfsim
