#pragma once
// The polar kinds (gd_polar, wn): state y = (rho_1..rho_K, V_1..V_K), W_k = rho_k V_k, with
// drho_k/dt = (rho/rho_k) S, S = sum_n a_n f_n(V) = -e^{log_scale} dL/drho, and the projected field
// of V with a rate alpha_k that is all the two kinds differ in (equations.md section 3).
#include <algorithm>
#include <cmath>
#include <utility>

#include "gfsim/flow.hpp"
#include "projected_layers.hpp"

namespace gfsim::flows {

class PolarFlow : public FlowKindModel {
 public:
  Index state_size(const Network& net) const override { return net.num_layers() + net.num_params(); }

  Vec initial_state(const Network& net, const Vec& theta) const override {
    const Index K = net.num_layers();
    const Vec rho = nonzero_layer_norms(net, theta, name());
    Vec y(state_size(net));
    y.head(K) = rho;
    for (Index k = 0; k < K; ++k) {
      const Index o = net.layer_offset(k), m = net.layer_size(k);
      y.segment(K + o, m) = theta.segment(o, m) / rho[k];
    }
    return y;
  }
  Vec theta(const Network& net, const Vec& y) const override {
    const Index K = net.num_layers();
    Vec theta = y.segment(K, net.num_params());
    for (Index k = 0; k < K; ++k) theta.segment(net.layer_offset(k), net.layer_size(k)) *= y[k];
    return theta;
  }
  Vec theta_tangent(const Network& net, const Vec& y, const Vec& v) const override {
    const Index K = net.num_layers();
    Vec dtheta(net.num_params());
    for (Index k = 0; k < K; ++k) {
      const Index o = net.layer_offset(k), m = net.layer_size(k);
      dtheta.segment(o, m) = v[k] * y.segment(K + o, m) + y[k] * v.segment(K + o, m);
    }
    return dtheta;
  }
  Vec direction(const Network& net, const Vec& y) const override { return y.segment(net.num_layers(), net.num_params()); }
  Vec layer_norms(const Network& net, const Vec& y) const override { return y.head(net.num_layers()); }

  void field(const Flow& flow, TimePoint tp, const Vec& y, Vec& dy) const override {
    const Network& net = flow.network();
    const Index K = net.num_layers();
    dy.resize(state_size(net));
    G_.resize(net.num_params());
    const auto V = y.segment(K, net.num_params());
    const double rho = y.head(K).prod();
    flow.loss_descent(V, rho, tp.log_scale, G_);
    const double S = flow.radial_descent();
    for (Index k = 0; k < K; ++k) dy[k] = rho / y[k] * S;
    projected_field(net, V, G_, K, [&](Index k) { return rate(rho, y[k]); }, dy);
  }

  void field_tangent(const Flow& flow, TimePoint tp, const Vec& y, const Vec& v, Vec& jv) const override {
    const Network& net = flow.network();
    const Index K = net.num_layers(), P = net.num_params();
    jv.resize(state_size(net));
    G_.resize(P);
    dG_.resize(P);
    const auto V = y.segment(K, P);
    const auto dV = v.segment(K, P);
    const double rho = y.head(K).prod();
    double drho = 0.0;
    for (Index k = 0; k < K; ++k) drho += v[k] / y[k];
    drho *= rho;
    flow.loss_descent_tangent(V, dV, rho, drho, tp.log_scale, &G_, dG_);
    const double S = flow.radial_descent(), dS = flow.radial_descent_tangent();
    for (Index k = 0; k < K; ++k) jv[k] = (drho / y[k] - rho * v[k] / (y[k] * y[k])) * S + rho / y[k] * dS;
    projected_field_tangent(
        net, V, dV, G_, dG_, K, [&](Index k) { return RateAndTangent{rate(rho, y[k]), rate_tangent(rho, y[k], drho, v[k])}; },
        jv);
  }

  // |dV_k| <= alpha_k |dG_k| (the exact projector has norm 1), |drho| = rho (sum_k rho_k^-2)^(1/2) |dS|,
  // with |df_n/dV| <= c(|V_k|) |x_n| and |f_n| <= prod_k |V_k| |x_n|.
  double screening_gain(const Network& net, TimePoint, const Vec& y) const override {
    const Index K = net.num_layers();
    const Vec norms = net.layer_norms(y.segment(K, net.num_params()));
    const double rho = y.head(K).prod();
    double alpha = 0, inv2 = 0;
    for (Index k = 0; k < K; ++k) {
      alpha = std::max(alpha, std::abs(rate(rho, y[k])));
      inv2 += 1.0 / (y[k] * y[k]);
    }
    return alpha * output_gradient_bound(norms) + std::abs(rho) * std::sqrt(inv2) * norms.prod();
  }

  LayerResponse layer_response(const Network& net, TimePoint, const Vec& y, Index k) const override {
    const Index K = net.num_layers();
    return {K, rate(y.head(K).prod(), y[k]), y[k], true};
  }

 protected:
  virtual const char* name() const = 0;
  /// alpha_k of dV_k/dt = alpha_k (G_k - c_k V_k) at rho = prod rho_k and rho_k.
  virtual double rate(double rho, double rho_k) const = 0;
  /// d alpha_k along (drho, drho_k).
  virtual double rate_tangent(double rho, double rho_k, double drho, double drho_k) const = 0;

 private:
  mutable Vec G_, dG_;  // scratch: one Flow (and its kind) per thread
};

}  // namespace gfsim::flows
