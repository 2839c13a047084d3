// Model files: defaults, every key read and written back, --set overrides, and one-line errors that
// name the key (or file:line:column), the value and the rule.
#include "gfsim/model_spec.hpp"
#include "gfsim/build.hpp"
#include "gfsim/enum_names.hpp"

#include <fmt/format.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace gfsim {
namespace {

namespace fs = std::filesystem;

/// The message of the SpecError that parsing throws; fails the test if nothing is thrown.
std::string spec_error(const std::string& toml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_model_spec(toml, "x.toml", overrides);
  } catch (const SpecError& error) {
    return error.what();
  }
  ADD_FAILURE() << "no SpecError for:\n" << toml;
  return {};
}

void expect_same_spec(const ModelSpec& a, const ModelSpec& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.description, b.description);
  EXPECT_EQ(a.data, b.data);
  EXPECT_EQ(a.network, b.network);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(a.flow, b.flow);
  EXPECT_EQ(a.solver, b.solver);
  EXPECT_EQ(a.time, b.time);
  EXPECT_EQ(a.dynamics, b.dynamics);
  EXPECT_EQ(a.output, b.output);
  EXPECT_EQ(a.resolved_toml, b.resolved_toml);
}

// Every key set to a value different from its default.
const char* const kEveryKey = R"(
[model]
name = "everything"
description = "a \"quoted\" word\nand a second line"
[data]
kind = "teacher"
path = "/data/points.csv"
n = 37
dim = 3
margin = 0.25
bias = true
seed = 11
teacher_hidden = 5
[network]
activation = "relu"
hidden = [16, 8]
init_scale = 0.5
seed = 12
init_file = "/init/theta.txt"
[loss]
kind = "logistic"
[flow]
kind = "fixed_rho"
rho = 5
[solver]
method = "rosenbrock4"
rtol = 1e-10
atol = 1e-12
clock = "log"
max_steps = 5000
max_wall_seconds = 60
[time]
t_end = 1e300
t_first = 0.5
samples_per_decade = 3
[dynamics]
kinks = "ignore"
kink_width = 0.01
[output]
path = "runs/everything.h5"
flush_interval = 0.5
swmr = false
)";

TEST(ModelSpec, EmptyFileGivesTheDocumentedDefaults) {
  const ModelSpec spec = parse_model_spec("", "models/my_model.toml");
  EXPECT_EQ(spec.name, "my_model");  // the file stem
  EXPECT_EQ(spec.description, "");
  EXPECT_EQ(spec.source_path, "models/my_model.toml");
  EXPECT_EQ(spec.data, DataSpec{});
  EXPECT_EQ(spec.network, NetworkSpec{});
  EXPECT_EQ(spec.loss, LossSpec{});
  EXPECT_EQ(spec.flow, FlowSpec{});
  EXPECT_EQ(spec.solver, SolverSpec{});
  EXPECT_EQ(spec.time, TimeSpec{});
  EXPECT_EQ(spec.dynamics, DynamicsSpec{});
  EXPECT_EQ(spec.output, OutputSpec{});
}

