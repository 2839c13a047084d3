#pragma once
// Event bookkeeping of the integration loop (detail::integrate_loop in integrate.cpp), the same for
// every stepper (docs/events.md):
//   - after each accepted step, a sign check of every event function at the new state;
//   - the earliest crossing in the step by one TOMS 748 search on phi(tau) = min_j g_j over the
//     functions that changed sign, on the driver's interpolant of the step (one search per step
//     however many changed: phi > 0 until the first of them crosses); functions already <= 0 at
//     the step's start (on a surface handled at an event) are events at the start if they fell
//     over the step beyond what the integration's error leaves undecided (rtol times the terms of
//     h; below twice their start value where no bound is known), and round-off otherwise;
//   - a negative function within its own rounding-error bound (EventHooks::round_off) is not a
//     crossing: its sign is noise; it counts as 0 at the next step's start;
//   - a surface handled at the previous event and hit again at zero distance is a bounce: the
//     fields on both sides point into it, so the trajectory enters Filippov sliding on it; other
//     surfaces hit at the same instant (parallel units) are plain crossings;
//   - a switch that puts another surface's sliding mask value outside [0,1] ends that sliding mode
//     at the same point (checked at once, not at the end of the next step; only values the switch
//     lowered count);
//   - a joint switch (EventHooks::resolve) that finds no consistent state leaves the event to
//     the one-at-a-time switch;
//   - more than kMaxZeroLengthRestarts bounces in a row stop the run (Status::stalled_at_kink), and
//     so do more than kMaxEventsNearPoint events within a relative clock distance kNearPoint of
//     one instant (a Zeno-like accumulation), naming the surface and t;
//   - a step that moves the state but not the clock has its crossings as events at its start;
//   - an event the stepper cannot leave (trial steps non-finite or collapsed) is switched again
//     jointly, once (rejoin()).
// After stop_at_event() the loop restarts its stepper at the event (the right-hand side changed
// discontinuously). A stop request (SIGINT/SIGTERM flag) is honoured inside the chain of forced
// exits too, so an event-dense run stops promptly.
// Private to src/; the definitions are in event_locator.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gfsim/clock.hpp"
#include "gfsim/integrate.hpp"

namespace gfsim::detail {

/// The state at clock value tau on the step just accepted (the stepper's dense output).
using StepInterpolant = std::function<void(double tau, Vec& out)>;

class EventLocator {
 public:
  static constexpr int kMaxZeroLengthRestarts = 64;
  static constexpr int kMaxEventsNearPoint = 2048;  ///< events allowed within kNearPoint of one instant
  static constexpr double kNearPoint = 1e-6;        ///< relative clock distance of "one point"
  /// Events at non-zero distances in one point's cluster before a stop that make the stop an
  /// accumulation of events (named Zeno in its message) rather than chattering at one instant.
  static constexpr int kZenoEvents = 16;
  /// A surface that enters sliding more than kCycleEntries times within a relative clock window
  /// kCycleWindow cycles between single-surface modes (kinks diagnosis Case B, legs far longer than
  /// kNearPoint at late times): the events of the next window are offered to the joint switch as a
  /// full cluster.
  static constexpr int kCycleEntries = 16;
  static constexpr double kCycleWindow = 1e-2;

  /// `rtol`: the integration's relative tolerance (how far a handled surface's function may move
  /// by the integrator's error alone, crossed()).
  EventLocator(const EventHooks& hooks, Clock clock, double rtol, const std::atomic<bool>* stop_requested = nullptr)
      : hooks_(hooks),
        clock_(clock),
        stop_requested_(stop_requested),
        noise_factor_(std::max(1.0, rtol / (std::numeric_limits<double>::epsilon() / 2))) {}

  bool active() const { return bool(hooks_.values); }

  /// A step-size collapse at clock value tau, close to the last event (within kNearPoint): the
  /// surface of that event and the cluster it belongs to, to name the stop (an accumulation of
  /// events collapses the steps of a solver that restarts cautiously, e.g. CVODE at order 1).
  std::optional<std::string> collapse_at_event(double tau) const;

