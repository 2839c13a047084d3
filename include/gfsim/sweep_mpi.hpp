#pragma once
// `gfsim sweep` under mpirun (built with -DGFSIM_MPI=ON; src/mpi/sweep_mpi.cpp). Rank 0 runs the
// scheduler of sweep_runner.hpp, starts `--jobs` local run processes and hands runs to the other
// ranks one at a time as they become free (run times differ by orders of magnitude, so a static
// split would leave ranks idle); it alone writes the index. Every other rank starts one
// `gfsim run` process per run it is given, writing its own file, and reports the outcome.
// The run files must be on a file system rank 0 can read (the index rows are read from them).
#include "gfsim/sweep_runner.hpp"

namespace gfsim {

/// True when this process was started by mpirun with more than one rank.
bool started_by_mpirun();

/// The sweep on every rank (MPI_Init .. MPI_Finalize inside). Rank 0 returns the summary;
/// other ranks return an empty summary with runs == 0.
SweepSummary run_sweep_mpi(const SweepPlan& plan, const SweepOptions& options, int* rank);

}  // namespace gfsim
