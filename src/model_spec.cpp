// Model files: TOML text -> validated ModelSpec -> canonical TOML (resolved_toml).
// Every key is declared once, in the schema table below: its read function (through SpecReader,
// which checks type and range where the value is read, so each error names where the value came
// from, file:line:column or --set, the key, the value and the rule) and its canonical writer
// (toml++'s formatter). The key names of models/README.md are checked against the table by a test.
#include "gfsim/model_spec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string_view>
#include <type_traits>

#include "spec_reader.hpp"

namespace gfsim {

const char* to_string(DataKind value) { return enum_name(value); }
const char* to_string(Activation value) { return enum_name(value); }
const char* to_string(LossKind value) { return enum_name(value); }
const char* to_string(FlowKind value) { return enum_name(value); }
const char* to_string(Method value) { return enum_name(value); }
const char* to_string(ClockKind value) { return enum_name(value); }
const char* to_string(KinkMode value) { return enum_name(value); }
const char* to_string(LambdaKind value) { return enum_name(value); }
const char* to_string(RhoScheduleKind value) { return enum_name(value); }

namespace {

namespace fs = std::filesystem;
using namespace spec_reading;

class KeyReader;

/// One model key, declared once: where it lives, its type, rule and meaning (models/README.md
/// documents the same keys; a test checks that), how it is read into the spec (typed and
/// range-checked, with cross-key rules on keys read before it) and how the canonical resolved model
/// writes it (inserts its value into the section's table, or nothing to omit it).
struct KeyDef {
  std::string_view section, key, type, rule, description;
  void (*read)(const KeyReader&, ModelSpec&);
  void (*write)(const ModelSpec&, toml::table&);
};

/// The schema table, in the order of the resolved model and models/README.md (defined below).
const std::vector<KeyDef>& schema();

std::vector<std::string_view> sections() {
  std::vector<std::string_view> names;
  for (const KeyDef& def : schema())
    if (names.empty() || names.back() != def.section) names.push_back(def.section);
  return names;
}

std::vector<std::string_view> keys_of(std::string_view section) {
  std::vector<std::string_view> keys;
  for (const KeyDef& def : schema())
    if (def.section == section) keys.push_back(def.key);
  return keys;
}

bool is_section(std::string_view name) { return !keys_of(name).empty(); }

std::string known_sections() { return fmt::format("{}", fmt::join(sections(), ", ")); }

/// Throws unless `key` belongs to `section` (a known one); `where` prefixes the message.
void require_known_key(std::string_view section, std::string_view key, const std::string& where) {
  const std::vector<std::string_view> keys = keys_of(section);
  if (std::find(keys.begin(), keys.end(), key) != keys.end()) return;
  throw SpecError(fmt::format("{}: unknown key {}.{} (known keys of [{}]: {})", where, section, key, section,
                              fmt::join(keys, ", ")));
}

/// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
/// TOML documents are UTF-8; a bare --set string that is not would be rewritten by the formatter
/// (byte 0xAC becomes "\u00AC", i.e. C2 AC) and the resolved model would name another value.
bool is_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const std::size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
    if (length == 0 || i + length > text.size()) return false;
    char32_t code = length == 1 ? lead : lead & (0x7F >> length);
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    static constexpr char32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < smallest[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    i += length;
  }
  return true;
}

/// "section.key=value" from the command line. The value is TOML ("1e-10", "[16, 16]", "true",
/// "\"relu\""); text that is not a TOML value is taken as a bare string, so "flow.kind=wn" works.
Override parse_override(const std::string& assignment) {
  const std::size_t equals = assignment.find('=');
  const std::size_t dot = assignment.find('.');
  if (equals == std::string::npos || dot == std::string::npos || dot > equals || dot == 0 ||
      dot + 1 == equals || assignment.find('.', dot + 1) < equals)
    throw SpecError(fmt::format("--set {}: expected section.key=value, e.g. solver.rtol=1e-10",
                                toml_string(assignment)));
  Override result{assignment.substr(0, dot), assignment.substr(dot + 1, equals - dot - 1), {}};
  if (!is_section(result.section))
    throw SpecError(fmt::format("--set: unknown section [{}] (known sections: {})", result.section,
                                known_sections()));
  require_known_key(result.section, result.key, "--set");

  const std::string value = assignment.substr(equals + 1);
  if (!is_utf8(value))
    throw SpecError(fmt::format("--set {}.{}: the value is not valid UTF-8 (model files and their values are UTF-8)",
                                result.section, result.key));
  try {
    toml::table parsed = toml::parse("v = " + value, std::string_view{"--set"});
    if (parsed.size() == 1 && parsed.contains("v")) result.holder = std::move(parsed);
  } catch (const toml::parse_error&) {
    // not a TOML value: a bare string, handled below
  }
  if (result.holder.empty()) result.holder.insert("v", value);
  return result;
}

/// Rejects sections and keys the schema does not know, so typos never pass silently.
void check_known_keys(const toml::table& root, const std::string& source_name) {
  for (const auto& [name, node] : root) {
    const std::string where = location(source_name, name.source());
    const bool section = is_section(name.str());
    if (!section && node.is_table())
      throw SpecError(fmt::format("{}: unknown section [{}] (known sections: {})", where, name.str(),
                                  known_sections()));
    if (!section)
      throw SpecError(fmt::format("{}: unknown key {} outside any section (known sections: {})", where,
                                  name.str(), known_sections()));
    const auto* table = node.as_table();
    if (!table)
      throw SpecError(fmt::format("{}: {} = {}: must be a section [{}]", where, name.str(),
                                  toml_text(node), name.str()));
    for (const auto& [key, value] : *table)
      require_known_key(name.str(), key.str(), location(source_name, key.source()));
  }
}

/// SpecReader bound to one key of the schema: the read functions of the table name no key.
class KeyReader {
 public:
  KeyReader(const SpecReader& read, const KeyDef& def, const std::string& source_name)
      : read_(read), def_(def), source_name_(source_name) {}

