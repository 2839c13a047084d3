#pragma once
// The gradient flows of equations.md section 3 as ODE right-hand sides. A Flow knows nothing about
// solvers or files: it writes dy/dclock = e^{log_scale} F(t, y) for a state y (the clock transform
// s = log(1+t) enters only through log_scale, folded into the loss weights so that e^s * e^{-u}
// never overflows), and its exact Jacobian-vector products and Jacobian.
//
// The kind of flow (state layout, weights from state, field from the loss descent, tangent map) is
// a FlowKindModel (flow_kind.hpp, one file per kind in src/flows/); Flow holds the machinery they
// share: the network on the data, the loss weights, the forward-pass cache and the ReLU pattern.
// Built-in state layouts (theta layout = W_1..W_K, each row-major):
//   gd        y = theta                         (P)
//   gd_polar  y = (rho_1..rho_K, V_1..V_K)      (K + P),  W_k = rho_k V_k
//   wn        y = (rho_1..rho_K, V_1..V_K)      (K + P)
//   fixed_rho y = (V_1..V_K)                    (P),      rho a parameter
// K = 1 (the linear model) is the same code with one layer.
//
//   Flow flow(net, data, LossKind::exp, FlowKind::gd_polar);
//   Vec y = flow.initial_state(theta0), dy(flow.state_size());
//   flow.rhs(TimePoint{t, 0.0}, y, dy);
//   flow.jvp(TimePoint{t, 0.0}, y, v, jv);   // exact d/de rhs(y + e v) at e = 0
#include <array>
#include <memory>
#include <optional>
#include <vector>

#include "gfsim/clock.hpp"
#include "gfsim/dataset.hpp"
#include "gfsim/flow_kind.hpp"
#include "gfsim/loss.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/network.hpp"
#include "gfsim/screening.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// Scalars observed along a trajectory (equations.md sections 4 and 6).
struct FlowDiagnostics {
  double log_loss = 0;   ///< log L(W)
  double margin = 0;     ///< normalized margin min_n y_n f~(V; x_n)
  double grad_norm = 0;  ///< ||grad_W L|| (fixed_rho: Riemannian gradient norm on the spheres)
};

class Flow {
 public:
  /// The kind from the table (flow_kind.hpp) with spec's parameters (flow.rho, ...).
  Flow(Network network, const Dataset& data, LossKind loss, const FlowSpec& spec);
  Flow(Network network, const Dataset& data, LossKind loss, FlowKind kind, double fixed_rho = 1.0);
  /// A kind that is not in the table (tests); `kind` names it in messages.
  Flow(Network network, const Dataset& data, LossKind loss, FlowKind kind, std::unique_ptr<FlowKindModel> model);
  // The workspace may point at a KinkPattern's masks (use_pattern): no copies.
  Flow(const Flow&) = delete;
  Flow& operator=(const Flow&) = delete;

  FlowKind kind() const { return kind_; }
  const FlowKindModel& kind_model() const { return *model_; }
  const Network& network() const { return net_; }
  const Loss& loss() const { return loss_; }
  Index num_layers() const { return net_.num_layers(); }
  Index num_params() const { return net_.num_params(); }
  Index state_size() const { return model_->state_size(net_); }
  /// False when F depends on t other than through the clock's factor.
  bool autonomous() const { return model_->autonomous(); }
  /// flow.rho: the fixed product of layer norms of the fixed_rho flow.
  double fixed_rho() const { return fixed_rho_; }

