#pragma once
// The ReLU activation pattern as the discrete state of event-driven integration (docs/events.md):
// one mask value per (hidden layer, unit, data point) pre-activation h_j, 1 active / 0 inactive
// between events, and the set of entries sliding on h_j = 0 with their equivalent-control masks in
// [0,1]. A KinkPattern wraps a Flow's smooth field: while it lives the flow evaluates its field
// with these masks instead of the signs of h (Flow::use_pattern), and the pattern adds the
// Filippov sliding field and the event functions that switch it.
//
//   KinkPattern pattern(flow);
//   pattern.freeze(y0);
//   pattern.rhs(y, 0.0, dy);           // the field of the current pattern, sliding if any
//   OdeProblem p = to_event_problem(pattern, y0, sink);   // flow_problem.hpp
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gfsim/flow.hpp"
#include "gfsim/integrate.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

class KinkPattern {
 public:
  /// Registers its masks with `flow`, which must outlive the pattern; one pattern per flow.
  explicit KinkPattern(Flow& flow);
  ~KinkPattern();
  KinkPattern(const KinkPattern&) = delete;
  KinkPattern& operator=(const KinkPattern&) = delete;

  const Flow& flow() const { return flow_; }

  /// Fix the pattern to the signs of the pre-activations at y (h > 0 active), no sliding entries.
  /// Returns the number of active entries.
  Index freeze(const Vec& y);
  /// After freeze(y): pre-activations at round-off level (|h_j| <= rel_tol max|h|, e.g. a restart
  /// from a state saved while sliding) carry no sign information. Each gets the side its one-sided
  /// fields move into, or a Filippov sliding mode where both sides point into the surface (taken
  /// one at a time; the event logic then ends inconsistent ones). Returns the entries put into
  /// sliding.
  /// `tp`: the start's TimePoint (the one-sided fields of time-dependent kinds are taken there).
  std::vector<Index> settle_on_kinks(TimePoint tp, const Vec& y, double rel_tol = 1e-12);

  /// dy = e^{tp.log_scale} F(tp.t, y) for the current pattern: the sliding field while entries slide.
  void rhs(TimePoint tp, const Vec& y, Vec& dy);
  /// Exact JVP of the smooth field; central differences of the sliding field while sliding.
  void jvp(TimePoint tp, const Vec& y, const Vec& v, Vec& jv);
  void jacobian(TimePoint tp, const Vec& y, Mat& J);
  /// The same at t = 0 (autonomous kinds).
  void rhs(const Vec& y, double log_scale, Vec& dy) { rhs(TimePoint{0.0, log_scale}, y, dy); }

  /// Event functions at the state y of time tp: g_j = h_j where active, -h_j where inactive,
  /// min(m_j, 1 - m_j) while sliding (the masks of the sliding field at tp: they depend on t for
  /// the time-dependent kinds).
  void event_values(TimePoint tp, const Vec& y, Vec& g);
  /// The same without the sliding entries' functions (NaN there): no sliding solve, the masks as
  /// they are. For checks of the surfaces off sliding only (the grazing test, EventHooks::surface_values).
  void surface_values(TimePoint tp, const Vec& y, Vec& g);
  /// g[s] = event function js[s] at y, equal to event_values(y)[js[s]] up to rounding: for one
  /// hidden layer a pre-activation is one dot product (O(d_0) instead of a forward pass over all
  /// points), deeper a forward pass over the columns of the entries' points only, which is what a
  /// root search over a few crossing surfaces needs.
  void event_values_of(TimePoint tp, const Vec& y, const std::vector<Index>& js, Vec& g);