  /// A finite real; `in_range` false -> "must be <rule of the table>".
  double real(double fallback, bool (*in_range)(double)) const {
    return read_.real(def_.section, def_.key, fallback, in_range, fmt::format("must be {}", def_.rule));
  }
  std::int64_t integer(std::int64_t fallback, std::int64_t min, std::int64_t max) const {
    return read_.integer(def_.section, def_.key, fallback, min, max);
  }
  int small_integer(int fallback, int min, int max = std::numeric_limits<int>::max()) const {
    return read_.small_integer(def_.section, def_.key, fallback, min, max);
  }
  std::uint64_t seed(std::uint64_t fallback) const { return read_.seed(def_.section, def_.key, fallback); }
  bool boolean(bool fallback) const { return read_.boolean(def_.section, def_.key, fallback); }
  std::string string(std::string fallback) const { return read_.string(def_.section, def_.key, std::move(fallback)); }
  template <typename Enum>
  Enum choice(Enum fallback) const {
    return read_.choice(def_.section, def_.key, fallback);
  }
  std::vector<int> widths() const { return read_.widths(def_.section, def_.key); }
  std::vector<double> reals(std::string_view rule) const { return read_.reals(def_.section, def_.key, rule); }
  bool given() const { return read_.given(def_.section, def_.key); }
  [[noreturn]] void fail(std::string_view rule, std::string_view default_text = {}) const {
    read_.fail(def_.section, def_.key, rule, default_text);
  }
  /// The model file's name: default model name, folder of relative paths.
  const std::string& source_name() const { return source_name_; }

