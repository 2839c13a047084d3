// The sweep scheduler (sweep_runner.hpp, docs/sweeps.md): a pool of `gfsim run` processes fed
// from a queue, woken by SIGCHLD (sigtimedwait), with the index rewritten after every run.
#include "gfsim/sweep_runner.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <sstream>

#include "gfsim/errors.hpp"
#include "gfsim/output_lock.hpp"
#include "gfsim/run_resume.hpp"
#include "gfsim/sweep_index.hpp"

namespace gfsim {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string self_executable() {
  std::error_code error;
  const fs::path exe = fs::read_symlink("/proc/self/exe", error);
  if (error) throw IoError(fmt::format("/proc/self/exe: cannot find the gfsim binary: {}", error.message()));
  return exe.string();
}

std::string clock_text(double seconds) {
  const long s = long(seconds + 0.5);
  return fmt::format("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

struct Running {
  std::size_t run = 0;  ///< index into plan.runs
  Clock::time_point start;
};

}  // namespace

bool resumable_run_file(const std::string& file, const ModelSpec& spec) {
  if (!fs::is_regular_file(file) || run_file_complete(file)) return false;
  try {
    const ResumePoint from = read_resume_point(file, {});
    if (from.t <= 0) return false;  // nothing gained over a fresh start
    ModelSpec stored = from.spec, planned = spec;
    planned.output = stored.output;  // the run file's path and flush settings are the sweep's choice
    planned.solver.threads = stored.solver.threads;  // set to 1 by --jobs
    return canonical_toml(stored) == canonical_toml(planned);  // every model key
  } catch (const std::exception&) {  // unreadable, foreign, locked, no complete sample: run afresh
    return false;
  }
}

int start_run_process(const std::string& exe, const SweepPlan& plan, const SweepRun& run, const std::string& file,
                      const std::string& log, bool single_thread) {
  std::vector<std::string> args = {exe, "run"};
  if (resumable_run_file(file, run.spec)) {
    args.insert(args.end(), {"--resume", file});
  } else {
    args.push_back(plan.base_path);
    for (const std::string& set : run.overrides) {
      args.push_back("--set");
      args.push_back(set);
    }
    args.insert(args.end(), {"-o", file});
  }
  if (single_thread) {
    args.push_back("--set");
    args.push_back("solver.threads=1");
  }
  args.push_back("--quiet");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  sigset_t none;  // the child starts with no signal blocked (the sweep blocks SIGCHLD)
  sigemptyset(&none);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw IoError(fmt::format("{}: cannot start a run process (fork): {}", file, std::strerror(errno)));
  if (pid == 0) {  // child: only async-signal-safe calls until exec
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // a killed sweep takes its runs with it
    if (getppid() != parent) _exit(127);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    const int null_fd = open("/dev/null", O_WRONLY);
    const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (null_fd >= 0) dup2(null_fd, STDOUT_FILENO);
    if (log_fd >= 0) dup2(log_fd, STDERR_FILENO);
    if (single_thread) setenv("OMP_NUM_THREADS", "1", 1);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

std::string sweep_run_file(const SweepPlan& plan, std::size_t run, const std::string& out_dir) {
  return (fs::path(out_dir) / (plan.runs[run].id + ".h5")).string();
}

std::pair<int, int> parse_shard(const std::string& text) {
  int i = -1, n = 0;
  char slash = 0, rest = 0;
  std::istringstream in(text);
  in >> i >> slash >> n;
  if (!in || slash != '/' || (in >> rest) || n < 1 || i < 0 || i >= n)
    throw SpecError(fmt::format("--shard {}: expected i/N with 0 <= i < N, e.g. --shard 0/4", text));
  return {i, n};
}

namespace {
// A run's log (its stderr) is kept only when it says something.
void remove_empty_log(const std::string& run_file) {
  std::error_code ignored;
  const std::string log = run_file.substr(0, run_file.size() - 3) + ".log";
  if (fs::file_size(log, ignored) == 0) fs::remove(log, ignored);
}

// A complete run's lock file left by a writer killed after its file was complete (SIGKILL leaves
// "<file>.lock" behind; the kernel released its lock): taking the lock and releasing it unlinks the
// file (output_lock.hpp). A lock another process holds is left alone.
void remove_stale_lock(const std::string& run_file) {
  std::error_code ignored;
  if (!fs::exists(run_file + ".lock", ignored)) return;
  try {
    OutputLock stale(run_file);
  } catch (const std::exception&) {
  }
}
}  // namespace

SweepSummary run_sweep(const SweepPlan& plan, const SweepOptions& options, RemoteRunners* remote) {
  if (options.jobs < 1) throw SpecError(fmt::format("--jobs {}: expected at least 1", options.jobs));
  const Clock::time_point begin = Clock::now();
  std::error_code error;
  fs::create_directories(options.out_dir, error);
  if (error) throw IoError(fmt::format("{}: cannot create the sweep directory: {}", options.out_dir, error.message()));
  const std::string exe = options.executable.empty() ? self_executable() : options.executable;

  SweepSummary summary;
  summary.index_stem = options.shard_count == 1
                           ? (fs::path(options.out_dir) / "index").string()
                           : (fs::path(options.out_dir) /
                              fmt::format("index_shard{}of{}", options.shard_index, options.shard_count))
                                 .string();
  Provenance provenance;
  provenance.file_type = "gfsim-sweep-index";
  provenance.model_toml = load_model_spec(plan.base_path).resolved_toml;  // the base model, no overrides
  provenance.model_name = fs::path(plan.sweep_path).stem().string();
  {
    std::ifstream sweep_file(plan.sweep_path);
    std::ostringstream text;
    text << sweep_file.rdbuf();
    provenance.string_attrs["sweep_toml"] = text.str();
  }
  provenance.string_attrs["base_model"] = plan.base_path;
  provenance.int_attrs["shard_index"] = options.shard_index;
  provenance.int_attrs["shard_count"] = options.shard_count;

  // Rows of this shard, in plan order; complete runs are read now and skipped.
  std::vector<std::size_t> mine;
  for (std::size_t r = 0; r < plan.runs.size(); ++r)
    if (int(r % std::size_t(options.shard_count)) == options.shard_index) mine.push_back(r);
  std::vector<SweepRow> rows(mine.size());
  std::deque<std::size_t> queue;  // positions in `mine`
  auto file_of = [&](std::size_t r) { return sweep_run_file(plan, r, options.out_dir); };
  auto fill = [&](std::size_t pos, SweepRow row) {
    row.id = plan.runs[mine[pos]].id;
    row.values = plan.runs[mine[pos]].values;
    rows[pos] = std::move(row);
  };
  for (std::size_t pos = 0; pos < mine.size(); ++pos) {
    if (run_file_complete(file_of(mine[pos]))) {
      // A run still in flight when its sweep was killed may have completed afterwards: its log and
      // its lock file too.
      remove_empty_log(file_of(mine[pos]));
      remove_stale_lock(file_of(mine[pos]));
      fill(pos, read_run_row(file_of(mine[pos])));
      ++summary.skipped;
    } else {
      SweepRow row;
      row.file = plan.runs[mine[pos]].id + ".h5";
      row.status = "pending";
      fill(pos, std::move(row));
      queue.push_back(pos);
    }
  }
  summary.runs = mine.size();
  provenance.int_attrs["runs"] = std::int64_t(mine.size());
  write_sweep_index(summary.index_stem, plan.varied_keys, rows, provenance);

  // SIGCHLD stays blocked in the sweep and is collected by sigtimedwait: no handler, no races.
  sigset_t chld, old_mask;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &old_mask);

  std::map<pid_t, Running> running;
  std::size_t remote_running = 0;
  std::map<std::size_t, std::size_t> position_of;  // plan index -> position in `mine`
  for (std::size_t pos = 0; pos < mine.size(); ++pos) position_of[mine[pos]] = pos;
  std::size_t done_now = 0, failed_now = 0;
  const std::size_t to_run = queue.size();
  auto progress = [&] {
    if (!options.progress) return;
    const double elapsed = std::chrono::duration<double>(Clock::now() - begin).count();
    const std::string left =
        done_now > 0 ? clock_text(elapsed / double(done_now) * double(to_run - done_now)) : std::string("?");
    fmt::print(stderr, "\rsweep: {}/{} done, {} failed, {} running, {} elapsed, ~{} left   ", done_now, to_run,
               failed_now, running.size() + remote_running, clock_text(elapsed), left);
    std::fflush(stderr);
  };
  // A finished run process (local or remote): its row is read from its file.
  auto record = [&](std::size_t pos, int wstatus, double seconds) {
    const std::string file = file_of(mine[pos]);
    SweepRow row = read_run_row(file);
    if (row.status == "missing" || row.status == "incomplete") {
      row.status = WIFSIGNALED(wstatus) ? "killed" : "failed";
      ++failed_now;
    } else {
      remove_empty_log(file);
    }
    row.numbers["process_seconds"] = seconds;
    fill(pos, std::move(row));
    ++done_now;
    ++summary.ran;
    write_sweep_index(summary.index_stem, plan.varied_keys, rows, provenance);
  };
  bool stopping = false;
  auto start_local_runs = [&] {
    while (!stopping && !queue.empty() && int(running.size()) < options.jobs) {
      const std::size_t pos = queue.front();
      queue.pop_front();
      const std::size_t r = mine[pos];
      const std::string file = file_of(r);
      const pid_t pid = start_run_process(exe, plan, plan.runs[r], file, file.substr(0, file.size() - 3) + ".log",
                                          options.jobs > 1 || remote != nullptr);
      running[pid] = Running{pos, Clock::now()};
      rows[pos].status = "running";
    }
  };
  while (!queue.empty() || !running.empty() || remote_running > 0) {
    if (!stopping && options.stop_requested && options.stop_requested->load()) {
      stopping = true;
      summary.interrupted = true;
      queue.clear();
      for (const auto& [pid, unused] : running) kill(pid, SIGTERM);  // runs stop cleanly, status interrupted
    }
    // Remote runners first: the local slots are the sweep's own cores.
    while (!stopping && remote && !queue.empty() && remote->idle() > 0) {
      const std::size_t pos = queue.front();
      queue.pop_front();
      remote->start(mine[pos]);
      rows[pos].status = "running";
      ++remote_running;
    }
    start_local_runs();
    progress();
    bool any = false;
    if (remote) {
      for (const RemoteRunners::Finished& f : remote->poll()) {
        --remote_running;
        record(position_of.at(f.run), f.wait_status, f.seconds);
        any = true;
      }
    }
    int wstatus = 0;
    const pid_t pid = waitpid(-1, &wstatus, WNOHANG);
    if (pid > 0) {
      const auto it = running.find(pid);
      if (it != running.end()) {
        const std::size_t pos = it->second.run;
        const double seconds = std::chrono::duration<double>(Clock::now() - it->second.start).count();
        running.erase(it);
        start_local_runs();  // the freed slot works while this run's row is read and the index rewritten
        record(pos, wstatus, seconds);
      }
      any = true;
    }
    if (!any) {  // sleep until a child exits (SIGCHLD) or, with remote runners, briefly
      const timespec timeout{0, remote ? 2'000'000L : 200'000'000L};
      sigtimedwait(&chld, nullptr, &timeout);
    }
  }
  if (remote) remote->shut_down();
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  if (options.progress) {
    progress();
    fmt::print(stderr, "\n");
  }
  for (const SweepRow& row : rows) ++summary.by_status[row.status];
  summary.seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  return summary;
}

}  // namespace gfsim
