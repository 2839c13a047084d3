// bench_spectrum MODEL.toml [--set k=v ...] [--routes stationary,kernels,spectra,dense] [--runs N]
//                [--dense-runs N] [--k K] [--direction FILE]
// The stationary-point spectrum benchmark of issue 5 (bench/spectrum_bench.py): for the fixed-rho
// flow of MODEL at flow.rho,
//   stationary: time to the stationary point (locate_stationary: flow phase + Riemannian Newton with
//               MINRES on Hessian products); the point is written to FILE (raw doubles) when given;
//               without this route the point is read from FILE;
//   kernels:    one Euclidean gradient, one Euclidean HVP, one Riemannian Hessian product, one
//               product with the tangent-space operator B^T Hess B (the Spectra operator);
//   spectra:    the K smallest and K largest tangent eigenvalues, Spectra matrix-free (the
//               operator and options of tangent_extreme_eigenvalues / analyse_stationary), N runs;
//   dense:      B^T Hess B by m = P - K products (tangent_hessian_matrix), then Eigen's
//               SelfAdjointEigenSolver (eigenvalues only), N runs (the agreement with Spectra is
//               computed by the driver from both outputs).
// Prints "key value" lines; peak_rss_kb is the process's (getrusage) at the end.
#include <fmt/format.h>
#include <sys/resource.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "gfsim/flow.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/run.hpp"
#include "gfsim/spectrum.hpp"
#include "gfsim/stationary.hpp"

using namespace gfsim;
using clk = std::chrono::steady_clock;

namespace {

double since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

template <class F>
double time_per_call(F&& f, double min_seconds = 0.3) {
  f();  // warm up
  long reps = 1;
  for (;;) {
    const auto t0 = clk::now();
    for (long i = 0; i < reps; ++i) f();
    const double dt = since(t0);
    if (dt >= min_seconds) return dt / double(reps);
    reps *= 2;
  }
}

double median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  const std::size_t n = x.size();
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

// Comma-separated; eigenvalues with all 17 digits (the driver compares them).
std::string join(const std::vector<double>& x, int digits = 6) {
  std::string s;
  for (std::size_t i = 0; i < x.size(); ++i) s += fmt::format("{}{:.{}g}", i ? "," : "", x[i], digits);
  return s;
}

std::string join(const Vec& x, int digits = 17) { return join(std::vector<double>(x.data(), x.data() + x.size()), digits); }

long peak_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;  // kilobytes on Linux
}

void write_direction(const std::string& path, const Vec& V) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(V.data()), std::streamsize(V.size() * sizeof(double)));
  if (!f) throw std::runtime_error("cannot write " + path);
}

