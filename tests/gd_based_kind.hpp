// A test flow kind built on gd: every hook forwards to the gd kind of the table, and a test
// overrides the ones its time-dependent field changes (composition of a table kind, not a copy).
#pragma once

#include <memory>

#include "gfsim/flow_kind.hpp"
#include "gfsim/model_spec.hpp"

namespace gfsim::test {

class GdBasedKind : public FlowKindModel {
 public:
  Index state_size(const Network& net) const override { return gd_->state_size(net); }
  bool autonomous() const override { return false; }
  Vec initial_state(const Network& net, const Vec& theta) const override { return gd_->initial_state(net, theta); }
  Vec theta(const Network& net, const Vec& y) const override { return gd_->theta(net, y); }
  Vec theta_tangent(const Network& net, const Vec& y, const Vec& v) const override {
    return gd_->theta_tangent(net, y, v);
  }
  Vec direction(const Network& net, const Vec& y) const override { return gd_->direction(net, y); }
  Vec layer_norms(const Network& net, const Vec& y) const override { return gd_->layer_norms(net, y); }
  void field(const Flow& flow, TimePoint tp, const Vec& y, Vec& dy) const override { gd_->field(flow, tp, y, dy); }
  void field_tangent(const Flow& flow, TimePoint tp, const Vec& y, const Vec& v, Vec& jv) const override {
    gd_->field_tangent(flow, tp, y, v, jv);
  }
  bool dense_jacobian(const Flow& flow, TimePoint tp, const Vec& y, Mat& J) const override {
    return gd_->dense_jacobian(flow, tp, y, J);
  }
  LayerResponse layer_response(const Network& net, TimePoint tp, const Vec& y, Index k) const override {
    return gd_->layer_response(net, tp, y, k);
  }

 protected:
  std::unique_ptr<FlowKindModel> gd_ = make_flow_kind(FlowSpec{.kind = FlowKind::gd, .rho = 1.0});
};

}  // namespace gfsim::test