  /// dy = e^{tp.log_scale} F(tp.t, y).
  void rhs(TimePoint tp, const Vec& y, Vec& dy) const;
  /// jv = d/de [e^{log_scale} F(t, y + e v)] at e = 0 (exact, forward over reverse).
  void jvp(TimePoint tp, const Vec& y, const Vec& v, Vec& jv) const;
  /// Dense Jacobian of rhs (state_size^2): the kind's closed form, or column by column from jvp.
  void jacobian(TimePoint tp, const Vec& y, Mat& J) const;
  /// dft = e^{tp.log_scale} dF/dt (t, y) at fixed y (zero for autonomous kinds).
  void time_derivative(TimePoint tp, const Vec& y, Vec& dft) const;
  /// The kind's known discontinuities (flow_kind.hpp): the first strictly after t, +inf if none.
  double next_discontinuity(double t) const { return model_->next_discontinuity(t); }
  /// Pin the field to the smooth piece that starts at t (NaN: unpin); may correct y (flow_kind.hpp).
  void enter_piece(double t, Vec& y) const { model_->enter_piece(net_, t, y); }
  /// The same at t = 0, for autonomous kinds (every built-in one); std::logic_error otherwise.
  void rhs(const Vec& y, double log_scale, Vec& dy) const { rhs(autonomous_at(log_scale), y, dy); }
  void jvp(const Vec& y, double log_scale, const Vec& v, Vec& jv) const { jvp(autonomous_at(log_scale), y, v, jv); }
  void jacobian(const Vec& y, double log_scale, Mat& J) const { jacobian(autonomous_at(log_scale), y, J); }

  // ---- The shared machinery the kinds' fields are made of (flow_kind.hpp) ----------------------
  /// The loss descent at V scaled by rho: G = sum_n a_n df_n/dV with u_n = rho y_n f(V; x_n) and
  /// a_n = y_n e^{log_scale} g(u_n), i.e. G = -(e^{log_scale}/rho) dL(rho-scaled net)/dV. For rho = 1
  /// and V = theta, G = -e^{log_scale} grad_theta L.
  void loss_descent(const Eigen::Ref<const Vec>& V, double rho, double log_scale, Eigen::Ref<Vec> G) const;
  /// After loss_descent: S = sum_n a_n f_n(V) = -e^{log_scale} dL/drho.
  double radial_descent() const { return points_.active ? points_.S : a_.dot(ws_.f); }
  /// dG = d/de G(V + e dV, rho + e drho) at e = 0, and G itself into *G unless G is null.
  /// drho = nullopt: rho is a constant (the radial term is skipped, not multiplied by zero).
  void loss_descent_tangent(const Eigen::Ref<const Vec>& V, const Eigen::Ref<const Vec>& dV, double rho,
                            std::optional<double> drho, double log_scale, Vec* G, Eigen::Ref<Vec> dG) const;
  /// After loss_descent_tangent: dS, the tangent of radial_descent().
  double radial_descent_tangent() const { return da_.dot(ws_.f) + a_.dot(ws_.df); }
  /// log L at V scaled by rho (log-sum-exp: finite where L underflows); the normalized kind divides
  /// its loss weights by L through the log scale.
  double log_loss(const Eigen::Ref<const Vec>& V, double rho) const;
  /// Linear model (K = 1) only: J = -e^{log_scale} Hessian of L at w, in closed form.
  void linear_loss_curvature(const Vec& w, double log_scale, Mat& J) const;

  /// Loss gradient grad_theta L and Hessian-vector product in the theta layout (log_scale 0).
  void loss_gradient(const Vec& theta, Vec& grad) const;
  void loss_hvp(const Vec& theta, const Vec& v, Vec& hv) const;

  /// d theta(y + e v)/de at e = 0 (state velocity -> weight velocity).
  Vec theta_tangent(const Vec& y, const Vec& v) const { return model_->theta_tangent(net_, y, v); }
  /// The data points as columns (d_0 x n) and their number.
  const Mat& inputs() const { return XT_; }
  Index num_points() const { return XT_.cols(); }
  /// The loss weights a_n = y_n e^{log_scale} g(u_n) of the last rhs() evaluation (sliding fields
  /// add mask terms to the backward pass with them).
  const Vec& loss_weights() const { return a_; }

  /// theta -> state. Polar flows and fixed_rho refuse a zero layer (rho_k = 0) with DomainError.
  Vec initial_state(const Vec& theta) const;
  /// state -> theta (fixed_rho: V_k scaled to equal rho_k = rho^(1/K)).
  Vec theta(const Vec& y) const;
  /// state -> normalized weights V_k = W_k/||W_k||, concatenated.
  Vec direction(const Vec& y) const;
  /// state -> per-layer norms rho_k.
  Vec layer_norms(const Vec& y) const;
  FlowDiagnostics diagnostics(const Vec& y) const;

