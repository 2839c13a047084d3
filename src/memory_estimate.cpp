// Memory estimate of a run (memory_estimate.hpp): sizes of the large objects, from the model.
#include "gfsim/memory_estimate.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "gfsim/cvode_solver.hpp"
#include "gfsim/errors.hpp"

namespace gfsim {
namespace {

constexpr double kDouble = sizeof(double);

bool is_stiff_dense(const SolverOptions& solver, double state_size) {
  return solver.method == Method::rosenbrock4 ||
         (solver.method == Method::cvode && state_size <= double(kCvodeDenseMaxSize));
}

}  // namespace

double MemoryEstimate::total() const {
  double sum = 0;
  for (const MemoryPart& p : parts) sum += p.bytes;
  return sum;
}

const MemoryPart& MemoryEstimate::part(const std::string& name) const {
  for (const MemoryPart& p : parts)
    if (p.name == name) return p;
  throw std::out_of_range("MemoryEstimate: no part " + name);
}

MemoryEstimate estimate_memory(const ModelSpec& spec, const SolverOptions& solver, Index n_points, Index d0) {
  // Sizes as doubles: an impossible model (n d0 > 2^63) must still be measured, not overflow.
  const double n = double(n_points), d = double(d0);
  double hidden_units = 0, params = 0, previous = d;
  for (int width : spec.network.hidden) {
    hidden_units += width;
    params += previous * width;
    previous = width;
  }
  params += previous;  // output layer W_K: 1 x d_{K-1}
  const double K = double(spec.network.hidden.size()) + 1;
  const bool polar = spec.flow.kind == FlowKind::gd_polar || spec.flow.kind == FlowKind::wn;
  const double state = params + (polar ? K : 0);
  const bool relu = spec.network.activation == Activation::relu && !spec.network.hidden.empty();
  const bool events = relu && spec.dynamics.kinks == KinkMode::events;
  const bool smooth = relu && spec.dynamics.kinks == KinkMode::smooth;

  const std::string data_keys = spec.data.kind == DataKind::csv
                                    ? fmt::format("data.path = \"{}\"", spec.data.path)
                                    : fmt::format("data.n = {}, data.dim = {}", spec.data.n, spec.data.dim);
  const std::string hidden_key = fmt::format("network.hidden = [{}]", fmt::join(spec.network.hidden, ", "));
  MemoryEstimate estimate;
  // The points: the data set (n x d0) and labels, the flow's transpose, the row-major output copy.
  estimate.parts.push_back({"data matrix", kDouble * (3 * n * d + 2 * n),
                            data_keys});
  // Per point and hidden unit: H, A, s'(H), dH, dA, delta, d delta (+ s'' smoothed; + the frozen
  // pattern and all event values with events). Output layer: H, dH, delta, d delta. Per point: f,
  // df and the loss margins/weights u, a, da, du.
  const double per_hidden_unit = 7 + (smooth ? 1 : 0) + (events ? 2 : 0);
  double per_point = per_hidden_unit * hidden_units + 4 + 6;
  if (spec.network.hidden.empty() && is_stiff_dense(solver, state)) per_point += std::min(d, 256.0);  // K = 1 Jacobian block
  estimate.parts.push_back({"network workspace", kDouble * n * per_point,
                            fmt::format("data.n = {}, {}", n_points, hidden_key)});
  // The stepper: explicit Runge-Kutta stages and bookkeeping (rkf78 has 13 stages).
  double solver_doubles = 24 * state;
  if (solver.method == Method::rosenbrock4) solver_doubles += 3 * state * state;
  if (solver.method == Method::cvode) {
    solver_doubles = state <= double(kCvodeDenseMaxSize) ? 4 * state * state + 25 * state
                                                         : (kCvodeKrylovDim + 1 + 25) * state +
                                                               double(kCvodeKrylovDim + 1) * kCvodeKrylovDim;
  }
  estimate.parts.push_back({"solver", kDouble * solver_doubles, fmt::format("solver.method = \"{}\", {}", to_string(solver.method), hidden_key)});
  // Screening: the kept points' copy (at most all of them), |x_n|, the margins and the index lists.
  if (spec.solver.screening)
    estimate.parts.push_back({"screening", kDouble * (n * d + 7 * n), "solver.screening = true"});
  // Outputs: a chunk (<= 64 KiB) per observable, the initial and final weights, the labels.
  estimate.parts.push_back({"outputs", kDouble * (4 * params + n) + 8 * 65536.0, hidden_key});
  return estimate;
}

std::optional<double> available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    if (!line.starts_with("MemAvailable:")) continue;
    std::istringstream fields(line.substr(13));
    double kib = 0;
    std::string unit;
    if (fields >> kib >> unit && unit == "kB") return kib * 1024;
  }
  return std::nullopt;
}

std::string format_bytes(double bytes) {
  constexpr std::array<const char*, 6> kUnits{"B", "kB", "MB", "GB", "TB", "PB"};
  std::size_t unit = 0;
  while (bytes >= 1000 && unit + 1 < kUnits.size()) {
    bytes /= 1000;
    ++unit;
  }
  return fmt::format("{:.1f} {}", bytes, kUnits[unit]);
}

void check_memory(const ModelSpec& spec, const MemoryEstimate& estimate, std::optional<double> available) {
  const double limit_key = double(spec.solver.max_memory);
  const double total = estimate.total();
  std::string limit;
  if (limit_key > 0 && total > limit_key)
    limit = fmt::format("solver.max_memory = {}", spec.solver.max_memory);
  else if (available && total > *available)
    limit = fmt::format("the {} available (MemAvailable in /proc/meminfo)", format_bytes(*available));
  if (limit.empty()) return;
  std::vector<MemoryPart> parts = estimate.parts;
  std::sort(parts.begin(), parts.end(), [](const MemoryPart& a, const MemoryPart& b) { return a.bytes > b.bytes; });
  std::string breakdown;
  for (const MemoryPart& p : parts)
    if (p.bytes >= 0.01 * total)
      breakdown += fmt::format("{}{} {} (set by {})", breakdown.empty() ? "" : "; ", p.name, format_bytes(p.bytes), p.keys);
  throw SpecError(fmt::format("memory: the run needs about {}, more than {}: {}", format_bytes(total), limit, breakdown));
}

}  // namespace gfsim
