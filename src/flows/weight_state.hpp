#pragma once
// The kinds whose state is the weights themselves, y = theta (gd, nm, normalized): identity maps
// between state and weights; the direction V_k = W_k / |W_k| and the layer norms are read off y.
#include "gfsim/flow.hpp"

namespace gfsim::flows {

class WeightState : public FlowKindModel {
 public:
  Index state_size(const Network& net) const override { return net.num_params(); }
  Vec initial_state(const Network&, const Vec& theta) const override { return theta; }
  Vec theta(const Network&, const Vec& y) const override { return y; }
  Vec theta_tangent(const Network&, const Vec&, const Vec& v) const override { return v; }
  Vec direction(const Network& net, const Vec& y) const override { return net.layer_directions(y); }
  Vec layer_norms(const Network& net, const Vec& y) const override { return net.layer_norms(y); }
};

}  // namespace gfsim::flows