TEST(ModelSpec, ReadsEveryKey) {
  const ModelSpec spec = parse_model_spec(kEveryKey, "x.toml");
  EXPECT_EQ(spec.name, "everything");
  EXPECT_EQ(spec.description, "a \"quoted\" word\nand a second line");
  EXPECT_EQ(spec.data.kind, DataKind::teacher);
  EXPECT_EQ(spec.data.path, "/data/points.csv");
  EXPECT_EQ(spec.data.n, 37);
  EXPECT_EQ(spec.data.dim, 3);
  EXPECT_EQ(spec.data.margin, 0.25);
  EXPECT_TRUE(spec.data.bias);
  EXPECT_EQ(spec.data.seed, 11u);
  EXPECT_EQ(spec.data.teacher_hidden, 5);
  EXPECT_EQ(spec.network.activation, Activation::relu);
  EXPECT_EQ(spec.network.hidden, (std::vector<int>{16, 8}));
  EXPECT_EQ(spec.network.init_scale, 0.5);
  EXPECT_EQ(spec.network.seed, 12u);
  EXPECT_EQ(spec.network.init_file, "/init/theta.txt");
  EXPECT_EQ(spec.loss.kind, LossKind::logistic);
  EXPECT_EQ(spec.flow.kind, FlowKind::fixed_rho);
  EXPECT_EQ(spec.flow.rho, 5.0);  // an integer where a float is expected
  EXPECT_EQ(spec.solver.method, Method::rosenbrock4);
  EXPECT_EQ(spec.solver.rtol, 1e-10);
  EXPECT_EQ(spec.solver.atol, 1e-12);
  EXPECT_EQ(spec.solver.clock, ClockKind::log);
  EXPECT_EQ(spec.solver.max_steps, 5000);
  EXPECT_EQ(spec.solver.max_wall_seconds, 60.0);
  EXPECT_EQ(spec.time.t_end, 1e300);
  EXPECT_EQ(spec.time.t_first, 0.5);
  EXPECT_EQ(spec.time.samples_per_decade, 3);
  EXPECT_EQ(spec.dynamics.kinks, KinkMode::ignore);
  EXPECT_EQ(spec.dynamics.kink_width, 0.01);
  EXPECT_EQ(spec.output.path, "runs/everything.h5");
  EXPECT_EQ(spec.output.flush_interval, 0.5);
  EXPECT_FALSE(spec.output.swmr);
}

TEST(ModelSpec, ResolvedTomlReparsesToTheSameSpec) {
  for (const char* text : {"", kEveryKey, "[network]\nhidden = []\n[time]\nt_end = 1000\n"}) {
    SCOPED_TRACE(text);
    const ModelSpec spec = parse_model_spec(text, "dir/first.toml");
    const ModelSpec again = parse_model_spec(spec.resolved_toml, "elsewhere/second.toml");
    expect_same_spec(spec, again);
  }
}

