// fixed_rho: the flow of the directions V_k on the spheres at a fixed product of layer norms
// rho = flow.rho (equations.md section 3): state y = (V_1..V_K), dV_k/dt = rho (G_k - c_k V_k),
// the weights W_k = rho^(1/K) V_k. The stationary points are those of `gfsim stationary`.
#include <cmath>

#include "gfsim/flow.hpp"
#include "projected_layers.hpp"

namespace gfsim {
namespace {

class FixedRho final : public FlowKindModel {
 public:
  explicit FixedRho(double rho) : rho_(rho) {
    if (!(rho_ > 0)) throw DomainError(fmt::format("the fixed-rho flow needs rho > 0, got {}", rho_));
  }

  Index state_size(const Network& net) const override { return net.num_params(); }
  Vec initial_state(const Network& net, const Vec& theta) const override {
    const Vec rho = flows::nonzero_layer_norms(net, theta, "fixed_rho");
    Vec y(state_size(net));
    for (Index k = 0; k < net.num_layers(); ++k) {
      const Index o = net.layer_offset(k), m = net.layer_size(k);
      y.segment(o, m) = theta.segment(o, m) / rho[k];
    }
    return y;
  }
  Vec theta(const Network& net, const Vec& y) const override { return equal_layer_norm(net) * y; }
  Vec theta_tangent(const Network& net, const Vec&, const Vec& v) const override { return equal_layer_norm(net) * v; }
  Vec direction(const Network&, const Vec& y) const override { return y; }
  Vec layer_norms(const Network& net, const Vec&) const override {
    return Vec::Constant(net.num_layers(), equal_layer_norm(net));
  }

  void field(const Flow& flow, TimePoint tp, const Vec& y, Vec& dy) const override {
    const Network& net = flow.network();
    dy.resize(y.size());
    G_.resize(y.size());
    flow.loss_descent(y, rho_, tp.log_scale, G_);
    flows::projected_field(net, y, G_, 0, [&](Index) { return rho_; }, dy);
  }
  void field_tangent(const Flow& flow, TimePoint tp, const Vec& y, const Vec& v, Vec& jv) const override {
    const Network& net = flow.network();
    jv.resize(y.size());
    G_.resize(y.size());
    dG_.resize(y.size());
    flow.loss_descent_tangent(y, v, rho_, 0.0, tp.log_scale, &G_, dG_);
    flows::projected_field_tangent(net, y, v, G_, dG_, 0, [&](Index) { return flows::RateAndTangent{rho_, 0.0}; }, jv);
  }

  double screening_gain(const Network& net, TimePoint, const Vec& y) const override {
    return rho_ * output_gradient_bound(net.layer_norms(y));  // |dV_k| <= rho |dG_k|
  }
  LayerResponse layer_response(const Network& net, TimePoint, const Vec&, Index) const override {
    // One hidden layer: the square root, correctly rounded, as the sliding solve has always used.
    const double scale = net.num_layers() == 2 ? std::sqrt(rho_) : equal_layer_norm(net);
    return {0, rho_, scale, true};
  }
  bool on_spheres() const override { return true; }

 private:
  /// rho_k = rho^(1/K): the layer norm of the balanced weights the state stands for.
  double equal_layer_norm(const Network& net) const { return std::pow(rho_, 1.0 / double(net.num_layers())); }

  double rho_;
  mutable Vec G_, dG_;  // scratch: one Flow (and its kind) per thread
};

}  // namespace

std::unique_ptr<FlowKindModel> make_fixed_rho_flow(const FlowSpec& spec) { return std::make_unique<FixedRho>(spec.rho); }

}  // namespace gfsim
