// rho_schedule: the fixed-rho flow of the directions V_k driven by a prescribed radius rho(t)
// (equations.md section 8): dV_k/dt = rho(t) (G_k - c_k V_k) with G at the weights rho(t)^(1/K) V_k.
// A staircase rho(t) is progressive norm rescaling (Wang et al. 2024): fixed-radius phases, each
// ended by rescaling rho by a factor. The weights depend on t, so t is in the state (flow_kind.hpp:
// the state determines theta): y = (sigma, V_1..V_K) with dsigma/dt = 1, sigma(0) = 0, rho = rho(sigma).
// The field is then autonomous, and its Jacobian's sigma column is the dF/dt of the prescribed
// radius, drho = rho'(sigma) v_sigma through the loss descent's radial tangent. Balanced: every
// layer norm is rho^(1/K).
// rho_schedule_normalized: the same field divided by L(rho V), dV_k/dt = rho P_k G_k / L = -P_k grad_{V_k}
// log L, the Riemannian gradient flow of log L at the prescribed radius (equations.md 8 (i)): the
// normalized steps at fixed radius of progressive norm rescaling. 1/L enters the loss weights through
// the log scale (log_scale - log L, log-sum-exp), as for `normalized`: nothing underflows when L does.
// A staircase (or table) makes the field jump (or bend) at known times (equations.md 8 (j)): the kind
// reports them, and while integrating evaluates rho on the piece the loop has entered (enter_piece),
// so that the step ending on a jump never sees the next step of the staircase through sigma, which
// reaches the jump time only up to the integration error.
#include <cmath>

#include "gfsim/flow.hpp"
#include "gfsim/schedule.hpp"
#include "projected_layers.hpp"

namespace gfsim {
namespace {

RhoSchedule rho_of(const FlowSpec& spec) {
  switch (spec.rho_schedule) {
    case RhoScheduleKind::logarithmic: return RhoSchedule::logarithmic(spec.rho, spec.rho_rate);
    case RhoScheduleKind::power: return RhoSchedule::power(spec.rho, spec.rho_rate);
    case RhoScheduleKind::exponential: return RhoSchedule::exponential(spec.rho, spec.rho_rate);
    case RhoScheduleKind::staircase: return RhoSchedule::staircase(spec.rho, spec.rho_factor, spec.rho_phase);
    case RhoScheduleKind::table: return RhoSchedule::table(read_schedule_table(spec.rho_table, "flow.rho_table"));
  }
  throw DomainError("unknown rho schedule");
}

class ScheduledRho final : public FlowKindModel {
 public:
  ScheduledRho(RhoSchedule rho, bool loss_normalized) : rho_(std::move(rho)), loss_normalized_(loss_normalized) {}

  Index state_size(const Network& net) const override { return 1 + net.num_params(); }
  Vec initial_state(const Network& net, const Vec& theta) const override {
    const Vec rho = flows::nonzero_layer_norms(net, theta, loss_normalized_ ? "rho_schedule_normalized" : "rho_schedule");
    Vec y(state_size(net));
    y[0] = 0.0;
    for (Index k = 0; k < net.num_layers(); ++k) {
      const Index o = net.layer_offset(k), m = net.layer_size(k);
      y.segment(1 + o, m) = theta.segment(o, m) / rho[k];
    }
    return y;
  }
  Vec theta(const Network& net, const Vec& y) const override {
    return layer_norm(net, y[0]) * y.segment(1, net.num_params());
  }
  Vec theta_tangent(const Network& net, const Vec& y, const Vec& v) const override {
    // d rho^(1/K)/dsigma = rho^(1/K) (d log rho/dsigma) / K
    const double s = layer_norm(net, y[0]);
    return s * v.segment(1, net.num_params()) +
           (s * rho_.log_derivative(y[0], piece_) / double(net.num_layers()) * v[0]) * y.segment(1, net.num_params());
  }
  Vec direction(const Network& net, const Vec& y) const override { return y.segment(1, net.num_params()); }
  Vec layer_norms(const Network& net, const Vec& y) const override {
    return Vec::Constant(net.num_layers(), layer_norm(net, y[0]));
  }