TEST(ModelSpec, ResolvedTomlListsEveryKeyInFixedSectionOrder) {
  const std::string text = parse_model_spec("", "m.toml").resolved_toml;
  std::size_t previous = 0;
  for (const char* header :
       {"[model]", "[data]", "[network]", "[loss]", "[flow]", "[solver]", "[time]", "[dynamics]", "[output]"}) {
    const std::size_t at = text.find(header);
    ASSERT_NE(at, std::string::npos) << header;
    EXPECT_GT(at, previous) << header;
    previous = at;
  }
  for (const char* line : {"name = \"m\"", "kind = \"gaussian\"", "hidden = []", "seed = 2", "rtol = 1e-08",
                           "max_steps = 1000000", "t_end = 10000.0", "kinks = \"events\"", "swmr = true"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
}

TEST(ModelSpec, IntegersAreAcceptedWhereFloatsAreExpected) {
  const ModelSpec spec = parse_model_spec("[time]\nt_end = 1000\nt_first = 1\n", "x.toml");
  EXPECT_EQ(spec.time.t_end, 1000.0);
  EXPECT_EQ(spec.time.t_first, 1.0);
  EXPECT_NE(spec.resolved_toml.find("t_end = 1000.0\n"), std::string::npos);
}

TEST(ModelSpec, OverridesTakeTomlValuesOrBareStrings) {
  const ModelSpec spec = parse_model_spec(
      "[solver]\nrtol = 1e-6\n", "x.toml",
      {"solver.rtol=1e-10", "network.hidden=[16, 16]", "flow.kind=wn", "loss.kind=\"logistic\"",
       "data.bias=true", "time.t_end=1e100", "output.path=runs/a b.h5", "data.n=50", "data.n=60"});
  EXPECT_EQ(spec.solver.rtol, 1e-10);  // overrides beat the file
  EXPECT_EQ(spec.network.hidden, (std::vector<int>{16, 16}));
  EXPECT_EQ(spec.flow.kind, FlowKind::wn);
  EXPECT_EQ(spec.loss.kind, LossKind::logistic);
  EXPECT_TRUE(spec.data.bias);
  EXPECT_EQ(spec.time.t_end, 1e100);
  EXPECT_EQ(spec.output.path, "runs/a b.h5");
  EXPECT_EQ(spec.data.n, 60);  // the last --set of a key wins
  EXPECT_NE(spec.resolved_toml.find("rtol = 1e-10\n"), std::string::npos);
  EXPECT_NE(spec.resolved_toml.find("kind = \"wn\"\n"), std::string::npos);
}

TEST(ModelSpec, OverrideStringsMustBeUtf8SoTheResolvedModelNamesTheSameValue) {
  // Fuzz finding (tests/fuzz/regressions/model_spec): byte 0xAC was written back as "\u00AC" = C2 AC.
  EXPECT_EQ(spec_error("", {"flow.rho_table=\xac" "4(=ata"}),
            "--set flow.rho_table: the value is not valid UTF-8 (model files and their values are UTF-8)");
  EXPECT_EQ(spec_error("", {"output.path=\"a\xc0\xaf" "b\""}),  // overlong '/', a classic smuggle
            "--set output.path: the value is not valid UTF-8 (model files and their values are UTF-8)");
  EXPECT_EQ(spec_error("", {"model.name=\xed\xa0\x80"}),  // a UTF-16 surrogate
            "--set model.name: the value is not valid UTF-8 (model files and their values are UTF-8)");
  const ModelSpec spec = parse_model_spec("", "x.toml", {"model.name=\xcf\x81-\xe2\x88\x9e-\xf0\x9f\x98\x80"});
  EXPECT_EQ(spec.name, "\xcf\x81-\xe2\x88\x9e-\xf0\x9f\x98\x80");  // rho, infinity, a 4-byte emoji
  EXPECT_TRUE(parse_model_spec(spec.resolved_toml, "x.toml") == spec);
}

TEST(ModelSpec, OverrideErrorsNameTheKey) {
  EXPECT_EQ(spec_error("", {"network.hiden=[4]"}),
            "--set: unknown key network.hiden (known keys of [network]: activation, hidden, init_scale, "
            "seed, init_file)");
  EXPECT_EQ(spec_error("", {"solvr.rtol=1"}),
            "--set: unknown section [solvr] (known sections: model, data, network, loss, flow, solver, "
            "time, dynamics, output, spectrum, generalization)");
  EXPECT_EQ(spec_error("", {"rtol=1e-3"}),
            "--set \"rtol=1e-3\": expected section.key=value, e.g. solver.rtol=1e-10");
  EXPECT_EQ(spec_error("", {"solver.rtol"}),
            "--set \"solver.rtol\": expected section.key=value, e.g. solver.rtol=1e-10");
  EXPECT_EQ(spec_error("", {"solver.rtol=-1"}), "--set: solver.rtol = -1: must be > 0 and < 1");
  EXPECT_EQ(spec_error("", {"flow.kind=wm"}),
            "--set: flow.kind = \"wm\": must be one of \"gd\", \"gd_polar\", \"wn\", \"fixed_rho\", \"nm\", \"nm_polar\", \"rho_schedule\", \"normalized\", \"rho_schedule_normalized\"");
}

TEST(ModelSpec, NameDefaultsToTheFileStemUnlessGiven) {
  EXPECT_EQ(parse_model_spec("", "a/b/deep_linear.toml").name, "deep_linear");
  EXPECT_EQ(parse_model_spec("[model]\nname = \"mine\"\n", "a/b/deep_linear.toml").name, "mine");
}

TEST(ModelSpec, RelativePathsResolveAgainstTheModelFolder) {
  const ModelSpec spec = parse_model_spec(
      "[data]\nkind = \"csv\"\npath = \"data/points.csv\"\n[network]\ninit_file = \"../init.txt\"\n",
      "/models/sub/m.toml");
  EXPECT_EQ(spec.data.path, "/models/sub/data/points.csv");
  EXPECT_EQ(spec.network.init_file, "/models/init.txt");
  EXPECT_EQ(parse_model_spec(spec.resolved_toml, "other/place.toml").data, spec.data);

  const ModelSpec here = parse_model_spec("[data]\nkind = \"csv\"\npath = \"p.csv\"\n", "m.toml");
  EXPECT_EQ(here.data.path, (fs::current_path() / "p.csv").string());
}

TEST(ModelSpec, LoadsAFileAndItsRelativeDataPath) {
  const fs::path dir = fs::temp_directory_path() / ("gfsim_test_model_spec_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path model = dir / "csv_model.toml";
  std::ofstream(model) << "[data]\nkind = \"csv\"\npath = \"points.csv\"\n";
  const ModelSpec spec = load_model_spec(model.string(), {"time.t_end=50"});
  EXPECT_EQ(spec.name, "csv_model");
  EXPECT_EQ(spec.data.path, (dir / "points.csv").string());
  EXPECT_EQ(spec.time.t_end, 50.0);
  fs::remove_all(dir);
}

TEST(ModelSpec, UnreadableFileIsASpecError) {
  try {
    load_model_spec("/nonexistent/dir/model.toml");
    FAIL() << "no SpecError";
  } catch (const SpecError& error) {
    EXPECT_EQ(std::string(error.what()),
              "/nonexistent/dir/model.toml: cannot read model file: No such file or directory");
  }
  EXPECT_THROW(load_model_spec(fs::temp_directory_path().string()), SpecError);
}

TEST(ModelSpec, SyntaxErrorsCarryFileLineAndColumn) {
  const std::string message = spec_error("[solver]\nrtol = = 1\n");
  EXPECT_EQ(message.rfind("x.toml:2:", 0), 0u) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST(ModelSpec, StructuralErrorsNameSectionOrKey) {
  EXPECT_EQ(spec_error("[model]\nname = \"a\"\n\n[dat]\nn = 1\n"),
            "x.toml:4:2: unknown section [dat] (known sections: model, data, network, loss, flow, solver, "
            "time, dynamics, output, spectrum, generalization)");
  EXPECT_EQ(spec_error("[network]\nhiden = [4]\n"),
            "x.toml:2:1: unknown key network.hiden (known keys of [network]: activation, hidden, "
            "init_scale, seed, init_file)");
  EXPECT_EQ(spec_error("[data.extra]\nx = 1\n"),
            "x.toml:1:7: unknown key data.extra (known keys of [data]: kind, path, n, dim, margin, bias, "
            "seed, teacher_hidden, test_fraction, test_path, test_n, label_noise, random_labels, standardize)");
  EXPECT_EQ(spec_error("data = 5\n"), "x.toml:1:1: data = 5: must be a section [data]");
  EXPECT_EQ(spec_error("t_end = 5\n"),
            "x.toml:1:1: unknown key t_end outside any section (known sections: model, data, network, "
            "loss, flow, solver, time, dynamics, output, spectrum, generalization)");
}

struct BadValue {
  const char* toml;
  const char* expected;  ///< the whole message
};

// One case per rule: wrong type, out of range and bad enum value for every key class.
const BadValue kBadValues[] = {
    // wrong types
    {"[solver]\nrtol = \"small\"", "x.toml:2:8: solver.rtol = \"small\": must be a number"},
    {"[data]\nn = 10.5", "x.toml:2:5: data.n = 10.5: must be an integer"},
    {"[data]\nbias = 1", "x.toml:2:8: data.bias = 1: must be true or false"},
    {"[model]\nname = 3", "x.toml:2:8: model.name = 3: must be a string"},
    {"[network]\nhidden = 16", "x.toml:2:10: network.hidden = 16: must be an array of layer widths, e.g. [16, 16]"},
    {"[network]\nhidden = [4, 2.5]", "x.toml:2:10: network.hidden = [4, 2.5]: every width must be an integer >= 1"},
    {"[time]\nt_end = inf", "x.toml:2:9: time.t_end = inf: must be a finite number"},
    {"[solver]\natol = nan", "x.toml:2:8: solver.atol = nan: must be a finite number"},
    // out of range
    {"[data]\nn = 0", "x.toml:2:5: data.n = 0: must be >= 1"},
    {"[data]\nn = 3000000000", "x.toml:2:5: data.n = 3000000000: must be <= 2147483647"},
    {"[data]\ndim = -2", "x.toml:2:7: data.dim = -2: must be >= 1"},
    {"[data]\nmargin = -0.1", "x.toml:2:10: data.margin = -0.1: must be >= 0"},
    {"[data]\nseed = -1", "x.toml:2:8: data.seed = -1: must be >= 0"},
    {"[data]\nteacher_hidden = 0", "x.toml:2:18: data.teacher_hidden = 0: must be >= 1"},
    {"[network]\nhidden = [4, 0]", "x.toml:2:10: network.hidden = [4, 0]: every width must be an integer >= 1"},
    {"[network]\ninit_scale = -1", "x.toml:2:14: network.init_scale = -1: must be >= 0"},
    {"[network]\nseed = -5", "x.toml:2:8: network.seed = -5: must be >= 0"},
    {"[flow]\nrho = 0", "x.toml:2:7: flow.rho = 0: must be > 0"},
    {"[solver]\nrtol = -1", "x.toml:2:8: solver.rtol = -1: must be > 0 and < 1"},
    {"[solver]\nrtol = 1.0", "x.toml:2:8: solver.rtol = 1.0: must be > 0 and < 1"},
    {"[solver]\natol = 0.0", "x.toml:2:8: solver.atol = 0.0: must be > 0"},
    {"[solver]\nmax_steps = 0", "x.toml:2:13: solver.max_steps = 0: must be >= 1"},
    {"[solver]\nmax_wall_seconds = -1", "x.toml:2:20: solver.max_wall_seconds = -1: must be >= 0"},
    {"[time]\nt_end = 0", "x.toml:2:9: time.t_end = 0: must be > 0"},
    {"[time]\nt_first = 0", "x.toml:2:11: time.t_first = 0: must be > 0"},
    {"[time]\nt_end = 10\nt_first = 20", "x.toml:3:11: time.t_first = 20: must be <= time.t_end = 10.0"},
    {"[time]\nt_end = 0.001", "x.toml: time.t_first = 0.01 (default): must be <= time.t_end = 0.001"},
    {"[time]\nsamples_per_decade = 0", "x.toml:2:22: time.samples_per_decade = 0: must be in [1, 1000]"},
    {"[time]\nsamples_per_decade = 1001", "x.toml:2:22: time.samples_per_decade = 1001: must be in [1, 1000]"},
    {"[output]\nflush_interval = 0", "x.toml:2:18: output.flush_interval = 0: must be > 0"},
    {"[output]\npath = \"\"", "x.toml:2:8: output.path = \"\": must name the HDF5 output file"},
    // bad enum values
    {"[data]\nkind = \"gausian\"", "x.toml:2:8: data.kind = \"gausian\": must be one of \"gaussian\", \"teacher\", \"csv\""},
    {"[data]\nkind = 1", "x.toml:2:8: data.kind = 1: must be one of \"gaussian\", \"teacher\", \"csv\""},
    {"[network]\nactivation = \"tanh\"", "x.toml:2:14: network.activation = \"tanh\": must be one of \"relu\", \"linear\""},
    {"[loss]\nkind = \"hinge\"", "x.toml:2:8: loss.kind = \"hinge\": must be one of \"exp\", \"logistic\", \"square\""},
    {"[flow]\nkind = \"adam\"", "x.toml:2:8: flow.kind = \"adam\": must be one of \"gd\", \"gd_polar\", \"wn\", \"fixed_rho\", \"nm\", \"nm_polar\", \"rho_schedule\", \"normalized\", \"rho_schedule_normalized\""},
    {"[flow]\nlambda_power = 1.5", "x.toml:2:16: flow.lambda_power = 1.5: must be > 0 and <= 1"},
    {"[flow]\nlambda = \"table\"",
     "x.toml: flow.lambda_table = \"\" (default): must name the table file when flow.lambda = \"table\""},
    {"[flow]\nrho_schedule = \"linear\"",
     "x.toml:2:16: flow.rho_schedule = \"linear\": must be one of \"logarithmic\", \"power\", \"exponential\", "
     "\"staircase\", \"table\""},
    {"[loss]\nkind = \"square\"\n[flow]\nkind = \"normalized\"",
     "x.toml:4:8: flow.kind = \"normalized\": \"normalized\" needs loss.kind = \"exp\" or \"logistic\" (the square "
     "loss vanishes at a finite interpolant, where grad L / L is unbounded)"},
    {"[loss]\nkind = \"square\"\n[flow]\nkind = \"rho_schedule_normalized\"",
     "x.toml:4:8: flow.kind = \"rho_schedule_normalized\": \"rho_schedule_normalized\" needs loss.kind = \"exp\" or "
     "\"logistic\" (the square loss vanishes at an interpolant on the sphere of radius rho(t), where grad L / L is "
     "unbounded)"},
    {"[solver]\nmethod = \"euler\"",
     "x.toml:2:10: solver.method = \"euler\": must be one of \"auto\", \"dopri5\", \"rkf78\", \"cash_karp\", "
     "\"rosenbrock4\", \"cvode\""},
    {"[solver]\nclock = \"s\"", "x.toml:2:9: solver.clock = \"s\": must be one of \"auto\", \"log\", \"t\""},
    {"[dynamics]\nkinks = \"smoth\"", "x.toml:2:9: dynamics.kinks = \"smoth\": must be one of \"events\", \"ignore\", \"smooth\""},
    {"[dynamics]\nkink_width = 0", "x.toml:2:14: dynamics.kink_width = 0: must be > 0"},
    {"[dynamics]\nkink_width = inf", "x.toml:2:14: dynamics.kink_width = inf: must be a finite number"},
    // cross-key rules
    {"[data]\nkind = \"csv\"", "x.toml: data.path = \"\" (default): must name the CSV file when data.kind = \"csv\""},
    {"[data]\nkind = \"csv\"\npath = \"\"", "x.toml:3:8: data.path = \"\": must name the CSV file when data.kind = \"csv\""},
    {"[network]\nactivation = \"relu\"\nhidden = [4]\n[flow]\nkind = \"wn\"\n[dynamics]\nkinks = \"smooth\"",
     "x.toml:7:9: dynamics.kinks = \"smooth\": \"smooth\" needs flow.kind = \"gd\", \"nm\" or \"normalized\" "
     "(flow.kind = \"wn\" assumes a positively homogeneous network; the smoothed ReLU is not)"},
};

TEST(ModelSpec, BadValuesNameKeyValueAndRule) {
  for (const BadValue& bad : kBadValues) {
    SCOPED_TRACE(bad.toml);
    EXPECT_EQ(spec_error(bad.toml), bad.expected);
  }
}

TEST(ModelSpec, CrossKeyRulesThatAreNotErrors) {
  // kinks only matters for ReLU networks but is accepted for linear ones; a gaussian data set
  // ignores data.path; rosenbrock4 is allowed for any size.
  const ModelSpec spec = parse_model_spec(
      "[network]\nactivation = \"linear\"\nhidden = [3000]\n[dynamics]\nkinks = \"ignore\"\n"
      "[data]\nkind = \"gaussian\"\npath = \"/unused.csv\"\n[solver]\nmethod = \"rosenbrock4\"\n",
      "x.toml");
  EXPECT_EQ(spec.dynamics.kinks, KinkMode::ignore);
  EXPECT_EQ(spec.data.kind, DataKind::gaussian);
  EXPECT_EQ(spec.solver.method, Method::rosenbrock4);
}

TEST(ModelSpec, AutoMethodResolution) {
  // cvode (BDF) for smooth flows; dopri5 for ReLU networks with kink events (every crossing
  // restarts the integrator, which an explicit method does in one step); cvode again when kinks
  // are ignored or the network has no hidden ReLU layer.
  const std::pair<const char*, Method> cases[] = {
      {"[network]\nactivation = \"relu\"\nhidden = [8]\n[dynamics]\nkinks = \"events\"\n", Method::dopri5},
      {"[network]\nactivation = \"relu\"\nhidden = [8]\n[dynamics]\nkinks = \"ignore\"\n", Method::cvode},
      {"[network]\nactivation = \"relu\"\nhidden = [8]\n[dynamics]\nkinks = \"smooth\"\n", Method::cvode},
      {"[network]\nactivation = \"relu\"\nhidden = []\n", Method::cvode},
      {"[network]\nactivation = \"linear\"\nhidden = [8]\n", Method::cvode}};
  for (const auto& [text, method] : cases) {
    const ModelSpec spec = parse_model_spec(std::string(text) + "[time]\nt_end = 1e12\n", "x.toml");
    ASSERT_EQ(spec.solver.method, Method::auto_select);
    const SolverOptions o = resolve_solver(spec);
    EXPECT_EQ(o.method, method) << text;
    EXPECT_EQ(o.clock, ClockKind::log) << text;
  }
}

TEST(ModelSpec, EnumNamesAreTheFileSpelling) {
  EXPECT_STREQ(to_string(Method::auto_select), "auto");
  EXPECT_STREQ(to_string(ClockKind::auto_select), "auto");
  EXPECT_STREQ(to_string(FlowKind::gd_polar), "gd_polar");
  EXPECT_STREQ(to_string(LossKind::logistic), "logistic");
  EXPECT_STREQ(to_string(DataKind::csv), "csv");
  EXPECT_STREQ(to_string(Activation::relu), "relu");
  EXPECT_STREQ(to_string(KinkMode::events), "events");
}

TEST(ModelSpec, EveryExampleModelLoadsAndRoundTrips) {
  int models = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(GFSIM_SOURCE_DIR) / "models")) {
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(entry.path().string());
    ++models;
    const ModelSpec spec = load_model_spec(entry.path().string());
    EXPECT_EQ(spec.name, entry.path().stem().string());
    EXPECT_FALSE(spec.description.empty());
    expect_same_spec(spec, parse_model_spec(spec.resolved_toml, "reparsed.toml"));
  }
  EXPECT_GE(models, 7);
}

TEST(ModelSpec, DefaultExampleIsTheDocumentedOne) {
  const ModelSpec spec = load_model_spec(std::string(GFSIM_SOURCE_DIR) + "/models/linear_exp.toml");
  EXPECT_TRUE(spec.network.hidden.empty());
  EXPECT_EQ(spec.network.activation, Activation::linear);
  EXPECT_EQ(spec.loss.kind, LossKind::exp);
  EXPECT_EQ(spec.flow.kind, FlowKind::gd);
  EXPECT_EQ(spec.data.kind, DataKind::gaussian);
  EXPECT_EQ(spec.data.n, 200);
  EXPECT_EQ(spec.data.dim, 10);
  EXPECT_EQ(spec.data.margin, 0.1);
  EXPECT_EQ(spec.time.t_end, 1e12);
  EXPECT_EQ(spec.solver.clock, ClockKind::log);
}

}  // namespace
}  // namespace gfsim

