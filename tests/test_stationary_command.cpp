// `gfsim stationary`: the rho sweep with continuation, its HDF5 file, the GD comparison (gfsim/stationary_command.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <unistd.h>
#include "gfsim/dataset.hpp"
#include "gfsim/hdf5_file.hpp"
#include "gfsim/max_margin.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/stationary.hpp"
#include "gfsim/stationary_command.hpp"
#include "stationary_test_util.hpp"

namespace gfsim {
namespace {

TEST(StationaryCommand, ModelToFile) {
  const std::string toml = R"(
[data]
kind = "gaussian"
n = 30
dim = 3
[network]
activation = "linear"
hidden = [3]
init_scale = 0.5
[flow]
rho = 2.0
)";
  const auto dir = std::filesystem::temp_directory_path() / "gfsim_test_stationary";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "stat.h5").string();
  const ModelSpec spec = parse_model_spec(toml, "stat.toml");
  StationaryCliOptions o;
  o.output = path;
  o.rho_sweep = "1:4:3";
  const StationaryReport rep = stationary_model(spec, o);
  ASSERT_EQ(rep.sweep.size(), 3u);
  EXPECT_NEAR(rep.sweep[1].rho, 2.0, 1e-12);
  for (const auto& p : rep.sweep) EXPECT_EQ(p.n_zero, 2) << p.rho;
  auto file = h5::File::open(path, h5::Access::read_only);
  EXPECT_EQ(file.string_attr("file_type"), "gfsim-stationary");
  auto g = file.open_group("stationary");
  EXPECT_EQ(g.string_attr("verdict"), rep.result.verdict);
  EXPECT_NEAR(g.double_attr("rho"), 4.0, 1e-12);
  EXPECT_EQ(g.open_dataset("eigenvalues").read_doubles().size(), std::size_t(rep.P - rep.K));
  EXPECT_EQ(g.open_dataset("sweep/rho").read_doubles().size(), 3u);
  EXPECT_EQ(g.int64_array_attr("inertia").size(), 3u);
  EXPECT_EQ(g.open_dataset("sweep/direction").read_doubles().size(), std::size_t(3 * rep.P));
}

// rho continuation (each rho starts from the previous stationary point) reproduces independent
// cold-start solves at the same rho values; K = 1: the minimizer is unique (strictly convex on the
// sphere's relevant cap), so directions must agree to Newton accuracy, and they approach the
// max-margin direction as rho grows.
TEST(StationaryCommand, ContinuationReproducesColdStarts) {
  const std::string toml = R"(
[data]
kind = "gaussian"
n = 40
dim = 4
margin = 0.2
[network]
activation = "linear"
[flow]
rho = 2.0
)";
  const ModelSpec spec = parse_model_spec(toml, "cont.toml");
  const auto dir = std::filesystem::temp_directory_path() / ("gfsim_test_cont_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  StationaryCliOptions o;
  o.output = (dir / "cont.h5").string();
  o.rho_sweep = "1:64:4";
  const StationaryReport rep = stationary_model(spec, o);
  ASSERT_EQ(rep.sweep.size(), 4u);
  const Dataset data = make_dataset(spec.data);
  Network net({4, 1}, Activation::linear);
  double previous_gap = 2.0;
  const Vec v_star = max_margin(data.signed_points()).direction;
  for (const auto& p : rep.sweep) {
    Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, p.rho);
    const StationaryResult cold = find_stationary(flow, test::random_direction(net, 5), {});
    ASSERT_TRUE(cold.newton_converged) << p.rho;
    EXPECT_LT((cold.V - p.direction).norm(), 1e-10) << p.rho;
    const double gap = (p.direction - v_star).norm();
    EXPECT_LT(gap, previous_gap) << p.rho;  // tends to the max-margin direction
    previous_gap = gap;
    EXPECT_TRUE(std::isfinite(p.gd_distance)) << p.rho;  // the gd run passed this rho
  }
  // Lemma 3: the gradient flow's direction at rho(t) = rho approaches the fixed-rho optimum.
  EXPECT_LT(rep.sweep.back().gd_distance, rep.sweep.front().gd_distance);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gfsim