  /// The stepper could not leave the event just applied at tau (state y): its trial steps went
  /// non-finite or collapsed. Surfaces switched one at a time can leave a side whose field sends
  /// the state straight back at a rate the clock cannot resolve (late in the log clock, where the
  /// field carries e^s: iris seed 54 at t = 6.7e13, a dead point's surface crossed next to two
  /// sliding ones). Switch that event's surfaces jointly instead (hooks_.resolve as for a cluster:
  /// the complementarity problem over the sliding set, docs/events.md). Returns changed (restart
  /// the stepper), unchanged (no joint switch offered or needed), or failed with a message.
  enum class Rejoin { changed, unchanged, failed };
  std::pair<Rejoin, std::string> rejoin(double tau, const Vec& y, SolverCounters& c, bool field_failed_here = false);

  /// After an accepted step from (tau_before, y_before) to (tau, y): true if some event function is
  /// negative at y (the smooth piece ended inside the step), or, given the step's interpolant,
  /// dips below zero inside it and comes back (grazing(): two crossings the ends do not see).
  bool crossed(double tau_before, const Vec& y_before, double tau, const Vec& y,
               const StepInterpolant* interpolate = nullptr);

 private:
  bool crossed_at_end(double tau_before, const Vec& y_before, double tau, const Vec& y);

  // A surface positive at both ends of a step can dip below zero inside it and come back: two
  // crossings (or an entry and an exit) that a sign check at the ends never sees, each a jump of
  // the field that the step carried over its whole excursion. Measured on bench/relu_deep.toml
  // ([16,8], gd): at t = 0.03806 the run at rtol 1e-10 crossed layer 2 unit 0 at point 95 and
  // came back 2e-5 later, the run at rtol 1e-8 stepped over that excursion, and from there the
  // two runs took different event sequences. Near a grazing point g is smooth and locally
  // quadratic in the clock, so the parabola through g at the step's start, middle and end finds
  // the dip: where its minimum is negative, g is evaluated there on the interpolant, and the
  // surfaces negative there beyond their rounding bound are crossings inside the step, located
  // on [start, that point] (locate()). One evaluation of the event functions per step.
  // How far below zero g must go inside a step to be an event there: 0 for a surface the step
  // starts off. A surface the step starts on (g <= 0: switched at the event the step starts from,
  // or round-off) gets the margin crossed_at_end() gives it at the step's end: a bounce that the
  // step carries back to the chosen side by its end is still a bounce. ([16,8] gd_polar at rtol
  // 1e-10, t = 0.0370369: layer 2 unit 0 at point 95 crossed to inactive with the rate +0.011 back
  // into the surface there (a sliding mode); the next step, 1.7e-3 long, took h up to +3e-6 and
  // back to -7.6e-7 by its end, so the run went on off the surface it should slide on, and parted
  // from the runs at other tolerances.)
  // `round_off`: rounding bounds of g near the state (empty: none known).
  double dip_bound(Index j, double g0, const Vec& round_off) const;

  bool grazing(double tau_before, const Vec& y_before, double tau, const StepInterpolant& interpolate);

 public:
  /// The earliest event in the step (tau_before, y_before) -> tau after crossed() returned true:
  /// its clock value; y_event is the interpolated state there. The surfaces hit are kept for apply().
  double locate(double tau_before, const Vec& y_before, double tau, const StepInterpolant& interpolate, Vec& y_event);

  /// The event step after crossed() returned true for the step (tau_before, y_before) -> (tau, x):
  /// locate the earliest event, observe the output times before it from the interpolant, move
  /// (tau, x) to the event, apply() it and observe an output time that falls exactly on it.
  /// `next` indexes the first output time (taus: clock values, times: physical) not yet observed.
  std::optional<std::pair<Status, std::string>> stop_at_event(double tau_before, const Vec& y_before, double& tau,
                                                              Vec& x, const StepInterpolant& interpolate,
                                                              const std::vector<double>& taus,
                                                              const std::vector<double>& times, std::size_t& next,
                                                              const SampleObserver& observe, SolverCounters& c);

  /// Switch the discrete state for every surface hit at the located event tau_star (state y there):
  /// sliding entry on a bounce, otherwise a crossing (or the end of a sliding mode); then the exits
  /// that this switch forces at the same point. Counts events and sliding entries in c. Returns the
  /// status and message to stop with when the state chatters.
  std::optional<std::pair<Status, std::string>> apply(double tau_star, const Vec& y, SolverCounters& c);