 private:
  const SpecReader& read_;
  const KeyDef& def_;
  const std::string& source_name_;
};

/// Relative paths in a model file mean "next to the model file"; stored absolute so that the spec
/// (and resolved_toml, re-parsed from anywhere) names the same file.
std::string resolve_path(const std::string& path, const std::string& source_name) {
  if (path.empty()) return path;
  fs::path resolved(path);
  if (resolved.is_relative()) resolved = fs::path(source_name).parent_path() / resolved;
  return fs::absolute(resolved).lexically_normal().string();
}

bool positive(double x) { return x > 0; }
bool non_negative(double x) { return x >= 0; }
constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

template <typename Value>
void put(toml::table& table, std::string_view key, Value value) {
  table.insert_or_assign(key, std::move(value));
}
void put_enum(toml::table& table, std::string_view key, const char* name) { put(table, key, std::string(name)); }
template <typename Number>
void put_array(toml::table& table, std::string_view key, const std::vector<Number>& values) {
  toml::array array;
  for (Number v : values) array.push_back(static_cast<std::conditional_t<std::is_integral_v<Number>, std::int64_t, double>>(v));
  put(table, key, std::move(array));
}
std::int64_t as_toml_integer(std::uint64_t seed) { return static_cast<std::int64_t>(seed); }  // seeds are <= 2^63 - 1

const std::string kSpectrumTimesRule = "must be a non-empty array of times in (0, time.t_end], strictly increasing";

// clang-format off
const std::vector<KeyDef>& schema() {
  using R = const KeyReader&;
  using W = toml::table&;
  static const std::vector<KeyDef> table = {
  {"model", "name", "string", "", "name of the run, stored in the output (default: the model file's name without .toml)",
   [](R r, ModelSpec& s) { s.name = r.string(fs::path(r.source_name()).stem().string()); },
   [](const ModelSpec& s, W t) { put(t, "name", s.name); }},
  {"model", "description", "string", "", "free text, stored in the output",
   [](R r, ModelSpec& s) { s.description = r.string(s.description); },
   [](const ModelSpec& s, W t) { put(t, "description", s.description); }},

  {"data", "kind", "string", "", "where the points come from",
   [](R r, ModelSpec& s) { s.data.kind = r.choice(s.data.kind); },
   [](const ModelSpec& s, W t) { put_enum(t, "kind", to_string(s.data.kind)); }},
  {"data", "path", "string", "required when kind = \"csv\"", "CSV file, relative to the model file's folder",
   [](R r, ModelSpec& s) {
     s.data.path = r.string(s.data.path);
     if (s.data.kind == DataKind::csv && s.data.path.empty())
       r.fail("must name the CSV file when data.kind = \"csv\"", "\"\"");
     s.data.path = resolve_path(s.data.path, r.source_name());
   },
   [](const ModelSpec& s, W t) { put(t, "path", s.data.path); }},
  {"data", "n", "integer", ">= 1", "gaussian/teacher: number of points",
   [](R r, ModelSpec& s) { s.data.n = r.small_integer(s.data.n, 1); },
   [](const ModelSpec& s, W t) { put(t, "n", std::int64_t(s.data.n)); }},
  {"data", "dim", "integer", ">= 1", "gaussian/teacher: input dimension, before the bias feature",
   [](R r, ModelSpec& s) { s.data.dim = r.small_integer(s.data.dim, 1); },
   [](const ModelSpec& s, W t) { put(t, "dim", std::int64_t(s.data.dim)); }},
  {"data", "margin", "float", ">= 0", "gaussian: every point has y_n w_true . x_n >= margin",
   [](R r, ModelSpec& s) { s.data.margin = r.real(s.data.margin, non_negative); },
   [](const ModelSpec& s, W t) { put(t, "margin", s.data.margin); }},
  {"data", "bias", "boolean", "", "append a constant-1 feature (last column) to every point",
   [](R r, ModelSpec& s) { s.data.bias = r.boolean(s.data.bias); },
   [](const ModelSpec& s, W t) { put(t, "bias", s.data.bias); }},
  {"data", "seed", "integer", ">= 0", "gaussian/teacher: random seed",
   [](R r, ModelSpec& s) { s.data.seed = r.seed(s.data.seed); },
   [](const ModelSpec& s, W t) { put(t, "seed", as_toml_integer(s.data.seed)); }},
  {"data", "teacher_hidden", "integer", ">= 1", "teacher: hidden width of the random teacher",
   [](R r, ModelSpec& s) { s.data.teacher_hidden = r.small_integer(s.data.teacher_hidden, 1); },
   [](const ModelSpec& s, W t) { put(t, "teacher_hidden", std::int64_t(s.data.teacher_hidden)); }},
  // Held-out data and label corruption (data_split.hpp): written only when set, so that models
  // without them keep their canonical text (and sweep run ids).
  {"data", "test_fraction", "float", "in (0, 1)", "stratified seeded split: this fraction of each class is held out as the test set",
   [](R r, ModelSpec& s) { s.data.test_fraction = r.real(s.data.test_fraction, [](double x) { return x > 0 && x < 1; }); },
   [](const ModelSpec& s, W t) { if (s.data.test_fraction > 0) put(t, "test_fraction", s.data.test_fraction); }},
  {"data", "test_path", "string", "not with test_fraction", "test set from a second CSV (same format and features), relative to the model file",
   [](R r, ModelSpec& s) {
     s.data.test_path = r.string(s.data.test_path);
     if (r.given() && s.data.test_path.empty()) r.fail("must name a CSV file");
     if (!s.data.test_path.empty() && s.data.test_fraction > 0)
       r.fail("give one of data.test_fraction, data.test_path, data.test_n");
     s.data.test_path = resolve_path(s.data.test_path, r.source_name());
   },
   [](const ModelSpec& s, W t) { if (!s.data.test_path.empty()) put(t, "test_path", s.data.test_path); }},
  {"data", "test_n", "integer", ">= 1; gaussian/teacher", "test points drawn from the same generator after the n training points",
   [](R r, ModelSpec& s) {
     s.data.test_n = r.small_integer(s.data.test_n, 1);
     if (!r.given()) return;
     if (s.data.kind == DataKind::csv)
       r.fail("needs data.kind = \"gaussian\" or \"teacher\" (csv data: data.test_fraction or data.test_path)");
     if (s.data.test_fraction > 0 || !s.data.test_path.empty())
       r.fail("give one of data.test_fraction, data.test_path, data.test_n");
   },
   [](const ModelSpec& s, W t) { if (s.data.test_n > 0) put(t, "test_n", std::int64_t(s.data.test_n)); }},
  {"data", "label_noise", "float", ">= 0 and < 1", "fraction of training labels flipped, chosen by data.seed",
   [](R r, ModelSpec& s) { s.data.label_noise = r.real(s.data.label_noise, [](double x) { return x >= 0 && x < 1; }); },
   [](const ModelSpec& s, W t) { if (s.data.label_noise > 0) put(t, "label_noise", s.data.label_noise); }},
  {"data", "random_labels", "boolean", "not with label_noise > 0", "replace every training label by a fair +-1 draw (memorisation control)",
   [](R r, ModelSpec& s) {
     s.data.random_labels = r.boolean(s.data.random_labels);
     if (s.data.random_labels && s.data.label_noise > 0)
       r.fail("give data.label_noise or data.random_labels, not both");
   },
   [](const ModelSpec& s, W t) { if (s.data.random_labels) put(t, "random_labels", true); }},
  {"data", "standardize", "boolean", "", "standardize features with the training set's mean and std (test set too)",
   [](R r, ModelSpec& s) { s.data.standardize = r.boolean(s.data.standardize); },
   [](const ModelSpec& s, W t) { if (s.data.standardize) put(t, "standardize", true); }},

  {"network", "activation", "string", "", "s in f(W; x)",
   [](R r, ModelSpec& s) { s.network.activation = r.choice(s.network.activation); },
   [](const ModelSpec& s, W t) { put_enum(t, "activation", to_string(s.network.activation)); }},
  {"network", "hidden", "array of integers", "every width >= 1", "hidden widths d_1..d_{K-1}; [] = one-layer linear model",
   [](R r, ModelSpec& s) { s.network.hidden = r.widths(); },
   [](const ModelSpec& s, W t) { put_array(t, "hidden", s.network.hidden); }},
  {"network", "init_scale", "float", ">= 0", "each W_k ~ init_scale N(0, 1)/sqrt(d_{k-1})",
   [](R r, ModelSpec& s) { s.network.init_scale = r.real(s.network.init_scale, non_negative); },
   [](const ModelSpec& s, W t) { put(t, "init_scale", s.network.init_scale); }},
  {"network", "seed", "integer", ">= 0", "random seed of the initialization",
   [](R r, ModelSpec& s) { s.network.seed = r.seed(s.network.seed); },
   [](const ModelSpec& s, W t) { put(t, "seed", as_toml_integer(s.network.seed)); }},
  {"network", "init_file", "string", "", "one number per line, P numbers in the theta layout",
   [](R r, ModelSpec& s) { s.network.init_file = resolve_path(r.string(s.network.init_file), r.source_name()); },
   [](const ModelSpec& s, W t) { put(t, "init_file", s.network.init_file); }},

  {"loss", "kind", "string", "", "l(u)",
   [](R r, ModelSpec& s) { s.loss.kind = r.choice(s.loss.kind); },
   [](const ModelSpec& s, W t) { put_enum(t, "kind", to_string(s.loss.kind)); }},

  {"flow", "kind", "string", "", "the gradient flow",
   [](R r, ModelSpec& s) {
     s.flow.kind = r.choice(s.flow.kind);
     // -grad L / L is unbounded at the finite interpolant where the square loss vanishes.
     if (s.flow.kind == FlowKind{"normalized"} && s.loss.kind == LossKind::square)
       r.fail("\"normalized\" needs loss.kind = \"exp\" or \"logistic\" (the square loss vanishes at a finite "
              "interpolant, where grad L / L is unbounded)", "\"gd\"");
     // Also on a sphere: the square loss vanishes wherever an interpolant lies at the prescribed radius.
     if (s.flow.kind == FlowKind{"rho_schedule_normalized"} && s.loss.kind == LossKind::square)
       r.fail("\"rho_schedule_normalized\" needs loss.kind = \"exp\" or \"logistic\" (the square loss vanishes "
              "at an interpolant on the sphere of radius rho(t), where grad L / L is unbounded)", "\"rho_schedule\"");
   },
   [](const ModelSpec& s, W t) { put_enum(t, "kind", to_string(s.flow.kind)); }},
  {"flow", "rho", "float", "> 0", "fixed_rho only: the fixed product of layer norms",
   [](R r, ModelSpec& s) { s.flow.rho = r.real(s.flow.rho, positive); },
   [](const ModelSpec& s, W t) { put(t, "rho", s.flow.rho); }},
  {"flow", "lambda", "string", "", "nm: the decay schedule lambda(t): power, log or table",
   [](R r, ModelSpec& s) { s.flow.lambda = r.choice(s.flow.lambda); },
   [](const ModelSpec& s, W t) { put_enum(t, "lambda", to_string(s.flow.lambda)); }},
  {"flow", "lambda0", "float", "> 0", "nm, lambda = power or log: lambda(0)",
   [](R r, ModelSpec& s) { s.flow.lambda0 = r.real(s.flow.lambda0, positive); },
   [](const ModelSpec& s, W t) { put(t, "lambda0", s.flow.lambda0); }},
  {"flow", "lambda_power", "float", "> 0 and <= 1", "nm, lambda = power: p in lambda0 (1+t)^-p",
   [](R r, ModelSpec& s) { s.flow.lambda_power = r.real(s.flow.lambda_power, [](double x) { return x > 0 && x <= 1; }); },
   [](const ModelSpec& s, W t) { put(t, "lambda_power", s.flow.lambda_power); }},
  {"flow", "lambda_table", "string", "required when lambda = \"table\"", "nm: CSV t,lambda (t from 0, increasing; linear between rows), relative to the model file",
   [](R r, ModelSpec& s) {
     s.flow.lambda_table = r.string(s.flow.lambda_table);
     if (s.flow.lambda == LambdaKind::table && s.flow.lambda_table.empty())
       r.fail("must name the table file when flow.lambda = \"table\"", "\"\"");
     s.flow.lambda_table = resolve_path(s.flow.lambda_table, r.source_name());
   },
   [](const ModelSpec& s, W t) { put(t, "lambda_table", s.flow.lambda_table); }},
  {"flow", "rho_schedule", "string", "", "rho_schedule: rho(t): logarithmic, power, exponential, staircase or table",
   [](R r, ModelSpec& s) { s.flow.rho_schedule = r.choice(s.flow.rho_schedule); },
   [](const ModelSpec& s, W t) { put_enum(t, "rho_schedule", to_string(s.flow.rho_schedule)); }},
  {"flow", "rho_rate", "float", ">= 0", "rho_schedule logarithmic/power/exponential: the rate",
   [](R r, ModelSpec& s) { s.flow.rho_rate = r.real(s.flow.rho_rate, non_negative); },
   [](const ModelSpec& s, W t) { put(t, "rho_rate", s.flow.rho_rate); }},
  {"flow", "rho_factor", "float", "> 0", "rho_schedule staircase: factor rho is rescaled by after each phase",
   [](R r, ModelSpec& s) { s.flow.rho_factor = r.real(s.flow.rho_factor, positive); },
   [](const ModelSpec& s, W t) { put(t, "rho_factor", s.flow.rho_factor); }},
  {"flow", "rho_phase", "float", "> 0", "rho_schedule staircase: duration of a phase (physical t)",
   [](R r, ModelSpec& s) { s.flow.rho_phase = r.real(s.flow.rho_phase, positive); },
   [](const ModelSpec& s, W t) { put(t, "rho_phase", s.flow.rho_phase); }},
  {"flow", "rho_table", "string", "required when rho_schedule = \"table\"", "rho_schedule: CSV t,rho (t from 0, increasing; log rho linear between rows), relative to the model file",
   [](R r, ModelSpec& s) {
     s.flow.rho_table = r.string(s.flow.rho_table);
     if (s.flow.rho_schedule == RhoScheduleKind::table && s.flow.rho_table.empty())
       r.fail("must name the table file when flow.rho_schedule = \"table\"", "\"\"");
     s.flow.rho_table = resolve_path(s.flow.rho_table, r.source_name());
   },
   [](const ModelSpec& s, W t) { put(t, "rho_table", s.flow.rho_table); }},

  {"solver", "method", "string", "", "integrator",
   [](R r, ModelSpec& s) { s.solver.method = r.choice(s.solver.method); },
   [](const ModelSpec& s, W t) { put_enum(t, "method", to_string(s.solver.method)); }},
  {"solver", "rtol", "float", "> 0 and < 1", "relative tolerance of the adaptive step control",
   [](R r, ModelSpec& s) { s.solver.rtol = r.real(s.solver.rtol, [](double x) { return x > 0 && x < 1; }); },
   [](const ModelSpec& s, W t) { put(t, "rtol", s.solver.rtol); }},
  {"solver", "atol", "float", "> 0", "absolute tolerance",
   [](R r, ModelSpec& s) { s.solver.atol = r.real(s.solver.atol, positive); },
   [](const ModelSpec& s, W t) { put(t, "atol", s.solver.atol); }},
  {"solver", "clock", "string", "", "integration variable",
   [](R r, ModelSpec& s) { s.solver.clock = r.choice(s.solver.clock); },
   [](const ModelSpec& s, W t) { put_enum(t, "clock", to_string(s.solver.clock)); }},
  {"solver", "max_steps", "integer", ">= 1", "give up after this many step attempts",
   [](R r, ModelSpec& s) { s.solver.max_steps = r.integer(s.solver.max_steps, 1, kInt64Max); },
   [](const ModelSpec& s, W t) { put(t, "max_steps", s.solver.max_steps); }},
  {"solver", "max_wall_seconds", "float", ">= 0", "give up after this much wall-clock time; 0 = no limit",
   [](R r, ModelSpec& s) { s.solver.max_wall_seconds = r.real(s.solver.max_wall_seconds, non_negative); },
   [](const ModelSpec& s, W t) { put(t, "max_wall_seconds", s.solver.max_wall_seconds); }},
  {"solver", "threads", "integer", "1..256", "threads for Eigen's large matrix products",
   [](R r, ModelSpec& s) { s.solver.threads = r.small_integer(s.solver.threads, 1, 256); },
   [](const ModelSpec& s, W t) { put(t, "threads", std::int64_t(s.solver.threads)); }},
  {"solver", "max_memory", "integer", ">= 0", "bytes the run may use (memory_estimate.hpp); 0 = MemAvailable",
   [](R r, ModelSpec& s) { s.solver.max_memory = r.integer(s.solver.max_memory, 0, kInt64Max); },
   [](const ModelSpec& s, W t) { put(t, "max_memory", s.solver.max_memory); }},
  {"solver", "screening", "boolean", "", "drop data points certified negligible (equations.md section 9)",
   [](R r, ModelSpec& s) { s.solver.screening = r.boolean(s.solver.screening); },
   [](const ModelSpec& s, W t) { put(t, "screening", s.solver.screening); }},

  {"time", "t_end", "float", "> 0", "final time (physical t)",
   [](R r, ModelSpec& s) { s.time.t_end = r.real(s.time.t_end, positive); },
   [](const ModelSpec& s, W t) { put(t, "t_end", s.time.t_end); }},
  {"time", "t_first", "float", "> 0", "first sample after t = 0; <= t_end",
   [](R r, ModelSpec& s) {
     s.time.t_first = r.real(s.time.t_first, positive);
     if (s.time.t_first > s.time.t_end)
       r.fail(fmt::format("must be <= time.t_end = {}", toml_float(s.time.t_end)), toml_float(s.time.t_first));
   },
   [](const ModelSpec& s, W t) { put(t, "t_first", s.time.t_first); }},
  {"time", "samples_per_decade", "integer", "1 to 1000", "log-spaced samples per factor 10 of t",
   [](R r, ModelSpec& s) { s.time.samples_per_decade = r.small_integer(s.time.samples_per_decade, 1, 1000); },
   [](const ModelSpec& s, W t) { put(t, "samples_per_decade", std::int64_t(s.time.samples_per_decade)); }},

  {"dynamics", "kinks", "string", "", "ReLU kinks: events, ignore or smooth",
   [](R r, ModelSpec& s) {
     s.dynamics.kinks = r.choice(s.dynamics.kinks);
     // The smoothed ReLU is not positively homogeneous: the polar, weight-normalized and fixed-rho
     // flows are derived from f(rho V) = rho^K f(V) and would integrate the wrong equations.
     if (s.dynamics.kinks == KinkMode::smooth && s.network.activation == Activation::relu &&
         !s.network.hidden.empty() && !integrates_smoothed_relu(s.flow.kind))
       r.fail(fmt::format("\"smooth\" needs flow.kind = \"gd\", \"nm\" or \"normalized\" (flow.kind = \"{}\" "
                          "assumes a positively homogeneous network; the smoothed ReLU is not)",
                          to_string(s.flow.kind)),
              "\"smooth\"");
   },
   [](const ModelSpec& s, W t) { put_enum(t, "kinks", to_string(s.dynamics.kinks)); }},
  {"dynamics", "kink_width", "float", "> 0", "kinks = \"smooth\": the width eps, in pre-activation units",
   [](R r, ModelSpec& s) { s.dynamics.kink_width = r.real(s.dynamics.kink_width, positive); },
   [](const ModelSpec& s, W t) { put(t, "kink_width", s.dynamics.kink_width); }},

  {"output", "path", "string", "not empty", "HDF5 result file, relative to the working directory",
   [](R r, ModelSpec& s) {
     s.output.path = r.string(s.output.path);
     if (s.output.path.empty()) r.fail("must name the HDF5 output file");
   },
   [](const ModelSpec& s, W t) { put(t, "path", s.output.path); }},
  {"output", "flush_interval", "float", "> 0", "seconds of wall clock between flushes of the HDF5 file",
   [](R r, ModelSpec& s) { s.output.flush_interval = r.real(s.output.flush_interval, positive); },
   [](const ModelSpec& s, W t) { put(t, "flush_interval", s.output.flush_interval); }},
  {"output", "swmr", "boolean", "", "SWMR writing: crash-consistent, readable while running",
   [](R r, ModelSpec& s) { s.output.swmr = r.boolean(s.output.swmr); },
   [](const ModelSpec& s, W t) { put(t, "swmr", s.output.swmr); }},

  // [spectrum] is optional: written only when enabled, with times or samples_per_decade.
  {"spectrum", "times", "array of floats", "in (0, t_end], increasing", "sample times of the Hessian spectrum",
   [](R r, ModelSpec& s) {
     s.spectrum.times = r.reals(kSpectrumTimesRule);
     for (std::size_t i = 0; i < s.spectrum.times.size(); ++i)
       if (!(s.spectrum.times[i] > 0) || s.spectrum.times[i] > s.time.t_end ||
           (i > 0 && !(s.spectrum.times[i] > s.spectrum.times[i - 1])))
         r.fail(kSpectrumTimesRule);
   },
   [](const ModelSpec& s, W t) { if (s.spectrum.enabled() && s.spectrum.samples_per_decade == 0) put_array(t, "times", s.spectrum.times); }},
  {"spectrum", "samples_per_decade", "integer", "1 to 1000", "log-spaced spectrum samples from t_first to t_end",
   [](R r, ModelSpec& s) {
     s.spectrum.samples_per_decade = r.small_integer(0, 1, 1000);
     if (s.spectrum.samples_per_decade > 0 && !s.spectrum.times.empty())
       r.fail("give spectrum.times or spectrum.samples_per_decade, not both");
   },
   [](const ModelSpec& s, W t) { if (s.spectrum.samples_per_decade > 0) put(t, "samples_per_decade", std::int64_t(s.spectrum.samples_per_decade)); }},
  {"spectrum", "k", "integer", "1 to 1000", "eigenvalues at each end",
   [](R r, ModelSpec& s) {
     s.spectrum.k = r.small_integer(s.spectrum.k, 1, 1000);
     if (r.given() && !s.spectrum.enabled()) r.fail("needs spectrum.times or spectrum.samples_per_decade");
   },
   [](const ModelSpec& s, W t) { if (s.spectrum.enabled()) put(t, "k", std::int64_t(s.spectrum.k)); }},

  // [generalization] is optional: written only when set.
  {"generalization", "rho", "float", "> 0", "also record the loss of the normalized network scaled to this rho",
   [](R r, ModelSpec& s) { s.generalization.rho = r.real(s.generalization.rho, positive); },
   [](const ModelSpec& s, W t) { if (s.generalization.rho > 0) put(t, "rho", s.generalization.rho); }},
  };
  return table;
}
// clang-format on

}  // namespace

