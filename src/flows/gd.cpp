// gd: dW/dt = -grad L(W) on the weights themselves, state y = theta (equations.md section 3).
#include "gfsim/flow.hpp"

namespace gfsim {
namespace {

class GradientDescent final : public FlowKindModel {
 public:
  Index state_size(const Network& net) const override { return net.num_params(); }
  Vec initial_state(const Network&, const Vec& theta) const override { return theta; }
  Vec theta(const Network&, const Vec& y) const override { return y; }
  Vec theta_tangent(const Network&, const Vec&, const Vec& v) const override { return v; }
  Vec direction(const Network& net, const Vec& y) const override {
    Vec V = y;
    for (Index k = 0; k < net.num_layers(); ++k) {
      auto seg = V.segment(net.layer_offset(k), net.layer_size(k));
      const double r = seg.norm();
      if (r > 0) seg /= r;
    }
    return V;
  }
  Vec layer_norms(const Network& net, const Vec& y) const override { return net.layer_norms(y); }

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
  LayerResponse layer_response(const Network&, const Vec&, Index) const override { return {}; }
};

}  // namespace

std::unique_ptr<FlowKindModel> make_gd_flow(const FlowSpec&) { return std::make_unique<GradientDescent>(); }

}  // namespace gfsim
