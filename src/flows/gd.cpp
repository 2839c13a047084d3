// gd: dW/dt = -grad L(W) on the weights themselves, state y = theta (equations.md section 3).
#include "gfsim/flow.hpp"
#include "weight_state.hpp"

namespace gfsim {
namespace {

class GradientDescent final : public flows::WeightState {
 public:
  void field(const Flow& flow, TimePoint tp, const Vec& y, Vec& dy) const override {
    dy.resize(y.size());
    flow.loss_descent(y, 1.0, tp.log_scale, dy);  // -e^{log_scale} dL/dtheta
  }
  void field_tangent(const Flow& flow, TimePoint tp, const Vec& y, const Vec& v, Vec& jv) const override {
    jv.resize(y.size());
    flow.loss_descent_tangent(y, v, 1.0, std::nullopt, tp.log_scale, nullptr, jv);
  }
  bool dense_jacobian(const Flow& flow, TimePoint tp, const Vec& y, Mat& J) const override {
    if (flow.num_layers() != 1) return false;
    flow.linear_loss_curvature(y, tp.log_scale, J);  // J = -e^{log_scale} Hessian of L
    return true;
  }
  double screening_gain(const Network& net, TimePoint, const Vec& y) const override {
    return output_gradient_bound(net.layer_norms(y));  // F = G
  }
  LayerResponse layer_response(const Network&, TimePoint, const Vec&, Index) const override { return {}; }
};

}  // namespace

std::unique_ptr<FlowKindModel> make_gd_flow(const FlowSpec&) { return std::make_unique<GradientDescent>(); }

}  // namespace gfsim