  /// Flip entry j (index into Flow::preactivations()).
  void flip(Index j);
  /// The entries coincident with entry j at state y: the same unit at other data points whose
  /// inputs to its layer are positive multiples of j's point's (one surface in the weights: their
  /// pre-activations vanish together and cross in the same direction), with j's mask, not sliding.
  /// A crossing of j is a crossing of each of them at the same instant: their own event functions,
  /// smaller by the ratio of the inputs' norms, can cross back unseen within a step when their
  /// point dies at a shallower layer ([8,8,8,8] gd_polar at t = 0.88935; docs/relu_deep.md,
  /// session 21).
  std::vector<Index> coincident_with(const Vec& y, Index j) const;
  /// Put entry j into sliding mode: the trajectory stays on h_j = 0 with the mask value m_j in
  /// [0,1] chosen so that dh_j/dt = 0 for every sliding entry (equivalent control). On the kink
  /// surfaces every flow's field is affine in each mask value (jointly affine with one hidden
  /// layer), so this is the Filippov convex combination of the neighbouring fields, and for several
  /// surfaces the one tangent to all of them (unique when the surfaces are transversal).
  /// Returns false if no pattern is frozen or j is already sliding.
  bool start_sliding(Index j);
  /// Leave sliding for entry j onto the side `active` (1) or inactive (0).
  void stop_sliding(Index j, bool active);
  /// The sliding mode of entry j ends at y (its mask value left [0,1]): leave it onto the side the
  /// Filippov condition sends the state to and return that side (true: active). At the exit the
  /// rate on the side of the bound m_j left through is zero (tangent) and the opposite side's rate
  /// decides: into the surface (an attracting mode) -> that bound's side; away from it (a repelling
  /// mode, e.g. after the unit's output weight changed sign) -> a transversal crossing to the
  /// opposite side, whatever bound the mask left through.
  bool leave_sliding(TimePoint tp, const Vec& y, Index j);
  const std::vector<Index>& sliding() const { return sliding_; }
  /// Current sliding mask values m_j at y, time tp (same order as sliding()).
  Vec sliding_masks(TimePoint tp, const Vec& y);
  /// Mask value of entry j (1 or 0, the equivalent control of the last evaluation while sliding);
  /// -1 when no pattern is frozen.
  double value(Index j) const;
  bool frozen() const { return !masks_.empty(); }
  /// The masks of the hidden layers (index k-1: d_k x n), sliding entries at their last control.
  const std::vector<Mat>& masks() const { return masks_; }
  /// Forget the pattern: the flow goes back to the signs of h.
  void clear();
  /// The last sliding field evaluation without an equivalent control (Newton on the tangency
  /// conditions of the sliding set did not converge): its t, and what and where (the surface with
  /// the largest residual). rhs() returns NaN there, so that a step through such a state is
  /// rejected and an event there is switched jointly (EventLocator::rejoin) or the run stops with
  /// this reason (OdeProblem::field_failure). Reset by freeze() and clear().
  const FieldFailure& field_failure() const { return field_failure_; }

  // ---- Joint switching at an event (docs/events.md, "Sliding sets") --------------------------
  enum class Switch { crossing, sliding_entry, sliding_exit };
  struct JointSwitch {
    std::vector<std::pair<Index, Switch>> changes;  ///< in candidate order
    std::string failure;                            ///< non-empty: no consistent set found
    /// The largest move of the mask of an entry that slides before and after (a new equivalent
    /// control of the same sliding set is a change of the field too).
    double masks_moved = 0;
  };
  /// One hidden layer: joint switching only inside a cluster of this many events near one point
  /// (a cycle between the single-surface modes of coupled surfaces); below it the surfaces hit are
  /// switched one at a time (cross / bounce into sliding).
  static constexpr int kJointAfterEvents = 32;
  /// The sliding field holds dh_j/ds = -kDriftDecay h_j on its sliding surfaces (s = log(1+t),
  /// whichever clock integrates), not 0 (Baumgarte), at every depth. One hidden layer's
  /// closed-form control takes the outputs as independent of the masks, exact only on the
  /// surfaces, so a drift off them fed itself: on the 100-16-1 copy of relu_large entries still
  /// sliding at t = 1e12 were 3.3e-5 off (max|h| 24) at rtol 1e-8 and 1e-10 alike, 9e-10 with the
  /// decay (docs/relu_deep.md, session 19). Deeper nets' Newton solve accepts masks within its
  /// tolerance, whose error integrates into a drift in the same way (session 20). The field
  /// differs from the equivalent control by O(drift). Per unit of s rather than of the clock: a
  /// decay of 1 per unit of t outpaced the dynamics of slow runs on the t clock and cost their
  /// steps (relu_two_layer: 20% more fields).
  static constexpr double kDriftDecay = 1.0;
  /// kDriftDecay in units of tp's clock: e^{log_scale} / (1 + t) per unit of it.
  static double drift_decay(TimePoint tp) { return kDriftDecay * std::exp(tp.log_scale) / (1.0 + tp.t); }
  /// At an event at y with the surfaces `hit`: the candidates (sliding entries, the surfaces hit,
  /// and every surface with |h| at round-off level, except dead ones) get masks m in [0,1] from the
  /// box-constrained complementarity problem of their one-sided rates (sliding_set.hpp): interior
  /// m slides, m at 0 or 1 takes that side. The rates carry the positive factor e^{tp.log_scale}.
  /// nullopt for one hidden layer outside a cluster (see kJointAfterEvents).
  std::optional<JointSwitch> resolve(TimePoint tp, const Vec& y, const std::vector<Index>& hit, int cluster);
  /// One hidden layer: the rates r_l = dh_l/dclock of `entries` are affine in their masks,
  /// r(m) = r0 + J m, with the sliding field's closed form (one_layer_control) for J: block
  /// diagonal by unit, J_jl = s1 alpha a_{n_l} W2_{i_l} x_{n_l}.x_{n_j}, less the projection's
  /// rank-one term. r0 is the rate with every entry's mask at 0 (where the entries are left) plus
  /// the drift decay's drift_decay(tp) h_l: the sliding field holds r + that at 0. The
  /// joint switch's box problem then costs one field instead of two per candidate and Newton step.
  /// False for deeper nets and for an entry at a screened-out point (its entries then at 0 or
  /// unchanged: the caller sets them).
  bool one_layer_rates(TimePoint tp, const Vec& y, const std::vector<Index>& entries, Vec& r0, Mat& J);
  /// Entries whose pre-activation is identically zero because every unit of the layer below is
  /// inactive at that data point (up to round-off, relative to the largest |h| of the layer below
  /// over all points): no switching surface (ReLU'(0) = 0 there).
  std::vector<char> dead_entries(const Vec& h) const;