  /// The (layer, unit, point) whose pre-activation is closest to zero, for stall messages.
  struct NearestKink {
    Index layer = -1, unit = -1, point = -1;
    double preactivation = 0;
  };
  NearestKink nearest_kink(const Vec& y) const;

  // ---- ReLU activation pattern as a discrete state (event-driven integration) ----------------
  /// Number of (hidden unit, data point) pre-activations: the event functions.
  Index num_preactivations() const;
  /// All hidden pre-activations at y, layer by layer, each d_k x n column-major.
  Vec preactivations(const Vec& y) const;
  // ---- Safe screening of negligible data points (equations.md section 9) -------------------
  /// From now on rhs, jvp and jacobian sum only over the kept points, re-chosen by a full pass when
  /// the certificate (screening.hpp) can no longer hold |rhs(all) - rhs(kept)| below `budget` per
  /// unit of the log clock s = log(1+t) (budget / (1+t) per unit of t). budget > 0. Without effect
  /// (every point kept) where no certificate applies: the square loss, the smoothed ReLU, a kind
  /// without a screening gain.
  void enable_screening(double budget);
  ScreeningState screening_state() const;

  /// Evaluate the field with these hidden-layer masks (d_k x n each, 1 active, 0 inactive, a
  /// value in between for a sliding entry) instead of the signs of h; nullptr: the signs again.
  /// The masks belong to a KinkPattern (kink_pattern.hpp), which must outlive their use here.
  /// With screening, the kink surfaces of dropped points are not tracked (equations.md section 9):
  /// a pass over every point (a screen, diagnostics) takes the signs of h for their columns, and a
  /// point that comes back has its switches located as events; the points of the `sliding` entries
  /// (pre-activation indices, owned by the pattern) are never dropped.
  void use_pattern(std::vector<Mat>* masks, const std::vector<Index>* sliding = nullptr);
  /// Screening has dropped points from the evaluations (their kink surfaces are not events).
  bool drops_points() const { return screening_on(); }
  /// Whether point p is in the evaluations (always, without screening).
  bool point_kept(Index p) const { return !screening_on() || screen_.slot[std::size_t(p)] >= 0; }
  /// The index of point p in loss_weights() after an evaluation of the field (p without
  /// screening; -1 for a dropped point).
  Index point_slot(Index p) const { return screening_on() ? screen_.slot[std::size_t(p)] : p; }
  /// preactivations() over the kept points only; the entries of dropped points are 0.
  Vec kept_preactivations(const Vec& y) const;
  // ---- Point updates: many fields at one state whose masks change at a few data points ---------
  /// While the returned scope lives the caller promises to change the pattern's masks only in the
  /// columns of `points` (data point indices). The loss sums G = sum_n a_n df_n/dV,
  /// S = sum_n a_n f_n and L = sum_n l(u_n) then split into the other points' part, computed by one
  /// pass over all points and kept for the weights (V, rho) it was taken at (another state takes a
  /// pass again; another log scale rescales it), and these points' part, computed afresh with the
  /// current masks at every
  /// evaluation: an evaluation costs passes over |points| columns instead of n. Exact for every
  /// kind, whatever its dependence on (G, S, L): only sums over points are split (docs/events.md,
  /// "Incremental sliding field"). Needs a pattern (use_pattern); the tangents (jvp, jacobian)
  /// refuse to run meanwhile (std::logic_error), as does a second scope.
  class PointUpdate {
   public:
    explicit PointUpdate(const Flow* flow) : flow_(flow) {}
    PointUpdate(PointUpdate&& o) noexcept : flow_(o.flow_) { o.flow_ = nullptr; }
    PointUpdate(const PointUpdate&) = delete;
    PointUpdate& operator=(const PointUpdate&) = delete;
    PointUpdate& operator=(PointUpdate&&) = delete;
    ~PointUpdate() {
      if (flow_) flow_->end_point_update();
    }

