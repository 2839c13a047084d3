// Text tables of numbers (CSV data, init_file): one parser with file:line:column errors.
#include "gfsim/number_table.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "gfsim/errors.hpp"

namespace gfsim {
namespace {

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

void split_fields(std::string_view line, std::vector<Field>& fields) {
  fields.clear();
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = std::min(line.find(',', start), line.size());
    const std::string_view raw = line.substr(start, comma - start);
    const std::size_t lead = std::min(raw.find_first_not_of(" \t"), raw.size());
    fields.push_back({trim(raw), start + lead + 1});
    if (comma == line.size()) return;
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

}  // namespace

NumberTable parse_number_table(std::string_view text, const std::string& source_name,
                               const NumberTableFormat& format) {
  const auto fail = [&source_name](std::size_t line, std::size_t column, std::string_view what) {
    throw SpecError(fmt::format("{}:{}:{}: {}", source_name, line, column, what));
  };
  NumberTable table;
  table.columns = format.exact_columns;
  std::size_t columns_line = 0;
  bool header_possible = format.header_allowed;
  std::vector<Field> fields;
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 BOM
  for (std::size_t line_number = 1; !text.empty(); ++line_number) {
    const std::size_t end = std::min(text.find('\n'), text.size());
    std::string_view line = text.substr(0, end);
    text.remove_prefix(std::min(end + 1, text.size()));
    if (line.ends_with('\r')) line.remove_suffix(1);  // CRLF files
    if (trim(line).empty() || trim(line).front() == '#') continue;

    split_fields(line, fields);
    if (header_possible) {
      header_possible = false;
      if (!parse_number(fields.front().text)) continue;
    }
    if (table.columns == 0) {
      if (fields.size() < format.min_columns) fail(line_number, line.size() + 1, fmt::format("a row needs {}", format.row_rule));
      table.columns = fields.size();
      columns_line = line_number;
    } else if (fields.size() != table.columns) {
      const std::size_t column = fields.size() > table.columns ? fields[table.columns].column : line.size() + 1;
      if (columns_line == 0)
        fail(line_number, column, fmt::format("row has {} fields, expected {} ({})", fields.size(), table.columns,
                                              format.row_rule));
      fail(line_number, column,
           fmt::format("row has {} columns, expected {} as on line {}", fields.size(), table.columns, columns_line));
    }
    for (std::size_t k = 0; k < fields.size(); ++k) {
      const Field& field = fields[k];
      const std::optional<double> value = parse_number(field.text);
      if (!value) fail(line_number, field.column, fmt::format("\"{}\" is not a number", field.text));
      if (!std::isfinite(*value)) fail(line_number, field.column, fmt::format("\"{}\" is not a finite number", field.text));
      if (format.check_value) {
        const std::string broken = format.check_value(k, *value, field.text);
        if (!broken.empty()) fail(line_number, field.column, broken);
      }
      table.values.push_back(*value);
    }
  }
  if (table.values.empty()) table.columns = 0;
  return table;
}

NumberTable read_number_table(const std::string& path, const NumberTableFormat& format,
                              std::string_view file_kind) {
  if (std::filesystem::is_directory(path)) throw SpecError(fmt::format("{}: cannot read {}: it is a directory", path, file_kind));
  std::ifstream file(path, std::ios::binary);
  if (!file) throw SpecError(fmt::format("{}: cannot read {}: {}", path, file_kind, std::strerror(errno)));
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) throw SpecError(fmt::format("{}: cannot read {}: {}", path, file_kind, std::strerror(errno)));
  return parse_number_table(text.str(), path, format);
}

}  // namespace gfsim
