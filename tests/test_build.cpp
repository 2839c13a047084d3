// The build layer: spec values -> objects (widths, weights, flows, solver options), key-naming
// errors, and the memory estimate against the sizes of the objects a run actually allocates.
#include "gfsim/build.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <filesystem>
#include <fstream>
#include <string>

#include "gfsim/memory_estimate.hpp"

namespace gfsim {
namespace {

namespace fs = std::filesystem;

std::string spec_error(const std::function<void()>& action) {
  try {
    action();
  } catch (const SpecError& error) {
    return error.what();
  }
  return "no SpecError";
}

ModelSpec relu_spec() {
  ModelSpec spec;
  spec.data.n = 30;
  spec.data.dim = 4;
  spec.data.bias = true;
  spec.network.activation = Activation::relu;
  spec.network.hidden = {6, 5};
  return spec;
}

class BuildFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("gfsim_build_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const fs::path path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }
  fs::path dir_;
};

TEST(Build, WidthsFromDataAndHidden) {
  const ModelSpec spec = relu_spec();
  const Dataset data = make_dataset(spec);
  EXPECT_EQ(data.dim(), 5);  // dim + the bias feature
  EXPECT_EQ(network_widths(spec, data.dim()), (std::vector<Index>{5, 6, 5, 1}));
  EXPECT_EQ(flow_network(spec, data.dim()).num_params(), 5 * 6 + 6 * 5 + 5);
}

TEST(Build, SmoothKinksOnlyInTheFlowNetwork) {
  ModelSpec spec = relu_spec();
  spec.dynamics.kinks = KinkMode::smooth;
  spec.dynamics.kink_width = 1e-2;
  EXPECT_EQ(flow_network(spec, 5).kink_width(), 1e-2);
  EXPECT_EQ(exact_network(spec, 5).kink_width(), 0.0);
  spec.dynamics.kinks = KinkMode::events;
  EXPECT_EQ(flow_network(spec, 5).kink_width(), 0.0);
}

TEST(Build, RandomWeightsScaleWithInitScaleAndFanIn) {
  ModelSpec spec = relu_spec();
  const Network net = flow_network(spec, 5);
  const Vec base = initial_weights(spec, net);
  spec.network.init_scale = 0.3;
  EXPECT_TRUE(initial_weights(spec, net).isApprox(3.0 * base, 1e-15));
  spec.network.init_scale = 0.0;
  EXPECT_TRUE(initial_weights(spec, net).isZero(0.0));
  // Each layer's entries are N(0, init_scale^2 / fan_in): the mean square over the 30 + 30 + 5
  // entries is near 0.1^2 / fan_in, weighted by layer size, far from the unscaled value 0.01.
  double expected = 0, actual = 0;
  for (Index k = 0; k < net.num_layers(); ++k) {
    expected += double(net.layer_size(k)) * 0.01 / double(net.layer_cols(k));
    actual += base.segment(net.layer_offset(k), net.layer_size(k)).squaredNorm();
  }
  EXPECT_NEAR(actual / expected, 1.0, 0.5);
}

TEST_F(BuildFiles, InitFileIsThetaInOrder) {
  ModelSpec spec;  // linear, dim 5: P = 5
  spec.network.init_file = write("theta.txt", "# theta\n1\n-2\n3.5\n\n4\n5e-1\n");
  const Network net = flow_network(spec, 5);
  EXPECT_EQ(initial_weights(spec, net), (Vec(5) << 1, -2, 3.5, 4, 0.5).finished());
}

TEST_F(BuildFiles, InitFileErrorsNameFileLineColumnAndCount) {
  ModelSpec spec;
  const Network net = flow_network(spec, 5);
  spec.network.init_file = write("bad.txt", "1\n2\n  x\n");
  EXPECT_EQ(spec_error([&] { initial_weights(spec, net); }), spec.network.init_file + ":3:3: \"x\" is not a number");
  spec.network.init_file = write("short.txt", "1\n2\n");
  EXPECT_EQ(spec_error([&] { initial_weights(spec, net); }),
            spec.network.init_file +
                ": 2 numbers, the network 5-1 linear has P = 5 parameters (theta layout: W_1..W_K, each row-major)");
  spec.network.init_file = (dir_ / "none.txt").string();
  EXPECT_EQ(spec_error([&] { initial_weights(spec, net); }),
            spec.network.init_file + ": cannot read network.init_file: No such file or directory");
}

TEST(Build, PolarFlowFromZeroWeightsNamesTheKeys) {
  ModelSpec spec = relu_spec();
  spec.flow.kind = FlowKind::wn;
  spec.network.init_scale = 0.0;
  const Dataset data = make_dataset(spec);
  const Network net = flow_network(spec, data.dim());
  const Flow flow = make_flow(spec, net, data);
  const std::string message = spec_error([&] { initial_state(spec, flow, initial_weights(spec, net)); });
  EXPECT_NE(message.find("flow.kind = \"wn\""), std::string::npos) << message;
  EXPECT_NE(message.find("network.init_scale"), std::string::npos) << message;
}

TEST(Build, PolarInitialStateIsNormsAndDirections) {
  ModelSpec spec = relu_spec();
  spec.flow.kind = FlowKind::gd_polar;
  const Dataset data = make_dataset(spec);
  const Network net = flow_network(spec, data.dim());
  const Flow flow = make_flow(spec, net, data);
  const Vec theta0 = initial_weights(spec, net);
  const Vec y0 = initial_state(spec, flow, theta0);
  EXPECT_TRUE(y0.head(3).isApprox(net.layer_norms(theta0), 1e-15));
  EXPECT_TRUE(flow.theta(y0).isApprox(theta0, 1e-14));
}

// The start check evaluates the field at t = 0: a time-dependent kind (nm, lambda(t)) is built
// like every other, and its field there is -grad L - lambda(0) W, for the linear model and for the
// smoothed ReLU net (nm integrates it: its field needs no homogeneity).
TEST(Build, TimeDependentFlowStartsAtTimeZero) {
  ModelSpec linear;
  ModelSpec smoothed = relu_spec();
  smoothed.dynamics.kinks = KinkMode::smooth;
  for (ModelSpec spec : {linear, smoothed}) {
    spec.flow.kind = FlowKind{"nm"};
    spec.flow.lambda0 = 0.5;
    const Dataset data = make_dataset(spec);
    const Network net = flow_network(spec, data.dim());
    const Flow flow = make_flow(spec, net, data);
    const Vec theta0 = initial_weights(spec, net);
    const Vec y0 = initial_state(spec, flow, theta0);
    Vec nm(flow.state_size());
    flow.rhs(TimePoint{0.0, 0.0}, y0, nm);
    ModelSpec gd_spec = spec;
    gd_spec.flow.kind = FlowKind::gd;
    const Flow gd = make_flow(gd_spec, net, data);
    Vec grad(gd.state_size());
    gd.rhs(y0, 0.0, grad);
    EXPECT_GT(grad.norm(), 0.0);
    EXPECT_TRUE(nm.isApprox(grad - 0.5 * theta0, 1e-14));
  }
}

TEST(Build, SolverAutoChoices) {
  ModelSpec spec;
  spec.time.t_end = 1e3;
  EXPECT_EQ(resolve_solver(spec).clock, ClockKind::t);
  spec.time.t_end = 1e3 * (1 + 1e-15);
  EXPECT_EQ(resolve_solver(spec).clock, ClockKind::log);
  EXPECT_EQ(resolve_solver(spec).method, Method::cvode);
  spec = relu_spec();
  EXPECT_EQ(resolve_solver(spec).method, Method::dopri5);  // kink events restart the integrator
  spec.dynamics.kinks = KinkMode::smooth;
  EXPECT_EQ(resolve_solver(spec).method, Method::cvode);
  spec.solver.method = Method::rkf78;
  spec.solver.rtol = 1e-6;
  EXPECT_EQ(resolve_solver(spec).method, Method::rkf78);
  EXPECT_EQ(resolve_solver(spec).rtol, 1e-6);
}

// ---- memory estimate ---------------------------------------------------------------------------

double matrix_bytes(const std::vector<Mat>& matrices) {
  double bytes = 0;
  for (const Mat& m : matrices) bytes += double(m.size()) * sizeof(double);
  return bytes;
}

TEST(MemoryEstimate, CoversTheAllocatedObjectsOfASmallRun) {
  ModelSpec spec = relu_spec();  // events: the frozen pattern is part of the workspace
  const Dataset data = make_dataset(spec);
  const Network net = flow_network(spec, data.dim());
  const SolverOptions solver = resolve_solver(spec);
  const MemoryEstimate estimate = estimate_memory(spec, solver, data.n(), data.dim());

  // Data: the set itself and two more n x d0 copies (the flow's transpose, the output copy).
  const double data_bytes = double(data.X.size() + data.y.size()) * sizeof(double);
  EXPECT_GE(estimate.part("data matrix").bytes, 3 * double(data.X.size()) * sizeof(double));
  EXPECT_LE(estimate.part("data matrix").bytes, 3 * data_bytes);

  // Network: every workspace matrix after a forward pass, its tangent and the tangent backprop
  // (what a Jacobian-vector product needs), plus the activation pattern of an event run.
  Network::Workspace ws;
  const Vec theta = initial_weights(spec, net), dtheta = Vec::Ones(net.num_params());
  const Mat XT = data.X.transpose();
  const Vec a = Vec::Ones(data.n());
  Vec grad(net.num_params()), dgrad(net.num_params());
  net.forward(theta, XT, ws);
  net.forward_tangent(theta, dtheta, XT, ws);
  net.backward_tangent(theta, dtheta, a, a, XT, ws, grad, dgrad);
  double workspace = matrix_bytes(ws.pre) + matrix_bytes(ws.post) + matrix_bytes(ws.mask) + matrix_bytes(ws.curv) +
                     matrix_bytes(ws.dpre) + matrix_bytes(ws.dpost) + matrix_bytes(ws.delta) +
                     matrix_bytes(ws.ddelta) + double(ws.f.size() + ws.df.size()) * sizeof(double);
  for (const Mat& h : ws.post) workspace += double(h.size()) * sizeof(double);  // pattern: d_k x n per hidden layer
  workspace += 4 * double(data.n()) * sizeof(double);                          // u, a, da, du
  const double network_estimate = estimate.part("network workspace").bytes;
  EXPECT_GE(network_estimate, workspace);
  EXPECT_LE(network_estimate, 1.5 * workspace);

  // dopri5 on P = 65 parameters: a few dozen state vectors, no matrix.
  const double state_bytes = double(net.num_params()) * sizeof(double);
  EXPECT_GE(estimate.part("solver").bytes, 7 * state_bytes);  // the seven Dormand-Prince stages
  EXPECT_LE(estimate.part("solver").bytes, 30 * state_bytes);
}

TEST(MemoryEstimate, DenseJacobianSolversAreQuadraticKrylovLinear) {
  ModelSpec spec;
  spec.data.n = 10;
  spec.solver.method = Method::rosenbrock4;
  const auto solver_bytes = [&](Index dim) {
    spec.data.dim = int(dim);
    return estimate_memory(spec, resolve_solver(spec), 10, dim).part("solver").bytes;
  };
  // rosenbrock4: the P x P Jacobian, its copy for odeint and the LU.
  const Mat jacobian(300, 300);
  EXPECT_GE(solver_bytes(300), 3 * double(jacobian.size()) * sizeof(double));
  EXPECT_NEAR(solver_bytes(600) / solver_bytes(300), 4.0, 0.1);
  spec.solver.method = Method::cvode;  // dense up to kCvodeDenseMaxSize state components
  EXPECT_NEAR(solver_bytes(400) / solver_bytes(200), 4.0, 0.3);
  EXPECT_LT(solver_bytes(401), solver_bytes(400) / 4);  // Krylov: O(P)
  EXPECT_NEAR(solver_bytes(802) / solver_bytes(401), 2.0, 0.1);
}

TEST(MemoryEstimate, LimitsNameTheKeys) {
  ModelSpec spec;
  spec.solver.max_memory = 1000;
  const MemoryEstimate estimate = estimate_memory(spec, resolve_solver(spec), 100, 5);
  std::string message = spec_error([&] { check_memory(spec, estimate, std::nullopt); });
  EXPECT_NE(message.find("more than solver.max_memory = 1000"), std::string::npos) << message;
  EXPECT_NE(message.find("data.n = 100, data.dim = 5"), std::string::npos) << message;
  spec.solver.max_memory = 0;
  EXPECT_NO_THROW(check_memory(spec, estimate, std::nullopt));
  message = spec_error([&] { check_memory(spec, estimate, 1000.0); });
  EXPECT_NE(message.find("available (MemAvailable in /proc/meminfo)"), std::string::npos) << message;
  EXPECT_NO_THROW(check_memory(spec, estimate, 1e12));
}

TEST(MemoryEstimate, ImpossibleDataRefusedBeforeAllocating) {
  ModelSpec spec;
  spec.data.n = 100000000;
  spec.data.dim = 3000;
  const auto start = std::chrono::steady_clock::now();
  const std::string message = spec_error([&] { make_dataset(spec); });
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 1.0);
  EXPECT_NE(message.find("memory: the run needs about 7.2 TB"), std::string::npos) << message;
  EXPECT_NE(message.find("data matrix 7.2 TB (set by data.n = 100000000, data.dim = 3000)"), std::string::npos)
      << message;
}

}  // namespace
}  // namespace gfsim
