#pragma once
// Reading a parsed model file (private to model_spec.cpp): typed, range-checked values with --set
// overrides taking precedence, and the one-line message text of values and locations. The schema
// table of model_spec.cpp says which keys exist and reads each through SpecReader.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

// Floats through std::to_chars/from_chars: the resolved model reads back to the same doubles.
#define TOML_FLOAT_CHARCONV 1
#include <toml++/toml.h>

#include "gfsim/enum_names.hpp"
#include "gfsim/errors.hpp"

namespace gfsim::spec_reading {

/// Messages: a string as a one-line TOML basic string (escapes for quotes and control characters).
inline std::string toml_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
          out += fmt::format("\\u{:04X}", static_cast<unsigned char>(c));
        else
          out += c;
    }
  }
  return out + "\"";
}

/// Messages: the shortest text that reads back to the same double, TOML-typed as a float ("1000.0").
inline std::string toml_float(double value) {
  std::string text = fmt::format("{}", value);
  if (std::isfinite(value) && text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

/// Messages are one line: newlines of embedded text become spaces.
inline std::string one_line(std::string_view text) {
  std::string out(text);
  std::replace(out.begin(), out.end(), '\n', ' ');
  return out;
}

/// A value as the user would write it, on one line, for messages.
inline std::string toml_text(const toml::node& node) {
  if (const auto* s = node.as_string()) return toml_string(s->get());
  if (const auto* i = node.as_integer()) return fmt::format("{}", i->get());
  if (const auto* f = node.as_floating_point()) return toml_float(f->get());
  if (const auto* b = node.as_boolean()) return b->get() ? "true" : "false";
  if (const auto* array = node.as_array()) {
    std::string out = "[";
    for (std::size_t i = 0; i < array->size(); ++i)
      out += (i ? ", " : "") + toml_text(*array->get(i));
    return out + "]";
  }
  std::ostringstream text;  // dates, times, tables: toml++'s own rendering
  text << toml::toml_formatter(node);
  return one_line(text.str());
}

inline std::string location(const std::string& source_name, const toml::source_region& region) {
  if (region.begin.line == 0) return source_name;
  return fmt::format("{}:{}:{}", source_name, region.begin.line, region.begin.column);
}

template <typename Enum>
inline std::string enum_choices() {
  std::string choices;
  for (const auto& [value, name] : EnumNames<Enum>::table)
    choices += fmt::format("{}\"{}\"", choices.empty() ? "" : ", ", name);
  return "must be one of " + choices;
}

/// "section.key=value" from the command line (parsed in model_spec.cpp against the schema).
struct Override {
  std::string section;
  std::string key;
  toml::table holder;  ///< holder["v"] is the value
};

/// Reads typed, range-checked values from the parsed file, with --set overrides taking precedence.
class SpecReader {
 public:
  SpecReader(const toml::table& root, std::string source_name, std::vector<Override> overrides)
      : root_(root), source_name_(std::move(source_name)), overrides_(std::move(overrides)) {}

  double real(std::string_view section, std::string_view key, double fallback,
              bool (*in_range)(double), std::string_view rule) const {
    const toml::node* node = find(section, key).node;
    if (!node) return fallback;
    double value = 0;
    if (const auto* f = node->as_floating_point())
      value = f->get();
    else if (const auto* i = node->as_integer())
      value = static_cast<double>(i->get());  // t_end = 1000 means 1000.0
    else
      fail(section, key, "must be a number");
    if (!std::isfinite(value)) fail(section, key, "must be a finite number");
    if (!in_range(value)) fail(section, key, rule);
    return value;
  }

  std::int64_t integer(std::string_view section, std::string_view key, std::int64_t fallback,
                       std::int64_t min, std::int64_t max) const {
    const toml::node* node = find(section, key).node;
    if (!node) return fallback;
    const auto* value = node->as_integer();
    if (!value) fail(section, key, "must be an integer");
    if (value->get() < min || value->get() > max) fail(section, key, range_rule(value->get(), min, max));
    return value->get();
  }

  int small_integer(std::string_view section, std::string_view key, int fallback, int min,
                    int max = std::numeric_limits<int>::max()) const {
    return static_cast<int>(integer(section, key, fallback, min, max));
  }

  std::uint64_t seed(std::string_view section, std::string_view key, std::uint64_t fallback) const {
    return static_cast<std::uint64_t>(integer(section, key, static_cast<std::int64_t>(fallback), 0,
                                              std::numeric_limits<std::int64_t>::max()));
  }

  bool boolean(std::string_view section, std::string_view key, bool fallback) const {
    const toml::node* node = find(section, key).node;
    if (!node) return fallback;
    const auto* value = node->as_boolean();
    if (!value) fail(section, key, "must be true or false");
    return value->get();
  }

  std::string string(std::string_view section, std::string_view key, std::string fallback) const {
    const toml::node* node = find(section, key).node;
    if (!node) return fallback;
    const auto* value = node->as_string();
    if (!value) fail(section, key, "must be a string");
    return value->get();
  }

  template <typename Enum>
  Enum choice(std::string_view section, std::string_view key, Enum fallback) const {
    const toml::node* node = find(section, key).node;
    if (!node) return fallback;
    if (const auto* text = node->as_string())
      for (const auto& [value, name] : EnumNames<Enum>::table)
        if (text->get() == name) return value;
    fail(section, key, enum_choices<Enum>());
  }

  std::vector<int> widths(std::string_view section, std::string_view key) const {
    const toml::node* node = find(section, key).node;
    if (!node) return {};
    const auto* array = node->as_array();
    if (!array) fail(section, key, "must be an array of layer widths, e.g. [16, 16]");
    std::vector<int> widths;
    for (const toml::node& element : *array) {
      const auto* width = element.as_integer();
      if (!width || width->get() < 1 || width->get() > std::numeric_limits<int>::max())
        fail(section, key, "every width must be an integer >= 1");
      widths.push_back(static_cast<int>(width->get()));
    }
    return widths;
  }

  /// An array of reals (integers accepted); empty if the key is absent.
  std::vector<double> reals(std::string_view section, std::string_view key, std::string_view rule) const {
    const toml::node* node = find(section, key).node;
    if (!node) return {};
    const auto* array = node->as_array();
    if (!array || array->empty()) fail(section, key, rule);
    std::vector<double> values;
    for (const toml::node& element : *array) {
      if (const auto* v = element.as_floating_point()) values.push_back(v->get());
      else if (const auto* i = element.as_integer()) values.push_back(double(i->get()));
      else fail(section, key, rule);
    }
    return values;
  }
  bool given(std::string_view section, std::string_view key) const { return find(section, key).node != nullptr; }

  /// Throws SpecError for `section.key`; `default_text` is shown when the key was not given.
  [[noreturn]] void fail(std::string_view section, std::string_view key, std::string_view rule,
                         std::string_view default_text = {}) const {
    const Found found = find(section, key);
    if (found.node)
      throw SpecError(fmt::format("{}: {}.{} = {}: {}", found.where, section, key,
                                  toml_text(*found.node), rule));
    throw SpecError(fmt::format("{}: {}.{} = {} (default): {}", found.where, section, key,
                                default_text, rule));
  }

 private:
  struct Found {
    const toml::node* node;
    std::string where;
  };

  Found find(std::string_view section, std::string_view key) const {
    for (auto it = overrides_.rbegin(); it != overrides_.rend(); ++it)  // the last --set wins
      if (it->section == section && it->key == key) return {it->holder.get("v"), "--set"};
    if (const auto* table = root_.get_as<toml::table>(section))
      if (const toml::node* node = table->get(key))
        return {node, location(source_name_, node->source())};
    return {nullptr, source_name_};
  }

  static std::string range_rule(std::int64_t value, std::int64_t min, std::int64_t max) {
    const bool open_above = max == std::numeric_limits<int>::max() ||
                            max == std::numeric_limits<std::int64_t>::max();
    if (!open_above) return fmt::format("must be in [{}, {}]", min, max);
    return value < min ? fmt::format("must be >= {}", min) : fmt::format("must be <= {}", max);
  }

  const toml::table& root_;
  std::string source_name_;
  std::vector<Override> overrides_;
};

}  // namespace gfsim::spec_reading
