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
#include <vector>

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

/// Executors elsewhere (MPI ranks, src/mpi/sweep_mpi.cpp): the scheduler hands them runs as it
/// starts local processes, and records what they report. Each reports the wait status of its
/// `gfsim run` process (waitpid), so a remote run is judged exactly like a local one.
class RemoteRunners {
 public:
  struct Finished {
    std::size_t run = 0;   ///< index into plan.runs
    int wait_status = 0;   ///< as from waitpid
    double seconds = 0;    ///< wall time of the run process
  };
  virtual ~RemoteRunners() = default;
  virtual std::size_t idle() = 0;                 ///< runners ready for a run now
  virtual void start(std::size_t run) = 0;        ///< hands plan.runs[run] to an idle runner
  virtual std::vector<Finished> poll() = 0;       ///< runs finished since the last poll (no wait)
  virtual void shut_down() = 0;                   ///< no more runs: release every runner
};

/// An incomplete run file a sweep continues with `gfsim run --resume` instead of starting over
/// (docs/sweeps.md, "What counts as intact"): a gfsim trajectory file of a supported format
/// version, no /solver group, no writer holding its lock, at least one complete sample after t = 0,
/// and a stored resolved model equal to `spec` (output keys aside).
bool resumable_run_file(const std::string& file, const ModelSpec& spec);

/// Starts `gfsim run` for one run of the plan as a child process (stdout to /dev/null, stderr to
/// `log`, dying with its parent); `single_thread` adds solver.threads=1 and OMP_NUM_THREADS=1.
/// A resumable_run_file is continued with `gfsim run --resume FILE` instead of run from t = 0.
int start_run_process(const std::string& exe, const SweepPlan& plan, const SweepRun& run, const std::string& file,
                      const std::string& log, bool single_thread);

/// The file of run `run` of the plan: DIR/<id>.h5.
std::string sweep_run_file(const SweepPlan& plan, std::size_t run, const std::string& out_dir);

/// `--shard i/N` -> (i, N); SpecError naming --shard unless 0 <= i < N.
std::pair<int, int> parse_shard(const std::string& text);

/// Runs the plan's runs of this shard: `options.jobs` local processes at once, plus `remote`
/// runners when given. IoError if DIR cannot be created or the index written.
SweepSummary run_sweep(const SweepPlan& plan, const SweepOptions& options, RemoteRunners* remote = nullptr);

}  // namespace gfsim