 private:
  double& entry(Index j);
  void event_values(TimePoint tp, const Vec& y, Vec& g, bool with_sliding);
  /// Sliding field at y: solves for the sliding masks (stored in the pattern) and writes dy.
  void sliding_rhs(TimePoint tp, const Vec& y, Vec& dy, Vec* masks = nullptr);
  void sliding_rhs_one_hidden_layer(TimePoint tp, const Vec& y, Vec& dy, Vec* masks);
  /// One hidden layer: the closed-form equivalent control at y (entries left at it), with what the
  /// field's assembly needs; F0 non-null: F(0) there too.
  struct OneLayerControl {
    LayerResponse response;
    std::vector<Index> unit, point;  ///< of each sliding entry
    Vec coef, c, m;                  ///< dG_l = coef_l x_{n_l} in row unit_l; projection terms; masks
  };
  void one_layer_control(TimePoint tp, const Vec& y, Vec* F0, OneLayerControl& s);
  /// The masks alone (no field assembly), the same values as the field's solve.
  Vec one_layer_masks(TimePoint tp, const Vec& y);
  /// Per hidden unit: the Gram matrix of its sliding points (in the solve's order) at the last solve.
  struct GramBlock {
    std::vector<Index> points;
    Mat K;
  };
  std::vector<GramBlock> gram_blocks_;

  Flow& flow_;
  std::vector<Mat> masks_;  ///< hidden layer k: d_k x n (index k-1)
  std::vector<Index> sliding_;
  Vec g_all_;  ///< event_values_of: all event functions when a subset cannot be had cheaply
  /// Per hidden layer below another: the data point of its largest |h| at the last dead_entries,
  /// whose column event_values_of adds to its subset for the dead test's scale.
  mutable std::vector<Index> scale_points_;
  Mat sliding_jacobian_;                 ///< dr/dm of the last deep-net sliding solve (chord steps)
  Mat sliding_jacobian_inverse_;  ///< its inverse while the sliding set is unchanged (else empty)
  double sliding_jacobian_log_scale_ = 0;  ///< the clock factor it was evaluated with
  /// Columns of sliding_jacobian_ to evaluate afresh (entries that started sliding since): a
  /// change of the sliding set keeps the other columns instead of all 2S rate evaluations.
  std::vector<char> jacobian_pending_;
  /// The last solve was at (tp, y) with the current sliding set (its field and masks stand).
  bool remembered(TimePoint tp, const Vec& y) const;
  void remember(TimePoint tp, const Vec& y, const Vec& dy, const Vec& masks);
  /// The last sliding solve (state, time, field, masks): the event functions at the end of
  /// a step are evaluated at the state of the step's last stage. Invalidated by any mask change.
  bool memo_valid_ = false;
  TimePoint memo_tp_;
  Vec memo_y_, memo_dy_, memo_masks_;
  FieldFailure field_failure_;
  /// The last kSolvedKept converged deep-net sliding solves with the current pattern (clock time t
  /// and masks): the starts of a retry when a solve fails from the last evaluation's masks
  /// (sliding_rhs). Forgotten whenever a mask outside the sliding set or the set itself changes
  /// (those controls solve another system).
  struct SolvedControl {
    double t;
    Vec m;
  };
  static constexpr std::size_t kSolvedKept = 16;
  std::vector<SolvedControl> solved_;
  std::size_t solved_next_ = 0;
  void forget_solved() {
    solved_.clear();
    solved_next_ = 0;
  }
};

}  // namespace gfsim