   private:
    const Flow* flow_;
  };
  [[nodiscard]] PointUpdate begin_point_update(std::vector<Index> points) const;

  /// (layer 1-based, unit, point) of pre-activation index j.
  NearestKink kink_of(Index j) const;
  /// Directional derivative of preactivations() in the theta layout: d h(theta + e dtheta)/de at
  /// e = 0, with s'(h) from the frozen pattern if any, else the sign of h (ReLU'(0) = 0).
  Vec preactivation_tangent(const Vec& theta, const Vec& dtheta) const;

 private:
  TimePoint autonomous_at(double log_scale) const;
  // Screening: note the evaluation point (the first data pass of the evaluation certifies it).
  void begin_evaluation(TimePoint tp, const Vec& y) const;
  // The inputs of this evaluation (all, or the kept ones), certified for weights at log scale
  // `log_scale`; runs the forward pass at V on them.
  void forward_for_field(const Eigen::Ref<const Vec>& V, double log_scale) const;
  void certify(double log_scale) const;
  void rescreen(const Vec& theta, double log_scale, double log_target) const;
  bool worth_rescreening(const Vec& theta, double log_target) const;
  static constexpr int kHistBins = 32;
  // Shared evaluation of the loss weights at V (or theta) scaled by rho.
  void margins_and_weights(double rho, double log_scale, Vec& a) const;
  /// net_.forward(theta) into ws_, skipped when ws_ already holds the pass at these exact weights
  /// (no activation pattern): CVODE's Krylov products and Lanczos' Hessian products come at the
  /// point of the last right-hand side, where the forward pass is a third of a product's cost.
  void forward(const Eigen::Ref<const Vec>& theta) const { forward_on(theta, false); }
  void forward_on(const Eigen::Ref<const Vec>& theta, bool kept_only) const;
  /// Kink pattern with screening, a pass over every point: the pattern with the dropped points'
  /// columns at the signs of their pre-activations at theta (in full_pattern_).
  const std::vector<Mat>& pattern_with_dropped_signs(const Eigen::Ref<const Vec>& theta) const;

  Network net_;
  Mat XT_;   // d_0 x n, points as columns
  Vec y_;    // labels
  Loss loss_;
  FlowKind kind_;
  double fixed_rho_;
  std::unique_ptr<const FlowKindModel> model_;
  // Scratch space: flows are not thread-safe; use one Flow per thread.
  mutable Network::Workspace ws_;
  std::vector<Mat>* pattern_ = nullptr;                 ///< use_pattern: the masks of every point
  const std::vector<Index>* pattern_sliding_ = nullptr; ///< use_pattern: its sliding entries
  mutable std::vector<Mat> kept_pattern_;               ///< the kept points' columns of *pattern_
  mutable std::vector<Mat> full_pattern_;               ///< pattern_with_dropped_signs
  mutable Vec forward_theta_;          ///< the weights of the pass in ws_, when forward_valid_
  mutable bool forward_valid_ = false; ///< ws_ holds a pattern-free pass at forward_theta_
  /// The weights of the last pass in ws_ over every point (with or without a pattern), when
  /// pass_valid_: its first layer's pre-activations W_1 X do not depend on the masks, so
  /// preactivations() of a one-hidden-layer net takes them from there (the same product, bit for
  /// bit) instead of a pass of its own (the event functions at the state of the field's last
  /// evaluation: a step's end, a sliding solve), and a pass at these weights with other masks
  /// forms only the layers above (Network::forward, first_layer_held).
  mutable Vec pass_theta_;
  mutable bool pass_valid_ = false;
  mutable Vec u_, a_, da_, grad_;
  mutable Mat jac_scaled_;  // K = 1 Jacobian: a block of X^T diag(sqrt(l''(u)))
  mutable const Vec* labels_ = &y_;  ///< the labels of the points in ws_ (y_ or screen_.y)

