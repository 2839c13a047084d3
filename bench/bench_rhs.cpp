// bench_rhs MODEL.toml [--set k=v ...] (solver.threads sets Eigen's thread count): times one right-hand side, one Jacobian-vector product and
// one dense Jacobian of the model's flow at its initial state and at a late state (log clock,
// s = log(1 + 1e12)), and the largest stable step of discrete gradient descent at the initial
// point (2 / lambda_max of the loss Hessian). Prints "key value" lines for bench/run_bench.py.
#include <fmt/format.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "gfsim/flow.hpp"
#include "gfsim/flow_problem.hpp"
#include "gfsim/integrate.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/run.hpp"

using namespace gfsim;

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: bench_rhs MODEL.toml [--set key=value ...]\n");
    return 2;
  }
  const ModelSpec spec = load_model_spec(argv[1], bench::set_overrides(argc, argv, 2));
  configure_kernels(spec.solver.threads);
  fmt::print("threads {}\n", Eigen::nbThreads());
  const Dataset data = make_dataset(spec.data);
  Network net = flow_network(spec, data.dim());
  Flow flow(net, data, spec.loss.kind, spec.flow.kind, spec.flow.rho);
  const Vec theta0 = initial_weights(spec, net);
  const Vec y0 = flow.initial_state(theta0);
  const Index n = flow.state_size();
  Vec dy(n), jv(n);
  const Vec v = Vec::Ones(n) / std::sqrt(double(n));
  Mat J;
  const double s_late = std::log1p(1e12);
  // Flow skips the forward pass at the weights of the previous call (flow.hpp): the kernels
  // alternate between two states so that every call pays it, except jvp_cached_seconds, the cost
  // of each further J v at one state (CVODE's Krylov iterations, Lanczos' Hessian products).
  const Vec y0b = y0 * (1.0 + 1e-13);
  bool flip = false;
  auto alternate = [&flip](const Vec& a, const Vec& b) -> const Vec& { return (flip = !flip) ? b : a; };
  fmt::print("state_size {}\n", n);
  fmt::print("rhs_seconds {:.6g}\n", bench::time_per_call([&] { flow.rhs(alternate(y0, y0b), s_late, dy); }));
  fmt::print("jvp_seconds {:.6g}\n", bench::time_per_call([&] { flow.jvp(alternate(y0, y0b), s_late, v, jv); }));
  fmt::print("jvp_cached_seconds {:.6g}\n", bench::time_per_call([&] { flow.jvp(y0, s_late, v, jv); }));
  if (n <= 2000) {
    // The cost of one RHS along the trajectory: at the state reached at time.t_end (the default
    // solver, log clock), where most loss weights are tiny. This is the RHS time of the floor.
    const SolverOptions o = resolve_solver(spec);
    const auto r = integrate(to_ode_problem(flow), y0, {0.0, spec.time.t_end}, o, [](auto, auto, const auto&) {});
    const double s_end = std::log1p(spec.time.t_end);
    const Vec yf = r.y_final, yfb = yf * (1.0 + 1e-13);
    fmt::print("rhs_seconds_final {:.6g}\n", bench::time_per_call([&] { flow.rhs(alternate(yf, yfb), s_end, dy); }));
  }
  if (n <= 2000) {
    fmt::print("jacobian_seconds {:.6g}\n", bench::time_per_call([&] { flow.jacobian(alternate(y0, y0b), s_late, J); }));
    Mat M = Mat::Random(n, n);
    fmt::print("lu_seconds {:.6g}\n", bench::time_per_call([&] { Eigen::PartialPivLU<Mat> lu(M); }));
    // Gradient descent theta <- theta - eta grad L is stable while eta < 2 / lambda_max(Hessian);
    // the Hessian is largest at the start (the loss only decreases).
    flow.jacobian(y0, 0.0, J);  // J = -Hessian of L for the gd flow
    Eigen::SelfAdjointEigenSolver<Mat> eig(-0.5 * (J + J.transpose()), Eigen::EigenvaluesOnly);
    const double lmax = eig.eigenvalues().maxCoeff();
    fmt::print("hessian_lambda_max {:.6g}\n", lmax);
    fmt::print("gd_max_stable_step {:.6g}\n", 2.0 / lmax);
    fmt::print("gd_step_seconds {:.6g}\n", bench::time_per_call([&] { flow.rhs(alternate(y0, y0b), 0.0, dy); }));
  }
  return 0;
}