namespace gfsim {
namespace {

/// The keys models/README.md documents: the first column of the key tables under each
/// "### `[section]`" heading, as "section.key", in page order.
std::vector<std::string> documented_keys() {
  std::ifstream readme(std::string(GFSIM_SOURCE_DIR) + "/models/README.md");
  EXPECT_TRUE(readme.good());
  std::vector<std::string> keys;
  std::string section, line;
  while (std::getline(readme, line)) {
    if (line.starts_with("#")) {
      section.clear();
      const std::size_t open = line.find("### `[");
      if (open == 0) section = line.substr(6, line.find("]`") - 6);
      continue;
    }
    if (section.empty() || !line.starts_with("| `")) continue;
    const std::size_t end = line.find('`', 3);
    keys.push_back(section + "." + line.substr(3, end - 3));
  }
  return keys;
}

TEST(ModelSpec, ReadmeDocumentsExactlyTheSchemaKeysInOrder) {
  const std::vector<std::string> documented = documented_keys(), schema = model_keys();
  for (const std::string& key : schema)
    EXPECT_NE(std::find(documented.begin(), documented.end(), key), documented.end())
        << key << " is a model key that models/README.md does not document";
  for (const std::string& key : documented)
    EXPECT_NE(std::find(schema.begin(), schema.end(), key), schema.end())
        << key << " is documented in models/README.md but is no model key";
  EXPECT_EQ(documented, schema) << "models/README.md lists the keys in another order than the resolved model";
}

TEST(ModelSpec, EveryKeyAppearsInTheResolvedModelOfItsSection) {
  // Default spec plus a spectrum: every key of the schema is written, under its own section header.
  // The optional keys of held-out data and [generalization] are written when set (data_split.hpp).
  const std::string text = parse_model_spec("[spectrum]\ntimes = [1.0]\n[data]\ntest_fraction = 0.3\nlabel_noise = 0.1\n"
                                            "standardize = true\n[generalization]\nrho = 2.0\n", "m.toml").resolved_toml;
  for (const std::string& key : model_keys()) {
    const std::string section = key.substr(0, key.find('.')), name = key.substr(key.find('.') + 1);
    if (key == "spectrum.samples_per_decade") continue;  // written instead of times when set
    // alternatives to test_fraction and label_noise, written when set
    if (key == "data.test_path" || key == "data.test_n" || key == "data.random_labels") continue;
    const std::size_t header = text.find("[" + section + "]\n");
    ASSERT_NE(header, std::string::npos) << section;
    const std::size_t next = text.find("\n[", header + 1);
    const std::size_t at = text.find("\n" + name + " = ", header);
    EXPECT_TRUE(at != std::string::npos && at < next) << key << "\n" << text;
  }
}

TEST(ModelSpec, EnumNamesRoundTripThroughTheTables) {
  for (const auto& [kind, name] : EnumNames<FlowKind>::table) {
    const ModelSpec spec = parse_model_spec("", "m.toml", {fmt::format("flow.kind=\"{}\"", name)});
    EXPECT_EQ(spec.flow.kind, kind);
    EXPECT_STREQ(to_string(kind), name);
  }
  for (const auto& [method, name] : EnumNames<Method>::table)
    EXPECT_EQ(parse_model_spec("", "m.toml", {fmt::format("solver.method={}", name)}).solver.method, method);
}

TEST(ModelSpec, ResolvedFloatsAndStringsRoundTripExactly) {
  const ModelSpec spec = parse_model_spec(
      "[model]\ndescription = \"quote \\\" backslash \\\\ tab \\t newline \\n end\"\n"
      "[solver]\nrtol = 0.30000000000000004\natol = 1e-300\n[flow]\nrho = 0.1\n[time]\nt_end = 1.7976931348623157e308\n",
      "m.toml");
  const ModelSpec again = parse_model_spec(spec.resolved_toml, "m.toml");
  EXPECT_EQ(again.description, "quote \" backslash \\ tab \t newline \n end");
  EXPECT_EQ(again.solver.rtol, 0.30000000000000004);
  EXPECT_EQ(again.solver.atol, 1e-300);
  EXPECT_EQ(again.flow.rho, 0.1);
  EXPECT_EQ(again.time.t_end, 1.7976931348623157e308);
  EXPECT_EQ(again.resolved_toml, spec.resolved_toml);
}

}  // namespace
}  // namespace gfsim
