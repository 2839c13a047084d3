// Sweep files -> runs (sweep_plan.hpp, docs/sweeps.md). Every run's model is resolved here, in
// the sweep process, so a bad value is reported before any run starts and the ids are known.
#include "gfsim/sweep_plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <toml++/toml.h>

namespace gfsim {

namespace {

namespace fs = std::filesystem;

/// One varied key with its list of TOML value texts.
struct VariedList {
  std::string key;
  std::vector<std::string> values;
};

/// TOML text of a value for `--set` and the index. Floats in the shortest form that reads back
/// to the same double (toml++ prints 17 digits: 0.1 -> 0.10000000000000001), kept floats.
std::string value_text(const toml::node& node) {
  if (const auto* real = node.as_floating_point()) {
    const double v = real->get();
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    std::string text = fmt::format("{}", v);
    if (text.find_first_of(".e") == std::string::npos) text += ".0";
    return text;
  }
  if (const auto* array = node.as_array()) {  // "[16, 8]" rather than toml++'s "[ 16, 8 ]"
    std::string text = "[";
    for (std::size_t i = 0; i < array->size(); ++i) text += (i ? ", " : "") + value_text(*array->get(i));
    return text + "]";
  }
  std::ostringstream text;
  text << toml::toml_formatter(node, toml::format_flags::none);
  return text.str();
}

class SweepReader {
 public:
  explicit SweepReader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(std::string_view key, const std::string& rule) const {
    throw SpecError(fmt::format("{}: {}: {}", path_, key, rule));
  }

  /// "section.key" of a model key; refuses keys the schema does not know and output.path
  /// (the sweep decides where each run is written).
  void check_model_key(const std::string& key, std::string_view block) const {
    const auto keys = model_keys();
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      fail(fmt::format("{}.\"{}\"", block, key), "not a model key (models/README.md lists them)");
    if (key == "output.path")
      fail(fmt::format("{}.\"{}\"", block, key), "cannot be set: the sweep names each run's file DIR/<id>.h5");
  }

  /// The entries of a table as ("section.key", node): quoted dotted keys or one nested level.
  std::vector<std::pair<std::string, const toml::node*>> entries(const toml::table& table,
                                                                 std::string_view block) const {
    std::vector<std::pair<std::string, const toml::node*>> out;
    for (const auto& [name, node] : table) {
      if (const auto* section = node.as_table()) {
        for (const auto& [key, value] : *section)
          out.emplace_back(fmt::format("{}.{}", name.str(), key.str()), &value);
      } else {
        out.emplace_back(std::string(name.str()), &node);
      }
    }
    // toml++ iterates tables by key; the sweep file's order is the order of the index columns
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      const auto& pa = a.second->source().begin;
      const auto& pb = b.second->source().begin;
      return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
    });
    for (const auto& [key, node] : out) check_model_key(key, block);
    return out;
  }

  std::vector<VariedList> lists(const toml::table& table, std::string_view block) const {
    std::vector<VariedList> out;
    for (const auto& [key, node] : entries(table, block)) {
      const auto* array = node->as_array();
      if (!array) fail(fmt::format("{}.\"{}\"", block, key), "expected a list of values");
      if (array->empty()) fail(fmt::format("{}.\"{}\"", block, key), "empty list: a sweep needs at least one value");
      VariedList list{key, {}};
      for (const toml::node& value : *array) list.values.push_back(value_text(value));
      out.push_back(std::move(list));
    }
    return out;
  }

 private:
  std::string path_;
};

/// Cartesian product of blocks: each block is a list of assignments (one per combination row).
using Assignment = std::vector<std::pair<std::string, std::string>>;

std::vector<Assignment> multiply(const std::vector<Assignment>& left, const std::vector<Assignment>& right) {
  std::vector<Assignment> out;
  for (const Assignment& a : left)
    for (const Assignment& b : right) {
      Assignment row = a;
      row.insert(row.end(), b.begin(), b.end());
      out.push_back(std::move(row));
    }
  return out;
}

std::string file_hash_text(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return "unreadable:" + path;  // load_model_spec/make_dataset report it properly
  std::ostringstream text;
  text << file.rdbuf();
  return fmt::format("fnv1a64:{:016x}", fnv1a64(text.str()));
}

}  // namespace

std::uint64_t fnv1a64(std::string_view text) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

