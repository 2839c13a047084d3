// Sweep plans (sweep_plan.hpp): FNV-1a against its published test vectors (the ids are this
// function of the resolved model, so they agree across machines), ids that ignore where a run is
// written and where its data file lives, the expansion of grid x zip x seeds x runs, and one-line
// errors naming the key.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gfsim/sweep_plan.hpp"

namespace gfsim {
namespace {

namespace fs = std::filesystem;

class SweepPlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fs::path("gfsim_sweep_plan_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    fs::copy_file(fs::path(GFSIM_SOURCE_DIR) / "models/relu_two_layer.toml", dir_ / "model.toml",
                  fs::copy_options::overwrite_existing);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

TEST(Fnv1a64, PublishedTestVectors) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST_F(SweepPlanTest, GridZipSeedsAndRunsMultiplyInOrder) {
  const SweepPlan plan = read_sweep_plan(write("s.toml", R"(base = "model.toml"
seeds = [5, 9]
[grid]
"network.init_scale" = [0.25, 0.5]
[zip]
"data.n" = [20, 30, 40]
"data.dim" = [2, 3, 4]
[[runs]]
"time.t_end" = 10.0
[[runs]]
"time.t_end" = 20.0
)"));
  ASSERT_EQ(plan.varied_keys,
            (std::vector<std::string>{"network.init_scale", "data.n", "data.dim", "network.seed", "time.t_end"}));
  ASSERT_EQ(plan.runs.size(), 2u * 3u * 2u * 2u);
  // last block fastest: runs, then seeds, then zip, then grid
  std::size_t i = 0;
  for (double scale : {0.25, 0.5})
    for (int z = 0; z < 3; ++z)
      for (int seed : {5, 9})
        for (double t_end : {10.0, 20.0}) {
          const ModelSpec& spec = plan.runs[i++].spec;
          EXPECT_EQ(spec.network.init_scale, scale);
          EXPECT_EQ(spec.data.n, 20 + 10 * z);
          EXPECT_EQ(spec.data.dim, 2 + z);
          EXPECT_EQ(spec.network.seed, std::uint64_t(seed));
          EXPECT_EQ(spec.time.t_end, t_end);
        }
  EXPECT_EQ(plan.runs[0].values, (std::vector<std::string>{"0.25", "20", "2", "5", "10.0"}));
  for (const SweepRun& run : plan.runs) EXPECT_EQ(run.id, run_id(run.spec));
}

TEST_F(SweepPlanTest, SeedCountAndNestedKeyForm) {
  const SweepPlan plan = read_sweep_plan(write("s.toml", R"(base = "model.toml"
seeds = 3
seed_key = "data.seed"
[grid]
network.init_scale = [0.1]
network.hidden = [[16, 8]]
)"));
  ASSERT_EQ(plan.runs.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(plan.runs[i].spec.data.seed, i + 1);
    EXPECT_EQ(plan.runs[i].spec.network.init_scale, 0.1);
    EXPECT_EQ(plan.runs[i].spec.network.hidden, (std::vector<int>{16, 8}));
    EXPECT_EQ(plan.runs[i].values, (std::vector<std::string>{"0.1", "[16, 8]", std::to_string(i + 1)}));
  }
}

TEST_F(SweepPlanTest, IdIgnoresOutputThreadsAndDataLocation) {
  const ModelSpec spec = load_model_spec((dir_ / "model.toml").string());
  const ModelSpec moved = load_model_spec((dir_ / "model.toml").string(),
                                          {"output.path=\"elsewhere/x.h5\"", "output.flush_interval=0.5",
                                           "solver.threads=2"});
  EXPECT_EQ(run_id(spec), run_id(moved));
  EXPECT_NE(run_id(spec), run_id(load_model_spec((dir_ / "model.toml").string(), {"network.seed=8"})));
  EXPECT_NE(run_id(spec), run_id(load_model_spec((dir_ / "model.toml").string(), {"solver.rtol=1e-9"})));
  EXPECT_EQ(run_id(spec), fmt::format("{:016x}", fnv1a64(run_identity_text(spec))));

  // a CSV data set in two folders: same contents, same id; other contents, another id
  const fs::path models = fs::path(GFSIM_SOURCE_DIR) / "models";
  for (const char* sub : {"a", "b"}) {
    fs::create_directories(dir_ / sub / "data");
    fs::copy_file(models / "verify_iris.toml", dir_ / sub / "m.toml");
    fs::copy_file(models / "data/iris_setosa_versicolor.csv", dir_ / sub / "data/iris_setosa_versicolor.csv");
  }
  const ModelSpec a = load_model_spec((dir_ / "a/m.toml").string());
  const ModelSpec b = load_model_spec((dir_ / "b/m.toml").string());
  ASSERT_NE(a.data.path, b.data.path);
  EXPECT_EQ(run_id(a), run_id(b));
  std::ofstream(dir_ / "b/data/iris_setosa_versicolor.csv", std::ios::app) << "\n";
  EXPECT_NE(run_id(a), run_id(load_model_spec((dir_ / "b/m.toml").string())));
}

TEST_F(SweepPlanTest, ProductBeyondTheRunLimitIsRefusedBeforeItIsFormed) {
  // 3 x 2 = 6 runs: within a limit of 6, refused under 5 with both factors and the limit named.
  const std::string six = write("six.toml", "base = \"model.toml\"\nseeds = 3\n[grid]\n\"network.init_scale\" = [0.1, 0.2]\n");
  EXPECT_EQ(read_sweep_plan(six, {}, 6).runs.size(), 6u);
  try {
    read_sweep_plan(six, {}, 5);
    ADD_FAILURE() << "6 runs accepted under a limit of 5";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("(2 x 3) expand to more than 5 runs"), std::string::npos) << e.what();
  }
  // Four lists of 100 values: 1e8 runs, refused at once under the default limit (forming the
  // product would need tens of gigabytes); the seed count alone is bounded by the same limit.
  std::string list = "[";
  for (int i = 1; i <= 100; ++i) list += std::to_string(i) + (i < 100 ? ", " : "]");
  const std::string huge = write("huge.toml", "base = \"model.toml\"\n[grid]\n\"network.seed\" = " + list +
                                                   "\n\"data.seed\" = " + list + "\n\"data.n\" = " + list +
                                                   "\n\"time.t_end\" = " + list + "\n");
  EXPECT_THROW(read_sweep_plan(huge), SpecError);
  EXPECT_THROW(read_sweep_plan(write("seeds.toml", "base = \"model.toml\"\nseeds = 1000001\n")), SpecError);
}

TEST_F(SweepPlanTest, BadFilesNameTheKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"base = \"model.toml\"\nbogus = 1\n", "bogus"},
      {"base = \"model.toml\"\n[grid]\n\"network.seed\" = []\n", "grid.\"network.seed\": empty list"},
      {"base = \"model.toml\"\n[grid]\n\"network.depth\" = [1]\n", "network.depth"},
      {"base = \"model.toml\"\n[grid]\n\"network.seed\" = 3\n", "expected a list"},
      {"base = \"model.toml\"\n[zip]\n\"network.seed\" = [1]\n\"data.n\" = [10, 20]\n", "zip.\"data.n\""},
      {"base = \"model.toml\"\nseeds = 0\n", "seeds"},
      {"base = \"model.toml\"\nseeds = [1.5]\n", "seeds"},
      {"base = \"missing.toml\"\nseeds = 2\n", "base"},
      {"base = \"model.toml\"\n", "varies nothing"},
      {"base = \"model.toml\"\n[grid]\n\"output.path\" = [\"a\"]\n", "output.path"},
      {"base = \"model.toml\"\n[[runs]]\n\"data.n\" = 10\n[[runs]]\n\"data.dim\" = 3\n", "runs[1]"},
      {"base = \"model.toml\"\n[grid]\n\"data.n\" = [10, -1]\n", "data.n"},
      {"base = \"model.toml\"\n[grid]\n\"output.flush_interval\" = [1.0, 2.0]\n", "same model"},
  };
  for (const auto& [text, expected] : cases) {
    try {
      read_sweep_plan(write("bad.toml", text));
      ADD_FAILURE() << "accepted: " << text;
    } catch (const SpecError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace gfsim
