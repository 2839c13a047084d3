#pragma once
// What the C++ benchmark drivers share: the model's --set overrides from the command line, and the
// median timing of a call.
#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace gfsim::bench {

/// The values of the `--set key=value` pairs from argv[first] on.
inline std::vector<std::string> set_overrides(int argc, char** argv, int first) {
  std::vector<std::string> overrides;
  for (int i = first; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--set") overrides.push_back(argv[i + 1]);
  return overrides;
}

/// Seconds per call of f: the median of 5 timings of >= min_seconds each (a single timing swung by
/// 40% on the shared VM), after one warm-up call.
template <class F>
double time_per_call(F&& f, double min_seconds = 0.1) {
  using clk = std::chrono::steady_clock;
  f();
  long reps = 1;
  std::vector<double> per_call;
  while (per_call.size() < 5) {
    const auto t0 = clk::now();
    for (long i = 0; i < reps; ++i) f();
    const double dt = std::chrono::duration<double>(clk::now() - t0).count();
    if (dt >= min_seconds)
      per_call.push_back(dt / double(reps));
    else
      reps *= 2;
  }
  std::sort(per_call.begin(), per_call.end());
  return per_call[2];
}

}  // namespace gfsim::bench
