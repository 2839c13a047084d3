// MPI driver of `gfsim sweep` (sweep_mpi.hpp). Only this file includes mpi.h; it is compiled
// when CMake's GFSIM_MPI is ON. Protocol, one message kind per tag, all from the main thread:
//   worker -> 0, kReport: double[3] {plan run index or -1 (first message), wait status, seconds}
//   0 -> worker, kRun: int64 plan run index;   0 -> worker, kStop: no payload.
#include "gfsim/sweep_mpi.hpp"

#include <mpi.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <deque>

namespace gfsim {

namespace {

constexpr int kReport = 1, kRun = 2, kStop = 3;

class MpiRunners : public RemoteRunners {
 public:
  explicit MpiRunners(int size) : workers_(size - 1) {}

  std::size_t idle() override {
    receive();
    return idle_.size();
  }
  void start(std::size_t run) override {
    const int rank = idle_.front();
    idle_.pop_front();
    const std::int64_t index = std::int64_t(run);
    MPI_Send(&index, 1, MPI_INT64_T, rank, kRun, MPI_COMM_WORLD);
  }
  std::vector<Finished> poll() override {
    receive();
    std::vector<Finished> out;
    out.swap(finished_);
    return out;
  }
  void shut_down() override {
    while (stopped_ < workers_) {  // every worker reports once more (ready), then gets kStop
      receive();
      while (!idle_.empty()) {
        MPI_Send(nullptr, 0, MPI_BYTE, idle_.front(), kStop, MPI_COMM_WORLD);
        idle_.pop_front();
        ++stopped_;
      }
    }
  }

 private:
  void receive() {
    for (;;) {
      int flag = 0;
      MPI_Status status;
      MPI_Iprobe(MPI_ANY_SOURCE, kReport, MPI_COMM_WORLD, &flag, &status);
      if (!flag) return;
      double report[3];
      MPI_Recv(report, 3, MPI_DOUBLE, status.MPI_SOURCE, kReport, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      if (report[0] >= 0) finished_.push_back({std::size_t(report[0]), int(report[1]), report[2]});
      idle_.push_back(status.MPI_SOURCE);
    }
  }
  int workers_;
  int stopped_ = 0;
  std::deque<int> idle_;
  std::vector<Finished> finished_;
};

/// A worker rank: report ready, run what rank 0 sends, report its wait status, until kStop.
void work(const SweepPlan& plan, const SweepOptions& options) {
  const std::string exe = options.executable.empty() ? "/proc/self/exe" : options.executable;
  double report[3] = {-1, 0, 0};
  for (;;) {
    MPI_Send(report, 3, MPI_DOUBLE, 0, kReport, MPI_COMM_WORLD);
    MPI_Status status;
    MPI_Probe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &status);
    if (status.MPI_TAG == kStop) {
      MPI_Recv(nullptr, 0, MPI_BYTE, 0, kStop, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      return;
    }
    std::int64_t run = 0;
    MPI_Recv(&run, 1, MPI_INT64_T, 0, kRun, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    const auto begin = std::chrono::steady_clock::now();
    const std::string file = sweep_run_file(plan, std::size_t(run), options.out_dir);
    const int pid = start_run_process(exe, plan, plan.runs[std::size_t(run)], file,
                                      file.substr(0, file.size() - 3) + ".log", true);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    report[0] = double(run);
    report[1] = double(wstatus);
    report[2] = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  }
}

}  // namespace

bool started_by_mpirun() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* size = std::getenv(name)) return std::atoi(size) > 1;
  return false;
}

SweepSummary run_sweep_mpi(const SweepPlan& plan, const SweepOptions& options, int* rank_out) {
  MPI_Init(nullptr, nullptr);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank_out) *rank_out = rank;
  SweepSummary summary;
  if (rank == 0) {
    MpiRunners runners(size);
    summary = run_sweep(plan, options, &runners);
  } else {
    work(plan, options);
  }
  MPI_Finalize();
  return summary;
}

}  // namespace gfsim
