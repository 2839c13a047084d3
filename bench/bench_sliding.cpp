// bench_sliding MODEL.toml MIN_SLIDING [--set k=v ...]: the cost of one sliding field evaluation
// against one smooth one (issue 14: "at most about 3x the smooth field on the same net"). Integrates
// the model with kink events (its solver, its clock) until MIN_SLIDING entries slide at the end of
// an accepted step (one that does not end on an event: the step monitor's), then times at that state, alternating between it and the state moved along
// its field by 1e-6 |y| (a stage of a small step: each call pays its passes and the sliding solve,
// which memoises its last state, moves its masks from the other state's):
//   smooth_seconds   Flow::rhs with the pattern's masks, no sliding solve (the field between events)
//   sliding_seconds  KinkPattern::rhs: the Filippov field with the equivalent control (warm start)
//   events_seconds   all event functions at the state (the check after every step; here with a
//                    sliding solve for the masks, which along a run comes from the step's last stage)
// Prints "key value" lines.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "gfsim/flow.hpp"
#include "gfsim/flow_problem.hpp"
#include "gfsim/integrate.hpp"
#include "gfsim/kink_pattern.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/run.hpp"

using namespace gfsim;

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: bench_sliding MODEL.toml MIN_SLIDING [--set key=value ...]\n");
    return 2;
  }
  const std::size_t min_sliding = std::stoul(argv[2]);
  const ModelSpec spec = load_model_spec(argv[1], bench::set_overrides(argc, argv, 3));
  configure_kernels(spec.solver.threads);
  const Dataset data = make_dataset(spec.data);
  Network net = flow_network(spec, data.dim());
  Flow flow(net, data, spec.loss.kind, spec.flow);
  const Vec y0 = flow.initial_state(initial_weights(spec, net));
  KinkPattern pattern(flow);
  const OdeProblem p = to_event_problem(pattern, y0, nullptr);
  const SolverOptions o = resolve_solver(spec);
  double t_hit = -1;
  auto monitor = [&](double t, const Vec&, const SolverCounters&) -> std::optional<Status> {
    if (pattern.sliding().size() < min_sliding) return std::nullopt;
    t_hit = t;
    return Status::wall_clock;  // any stop: the state is the step's end
  };
  const SolveResult r = integrate(p, y0, {0.0, spec.time.t_end}, o, [](auto, auto, const auto&) {}, monitor);
  if (t_hit < 0) {
    fmt::print(stderr, "bench_sliding: never {} entries sliding at a step's end (run ended: {})\n", min_sliding,
               r.message);
    return 1;
  }
  const Clock clock{o.clock};
  const TimePoint tp = clock.at(clock.tau(t_hit));
  const Vec y = r.y_final;
  Vec F;
  pattern.rhs(tp, y, F);
  const Vec yb = y + (1e-6 * y.norm() / std::max(F.norm(), 1e-300)) * F;
  bool flip = false;
  auto alternate = [&flip](const Vec& a, const Vec& b) -> const Vec& { return (flip = !flip) ? b : a; };
  fmt::print("t {:.9g}\nsliding_entries {}\nstate_size {}\npoints {}\n", t_hit, pattern.sliding().size(),
             flow.state_size(), flow.num_points());
  Vec dy, g;
  const double sliding = bench::time_per_call([&] { pattern.rhs(tp, alternate(y, yb), dy); });
  const double smooth = bench::time_per_call([&] { flow.rhs(tp, alternate(y, yb), dy); });
  const double events = bench::time_per_call([&] { pattern.event_values(tp, alternate(y, yb), g); });
  fmt::print("smooth_seconds {:.6g}\nsliding_seconds {:.6g}\nevents_seconds {:.6g}\nsliding_over_smooth {:.3f}\n",
             smooth, sliding, events, sliding / smooth);
  return 0;
}
