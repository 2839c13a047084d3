// Numerical hazards of the data (issue 18 item 6, docs/reliability.md): duplicate points, a point at
// the origin, all points on one kink surface, features of size 1e150 and 1e-150, one class only,
// n = 1, dim = 1. Each either runs to a result checked against mathematics (a time rescaling, an
// exact solution, a conserved quantity) with every recorded number finite, or is refused with a
// SpecError naming the file position or the keys (exit 2 in gfsim).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "gfsim/build.hpp"
#include "gfsim/errors.hpp"
#include "gfsim/hdf5_file.hpp"
#include "gfsim/run.hpp"

namespace gfsim {
namespace {

namespace fs = std::filesystem;

struct Sample {
  double t;
  Vec theta;
};

struct Outcome {
  RunReport report;
  std::vector<Sample> samples;
};

class DataHazards : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("gfsim_hazards_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }

  /// The spec of a run on CSV `data` with initial weights `init` (one number per line); `model`
  /// holds further [network] keys, then optionally other sections (defaults: linear K = 1, exp
  /// loss, gd flow).
  ModelSpec spec(const std::string& data, const std::string& init, const std::string& model, double t_end) {
    const std::string tag = std::to_string(count_++);
    const std::string toml = "[data]\nkind = \"csv\"\npath = \"" + write("d" + tag + ".csv", data) +
                             "\"\n[network]\ninit_file = \"" + write("w" + tag + ".txt", init) + "\"\n" + model +
                             "\n[solver]\nrtol = 1e-10\natol = 1e-14\nclock = \"t\"\nmax_wall_seconds = 60\n"
                             "[time]\nt_end = " + std::to_string(t_end) + "\nt_first = 1e-2\n"
                             "samples_per_decade = 5\n[output]\npath = \"" + (dir_ / ("o" + tag + ".h5")).string() +
                             "\"\n";
    return parse_model_spec(toml, (dir_ / "model.toml").string());
  }

  /// Runs `s`; requires status success and that every number the file records is finite.
  Outcome run(const ModelSpec& s) {
    Outcome out;
    RunOptions options;
    options.on_sample = [&out](double t, const Vec& theta, const Vec&, double) { out.samples.push_back({t, theta}); };
    out.report = run_model(s, options);
    EXPECT_EQ(out.report.result.status, Status::success) << out.report.result.message;
    const h5::File file = h5::File::open(s.output.path, h5::Access::read_only);
    for (const char* name : {"theta", "direction", "rho", "log_loss", "margin", "grad_norm", "balance"}) {
      const std::vector<double> values = file.open_dataset(std::string("observables/") + name + "/value").read_doubles();
      EXPECT_FALSE(values.empty()) << name;
      for (const double v : values) EXPECT_TRUE(std::isfinite(v)) << name << " holds " << v;
    }
    for (const double v : file.open_dataset("final/theta").read_doubles()) EXPECT_TRUE(std::isfinite(v));
    return out;
  }

  fs::path dir_;
  int count_ = 0;
};

std::string spec_error(const std::function<void()>& action) {
  try {
    action();
  } catch (const SpecError& error) {
    return error.what();
  }
  return "no SpecError";
}

const char* const kReluNet = "activation = \"relu\"\nhidden = [2]\n[loss]\nkind = \"logistic\"\n";
// theta layout W_1 (2 x 2, row-major) then W_2 (1 x 2).
const char* const kReluInit = "0.8\n-0.3\n0.4\n0.9\n0.7\n-0.6\n";
const char* const kPoints = "1,1.0,0.5\n-1,-0.4,-1.0\n1,0.3,1.5\n-1,-1.2,0.2\n";

// Every point twice doubles the loss: L_2(w) = 2 L(w), so w_2(t) = w(2t) exactly. The ReLU net meets
// each kink crossing of the duplicated points simultaneously.
TEST_F(DataHazards, DuplicatePointsAreTheSameFlowAtTwiceTheTime) {
  const std::string twice = std::string(kPoints) + kPoints;
  for (const auto& [net, init] : {std::pair{"", "0.2\n-0.1\n"}, std::pair{kReluNet, kReluInit}}) {
    const Outcome once = run(spec(kPoints, init, net, 20.0));
    const Outcome doubled = run(spec(twice, init, net, 10.0));
    const Vec& a = once.samples.back().theta;
    const Vec& b = doubled.samples.back().theta;
    EXPECT_LT((a - b).norm(), 1e-7 * a.norm()) << net << "\n" << a.transpose() << "\n" << b.transpose();
  }
}

// z = y x = 0 contributes the constant e^0 = 1 to the exp loss and nothing to its gradient (for the
// ReLU net every pre-activation of the origin is 0 and ReLU'(0) = 0): the same trajectory as without
// it, and a loss larger by exactly 1.
TEST_F(DataHazards, PointAtTheOriginLeavesTheFlowAndAddsOneToTheLoss) {
  const std::string with_origin = std::string(kPoints) + "1,0,0\n";
  const std::string relu_exp = "activation = \"relu\"\nhidden = [2]\n";
  for (const auto& [net, init] : {std::pair{std::string(), "0.2\n-0.1\n"},
                                  std::pair{std::string("[flow]\nkind = \"wn\"\n"), "0.2\n-0.1\n"},
                                  std::pair{relu_exp, kReluInit}}) {
    const Outcome without = run(spec(kPoints, init, net, 10.0));
    const Outcome with = run(spec(with_origin, init, net, 10.0));
    const Vec& a = without.samples.back().theta;
    const Vec& b = with.samples.back().theta;
    EXPECT_LT((a - b).norm(), 1e-7 * a.norm()) << net;
    const double loss_without = std::exp(without.report.final.log_loss);
    const double loss_with = std::exp(with.report.final.log_loss);
    EXPECT_NEAR(loss_with - loss_without, 1.0, 1e-7) << net;
  }
}

// Every point on the kink surface of hidden unit 1 (x_1 = 0 and W_1 row 1 = (1, 0)): its
// pre-activations are 0 on all points. With kinks = "ignore" (ReLU'(0) = 0) neither its incoming
// weights nor its outgoing weight get a gradient: the unit stays exactly where it started while
// unit 2 learns. With kinks = "events" the Filippov solution leaves the surfaces on the side that
// lowers the loss: h_n = W_12 x_n2 takes the sign of y_n (all z_n = y_n x_n have z_n2 > 0), and
// W_11 stays 1 since no point has a component along x_1.
TEST_F(DataHazards, AllPointsOnOneKinkSurface) {
  const std::string on_surface = "1,0,1.0\n-1,0,-1.0\n1,0,2.0\n-1,0,-0.5\n";
  const std::string init = "1\n0\n0.4\n0.9\n0.7\n-0.6\n";
  const Outcome ignored = run(spec(on_surface, init, std::string(kReluNet) + "[dynamics]\nkinks = \"ignore\"\n", 10.0));
  const Vec& frozen = ignored.samples.back().theta;
  EXPECT_EQ(frozen[0], 1.0);
  EXPECT_EQ(frozen[1], 0.0);
  EXPECT_EQ(frozen[4], 0.7);
  EXPECT_GT(std::abs(frozen[5] + 0.6), 1e-3);  // unit 2 moved
  const Outcome events = run(spec(on_surface, init, kReluNet, 10.0));
  for (const Sample& s : events.samples) EXPECT_EQ(s.theta[0], 1.0) << "t = " << s.t;
  const Vec& left = events.samples.back().theta;
  EXPECT_GT(left[1], 0.0);
  EXPECT_GT(left[4], 0.7);  // the outgoing weight of the unit now active on the y = +1 points grew
}

TEST_F(DataHazards, HugeFeaturesAreRefusedAtTheirFilePosition) {
  const std::string message = spec_error([&] { run_model(spec("1,1,2\n-1,-1e150,3\n", "0.2\n-0.1\n", "", 1.0)); });
  EXPECT_NE(message.find(".csv:2:4: feature \"-1e150\" has magnitude above 1e+100"), std::string::npos) << message;
  const std::string margin = spec_error([&] {
    ModelSpec s;
    s.data.margin = 1e150;
    make_dataset(s);
  });
  EXPECT_NE(margin.find("margin = 1e+150: must be <= 5e+99"), std::string::npos) << margin;
}

// Features of 1e5 are allowed, but with weights of order one the exp loss of the misclassified
// points overflows (e^{1e4}): refused before integrating, naming the keys that set the margins.
TEST_F(DataHazards, LossOverflowAtTheStartIsRefusedNamingTheKeys) {
  const std::string message =
      spec_error([&] { run_model(spec("1,1e5,2e5\n-1,-1e5,3e5\n", "0.2\n0.1\n", "", 1.0)); });
  EXPECT_NE(message.find("the flow is not finite at t = 0"), std::string::npos) << message;
  EXPECT_NE(message.find("loss.kind = \"exp\", network.init_file = "), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir_ / "o0.h5"));
}

// Features of 1e-150 and weights of 1e-150: margins of 1e-300 leave every exp(-u) = 1 in double,
// so the exp-loss gradient flow is w(t) = w(0) + t sum_n z_n exactly.
TEST_F(DataHazards, TinyFeaturesFollowTheLinearizedFlow) {
  const std::string tiny = "1,1e-150,2e-150\n-1,-1e-150,3e-151\n1,5e-151,1e-150\n";
  const Outcome out = run(spec(tiny, "1e-150\n-2e-150\n", "", 10.0));
  Vec z_sum(2);
  z_sum << 1e-150 + 1e-150 + 5e-151, 2e-150 - 3e-151 + 1e-150;
  Vec w0(2);
  w0 << 1e-150, -2e-150;
  for (const Sample& s : out.samples) {
    const Vec expected = w0 + s.t * z_sum;
    EXPECT_LT((s.theta - expected).norm(), 1e-8 * expected.norm()) << "t = " << s.t;
  }
}

// One class (y = +1 everywhere), points in the x_1-x_2 plane: the K = 1 gradient flow moves w only
// inside span{z_n}, so w_3 is conserved, and the loss decreases along the trajectory.
TEST_F(DataHazards, OneClassOnlyConservesTheComponentOutsideTheData) {
  const std::string one_class = "1,1.0,0.5,0\n1,0.3,1.5,0\n1,-0.2,0.8,0\n";
  const Outcome out = run(spec(one_class, "0.1\n-0.2\n0.3\n", "", 100.0));
  double previous_loss = INFINITY;
  Mat Z(3, 3);
  Z << 1.0, 0.5, 0, 0.3, 1.5, 0, -0.2, 0.8, 0;
  for (const Sample& s : out.samples) {
    EXPECT_EQ(s.theta[2], 0.3);
    const double loss = (-(Z * s.theta)).array().exp().sum();
    EXPECT_LE(loss, previous_loss * (1 + 1e-12));
    previous_loss = loss;
  }
  EXPECT_GT(out.report.final.margin, 0.0);
  // The ReLU net on one class runs too (every number finite, checked by run()).
  run(spec(one_class, "0.8\n-0.3\n0.1\n0.4\n0.9\n-0.2\n0.7\n-0.6\n", kReluNet, 10.0));
}

// n = 1, dim = 1: z = y x = -2, q = w z obeys dq/dt = z^2 e^{-q}, so q(t) = log(e^{q0} + z^2 t)
// (equations.md section 4). Also dim = 1 with several points through a ReLU layer.
TEST_F(DataHazards, OnePointInOneDimensionFollowsTheExactSolution) {
  const Outcome out = run(spec("-1,2\n", "0.3\n", "", 1000.0));
  const double z = -2.0, q0 = 0.3 * z;
  for (const Sample& s : out.samples) {
    const double q = std::log(std::exp(q0) + z * z * s.t);
    EXPECT_NEAR(s.theta[0] * z, q, 1e-8 * std::max(1.0, std::abs(q))) << "t = " << s.t;
  }
  run(spec("-1,2\n", "0.3\n", "[flow]\nkind = \"wn\"\n", 1000.0));
  run(spec("1,0.5\n-1,-1\n1,2\n-1,-0.3\n", "0.8\n-0.3\n0.7\n-0.6\n", kReluNet, 10.0));
}

}  // namespace
}  // namespace gfsim