 private:
  // A Zeno-like accumulation: more than kMaxEventsNearPoint events while the clock advances by less
  // than kNearPoint (relative) from the first of them. Legs between events may be far longer than
  // the zero-length tolerance (a cycle between the sliding modes of two nearly parallel surfaces),
  // so the zero-length guard alone does not see it; the work spent near one point is bounded here.
  std::optional<std::pair<Status, std::string>> count_near_point(double tau_star, double t_star);

  std::string describe(Index j) const;

  // The events of the current cluster: how many, and how far the clock moved over them.
  std::string accumulation(double t_star) const;

  // The zero-length-restart guard. A chain of zero-length restarts that ends a long cluster of
  // events is the clock's resolution reached by an accumulation of events (legs shrinking to
  // zero, e.g. switches spiralling into a codimension-2 point): named as such; otherwise the state
  // chatters at one instant.
  std::pair<Status, std::string> chatter(Index j, double t_star) const;

  // Cycle detection (kCycleEntries): count the sliding entries of surface j in its window.
  void note_sliding_entry(Index j, double tau);

  // The surfaces switched at this instant get the integration-error margin of crossed().
  void mark_handled();

  bool was_previous(Index j) const { return std::find(previous_.begin(), previous_.end(), j) != previous_.end(); }

  // Cross or slide every surface in roots_ hit by tau_last (the state y at tp_star).
  std::optional<std::pair<Status, std::string>> switch_pattern(double tau_last, TimePoint tp_star, const Vec& y,
                                                               SolverCounters& c);

  double min_over_crossing() const;

  const EventHooks& hooks_;
  Clock clock_;
  const std::atomic<bool>* stop_requested_;
  std::vector<Index> twins_switched_;  ///< switch_pattern: coincident surfaces switched with a crossing
  double noise_factor_;                            ///< rtol / u: a rounding bound scaled to the integration's error
  Vec g_, g_before_, g_event_, y_event_, sample_;  ///< g at the step's end, start, the event
  Vec g_crossing_;                                 ///< g of the crossing surfaces (values_of)
  Vec g_slide_;                                    ///< g of a surface just put into sliding
  bool overruled_ = false;  ///< apply() switches one at a time after overruling an empty joint switch
  Vec round_off_;           ///< rounding-error bounds of g at the step's end
  std::vector<Index> violated_, crossing_, hit_, bounces_;
  Vec y_probe_, g_probe_;              ///< the state and event functions 1e-3 of a step in (locate())
  Vec y_mid_, g_mid_;                  ///< mid-step (grazing())
  Vec y_dip_, g_dip_, round_off_dip_;  ///< at the vertex of a dip (grazing())
  double dip_tau_ = std::numeric_limits<double>::quiet_NaN();  ///< clock value where dips are negative
  bool before_valid_ = false;                                  ///< g_before_ holds the step's start values
  std::vector<char> handled_;                                  ///< switched at an event and not left since (crossed())
  std::vector<std::pair<double, Index>> roots_;                ///< (clock value, surface) hit in the located step
  double last_event_tau_ = -std::numeric_limits<double>::infinity();
  std::vector<Index> last_event_js_, previous_;  ///< surfaces handled at last_event_tau_; a copy for apply()
  int zero_length_restarts_ = 0;
  Vec y_end_, g_end_;  ///< the last step's end state and its event functions (the next step's start)
  bool end_known_ = false;
  struct Reentries {
    int count = 0;
    double first_tau = 0;
  };
  std::map<Index, Reentries> reentries_;  ///< sliding entries per surface in its current window
  double joint_until_tau_ = -std::numeric_limits<double>::infinity();  ///< a cycle was detected: joint switching
  double near_tau_ = -std::numeric_limits<double>::infinity();         ///< first event of the current cluster
  int near_events_ = 0;                                                ///< events in it so far
  Index last_surface_ = -1;  ///< the first surface of the last event, and its clock value
  double last_surface_tau_ = -std::numeric_limits<double>::infinity();
};

}  // namespace gfsim::detail
