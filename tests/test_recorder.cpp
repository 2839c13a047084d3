// Recorder + hdf5_file: files are written through the Recorder and read back through the h5
// wrappers, checking every part of the layout in docs/file-format.md.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "gfsim/hdf5_file.hpp"
#include "gfsim/output_lock.hpp"
#include "gfsim/recorder.hpp"
#include "gfsim/version.hpp"

namespace gfsim {
namespace {

namespace fs = std::filesystem;

// A fresh file path per test, removed afterwards.
class TempFile {
 public:
  explicit TempFile(const std::string& stem) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name() + "_" + stem;
    for (char& c : name) {
      if (c == '/') c = '_';
    }
    path_ = (fs::temp_directory_path() / ("gfsim_" + name + ".h5")).string();
    fs::remove(path_);
  }
  ~TempFile() { fs::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Provenance test_provenance() {
  Provenance meta;
  meta.file_type = "gfsim-trajectory";
  meta.model_toml = "[model]\nname = \"toy\"\n";
  meta.model_name = "toy";
  meta.seeds = {{"data_seed", 11}, {"network_seed", 12}};
  meta.string_attrs = {{"flow", "gd"}, {"loss", "exp"}};
  meta.double_attrs = {{"init_scale", 0.25}};
  meta.int_attrs = {{"K", 2}, {"P", 6}};
  meta.int_array_attrs = {{"widths", {2, 3, 1}}};
  return meta;
}

std::vector<ObservableDef> test_observables() {
  return {{"theta", 3, "the ODE state", {"w1", "w2", "w3"}},
          {"loss", 0, "training loss", {}},
          {"eig", 2, "two eigenvalues", {}}};
}

// Known sample contents: value = function of the sample index i.
double theta_value(std::int64_t i, std::int64_t j) { return static_cast<double>(i) + 0.125 * j; }
double loss_value(std::int64_t i) { return 1.0 / static_cast<double>(i + 1); }
double eig_value(std::int64_t i, std::int64_t k) { return -static_cast<double>(i + k); }
double time_of(std::int64_t i) { return 0.5 * static_cast<double>(i); }
std::int64_t step_of(std::int64_t i) { return 10 * i; }

void append_sample(Recorder& recorder, std::int64_t i) {
  const double theta[3] = {theta_value(i, 0), theta_value(i, 1), theta_value(i, 2)};
  const double loss = loss_value(i);
  const double eig[2] = {eig_value(i, 0), eig_value(i, 1)};
  recorder.append(step_of(i), time_of(i), {theta, {&loss, 1}, eig});
}

SolveResult test_result() {
  SolveResult result;
  result.status = Status::max_steps;
  result.message = "stopped after 7 steps";
  result.method = "dopri5";
  result.clock = "log";
  result.t_final = 3.5;
  result.counters = {.steps = 9, .accepted = 7, .rejected = 2, .rhs_evals = 55,
                     .jacobian_evals = 1, .jvp_evals = 3, .lu_decompositions = 4, .events = 5,
                     .sliding_entries = 6, .wall_seconds = 0.75};
  return result;
}

void expect_samples(const h5::File& file, std::int64_t count) {
  const h5::Group observables = file.open_group("observables");
  const auto steps = observables.open_dataset("theta/step").read_int64s();
  const auto times = observables.open_dataset("theta/time").read_doubles();
  const h5::Dataset theta = observables.open_dataset("theta/value");
  const h5::Dataset loss = observables.open_dataset("loss/value");
  const h5::Dataset eig = observables.open_dataset("eig/value");
  ASSERT_EQ(theta.shape(), (std::vector<std::int64_t>{count, 3}));
  ASSERT_EQ(loss.shape(), (std::vector<std::int64_t>{count}));
  ASSERT_EQ(eig.shape(), (std::vector<std::int64_t>{count, 2}));
  ASSERT_EQ(static_cast<std::int64_t>(steps.size()), count);
  ASSERT_EQ(static_cast<std::int64_t>(times.size()), count);
  const auto theta_values = theta.read_doubles();
  const auto loss_values = loss.read_doubles();
  const auto eig_values = eig.read_doubles();
  for (std::int64_t i = 0; i < count; ++i) {
    EXPECT_EQ(steps[i], step_of(i));
    EXPECT_EQ(times[i], time_of(i));
    EXPECT_EQ(loss_values[i], loss_value(i));
    for (std::int64_t j = 0; j < 3; ++j) EXPECT_EQ(theta_values[3 * i + j], theta_value(i, j));
    for (std::int64_t k = 0; k < 2; ++k) EXPECT_EQ(eig_values[2 * i + k], eig_value(i, k));
  }
}

void expect_layout_attributes(const h5::File& file) {
  EXPECT_EQ(file.string_attr("file_type"), "gfsim-trajectory");
  EXPECT_EQ(file.int64_attr("format_version"), kFormatVersion);
  EXPECT_EQ(file.string_attr("gfsim_version"), kVersion);
  EXPECT_EQ(file.string_attr("git_commit"), git_commit());
  EXPECT_TRUE(std::regex_match(file.string_attr("created"),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
  EXPECT_EQ(file.string_attr("model_toml"), "[model]\nname = \"toy\"\n");
  EXPECT_EQ(file.string_attr("model_name"), "toy");
  EXPECT_EQ(file.int64_array_attr("widths"), (std::vector<std::int64_t>{2, 3, 1}));
  EXPECT_EQ(file.int64_attr("data_seed"), 11);
  EXPECT_EQ(file.int64_attr("network_seed"), 12);
  EXPECT_EQ(file.string_attr("flow"), "gd");
  EXPECT_EQ(file.string_attr("loss"), "exp");
  EXPECT_EQ(file.double_attr("init_scale"), 0.25);
  EXPECT_EQ(file.int64_attr("K"), 2);
  EXPECT_EQ(file.int64_attr("P"), 6);

  EXPECT_EQ(file.open_group("h5md").int32_array_attr("version"),
            (std::vector<std::int32_t>{1, 1}));
  const h5::Group creator = file.open_group("h5md/creator");
  EXPECT_EQ(creator.string_attr("name"), "gfsim");
  EXPECT_EQ(creator.string_attr("version"), kVersion);

  const h5::Dataset theta = file.open_dataset("observables/theta/value");
  EXPECT_EQ(theta.string_attr("description"), "the ODE state");
  EXPECT_EQ(theta.string_array_attr("column_names"),
            (std::vector<std::string>{"w1", "w2", "w3"}));
  EXPECT_EQ(file.open_dataset("observables/loss/value").string_attr("description"),
            "training loss");
  EXPECT_FALSE(file.open_dataset("observables/loss/value").has_attr("column_names"));
  EXPECT_EQ(file.open_dataset("observables/theta/time").string_attr("unit"), "1");

  // step/time exist once, under the first observable; the others reach them by hard links.
  for (const char* dataset : {"step", "time"}) {
    const h5::Dataset first = file.open_dataset(std::string("observables/theta/") + dataset);
    for (const char* other : {"loss", "eig"}) {
      const h5::Dataset linked =
          file.open_dataset(std::string("observables/") + other + "/" + dataset);
      EXPECT_TRUE(first.is_same_object(linked)) << other << "/" << dataset;
    }
    EXPECT_FALSE(first.is_same_object(file.open_dataset("observables/theta/value")));
  }
}

class RecorderModes : public ::testing::TestWithParam<bool> {};

TEST_P(RecorderModes, WritesEveryPartOfTheLayoutOverSeveralFlushes) {
  const bool swmr = GetParam();
  TempFile file_path("run");
  constexpr std::int64_t kSamples = 50;
  {
    Recorder recorder(file_path.path(), {test_observables()}, test_provenance(),
                      {.flush_interval = 1e9, .swmr = swmr});
    for (std::int64_t i = 0; i < kSamples; ++i) {
      append_sample(recorder, i);
      if (i % 7 == 6) recorder.flush();
    }
    EXPECT_EQ(recorder.samples_flushed(), 49);
    recorder.finish(test_result(), {{"final/theta", {1.0, 2.0, 3.0}, {}, ""}, {"solver/y_final", {4.0}, {}, ""}});
    EXPECT_EQ(recorder.samples_written(), kSamples);
    EXPECT_EQ(recorder.samples_flushed(), kSamples);
  }
  // A finished file opens without SWMR flags or h5clear.
  const h5::File file = h5::File::open(file_path.path(), h5::Access::read_only);
  expect_layout_attributes(file);
  expect_samples(file, kSamples);

  const h5::Group solver = file.open_group("solver");
  EXPECT_EQ(solver.string_attr("status"), "max_steps");
  EXPECT_EQ(solver.string_attr("message"), "stopped after 7 steps");
  EXPECT_EQ(solver.string_attr("method"), "dopri5");
  EXPECT_EQ(solver.string_attr("clock"), "log");
  EXPECT_EQ(solver.double_attr("t_final"), 3.5);
  EXPECT_EQ(solver.int64_attr("steps"), 9);
  EXPECT_EQ(solver.int64_attr("accepted"), 7);
  EXPECT_EQ(solver.int64_attr("rejected"), 2);
  EXPECT_EQ(solver.int64_attr("rhs_evals"), 55);
  EXPECT_EQ(solver.int64_attr("jacobian_evals"), 1);
  EXPECT_EQ(solver.int64_attr("jvp_evals"), 3);
  EXPECT_EQ(solver.int64_attr("lu_decompositions"), 4);
  EXPECT_EQ(solver.int64_attr("events"), 5);
  EXPECT_EQ(solver.int64_attr("sliding_entries"), 6);
  EXPECT_EQ(solver.double_attr("wall_seconds"), 0.75);
  EXPECT_EQ(file.open_dataset("final/theta").read_doubles(), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(file.open_dataset("solver/y_final").read_doubles(), (std::vector<double>{4}));
}

TEST_P(RecorderModes, DestructorWithoutFinishKeepsSamplesAndLeavesNoSolverGroup) {
  TempFile file_path("unfinished");
  {
    Recorder recorder(file_path.path(), {test_observables()}, test_provenance(),
                      {.flush_interval = 1e9, .swmr = GetParam()});
    for (std::int64_t i = 0; i < 5; ++i) append_sample(recorder, i);
    EXPECT_EQ(recorder.samples_written(), 0) << "5 rows are less than a chunk: still buffered";
  }
  const h5::File file = h5::File::open(file_path.path(), h5::Access::read_only);
  expect_samples(file, 5);
  EXPECT_TRUE(file.contains("observables/loss/value"));
  EXPECT_FALSE(file.contains("solver"));
}

INSTANTIATE_TEST_SUITE_P(Recorder, RecorderModes, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Swmr" : "NoSwmr"; });

TEST(Recorder, FlushesOnTheWallClockIntervalOnlyInSwmrMode) {
  TempFile swmr_path("swmr");
  Recorder swmr(swmr_path.path(), {test_observables()}, test_provenance(),
                {.flush_interval = 0.0, .swmr = true});
  append_sample(swmr, 0);
  append_sample(swmr, 1);
  EXPECT_EQ(swmr.samples_flushed(), 2);

  TempFile plain_path("plain");
  Recorder plain(plain_path.path(), {test_observables()}, test_provenance(),
                 {.flush_interval = 0.0, .swmr = false});
  append_sample(plain, 0);
  append_sample(plain, 1);
  EXPECT_EQ(plain.samples_flushed(), 0);
  plain.flush();
  EXPECT_EQ(plain.samples_flushed(), 2);
}

TEST(Recorder, WritesAChunkOfTheWidestObservableWithoutFlushing) {
  TempFile file_path("wide");
  // width 16384: one 128 KiB row per chunk, so every sample is written as it arrives.
  constexpr std::int64_t kWidth = 16384;
  Recorder recorder(file_path.path(), {{{"theta", kWidth, "", {}, {}}, {"loss", 0, "", {}, {}}}},
                    test_provenance(), {.flush_interval = 1e9, .swmr = true});
  std::vector<double> theta(kWidth);
  for (std::int64_t i = 0; i < 3; ++i) {
    for (std::int64_t j = 0; j < kWidth; ++j) theta[j] = theta_value(i, j);
    const double loss = loss_value(i);
    recorder.append(i, time_of(i), {theta, {&loss, 1}});
    EXPECT_EQ(recorder.samples_written(), i + 1);
  }
  EXPECT_EQ(recorder.samples_flushed(), 0);
  recorder.finish(SolveResult{});

  const h5::File file = h5::File::open(file_path.path(), h5::Access::read_only);
  const auto values = file.open_dataset("observables/theta/value").read_doubles();
  ASSERT_EQ(values.size(), static_cast<std::size_t>(3 * kWidth));
  for (std::int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(values[i * kWidth + kWidth - 1], theta_value(i, kWidth - 1));
  }
  EXPECT_EQ(file.open_group("solver").string_attr("status"), "success");
}

TEST(Recorder, UnwritablePathIsAnIoErrorNamingThePathWithoutHdf5Noise) {
  const std::string path = "/nonexistent-gfsim-dir/sub/run.h5";
  ::testing::internal::CaptureStderr();
  try {
    Recorder recorder(path, {test_observables()}, test_provenance());
    FAIL() << "expected IoError";
  } catch (const IoError& error) {
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("lock file"), std::string::npos) << error.what();
  }
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "") << "HDF5 printed its error stack";
}

TEST(Recorder, RejectsMisuseBeforeTouchingTheFile) {
  TempFile file_path("misuse");
  auto duplicate = test_observables();
  duplicate[1].name = "theta";
  EXPECT_THROW(Recorder(file_path.path(), {duplicate}, test_provenance()), std::invalid_argument);
  auto wrong_columns = test_observables();
  wrong_columns[0].column_names.pop_back();
  EXPECT_THROW(Recorder(file_path.path(), {wrong_columns}, test_provenance()), std::invalid_argument);
  EXPECT_THROW(Recorder(file_path.path(), RecorderLayout{}, test_provenance()), std::invalid_argument);
  auto reserved = test_provenance();
  reserved.string_attrs["model_name"] = "clash";
  EXPECT_THROW(Recorder(file_path.path(), {test_observables()}, reserved), std::invalid_argument);
  reserved = test_provenance();
  reserved.int_attrs["data_seed"] = 3;  // a seed name given twice
  EXPECT_THROW(Recorder(file_path.path(), {test_observables()}, reserved), std::invalid_argument);
  EXPECT_FALSE(fs::exists(file_path.path()));

  Recorder recorder(file_path.path(), {test_observables()}, test_provenance());
  const double one = 1.0;
  const double pair[2] = {1.0, 2.0};
  EXPECT_THROW(recorder.append(0, 0.0, {pair, {&one, 1}, pair}), std::invalid_argument);
  EXPECT_THROW(recorder.append(0, 0.0, {{&one, 1}}), std::invalid_argument);
  recorder.finish(SolveResult{});
  EXPECT_THROW(append_sample(recorder, 0), std::logic_error);
  EXPECT_THROW(recorder.finish(SolveResult{}), std::logic_error);
}

// record(): each observable computed from (t, y) by its own function, in declaration order.
TEST(Recorder, RecordEvaluatesEachObservableFromTimeAndState) {
  TempFile file_path("record");
  RecorderLayout layout;
  layout.observables = {
      {"y", 2, "the state", {}, [](double, const Vec& y, std::span<double> out) { out[0] = y[0]; out[1] = y[1]; }},
      {"energy", 0, "t |y|^2", {}, [](double t, const Vec& y, std::span<double> out) { out[0] = t * y.squaredNorm(); }}};
  layout.observables.push_back({"no_fn", 0, "", {}, {}});
  {
    Recorder recorder(file_path.path(), layout, test_provenance());
    Vec y(2);
    y << 3.0, -4.0;
    EXPECT_THROW(recorder.record(0, 1.0, y), std::logic_error) << "no_fn has no compute function";
  }
  layout.observables.pop_back();
  Recorder recorder(file_path.path(), layout, test_provenance());
  for (std::int64_t i = 0; i < 4; ++i) {
    Vec y(2);
    y << 3.0 * double(i), -4.0;
    recorder.record(i, 0.5 * double(i), y);
  }
  recorder.finish(SolveResult{});
  const h5::File file = h5::File::open(file_path.path(), h5::Access::read_only);
  EXPECT_EQ(file.open_dataset("observables/y/value").read_doubles(),
            (std::vector<double>{0, -4, 3, -4, 6, -4, 9, -4}));
  // t |y|^2 = 0.5 i (9 i^2 + 16)
  EXPECT_EQ(file.open_dataset("observables/energy/value").read_doubles(),
            (std::vector<double>{0.0, 0.5 * 25, 1.0 * 52, 1.5 * 97}));
}

// Series have their own time axes: rows appended at any moment (between samples, across
// flushes) land in their own datasets in order, with int64 columns and an HDF5 enum for kinds.
TEST(Recorder, SeriesKeepTheirOwnRowsIntegerColumnsAndEnumNames) {
  TempFile file_path("series");
  const std::vector<std::string> kinds = {"crossing", "sliding_entry", "sliding_exit"};
  RecorderLayout layout{test_observables(),
                        {{"events", "kink events",
                          {{"time", h5::ElementType::float64, 0, "t", {}},
                           {"unit", h5::ElementType::int64, 0, "", {}},
                           {"kind", h5::ElementType::int8_enum, 0, "", kinds}},
                          {}},
                         {"observables/spectrum", "", {{"value", h5::ElementType::float64, 2, "", {}}}, {{"k", 1}}}},
                        {{"data/X", {1, 2, 3, 4, 5, 6}, {3, 2}, "points as rows"}}};
  constexpr std::int64_t kEvents = 600;  // > one series chunk (256 rows)
  {
    Recorder recorder(file_path.path(), layout, test_provenance(), {.flush_interval = 1e9, .swmr = true});
    for (std::int64_t i = 0; i < kEvents; ++i) {
      const double t = 0.25 * double(i);
      const std::int64_t unit = i * i, kind = i % 3;
      recorder.append_row(0, {std::span<const double>(&t, 1), std::span<const std::int64_t>(&unit, 1),
                              std::span<const std::int64_t>(&kind, 1)});
      if (i % 100 == 0) {
        append_sample(recorder, i / 100);
        const double eig[2] = {-t, t};
        recorder.append_row(1, {std::span<const double>(eig, 2)});
      }
      if (i == 300) recorder.flush();
    }
    const std::int64_t bad_kind = 3, unit = 0;
    const double t = 0;
    EXPECT_THROW(recorder.append_row(0, {std::span<const double>(&t, 1), std::span<const std::int64_t>(&unit, 1),
                                         std::span<const std::int64_t>(&bad_kind, 1)}),
                 std::invalid_argument);
    EXPECT_THROW(recorder.append_row(0, {std::span<const double>(&t, 1), std::span<const double>(&t, 1),
                                         std::span<const std::int64_t>(&unit, 1)}),
                 std::invalid_argument);
    EXPECT_THROW(recorder.append_row(2, {}), std::invalid_argument);
    recorder.finish(test_result(), {{"final/W_1", {1, 2, 3, 4, 5, 6}, {2, 3}, ""}},
                    [](h5::File& file) { file.create_group("verify").set_double_attr("gamma", 0.5); },
                    {{"sliding_exits", 42}});
  }
  const h5::File file = h5::File::open(file_path.path(), h5::Access::read_only);
  expect_samples(file, 6);
  const auto times = file.open_dataset("events/time").read_doubles();
  const auto units = file.open_dataset("events/unit").read_int64s();
  const h5::Dataset kind = file.open_dataset("events/kind");
  EXPECT_EQ(kind.enum_names(), kinds);
  const auto kind_values = kind.read_int64s();
  ASSERT_EQ(times.size(), std::size_t(kEvents));
  ASSERT_EQ(units.size(), std::size_t(kEvents));
  ASSERT_EQ(kind_values.size(), std::size_t(kEvents));
  for (std::int64_t i = 0; i < kEvents; ++i) {
    EXPECT_EQ(times[i], 0.25 * double(i));
    EXPECT_EQ(units[i], i * i);
    EXPECT_EQ(kind_values[i], i % 3);
  }
  EXPECT_EQ(file.open_group("events").string_attr("description"), "kink events");
  EXPECT_EQ(file.open_group("observables/spectrum").int64_attr("k"), 1);
  EXPECT_EQ(file.open_dataset("observables/spectrum/value").read_doubles(),
            (std::vector<double>{-0, 0, -25, 25, -50, 50, -75, 75, -100, 100, -125, 125}));
  const h5::Dataset X = file.open_dataset("data/X");
  EXPECT_EQ(X.shape(), (std::vector<std::int64_t>{3, 2}));
  EXPECT_EQ(X.string_attr("description"), "points as rows");
  EXPECT_EQ(file.open_dataset("final/W_1").shape(), (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(file.open_group("verify").double_attr("gamma"), 0.5);
  EXPECT_EQ(file.open_group("solver").int64_attr("sliding_exits"), 42);
  EXPECT_FALSE(fs::exists(file_path.path() + ".lock")) << "the lock file is removed on finish";
  EXPECT_FALSE(fs::exists(file_path.path() + ".partial"));
}

// One writer per path: a second writer is refused before touching the existing file, and the
// path becomes writable again once the first finishes.
TEST(Recorder, SecondWriterOfOnePathIsRefusedAndTheFirstFileSurvives) {
  TempFile file_path("two_writers");
  Recorder first(file_path.path(), {test_observables()}, test_provenance(), {.flush_interval = 0.0});
  append_sample(first, 0);
  EXPECT_TRUE(fs::exists(file_path.path())) << "published once the layout is on disk";
  EXPECT_FALSE(fs::exists(file_path.path() + ".partial"));
  try {
    Recorder second(file_path.path(), {test_observables()}, test_provenance());
    FAIL() << "expected IoError";
  } catch (const IoError& error) {
    EXPECT_NE(std::string(error.what()).find("being written by another gfsim run"), std::string::npos)
        << error.what();
  }
  append_sample(first, 1);
  first.finish(test_result());
  {
    const h5::File file = h5::File::open(file_path.path(), h5::Access::read_only);
    expect_samples(file, 2);
  }
  Recorder again(file_path.path(), {test_observables()}, test_provenance());
  again.finish(test_result());
}

TEST(OutputLock, HeldUntilDestroyedThenFreeAgain) {
  TempFile file_path("lock");
  {
    OutputLock lock(file_path.path());
    EXPECT_TRUE(fs::exists(lock.lock_path()));
    EXPECT_THROW(OutputLock{file_path.path()}, IoError);
    EXPECT_THROW(lock.publish(), IoError) << "nothing to publish: no partial file";
  }
  EXPECT_FALSE(fs::exists(file_path.path() + ".lock"));
  OutputLock lock(file_path.path());
  { std::ofstream(lock.partial_path()) << "x"; }
  lock.publish();
  EXPECT_TRUE(fs::exists(file_path.path()));
  EXPECT_FALSE(fs::exists(lock.partial_path()));
}

TEST(Hdf5File, AttributeErrorsNameFileObjectAndCause) {
  TempFile file_path("attrs");
  h5::File file = h5::File::create(file_path.path(), h5::FileFormat::earliest);
  h5::Group group = file.create_group("a/b");
  group.set_double_attr("x", 1.5);
  try {
    group.set_double_attr("x", 2.5);
    FAIL() << "expected IoError";
  } catch (const IoError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(file_path.path()), std::string::npos) << message;
    EXPECT_NE(message.find("/a/b@x"), std::string::npos) << message;
    EXPECT_NE(message.find("already exists"), std::string::npos) << message;
  }
  EXPECT_THROW(group.string_attr("x"), IoError);
  EXPECT_THROW(group.int64_attr("missing"), IoError);
  EXPECT_THROW(file.open_dataset("a/nothing"), IoError);
  EXPECT_EQ(group.double_attr("x"), 1.5);
  EXPECT_TRUE(file.contains("/a/b"));
  EXPECT_FALSE(file.contains("a/c/d"));
}

TEST(Hdf5File, ArrayAttributesRoundTripIncludingEmptyOnes) {
  TempFile file_path("arrays");
  h5::File file = h5::File::create(file_path.path(), h5::FileFormat::v110);
  const std::vector<double> doubles = {0.5, -1.25, 1e300};
  const std::vector<std::int64_t> int64s = {-(std::int64_t{1} << 62), 7};
  const std::vector<std::string> strings = {"a", "", "\u03b8 theta"};
  file.set_double_array_attr("doubles", doubles);
  file.set_int64_array_attr("int64s", int64s);
  file.set_string_array_attr("strings", strings);
  file.set_int64_array_attr("empty", std::vector<std::int64_t>{});
  file.close();

  const h5::File reopened = h5::File::open(file_path.path(), h5::Access::read_only);
  EXPECT_EQ(reopened.double_array_attr("doubles"), doubles);
  EXPECT_EQ(reopened.int64_array_attr("int64s"), int64s);
  EXPECT_EQ(reopened.string_array_attr("strings"), strings);
  EXPECT_TRUE(reopened.int64_array_attr("empty").empty());
  EXPECT_THROW(reopened.double_attr("doubles"), IoError) << "three values are not one";
}

TEST(Hdf5File, AppendRowsRejectsPartialRows) {
  TempFile file_path("rows");
  h5::File file = h5::File::create(file_path.path(), h5::FileFormat::v110);
  h5::Dataset matrix = file.create_extendible_dataset("m", h5::ElementType::float64, 3, 4);
  const std::vector<double> five(5, 1.0);
  EXPECT_THROW(matrix.append_rows(std::span<const double>(five)), std::invalid_argument);
  const std::vector<double> six = {1, 2, 3, 4, 5, 6};
  matrix.append_rows(std::span<const double>(six));
  matrix.append_rows(std::span<const double>(six));
  EXPECT_EQ(matrix.shape(), (std::vector<std::int64_t>{4, 3}));
  const std::vector<double> expected = {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6};
  EXPECT_EQ(matrix.read_doubles(), expected);
}

TEST(Status, NamesAreTheStoredStrings) {
  const std::pair<Status, const char*> names[] = {
      {Status::success, "success"},         {Status::max_steps, "max_steps"},
      {Status::wall_clock, "wall_clock"},   {Status::non_finite, "non_finite"},
      {Status::step_collapse, "step_collapse"}, {Status::stalled_at_kink, "stalled_at_kink"},
      {Status::interrupted, "interrupted"}, {Status::solver_failure, "solver_failure"}};
  for (const auto& [status, name] : names) EXPECT_EQ(status_name(status), name);
}

}  // namespace
}  // namespace gfsim
