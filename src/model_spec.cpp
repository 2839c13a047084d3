// Model files: TOML text -> validated ModelSpec -> canonical TOML (resolved_toml).
// Every key is read through SpecReader, which checks its type and range where it is read, so each
// error names where the value came from (file:line:column or --set), the key, the value and the rule.
#include "gfsim/model_spec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string_view>
#include <toml++/toml.h>

namespace gfsim {

const char* to_string(DataKind kind) {
  switch (kind) {
    case DataKind::gaussian: return "gaussian";
    case DataKind::teacher: return "teacher";
    case DataKind::csv: return "csv";
  }
  return "?";
}

const char* to_string(Activation activation) {
  switch (activation) {
    case Activation::relu: return "relu";
    case Activation::linear: return "linear";
  }
  return "?";
}

const char* to_string(LossKind kind) {
  switch (kind) {
    case LossKind::exp: return "exp";
    case LossKind::logistic: return "logistic";
    case LossKind::square: return "square";
  }
  return "?";
}

const char* to_string(FlowKind kind) {
  switch (kind) {
    case FlowKind::gd: return "gd";
    case FlowKind::gd_polar: return "gd_polar";
    case FlowKind::wn: return "wn";
    case FlowKind::fixed_rho: return "fixed_rho";
  }
  return "?";
}

const char* to_string(Method method) {
  switch (method) {
    case Method::auto_select: return "auto";
    case Method::dopri5: return "dopri5";
    case Method::rkf78: return "rkf78";
    case Method::cash_karp: return "cash_karp";
    case Method::rosenbrock4: return "rosenbrock4";
    case Method::cvode: return "cvode";
  }
  return "?";
}

const char* to_string(ClockKind clock) {
  switch (clock) {
    case ClockKind::auto_select: return "auto";
    case ClockKind::t: return "t";
    case ClockKind::log: return "log";
  }
  return "?";
}

const char* to_string(KinkMode mode) {
  switch (mode) {
    case KinkMode::events: return "events";
    case KinkMode::ignore: return "ignore";
    case KinkMode::smooth: return "smooth";
  }
  return "?";
}

namespace {

namespace fs = std::filesystem;

// Enum values in the order the "must be one of" messages and the README list them.
constexpr std::array kDataKinds{DataKind::gaussian, DataKind::teacher, DataKind::csv};
constexpr std::array kActivations{Activation::relu, Activation::linear};
constexpr std::array kLossKinds{LossKind::exp, LossKind::logistic, LossKind::square};
constexpr std::array kFlowKinds{FlowKind::gd, FlowKind::gd_polar, FlowKind::wn, FlowKind::fixed_rho};
constexpr std::array kMethods{Method::auto_select, Method::dopri5,      Method::rkf78,
                              Method::cash_karp,   Method::rosenbrock4, Method::cvode};
constexpr std::array kClocks{ClockKind::auto_select, ClockKind::log, ClockKind::t};
constexpr std::array kKinkModes{KinkMode::events, KinkMode::ignore, KinkMode::smooth};

struct SectionKeys {
  std::string_view section;
  std::vector<std::string_view> keys;
};

// Every section and key a model file may hold, in the order of resolved_toml and models/README.md.
const std::vector<SectionKeys>& schema() {
  static const std::vector<SectionKeys> sections = {
      {"model", {"name", "description"}},
      {"data", {"kind", "path", "n", "dim", "margin", "bias", "seed", "teacher_hidden"}},
      {"network", {"activation", "hidden", "init_scale", "seed", "init_file"}},
      {"loss", {"kind"}},
      {"flow", {"kind", "rho"}},
      {"solver", {"method", "rtol", "atol", "clock", "max_steps", "max_wall_seconds", "threads"}},
      {"time", {"t_end", "t_first", "samples_per_decade"}},
      {"dynamics", {"kinks", "kink_width"}},
      {"output", {"path", "flush_interval", "swmr"}},
      {"spectrum", {"times", "samples_per_decade", "k"}},
  };
  return sections;
}

const SectionKeys* find_section(std::string_view name) {
  for (const SectionKeys& section : schema())
    if (section.section == name) return &section;
  return nullptr;
}

std::string known_sections() {
  std::string names;
  for (const SectionKeys& section : schema())
    names += fmt::format("{}{}", names.empty() ? "" : ", ", section.section);
  return names;
}

/// Throws unless `key` belongs to `section` (both known); `where` prefixes the message.
void require_known_key(const SectionKeys& section, std::string_view key, const std::string& where) {
  for (std::string_view known : section.keys)
    if (known == key) return;
  throw SpecError(fmt::format("{}: unknown key {}.{} (known keys of [{}]: {})", where,
                              section.section, key, section.section,
                              fmt::join(section.keys, ", ")));
}

/// TOML basic string with the escapes TOML requires, so any text survives a round trip.
std::string toml_string(std::string_view text) {
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

/// Shortest text that reads back to the same double, always TOML-typed as a float ("1000.0").
std::string toml_float(double value) {
  std::string text = fmt::format("{}", value);
  if (std::isfinite(value) && text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

/// Messages are one line: newlines of embedded text become spaces.
std::string one_line(std::string_view text) {
  std::string out(text);
  std::replace(out.begin(), out.end(), '\n', ' ');
  return out;
}

/// A value as the user would write it, on one line, for messages.
std::string toml_text(const toml::node& node) {
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

std::string location(const std::string& source_name, const toml::source_region& region) {
  if (region.begin.line == 0) return source_name;
  return fmt::format("{}:{}:{}", source_name, region.begin.line, region.begin.column);
}

template <typename Enum, std::size_t N>
std::string enum_choices(const std::array<Enum, N>& values) {
  std::string choices;
  for (Enum value : values)
    choices += fmt::format("{}\"{}\"", choices.empty() ? "" : ", ", to_string(value));
  return "must be one of " + choices;
}

/// "section.key=value" from the command line. The value is TOML ("1e-10", "[16, 16]", "true",
/// "\"relu\""); text that is not a TOML value is taken as a bare string, so "flow.kind=wn" works.
struct Override {
  std::string section;
  std::string key;
  toml::table holder;  ///< holder["v"] is the value
};

Override parse_override(const std::string& assignment) {
  const std::size_t equals = assignment.find('=');
  const std::size_t dot = assignment.find('.');
  if (equals == std::string::npos || dot == std::string::npos || dot > equals || dot == 0 ||
      dot + 1 == equals || assignment.find('.', dot + 1) < equals)
    throw SpecError(fmt::format("--set {}: expected section.key=value, e.g. solver.rtol=1e-10",
                                toml_string(assignment)));
  Override result{assignment.substr(0, dot), assignment.substr(dot + 1, equals - dot - 1), {}};
  const SectionKeys* section = find_section(result.section);
  if (!section)
    throw SpecError(fmt::format("--set: unknown section [{}] (known sections: {})", result.section,
                                known_sections()));
  require_known_key(*section, result.key, "--set");

  const std::string value = assignment.substr(equals + 1);
  try {
    toml::table parsed = toml::parse("v = " + value, std::string_view{"--set"});
    if (parsed.size() == 1 && parsed.contains("v")) result.holder = std::move(parsed);
  } catch (const toml::parse_error&) {
    // not a TOML value: a bare string, handled below
  }
  if (result.holder.empty()) result.holder.insert("v", value);
  return result;
}

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

  template <typename Enum, std::size_t N>
  Enum choice(std::string_view section, std::string_view key, Enum fallback,
              const std::array<Enum, N>& values) const {
    const toml::node* node = find(section, key).node;
    if (!node) return fallback;
    if (const auto* name = node->as_string())
      for (Enum value : values)
        if (name->get() == to_string(value)) return value;
    fail(section, key, enum_choices(values));
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

/// Rejects sections and keys the schema does not know, so typos never pass silently.
void check_known_keys(const toml::table& root, const std::string& source_name) {
  for (const auto& [name, node] : root) {
    const std::string where = location(source_name, name.source());
    const SectionKeys* section = find_section(name.str());
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
      require_known_key(*section, key.str(), location(source_name, key.source()));
  }
}

/// Relative paths in a model file mean "next to the model file"; stored absolute so that the spec
/// (and resolved_toml, re-parsed from anywhere) names the same file.
std::string resolve_path(const std::string& path, const std::string& source_name) {
  if (path.empty()) return path;
  fs::path resolved(path);
  if (resolved.is_relative()) resolved = fs::path(source_name).parent_path() / resolved;
  return fs::absolute(resolved).lexically_normal().string();
}

}  // namespace

std::string canonical_toml(const ModelSpec& spec) {
  std::string out = "# gfsim model: every key resolved (defaults filled in, --set overrides applied)\n";
  const auto section = [&out](std::string_view name) { out += fmt::format("\n[{}]\n", name); };
  const auto line = [&out](std::string_view key, const std::string& value) {
    out += fmt::format("{} = {}\n", key, value);
  };
  const auto quoted = [](const char* name) { return toml_string(name); };
  const auto boolean = [](bool value) { return std::string(value ? "true" : "false"); };

  section("model");
  line("name", toml_string(spec.name));
  line("description", toml_string(spec.description));
  section("data");
  line("kind", quoted(to_string(spec.data.kind)));
  line("path", toml_string(spec.data.path));
  line("n", fmt::format("{}", spec.data.n));
  line("dim", fmt::format("{}", spec.data.dim));
  line("margin", toml_float(spec.data.margin));
  line("bias", boolean(spec.data.bias));
  line("seed", fmt::format("{}", spec.data.seed));
  line("teacher_hidden", fmt::format("{}", spec.data.teacher_hidden));
  section("network");
  line("activation", quoted(to_string(spec.network.activation)));
  line("hidden", fmt::format("[{}]", fmt::join(spec.network.hidden, ", ")));
  line("init_scale", toml_float(spec.network.init_scale));
  line("seed", fmt::format("{}", spec.network.seed));
  line("init_file", toml_string(spec.network.init_file));
  section("loss");
  line("kind", quoted(to_string(spec.loss.kind)));
  section("flow");
  line("kind", quoted(to_string(spec.flow.kind)));
  line("rho", toml_float(spec.flow.rho));
  section("solver");
  line("method", quoted(to_string(spec.solver.method)));
  line("rtol", toml_float(spec.solver.rtol));
  line("atol", toml_float(spec.solver.atol));
  line("clock", quoted(to_string(spec.solver.clock)));
  line("max_steps", fmt::format("{}", spec.solver.max_steps));
  line("max_wall_seconds", toml_float(spec.solver.max_wall_seconds));
  line("threads", fmt::format("{}", spec.solver.threads));
  section("time");
  line("t_end", toml_float(spec.time.t_end));
  line("t_first", toml_float(spec.time.t_first));
  line("samples_per_decade", fmt::format("{}", spec.time.samples_per_decade));
  section("dynamics");
  line("kinks", quoted(to_string(spec.dynamics.kinks)));
  line("kink_width", toml_float(spec.dynamics.kink_width));
  section("output");
  line("path", toml_string(spec.output.path));
  line("flush_interval", toml_float(spec.output.flush_interval));
  line("swmr", boolean(spec.output.swmr));
  if (spec.spectrum.enabled()) {
    section("spectrum");
    if (spec.spectrum.samples_per_decade > 0) {
      line("samples_per_decade", fmt::format("{}", spec.spectrum.samples_per_decade));
    } else {
      std::vector<std::string> t;
      for (double v : spec.spectrum.times) t.push_back(toml_float(v));
      line("times", fmt::format("[{}]", fmt::join(t, ", ")));
    }
    line("k", fmt::format("{}", spec.spectrum.k));
  }
  return out;
}

namespace {

}  // namespace

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

  const auto positive = [](double x) { return x > 0; };
  const auto non_negative = [](double x) { return x >= 0; };
  constexpr std::string_view kPositive = "must be > 0";
  constexpr std::string_view kNonNegative = "must be >= 0";

  ModelSpec spec;
  spec.source_path = source_name;
  spec.name = read.string("model", "name", fs::path(source_name).stem().string());
  spec.description = read.string("model", "description", "");

  DataSpec& data = spec.data;
  data.kind = read.choice("data", "kind", data.kind, kDataKinds);
  data.path = read.string("data", "path", data.path);
  data.n = read.small_integer("data", "n", data.n, 1);
  data.dim = read.small_integer("data", "dim", data.dim, 1);
  data.margin = read.real("data", "margin", data.margin, non_negative, kNonNegative);
  data.bias = read.boolean("data", "bias", data.bias);
  data.seed = read.seed("data", "seed", data.seed);
  data.teacher_hidden = read.small_integer("data", "teacher_hidden", data.teacher_hidden, 1);
  if (data.kind == DataKind::csv && data.path.empty())
    read.fail("data", "path", "must name the CSV file when data.kind = \"csv\"", "\"\"");
  data.path = resolve_path(data.path, source_name);

  NetworkSpec& network = spec.network;
  network.activation = read.choice("network", "activation", network.activation, kActivations);
  network.hidden = read.widths("network", "hidden");
  network.init_scale =
      read.real("network", "init_scale", network.init_scale, non_negative, kNonNegative);
  network.seed = read.seed("network", "seed", network.seed);
  network.init_file = resolve_path(read.string("network", "init_file", network.init_file), source_name);

  spec.loss.kind = read.choice("loss", "kind", spec.loss.kind, kLossKinds);
  spec.flow.kind = read.choice("flow", "kind", spec.flow.kind, kFlowKinds);
  spec.flow.rho = read.real("flow", "rho", spec.flow.rho, positive, kPositive);

  SolverSpec& solver = spec.solver;
  solver.method = read.choice("solver", "method", solver.method, kMethods);
  solver.rtol = read.real("solver", "rtol", solver.rtol, [](double x) { return x > 0 && x < 1; },
                          "must be > 0 and < 1");
  solver.atol = read.real("solver", "atol", solver.atol, positive, kPositive);
  solver.clock = read.choice("solver", "clock", solver.clock, kClocks);
  solver.max_steps = read.integer("solver", "max_steps", solver.max_steps, 1,
                                  std::numeric_limits<std::int64_t>::max());
  solver.max_wall_seconds =
      read.real("solver", "max_wall_seconds", solver.max_wall_seconds, non_negative, kNonNegative);
  solver.threads = read.small_integer("solver", "threads", solver.threads, 1, 256);

  TimeSpec& time = spec.time;
  time.t_end = read.real("time", "t_end", time.t_end, positive, kPositive);
  time.t_first = read.real("time", "t_first", time.t_first, positive, kPositive);
  if (time.t_first > time.t_end)
    read.fail("time", "t_first", fmt::format("must be <= time.t_end = {}", toml_float(time.t_end)),
              toml_float(time.t_first));
  time.samples_per_decade = read.small_integer("time", "samples_per_decade", time.samples_per_decade, 1, 1000);

  spec.dynamics.kinks = read.choice("dynamics", "kinks", spec.dynamics.kinks, kKinkModes);
  spec.dynamics.kink_width = read.real("dynamics", "kink_width", spec.dynamics.kink_width,
                                       positive, kPositive);
  // The smoothed ReLU is not positively homogeneous: the polar, weight-normalized and fixed-rho
  // flows are derived from f(rho V) = rho^K f(V) and would integrate the wrong equations.
  if (spec.dynamics.kinks == KinkMode::smooth && spec.network.activation == Activation::relu &&
      !spec.network.hidden.empty() && spec.flow.kind != FlowKind::gd)
    read.fail("dynamics", "kinks",
              fmt::format("\"smooth\" needs flow.kind = \"gd\" (flow.kind = \"{}\" assumes a positively homogeneous "
                          "network; the smoothed ReLU is not)", to_string(spec.flow.kind)),
              "\"smooth\"");

  OutputSpec& output = spec.output;
  output.path = read.string("output", "path", output.path);
  if (output.path.empty()) read.fail("output", "path", "must name the HDF5 output file");
  output.flush_interval =
      read.real("output", "flush_interval", output.flush_interval, positive, kPositive);
  output.swmr = read.boolean("output", "swmr", output.swmr);

  SpectrumSpec& spectrum = spec.spectrum;
  const std::string times_rule = "must be a non-empty array of times in (0, time.t_end], strictly increasing";
  spectrum.times = read.reals("spectrum", "times", times_rule);
  for (std::size_t i = 0; i < spectrum.times.size(); ++i)
    if (!(spectrum.times[i] > 0) || spectrum.times[i] > spec.time.t_end ||
        (i > 0 && !(spectrum.times[i] > spectrum.times[i - 1])))
      read.fail("spectrum", "times", times_rule);
  spectrum.samples_per_decade = read.small_integer("spectrum", "samples_per_decade", 0, 1, 1000);
  if (spectrum.samples_per_decade > 0 && !spectrum.times.empty())
    read.fail("spectrum", "samples_per_decade", "give spectrum.times or spectrum.samples_per_decade, not both");
  spectrum.k = read.small_integer("spectrum", "k", spectrum.k, 1, 1000);
  if (read.given("spectrum", "k") && !spectrum.enabled())
    read.fail("spectrum", "k", "needs spectrum.times or spectrum.samples_per_decade");

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
