#pragma once
// Running a sweep plan (sweep_plan.hpp): each run is a `gfsim run` process of this same binary
// writing DIR/<id>.h5; at most `jobs` run at once, each with one kernel thread. After every run
// the index (sweep_index.hpp) is rewritten atomically. Runs whose file is complete (has /solver)
// are skipped, so re-running an interrupted sweep does only what is missing; run processes die
// with the sweep (PR_SET_PDEATHSIG), so a killed sweep leaves no orphan writing a file.
//
//   SweepPlan plan = read_sweep_plan("sweep.toml");
//   SweepSummary s = run_sweep(plan, {.out_dir = "out", .jobs = 2});
#include <atomic>
#include <cstddef>
#include <map>
#include <string>

#include "gfsim/sweep_plan.hpp"

namespace gfsim {

struct SweepOptions {
  std::string out_dir = ".";
  int jobs = 1;
  int shard_index = 0;  ///< --shard i/N: this job runs the runs r with r % N == i
  int shard_count = 1;
  bool progress = false;  ///< a \r progress line on stderr
  std::string executable;  ///< the gfsim binary the runs start (default: /proc/self/exe)
  const std::atomic<bool>* stop_requested = nullptr;  ///< stop starting runs, interrupt running ones
};

struct SweepSummary {
  std::size_t runs = 0;      ///< runs of this shard
  std::size_t skipped = 0;   ///< found complete and not run again
  std::size_t ran = 0;       ///< run now
  std::map<std::string, std::size_t> by_status;  ///< final status of every run of the shard
  double seconds = 0;
  std::string index_stem;    ///< DIR/index or DIR/index_shard<i>of<N>
  bool interrupted = false;
  bool all_success() const { return by_status.size() == 1 && by_status.count("success") == 1; }
};

/// `--shard i/N` -> (i, N); SpecError naming --shard unless 0 <= i < N.
std::pair<int, int> parse_shard(const std::string& text);

/// Runs the plan's runs of this shard. IoError if DIR cannot be created or the index written.
SweepSummary run_sweep(const SweepPlan& plan, const SweepOptions& options);

}  // namespace gfsim
