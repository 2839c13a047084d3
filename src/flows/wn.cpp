// wn: weight normalization (equations.md section 3), state (rho_k, V_k) with
// dV_k/dt = rho (G_k - c_k V_k), rho = prod rho_k.
#include "polar.hpp"

namespace gfsim {
namespace {

class WeightNormalization final : public flows::PolarFlow {
 protected:
  const char* name() const override { return "wn"; }
  double rate(double rho, double) const override { return rho; }
  double rate_tangent(double, double, double drho, double) const override { return drho; }
};

}  // namespace

std::unique_ptr<FlowKindModel> make_wn_flow(const FlowSpec&) { return std::make_unique<WeightNormalization>(); }

}  // namespace gfsim