Vec read_direction(const std::string& path, Index P) {
  Vec V(P);
  std::ifstream f(path, std::ios::binary);
  f.read(reinterpret_cast<char*>(V.data()), std::streamsize(P * sizeof(double)));
  if (!f || f.gcount() != std::streamsize(P * sizeof(double)))
    throw std::runtime_error(fmt::format("{}: expected {} doubles (the stationary route writes it)", path, P));
  return V;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: bench_spectrum MODEL.toml [--set key=value ...] [--routes r1,r2] [--runs N] "
                       "[--dense-runs N] [--k K] [--direction FILE]\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // line by line: a driver or a timeout sees the stages done
  std::vector<std::string> overrides;
  std::string routes = "stationary,kernels,spectra,dense", direction;
  int runs = 5, dense_runs = 1;
  Index k = 10;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--set") overrides.push_back(v);
    else if (a == "--routes") routes = v;
    else if (a == "--runs") runs = std::stoi(v);
    else if (a == "--dense-runs") dense_runs = std::stoi(v);
    else if (a == "--k") k = std::stol(v);
    else if (a == "--direction") direction = v;
    else {
      fmt::print(stderr, "bench_spectrum: unknown option {}\n", a);
      return 2;
    }
  }
  auto has = [&](const char* r) { return ("," + routes + ",").find(std::string(",") + r + ",") != std::string::npos; };

  const ModelSpec spec = load_model_spec(argv[1], overrides);
  configure_kernels(spec.solver.threads);
  const Dataset data = make_dataset(spec.data);
  Network net(network_widths(spec, data.dim()), spec.network.activation);
  Flow flow(net, data, spec.loss.kind, FlowKind::fixed_rho, spec.flow.rho);
  const SphereProblem sp(flow);
  const Index P = sp.dim(), m = sp.tangent_dim();
  fmt::print("threads {}\nP {}\ntangent_dim {}\nn {}\nrho {:.6g}\n", Eigen::nbThreads(), P, m, data.n(), sp.rho());

  // The stationary point.
  Vec V;
  if (has("stationary")) {
    // locate_stationary with the defaults of `gfsim stationary`, in its two phases (timed apart):
    // the flow phase (no Newton step), then the Newton polish from its end point (no flow).
    StationaryOptions flow_only, newton_only;
    flow_only.max_newton = 0;
    newton_only.skip_flow = true;
    auto t0 = clk::now();
    const StationaryResult f = locate_stationary(flow, flow.initial_state(initial_weights(spec, net)), flow_only);
    const double flow_wall = since(t0);
    fmt::print("flow_seconds {:.6g}\nflow_status {}\nflow_steps {}\nflow_grad_rel {:.3g}\n", flow_wall, f.flow_status,
               f.flow_steps, f.flow_grad / f.loss_scale);  // before Newton: a run cut off by a timeout shows the stage
    t0 = clk::now();
    const StationaryResult r = locate_stationary(flow, f.V, newton_only);
    const double newton_wall = since(t0);
    long inner = 0;
    for (int it : r.inner_iterations) inner += it;
    fmt::print("newton_seconds {:.6g}\nstationary_seconds {:.6g}\n", newton_wall, flow_wall + newton_wall);
    fmt::print("newton_iterations {}\nnewton_converged {}\nminres_iterations {}\nnewton_hvps {}\n",
               r.inner_iterations.size(), r.newton_converged ? 1 : 0, inner, r.newton_hvps);
    fmt::print("newton_minres_per_step {}\n",
               join(std::vector<double>(r.inner_iterations.begin(), r.inner_iterations.end())));
    fmt::print("newton_grad_rel {}\n", join(Vec(Eigen::Map<const Vec>(r.grad_norms.data(), Index(r.grad_norms.size())) /
                                               r.loss_scale), 3));
    fmt::print("log_loss {:.10g}\nmargin {:.10g}\n", r.log_loss, r.margin);
    V = r.V;
    if (!direction.empty()) write_direction(direction, V);
  } else {
    if (direction.empty()) throw std::runtime_error("without the stationary route --direction FILE is required");
    V = read_direction(direction, P);
  }
  fmt::print("grad_rel {:.3g}\n", sp.gradient(V).norm() / sp.loss_scale(V));

  const TangentBasis B(net, V);
  SymOperator op{m, [&](const double* in, double* out) {
                   Eigen::Map<Vec>(out, m) = B.apply_transpose(sp.hessian(V, B.apply(Eigen::Map<const Vec>(in, m))));
                 }};

  if (has("kernels")) {
    const Vec x = sp.project(V, Vec::Ones(P) / std::sqrt(double(P)));
    const Vec y = B.apply_transpose(x);
    Vec out(m);
    Vec dy;
    fmt::print("rhs_seconds {:.6g}\n", time_per_call([&] { flow.rhs(V, 0.0, dy); }));
    fmt::print("diagnostics_seconds {:.6g}\n", time_per_call([&] { (void)flow.diagnostics(V); }));
    fmt::print("gradient_seconds {:.6g}\n", time_per_call([&] { (void)sp.euclidean_gradient(V); }));
    fmt::print("hvp_seconds {:.6g}\n", time_per_call([&] { (void)sp.euclidean_hvp(V, x); }));
    fmt::print("riemannian_hvp_seconds {:.6g}\n", time_per_call([&] { (void)sp.hessian(V, x); }));
    fmt::print("tangent_op_seconds {:.6g}\n", time_per_call([&] { op.apply(y.data(), out.data()); }));
  }

  // Spectra, matrix-free: the options of analyse_stationary (spectra_tol 1e-12, automatic low end).
  if (has("spectra")) {
    ExtremeEigs sparse;
    std::vector<double> walls;
    for (int i = 0; i < runs; ++i) {
      const auto t0 = clk::now();
      sparse = extreme_eigenvalues(op, k, {.tol = StationaryOptions{}.spectra_tol});
      walls.push_back(since(t0));
    }
    // Residuals ||Hess x - lambda x|| of the returned pairs (2k further products, not timed).
    double res = 0;
    const double scale = std::max(sparse.largest.cwiseAbs().maxCoeff(), sparse.smallest.cwiseAbs().maxCoeff());
    for (Index j = 0; j < sparse.smallest.size(); ++j) {
      Vec hx(m);
      op.apply(sparse.smallest_vectors.col(j).data(), hx.data());
      res = std::max(res, (hx - sparse.smallest[j] * sparse.smallest_vectors.col(j)).norm() / scale);
    }
    for (Index j = 0; j < sparse.largest.size(); ++j) {
      Vec hx(m);
      op.apply(sparse.largest_vectors.col(j).data(), hx.data());
      res = std::max(res, (hx - sparse.largest[j] * sparse.largest_vectors.col(j)).norm() / scale);
    }
    fmt::print("spectra_seconds {:.6g}\nspectra_seconds_all {}\nspectra_runs {}\n", median(walls), join(walls), runs);
    fmt::print("spectra_hvps {}\nspectra_inner_solves {}\nspectra_shift_invert {}\n", sparse.matvecs,
               sparse.inner_solves, sparse.used_shift_invert ? 1 : 0);
    fmt::print("spectra_info {} {}\nspectra_iterations {} {}\n", sparse.info_smallest, sparse.info_largest,
               sparse.iterations_smallest, sparse.iterations_largest);
    // The flipped Lanczos alone (lambda_max I - H, one product per step; the first stage of the
    // automatic low end): what the shift-invert stage costs on top (one run).
    const auto t0 = clk::now();
    const ExtremeEigs flip =
        extreme_eigenvalues(op, k, {.tol = StationaryOptions{}.spectra_tol, .smallest = SmallestMethod::flip});
    fmt::print("flip_seconds {:.6g}\nflip_hvps {}\nflip_info {}\nflip_smallest {}\n", since(t0), flip.matvecs,
               flip.info_smallest, join(flip.smallest));
    fmt::print("spectra_smallest {}\nspectra_largest {}\nspectra_max_rel_residual {:.3g}\n", join(sparse.smallest),
               join(sparse.largest), res);
  }

  if (has("dense")) {
    std::vector<double> assemble, eig;
    Vec lam;
    for (int i = 0; i < dense_runs; ++i) {
      auto t0 = clk::now();
      Mat Ht = tangent_hessian_matrix(sp, V);
      assemble.push_back(since(t0));
      t0 = clk::now();
      lam = Eigen::SelfAdjointEigenSolver<Mat>(Ht, Eigen::EigenvaluesOnly).eigenvalues();
      eig.push_back(since(t0));
    }
    const double lmax = lam.cwiseAbs().maxCoeff();
    fmt::print("dense_assemble_seconds {:.6g}\ndense_eig_seconds {:.6g}\ndense_runs {}\n", median(assemble),
               median(eig), dense_runs);
    fmt::print("dense_assemble_all {}\ndense_eig_all {}\n", join(assemble), join(eig));
    fmt::print("dense_smallest {}\ndense_largest {}\n", join(Vec(lam.head(k))), join(Vec(lam.tail(k))));
    // Multiplicities that shape the low end: zeros and the largest block of equal eigenvalues.
    Index zeros = 0, block = 1, run = 1;
    double block_value = lam[0];
    for (Index i = 0; i < lam.size(); ++i) {
      if (std::abs(lam[i]) <= 1e-8 * lmax) ++zeros;
      if (i > 0) {
        run = std::abs(lam[i] - lam[i - 1]) <= 1e-8 * lmax ? run + 1 : 1;
        if (run > block) block = run, block_value = lam[i];
      }
    }
    fmt::print("dense_zero_count {}\ndense_largest_block {}\ndense_largest_block_value {:.10g}\n", zeros, block,
               block_value);
    fmt::print("dense_lambda_min_nonzero {:.10g}\n", [&] {
      for (Index i = 0; i < lam.size(); ++i)
        if (lam[i] > 1e-8 * lmax) return lam[i];
      return std::nan("");
    }());
  }
  fmt::print("peak_rss_kb {}\n", peak_rss_kb());
  return 0;
}
