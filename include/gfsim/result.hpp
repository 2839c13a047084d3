#pragma once
// The outcome of an integration is data: a status whose text is the user message, plus counters.
#include <string>
#include <string_view>

#include "gfsim/types.hpp"

namespace gfsim {

enum class Status {
  success,          ///< reached t_end
  converged,        ///< the caller's monitor ended the run at its goal (a steady state) before t_end
  max_steps,        ///< the step-attempt limit was reached before t_end
  wall_clock,       ///< the wall-clock limit was exceeded
  non_finite,       ///< the state or the error estimate became NaN/Inf
  step_collapse,    ///< the step size fell below round-off relative to t
  stalled_at_kink,  ///< ReLU flow: steps collapsed at a kink surface (pre-activation = 0)
  interrupted,      ///< SIGINT/SIGTERM received; samples so far are on disk
  solver_failure,   ///< the underlying solver reported an error (message has the detail)
};

/// Short machine name ("success", "max_steps", ...), stored in files.
std::string_view status_name(Status s);
/// Exit code of `gfsim run` for this status: 0 success or converged, 1 otherwise.
inline int exit_code(Status s) { return s == Status::success || s == Status::converged ? 0 : 1; }

struct SolverCounters {
  std::int64_t steps = 0;           ///< step attempts (accepted + rejected)
  std::int64_t accepted = 0;
  std::int64_t rejected = 0;
  std::int64_t rhs_evals = 0;
  std::int64_t jacobian_evals = 0;
  std::int64_t jvp_evals = 0;       ///< Jacobian-vector products (matrix-free solvers)
  std::int64_t lu_decompositions = 0;
  std::int64_t events = 0;          ///< kink events located (event-driven ReLU integration)
  std::int64_t sliding_entries = 0; ///< Filippov sliding modes entered
  std::int64_t discontinuities = 0; ///< stepper restarts at known discontinuities of the field
  /// Stepper restarts without an event, where the steps collapsed against the round-off of the
  /// clock far from the stepper's time origin: the origin moves there (Stepper::reanchor).
  std::int64_t reanchors = 0;
  double wall_seconds = 0.0;
};

struct SolveResult {
  Status status = Status::success;
  std::string message;  ///< one line for the user; names the cause (and the kink) on failure
  SolverCounters counters;
  double t_final = 0.0;  ///< physical time reached
  Vec y_final;           ///< state at t_final
  std::string method;    ///< stepper actually used (after "auto" resolution)
  std::string clock;     ///< "t" or "log"
};

}  // namespace gfsim