  void field(const Flow& flow, TimePoint tp, const Vec& y, Vec& dy) const override {
    const Network& net = flow.network();
    const Index P = net.num_params();
    dy.resize(y.size());
    G_.resize(P);
    const double rho = rho_.value(y[0], piece_);
    flow.loss_descent(y.segment(1, P), rho, weight_log_scale(flow, tp, y, rho), G_);
    dy[0] = std::exp(tp.log_scale);  // dsigma/dt = 1, times the clock's factor
    flows::projected_field(net, y.segment(1, P), G_, 1, [&](Index) { return rho; }, dy);
  }
  void field_tangent(const Flow& flow, TimePoint tp, const Vec& y, const Vec& v, Vec& jv) const override {
    const Network& net = flow.network();
    const Index P = net.num_params();
    jv.resize(y.size());
    G_.resize(P);
    dG_.resize(P);
    const double rho = rho_.value(y[0], piece_);
    const double drho = rho_.derivative(y[0], piece_) * v[0];
    flow.loss_descent_tangent(y.segment(1, P), v.segment(1, P), rho, drho, weight_log_scale(flow, tp, y, rho), &G_,
                              dG_);
    if (loss_normalized_) {
      // G' = (e^s / L) G_raw with G_raw = -(1/rho) dL/dV and S' = (e^s / L) S_raw, S_raw = -dL/drho:
      // d log L = -e^{-s} (rho <G', dV> + S' drho), and dG' gains -(d log L) G'.
      const double dlog_loss = -std::exp(-tp.log_scale) * (rho * G_.dot(v.segment(1, P)) + flow.radial_descent() * drho);
      dG_ -= dlog_loss * G_;
    }
    jv[0] = 0.0;
    flows::projected_field_tangent(net, y.segment(1, P), v.segment(1, P), G_, dG_, 1,
                                   [&](Index) { return flows::RateAndTangent{rho, drho}; }, jv);
  }
  // The loss-normalized field divides its weights by L(kept) instead of L: twice the bound, as for
  // `normalized` (equations.md section 9).
  double screening_gain(const Network& net, TimePoint, const Vec& y) const override {
    return (loss_normalized_ ? 2.0 : 1.0) * rho_.value(y[0], piece_) *
           output_gradient_bound(net.layer_norms(y.segment(1, net.num_params())));
  }
  LayerResponse layer_response(const Network& net, TimePoint, const Vec& y, Index) const override {
    const double rho = rho_.value(y[0], piece_);
    // One hidden layer: the correctly rounded square root, as for fixed_rho.
    const double scale = net.num_layers() == 2 ? std::sqrt(rho) : layer_norm(net, y[0]);
    return {1, rho, scale, true};
  }
  double next_discontinuity(double t) const override { return rho_.next_discontinuity(t); }
  // sigma is t by construction (dsigma/dt = 1): at a stop it is set to the stop's time exactly, so
  // that the state saved there reads the new piece once unpinned (the schedule is right-continuous).
  void enter_piece(const Network&, double t, Vec& y) const override {
    piece_ = t;
    if (!std::isnan(t) && y.size() > 0) y[0] = t;
  }

 private:
  /// The log scale of the loss weights: the clock's, minus log L(rho V) for the normalized field.
  double weight_log_scale(const Flow& flow, TimePoint tp, const Vec& y, double rho) const {
    if (!loss_normalized_) return tp.log_scale;
    return tp.log_scale - flow.log_loss(y.segment(1, flow.network().num_params()), rho);
  }
  double layer_norm(const Network& net, double sigma) const {
    const double rho = rho_.value(sigma, piece_);
    return net.num_layers() == 2 ? std::sqrt(rho) : std::pow(rho, 1.0 / double(net.num_layers()));
  }
  RhoSchedule rho_;
  bool loss_normalized_;
  mutable double piece_ = kNoPiece;  ///< the piece the integration loop entered (NaN: none)
  mutable Vec G_, dG_;  // scratch: one Flow (and its kind) per thread
};

}  // namespace

std::unique_ptr<FlowKindModel> make_rho_schedule_flow(const FlowSpec& spec) {
  return std::make_unique<ScheduledRho>(rho_of(spec), false);
}

std::unique_ptr<FlowKindModel> make_rho_schedule_normalized_flow(const FlowSpec& spec) {
  return std::make_unique<ScheduledRho>(rho_of(spec), true);
}

}  // namespace gfsim
