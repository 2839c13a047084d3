// gd_polar: the gd flow written in the polar coordinates W_k = rho_k V_k (equations.md section 3):
// the same trajectory as gd, with dV_k/dt = (rho/rho_k^2) (G_k - c_k V_k).
#include "polar.hpp"

namespace gfsim {
namespace {

class GradientDescentPolar final : public flows::PolarFlow {
 protected:
  const char* name() const override { return "gd_polar"; }
  double rate(double rho, double rho_k) const override { return rho / (rho_k * rho_k); }
  double rate_tangent(double rho, double rho_k, double drho, double drho_k) const override {
    const double r2 = rho_k * rho_k;
    return drho / r2 - 2.0 * rho * drho_k / (r2 * rho_k);
  }
};

}  // namespace

std::unique_ptr<FlowKindModel> make_gd_polar_flow(const FlowSpec&) { return std::make_unique<GradientDescentPolar>(); }

}  // namespace gfsim
