// nm: norm-minimizing gradient flow (Tikhonov-regularized gradient flow with a vanishing weight),
// dW/dt = -grad L(W) - lambda(t) W (equations.md section 8), the continuous limit of the
// Halpern-type iteration W <- (1 - lambda_t)(W - eta grad L) anchored at the origin.
//   nm        state y = theta; the decay is a multiple of the identity: J = J_gd - lambda I.
//   nm_polar  state y = (rho_k, V_k), W_k = rho_k V_k: the decay is radial, drho_k/dt of gd_polar
//             minus lambda rho_k, dV_k/dt of gd_polar unchanged (the same trajectory as nm).
// In the log clock the decay enters as e^s lambda(t), formed as exp(s + log lambda(t))
// (schedule.hpp). K > 1: d(rho_k^2 - rho_1^2)/dt = -2 lambda (rho_k^2 - rho_1^2), so the layer
// imbalance of gd decays like exp(-2 int lambda) instead of staying constant.
#include "gfsim/flow.hpp"
#include "gfsim/schedule.hpp"
#include "polar.hpp"
#include "weight_state.hpp"

namespace gfsim {
namespace {

LambdaSchedule lambda_of(const FlowSpec& spec) {
  switch (spec.lambda) {
    case LambdaKind::power: return LambdaSchedule::power(spec.lambda0, spec.lambda_power);
    case LambdaKind::log: return LambdaSchedule::inverse_log(spec.lambda0);
    case LambdaKind::table: return LambdaSchedule::table(read_schedule_table(spec.lambda_table, "flow.lambda_table"));
  }
  throw DomainError("unknown lambda schedule");
}

class NormMinimizing final : public flows::WeightState {
 public:
  explicit NormMinimizing(LambdaSchedule lambda) : lambda_(std::move(lambda)) {}

  bool autonomous() const override { return false; }

  void field(const Flow& flow, TimePoint tp, const Vec& y, Vec& dy) const override {
    dy.resize(y.size());
    flow.loss_descent(y, 1.0, tp.log_scale, dy);  // -e^{log_scale} dL/dtheta
    dy -= lambda_.scaled_value(tp.t, tp.log_scale, piece_) * y;
  }
  void field_tangent(const Flow& flow, TimePoint tp, const Vec& y, const Vec& v, Vec& jv) const override {
    jv.resize(y.size());
    flow.loss_descent_tangent(y, v, 1.0, std::nullopt, tp.log_scale, nullptr, jv);
    jv -= lambda_.scaled_value(tp.t, tp.log_scale, piece_) * v;
  }
  bool dense_jacobian(const Flow& flow, TimePoint tp, const Vec& y, Mat& J) const override {
    if (flow.num_layers() != 1) return false;
    flow.linear_loss_curvature(y, tp.log_scale, J);
    J.diagonal().array() -= lambda_.scaled_value(tp.t, tp.log_scale, piece_);
    return true;
  }
  void time_derivative(const Flow&, TimePoint tp, const Vec& y, Vec& dft) const override {
    dft = -lambda_.scaled_derivative(tp.t, tp.log_scale, piece_) * y;
  }
  // The decay is exact on every point set: F - F(kept) = G - G(kept).
  double screening_gain(const Network& net, TimePoint, const Vec& y) const override {
    return output_gradient_bound(net.layer_norms(y));
  }
  // The decay does not depend on the activation pattern: kinks slide as for gd.
  LayerResponse layer_response(const Network&, TimePoint, const Vec&, Index) const override { return {}; }
  // A table's knots break lambda's slope (equations.md 8 (j)): the loop stops there, and dF/dt of a
  // step is the slope of the segment the loop entered even where tp.t, mapped back from the clock,
  // falls a rounding error past the knot.
  double next_discontinuity(double t) const override { return lambda_.next_discontinuity(t); }
  void enter_piece(const Network&, double t, Vec&) const override { piece_ = t; }

 private:
  mutable double piece_ = kNoPiece;  ///< the segment the integration loop entered (NaN: none)
  LambdaSchedule lambda_;
};

class NormMinimizingPolar final : public flows::PolarFlow {
 public:
  explicit NormMinimizingPolar(LambdaSchedule lambda) : lambda_(std::move(lambda)) {}
  bool autonomous() const override { return false; }

  void field(const Flow& flow, TimePoint tp, const Vec& y, Vec& dy) const override {
    PolarFlow::field(flow, tp, y, dy);
    const Index K = flow.num_layers();
    dy.head(K) -= lambda_.scaled_value(tp.t, tp.log_scale, piece_) * y.head(K);
  }
  void field_tangent(const Flow& flow, TimePoint tp, const Vec& y, const Vec& v, Vec& jv) const override {
    PolarFlow::field_tangent(flow, tp, y, v, jv);
    const Index K = flow.num_layers();
    jv.head(K) -= lambda_.scaled_value(tp.t, tp.log_scale, piece_) * v.head(K);
  }
  void time_derivative(const Flow& flow, TimePoint tp, const Vec& y, Vec& dft) const override {
    const Index K = flow.num_layers();
    dft.setZero(y.size());
    dft.head(K) = -lambda_.scaled_derivative(tp.t, tp.log_scale, piece_) * y.head(K);
  }
  // As for nm.
  double next_discontinuity(double t) const override { return lambda_.next_discontinuity(t); }
  void enter_piece(const Network&, double t, Vec&) const override { piece_ = t; }

 protected:
  const char* name() const override { return "nm_polar"; }
  // gd_polar's rate: the decay is radial and leaves dV_k/dt unchanged.
  double rate(double rho, double rho_k) const override { return rho / (rho_k * rho_k); }
  double rate_tangent(double rho, double rho_k, double drho, double drho_k) const override {
    const double r2 = rho_k * rho_k;
    return drho / r2 - 2.0 * rho * drho_k / (r2 * rho_k);
  }

 private:
  mutable double piece_ = kNoPiece;  ///< the segment the integration loop entered (NaN: none)
  LambdaSchedule lambda_;
};

}  // namespace

std::unique_ptr<FlowKindModel> make_nm_flow(const FlowSpec& spec) {
  return std::make_unique<NormMinimizing>(lambda_of(spec));
}
std::unique_ptr<FlowKindModel> make_nm_polar_flow(const FlowSpec& spec) {
  return std::make_unique<NormMinimizingPolar>(lambda_of(spec));
}

}  // namespace gfsim