  // Screening state (enable_screening). Mutable: evaluations re-choose the kept set.
  struct Screen {
    bool enabled = false;
    bool applies = false;        // homogeneous net and a loss weight g(u) <= e^{-u}
    double budget = 0;           // per unit of log clock
    Vec x_norms;                 // |x_n|, all points
    double max_norm = 0;
    mutable ScreeningCertificate cert;
    Mat X;                       // d x n buffer, allocated at the first drop: the kept points in its first columns
    Vec y;                       // their labels
    // Scratch of a screen, kept between screens (no fresh pages at large n).
    Vec u;
    std::vector<char> keep;
    std::vector<Index> dropped;
    Index kept = 0;              // number of kept points (n: X unused)
    std::vector<Index> kept_points;  // their indices in order (when kept < n)
    std::vector<Index> slot;         // point -> its column among the kept ones, -1 dropped (kept < n)
    bool has_reference = false;
    std::uint64_t generation = 0;  // of the kept set, for the forward cache
    std::int64_t screens = 0, evaluations = 0;  // evaluations: since the last screen
    std::int64_t screens_by_bound = 0, total_evaluations = 0;
    double kept_work = 0;        // sum over evaluations of kept / n
    // At the last screen: the drop threshold, the target it was chosen for, and a histogram of
    // the kept margins in [hist_lo, u_star) (Flow::worth_rescreening).
    double u_star = 0, log_target = 0, hist_lo = 0, hist_width = 0;
    std::array<std::int64_t, kHistBins> hist{};
    double backoff = 2;          // rescreen when evaluations * kept >= backoff * n
    // The evaluation in progress.
    bool pending = false;
    TimePoint tp;
    const Vec* y_state = nullptr;
    double last_bound = 0, last_budget = 0;
  };
  mutable Screen screen_;
  mutable std::uint64_t forward_set_ = 0;  ///< 0: all points; else the kept set's generation
  bool screening_on() const { return screen_.enabled && screen_.kept < Index(y_.size()); }
  /// The inputs of the pass in ws_ (all points or the kept ones).
  Network::Inputs inputs_in_use() const { return forward_set_ ? kept_inputs() : Network::Inputs(XT_); }
  Network::Inputs kept_inputs() const { return screen_.X.leftCols(screen_.kept); }
  // Copy the kept points (keep[i]) into the first columns of screen_.X.
  void place_kept(const std::vector<char>& keep, Index count) const;

  // Point-update state (begin_point_update, src/flow_point_update.cpp).
  struct PointSplit {
    bool active = false;
    std::vector<Index> points;     // sorted, unique
    Mat X;                         // their inputs (d_0 x |points|)
    Vec y;                         // their labels
    std::vector<Mat> masks;        // the pattern's columns at them, read at every evaluation
    Network::Workspace ws;         // their passes
    Vec u, a, G;                   // their margins, loss weights, loss descent
    double S = 0;                  // radial_descent() of the last loss_descent
    // The other points' part at (V, rho): log L, and G and S at log scale `log_scale`.
    Vec V;
    double rho = 0;
    bool has_log_loss = false, has_descent = false;
    std::uint64_t kept_set = 0;    // forward_set_ of the other points' part (screening re-chooses)
    double log_loss = 0, log_scale = 0, S_rest = 0;
    Vec G_rest, u_rest;
  };
  mutable PointSplit points_;
  void end_point_update() const;
  // The others' part is kept for these weights; forget it otherwise.
  void point_split_at(const Eigen::Ref<const Vec>& V, double rho) const;
  // Forward pass and margins of the points at V with the pattern's current masks.
  void point_forward(const Eigen::Ref<const Vec>& V, double rho) const;
  void point_loss_descent(const Eigen::Ref<const Vec>& V, double rho, double log_scale, Eigen::Ref<Vec> G) const;
  double point_log_loss(const Eigen::Ref<const Vec>& V, double rho) const;
  // Certify a pending evaluation (screening): the kept set of the other points' part.
  void settle_screening() const;
};

}  // namespace gfsim
