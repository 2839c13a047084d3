// Machine names of solver statuses, as stored in the /solver/@status attribute of output files.
#include "gfsim/result.hpp"

namespace gfsim {

std::string_view status_name(Status s) {
  switch (s) {
    case Status::success: return "success";
    case Status::converged: return "converged";
    case Status::max_steps: return "max_steps";
    case Status::wall_clock: return "wall_clock";
    case Status::non_finite: return "non_finite";
    case Status::step_collapse: return "step_collapse";
    case Status::stalled_at_kink: return "stalled_at_kink";
    case Status::interrupted: return "interrupted";
    case Status::solver_failure: return "solver_failure";
  }
  return "unknown";  // only for a value cast from outside the enum
}

}  // namespace gfsim