/// Canonical TOML of every key: sections and keys in schema order, each value rendered by toml++'s
/// formatter (basic strings with escapes, shortest round-trip floats, "1000.0" for whole floats).
bool integrates_smoothed_relu(FlowKind kind) {
  return kind == FlowKind::gd || kind == FlowKind{"nm"} || kind == FlowKind{"normalized"};
}

std::string canonical_toml(const ModelSpec& spec) {
  std::string out = "# gfsim model: every key resolved (defaults filled in, --set overrides applied)\n";
  for (std::string_view section : sections()) {
    toml::table values;
    for (const KeyDef& def : schema())
      if (def.section == section) def.write(spec, values);
    if (values.empty()) continue;
    out += fmt::format("\n[{}]\n", section);
    for (std::string_view key : keys_of(section)) {
      const toml::node* value = values.get(key);
      if (!value) continue;
      std::ostringstream text;
      text << toml::toml_formatter(*value, toml::format_flags::none);
      out += fmt::format("{} = {}\n", key, text.str());
    }
  }
  return out;
}

std::vector<std::string> model_keys() {
  std::vector<std::string> keys;
  for (const KeyDef& def : schema()) keys.push_back(fmt::format("{}.{}", def.section, def.key));
  return keys;
}

ModelSpec parse_model_spec(const std::string& toml_text, const std::string& source_name,
                           const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse(toml_text, std::string_view{source_name});
  } catch (const toml::parse_error& error) {
    throw SpecError(fmt::format("{}: {}", location(source_name, error.source()),
                                one_line(error.description())));
  }
  check_known_keys(root, source_name);
  std::vector<Override> parsed_overrides;
  for (const std::string& assignment : overrides) parsed_overrides.push_back(parse_override(assignment));
  const SpecReader read(root, source_name, std::move(parsed_overrides));

  ModelSpec spec;
  spec.source_path = source_name;
  for (const KeyDef& def : schema()) def.read(KeyReader(read, def, source_name), spec);
  spec.resolved_toml = canonical_toml(spec);
  return spec;
}

ModelSpec load_model_spec(const std::string& path, const std::vector<std::string>& overrides) {
  if (fs::is_directory(path))
    throw SpecError(fmt::format("{}: cannot read model file: it is a directory", path));
  std::ifstream file(path, std::ios::binary);
  if (!file)
    throw SpecError(fmt::format("{}: cannot read model file: {}", path, std::strerror(errno)));
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad())
    throw SpecError(fmt::format("{}: cannot read model file: {}", path, std::strerror(errno)));
  return parse_model_spec(text.str(), path, overrides);
}

}  // namespace gfsim