std::string run_identity_text(const ModelSpec& spec) {
  ModelSpec identity = spec;
  identity.output = OutputSpec{};
  identity.solver.threads = 1;  // kernel threads change the speed, not the trajectory
  if (!identity.data.path.empty()) identity.data.path = file_hash_text(identity.data.path);
  if (!identity.data.test_path.empty()) identity.data.test_path = file_hash_text(identity.data.test_path);
  if (!identity.network.init_file.empty()) identity.network.init_file = file_hash_text(identity.network.init_file);
  return canonical_toml(identity);
}

std::string run_id(const ModelSpec& spec) { return fmt::format("{:016x}", fnv1a64(run_identity_text(spec))); }

SweepPlan read_sweep_plan(const std::string& sweep_path, const std::vector<std::string>& extra_sets,
                          std::uint64_t max_runs) {
  const SweepReader reader(sweep_path);
  toml::table root;
  try {
    root = toml::parse_file(sweep_path);
  } catch (const toml::parse_error& error) {
    const auto& where = error.source().begin;
    throw SpecError(fmt::format("{}:{}:{}: {}", sweep_path, where.line, where.column, error.description()));
  }
  static const std::set<std::string> known = {"base", "seeds", "seed_key", "set", "grid", "zip", "runs"};
  for (const auto& [name, node] : root)
    if (!known.count(std::string(name.str())))
      reader.fail(name.str(), "unknown sweep key (known: base, seeds, seed_key, set, grid, zip, runs)");

  SweepPlan plan;
  plan.sweep_path = sweep_path;
  const auto* base = root.get_as<std::string>("base");
  if (!base) reader.fail("base", "required: the base model file (a string, relative to the sweep file)");
  fs::path base_path(base->get());
  if (base_path.is_relative()) base_path = fs::path(sweep_path).parent_path() / base_path;
  plan.base_path = base_path.lexically_normal().string();
  if (!fs::is_regular_file(plan.base_path))
    reader.fail("base", fmt::format("\"{}\": no such model file ({})", base->get(), plan.base_path));

  std::vector<std::string> fixed = extra_sets;
  if (const toml::node* set = root.get("set")) {
    if (!set->as_table()) reader.fail("set", "expected a table of model keys");
    for (const auto& [key, node] : reader.entries(*set->as_table(), "set"))
      fixed.push_back(fmt::format("{}={}", key, value_text(*node)));
  }

  std::vector<std::vector<Assignment>> blocks;
  std::set<std::string> varied_once;
  auto add_key = [&](const std::string& key, std::string_view block) {
    if (!varied_once.insert(key).second)
      reader.fail(fmt::format("{}.\"{}\"", block, key), "the key varies in two places");
    plan.varied_keys.push_back(key);
  };
  if (const toml::node* grid = root.get("grid")) {
    if (!grid->as_table()) reader.fail("grid", "expected a table of lists");
    for (VariedList& list : reader.lists(*grid->as_table(), "grid")) {
      add_key(list.key, "grid");
      std::vector<Assignment> block;
      for (const std::string& value : list.values) block.push_back({{list.key, value}});
      blocks.push_back(std::move(block));
    }
  }
  if (const toml::node* zip = root.get("zip")) {
    if (!zip->as_table()) reader.fail("zip", "expected a table of lists of equal length");
    const auto lists = reader.lists(*zip->as_table(), "zip");
    std::vector<Assignment> block;
    for (const VariedList& list : lists) {
      add_key(list.key, "zip");
      if (list.values.size() != lists.front().values.size())
        reader.fail(fmt::format("zip.\"{}\"", list.key),
                    fmt::format("{} values, but zip.\"{}\" has {}: zipped lists need equal lengths",
                                list.values.size(), lists.front().key, lists.front().values.size()));
    }
    if (!lists.empty()) {
      for (std::size_t i = 0; i < lists.front().values.size(); ++i) {
        Assignment row;
        for (const VariedList& list : lists) row.emplace_back(list.key, list.values[i]);
        block.push_back(std::move(row));
      }
      blocks.push_back(std::move(block));
    }
  }
  if (const toml::node* seeds = root.get("seeds")) {
    std::string seed_key = "network.seed";
    if (const toml::node* key = root.get("seed_key")) {
      if (!key->as_string()) reader.fail("seed_key", "expected a model key string, e.g. \"data.seed\"");
      seed_key = key->as_string()->get();
    }
    reader.check_model_key(seed_key, "seed_key");
    add_key(seed_key, "seeds");
    std::vector<Assignment> block;
    if (const auto* count = seeds->as_integer()) {
      if (count->get() < 1 || std::uint64_t(count->get()) > max_runs)
        reader.fail("seeds", fmt::format("{}: expected a count from 1 to {} or a list", count->get(), max_runs));
      for (std::int64_t s = 1; s <= count->get(); ++s) block.push_back({{seed_key, std::to_string(s)}});
    } else if (const auto* list = seeds->as_array()) {
      if (list->empty()) reader.fail("seeds", "empty list: a sweep needs at least one seed");
      for (const toml::node& s : *list) {
        if (!s.as_integer()) reader.fail("seeds", fmt::format("{}: seeds are integers", value_text(s)));
        block.push_back({{seed_key, value_text(s)}});
      }
    } else {
      reader.fail("seeds", "expected a count (seeds = 100: seeds 1..100) or a list of integers");
    }
    blocks.push_back(std::move(block));
  } else if (root.get("seed_key")) {
    reader.fail("seed_key", "given without seeds");
  }
  if (const toml::node* runs = root.get("runs")) {
    const auto* array = runs->as_array();
    if (!array || !array->is_array_of_tables()) reader.fail("runs", "expected an array of tables ([[runs]])");
    if (array->empty()) reader.fail("runs", "empty list of runs");
    std::vector<std::string> keys;
    std::vector<Assignment> block;
    for (std::size_t i = 0; i < array->size(); ++i) {
      const auto entries = reader.entries(*array->get(i)->as_table(), fmt::format("runs[{}]", i));
      if (entries.empty()) reader.fail(fmt::format("runs[{}]", i), "a run sets no key");
      std::vector<std::string> these;
      Assignment row;
      for (const auto& [key, node] : entries) {
        these.push_back(key);
        row.emplace_back(key, value_text(*node));
      }
      if (i == 0) {
        keys = these;
        for (const std::string& key : keys) add_key(key, "runs[0]");
      } else if (these != keys) {
        reader.fail(fmt::format("runs[{}]", i), "every [[runs]] entry must set the same keys as runs[0]");
      }
      block.push_back(std::move(row));
    }
    blocks.push_back(std::move(block));
  }
  if (blocks.empty()) reader.fail("grid", "the sweep varies nothing: give [grid], [zip], seeds or [[runs]]");

  // The size of the product, before it is formed: a sweep far beyond what one plan holds is refused
  // here, not by running out of memory while expanding it.
  std::uint64_t total = 1;
  std::string factors;
  for (const auto& block : blocks) {
    factors += fmt::format("{}{}", factors.empty() ? "" : " x ", block.size());
    total = block.size() > max_runs / total ? max_runs + 1 : total * block.size();
  }
  if (total > max_runs)
    reader.fail(plan.varied_keys.front(),
                fmt::format("the varied lists ({}) expand to more than {} runs: split the sweep into several "
                            "files or vary fewer values",
                            factors, max_runs));
  std::vector<Assignment> combos{Assignment{}};
  for (const auto& block : blocks) combos = multiply(combos, block);

  std::map<std::string, std::size_t> first_with_id;
  for (std::size_t i = 0; i < combos.size(); ++i) {
    SweepRun run;
    run.overrides = fixed;
    std::map<std::string, std::string> by_key(combos[i].begin(), combos[i].end());
    for (const std::string& key : plan.varied_keys) {
      run.values.push_back(by_key.at(key));
      run.overrides.push_back(fmt::format("{}={}", key, by_key.at(key)));
    }
    try {
      run.spec = load_model_spec(plan.base_path, run.overrides);
    } catch (const SpecError& e) {
      throw SpecError(fmt::format("{}: run {} of {}: {}", sweep_path, i + 1, combos.size(), e.what()));
    }
    run.id = run_id(run.spec);
    const auto [it, inserted] = first_with_id.emplace(run.id, i);
    if (!inserted)
      throw SpecError(fmt::format("{}: runs {} and {} resolve to the same model (id {}): a varied key has no "
                                  "effect on this base model",
                                  sweep_path, it->second + 1, i + 1, run.id));
    plan.runs.push_back(std::move(run));
  }
  return plan;
}

}  // namespace gfsim
