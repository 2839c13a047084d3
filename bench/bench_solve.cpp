// bench_solve MODEL.toml RUNS [--set k=v ...]: integrates the model's flow RUNS times in one
// process (same data, initial point, output times and resolved solver as `gfsim run`, but no
// recording) and prints "key value" lines: the median and minimum wall time of one solve, the
// first (cold) solve, and the counters. This is how the scipy baselines are timed (repeated solves
// in one interpreter), so the two compare warm to warm; `gfsim run` times one cold solve per
// process (the first touch of every fresh page costs ~25 us on the benchmark VM).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
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
  if (argc < 3) {
    fmt::print(stderr, "usage: bench_solve MODEL.toml RUNS [--set key=value ...]\n");
    return 2;
  }
  const int runs = std::max(1, std::stoi(argv[2]));
  const ModelSpec spec = load_model_spec(argv[1], bench::set_overrides(argc, argv, 3));
  configure_kernels(spec.solver.threads);
  const Dataset data = make_dataset(spec.data);
  Network net = flow_network(spec, data.dim());
  Flow flow(net, data, spec.loss.kind, spec.flow.kind, spec.flow.rho);
  const Vec y0 = flow.initial_state(initial_weights(spec, net));
  const SolverOptions o = resolve_solver(spec);
  const bool events = flow.num_preactivations() > 0 && spec.dynamics.kinks == KinkMode::events;
  const auto times = log_spaced_times(spec.time.t_first, spec.time.t_end, spec.time.samples_per_decade);
  std::vector<double> walls;
  SolveResult r;
  for (int k = 0; k < runs; ++k) {
    KinkPattern pattern(flow);
    const OdeProblem p = events ? to_event_problem(pattern, y0) : to_ode_problem(flow);
    // solver.screening: every solve starts with all points (enable_screening forgets the kept set).
    if (spec.solver.screening) flow.enable_screening(kScreeningFraction * o.atol);
    const auto t0 = std::chrono::steady_clock::now();
    r = integrate(p, y0, times, o, [](std::int64_t, double, const Vec&) {});
    walls.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double first = walls.front();
  std::sort(walls.begin(), walls.end());
  fmt::print("status {}\nmethod {}\nruns {}\nmedian_seconds {:.6g}\nmin_seconds {:.6g}\nfirst_seconds {:.6g}\n",
             status_name(r.status), r.method, runs, walls[walls.size() / 2], walls.front(), first);
  if (spec.solver.screening)
  {
    // Of the last solve (enable_screening resets the counters).
    const ScreeningState sc = flow.screening_state();
    fmt::print("kept_points {}\nscreens {}\nscreens_by_bound {}\nkept_work {:.4g}\n", sc.kept, sc.screens,
               sc.screens_by_bound, sc.evaluations ? sc.kept_work / double(sc.evaluations) : 1.0);
  }
  fmt::print("rhs_evals {}\njacobian_evals {}\nlu_decompositions {}\nsteps {}\n", r.counters.rhs_evals,
             r.counters.jacobian_evals, r.counters.lu_decompositions, r.counters.steps);
  return r.status == Status::success ? 0 : 1;
}
