// normalized: gradient flow normalized by the loss, dW/dt = -grad L / L = -grad log L
// (equations.md section 8). Chosen over the gradient-norm normalization -grad L/|grad L| because
//  - it is a gradient flow (of log L): the Jacobian is the Hessian of log L, smooth wherever L > 0,
//    while -g/|g| is not differentiable where g = 0 and has no exact Jacobian at sliding kinks;
//  - its loss weights are the softmax e^{-u_n}/sum_m e^{-u_m} (exp loss), formed as
//    e^{log_scale - log L} g(u_n) by the same weights routine as every flow: nothing underflows
//    when L itself underflows (t = 1e300), so the speed does not vanish as L -> 0;
//  - it is the continuous limit of the loss-normalized steps eta_t ~ 1/L of Nacson et al. (2019).
// The state is theta. K = 1: |W| grows linearly in t (|grad log L| -> gamma for separable data);
// K-homogeneous nets: d|theta|^2/dt ~ 2K q_min ~ |theta|^K, exponential for K = 2, finite-time
// blow-up for K >= 3 (equations.md section 8 (h)).
// K > 1: d rho_k^2/dt = -2 <W_k, grad_k L>/L is the same for every layer: the balance rho_k^2 -
// rho_1^2 is conserved, as for gd. The model reader refuses the square loss: L -> 0 at a finite
// interpolant where grad log L is unbounded (the field itself is defined wherever L > 0).
#include <cmath>

#include "gfsim/flow.hpp"
#include "weight_state.hpp"

namespace gfsim {
namespace {

class LossNormalized final : public flows::WeightState {
 public:
  void field(const Flow& flow, TimePoint tp, const Vec& y, Vec& dy) const override {
    dy.resize(y.size());
    const double log_loss = flow.log_loss(y, 1.0);
    flow.loss_descent(y, 1.0, tp.log_scale - log_loss, dy);  // -e^{log_scale} grad L / L
  }
  void field_tangent(const Flow& flow, TimePoint tp, const Vec& y, const Vec& v, Vec& jv) const override {
    // F = e^{-log L} G: dF v = e^{-log L} dG v - (d log L . v) F, with d log L . v = -e^{-s} (F . v).
    jv.resize(y.size());
    F_.resize(y.size());
    const double log_loss = flow.log_loss(y, 1.0);
    const double scale = tp.log_scale - log_loss;
    flow.loss_descent_tangent(y, v, 1.0, std::nullopt, scale, &F_, jv);
    jv += (std::exp(-tp.log_scale) * F_.dot(v)) * F_;
  }
  // The weights divided by L(kept) instead of L: |G/L - G(kept)/L(kept)| <= |G(dropped)|/L(kept) +
  // |G(kept)|/L(kept) L(dropped)/L(kept), each term at most the bound of gd (equations.md section 9).
  double screening_gain(const Network& net, TimePoint, const Vec& y) const override {
    return 2.0 * output_gradient_bound(net.layer_norms(y));
  }
  // Across a kink surface f_n, hence L, is continuous: on the surface the field is affine in the
  // mask values with the loss weights already divided by L, as for gd.
  LayerResponse layer_response(const Network&, TimePoint, const Vec&, Index) const override { return {}; }
 private:
  mutable Vec F_;  // scratch: one Flow (and its kind) per thread
};

}  // namespace

std::unique_ptr<FlowKindModel> make_normalized_flow(const FlowSpec&) { return std::make_unique<LossNormalized>(); }

}  // namespace gfsim
