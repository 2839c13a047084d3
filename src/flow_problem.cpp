#include "gfsim/flow_problem.hpp"

#include <fmt/format.h>

#include <cmath>

namespace gfsim {

OdeProblem to_ode_problem(const Flow& flow) {
  OdeProblem p;
  p.size = flow.state_size();
  p.rhs = [&flow](const Vec& y, double log_scale, Vec& dy) { flow.rhs(y, log_scale, dy); };
  p.jacobian = [&flow](const Vec& y, double log_scale, Mat& J) { flow.jacobian(y, log_scale, J); };
  p.jvp = [&flow](const Vec& y, double log_scale, const Vec& v, Vec& jv) { flow.jvp(y, log_scale, v, jv); };
  p.explain_stall = [&flow](const Vec& y, bool& at_kink) -> std::string {
    const auto kink = flow.nearest_kink(y);
    if (kink.layer < 0) return {};
    // A pre-activation this close to zero, relative to the size of the pre-activations, means the
    // state sits on a kink surface where the right-hand side is discontinuous.
    const Vec theta = flow.theta(y);
    const double scale = flow.network().layer_norms(theta).prod();
    at_kink = std::abs(kink.preactivation) <= 1e-6 * std::max(scale, 1e-300);
    return fmt::format("{}pre-activation of layer {} unit {} at data point {} is {:.3g} (ReLU kink; "
                       "integrate across kinks with dynamics.kinks = \"events\")",
                       at_kink ? "" : "no kink reached; nearest ", kink.layer, kink.unit, kink.point,
                       kink.preactivation);
  };
  return p;
}

}  // namespace gfsim
