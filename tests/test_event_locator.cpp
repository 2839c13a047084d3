// The event locator's decisions on a surface handled at an event (src/event_locator.hpp, private
// to src/; tested here on scalar event functions with a known path over one step).
//   - Falling straight back through the surface: a bounce at the step's start.
//   - Leaving on the chosen side and coming back through later in the step: a crossing inside the
//     step, located there (the probe 1e-3 of the step in). Called a bounce at the start, the run
//     restarted at the start with the same pattern and chattered ([8,8,8,8] gd at t = 1.0305).
//   - A move below the integration's error (rtol times the terms of h: the rounding bound scaled
//     from u to rtol) is no bounce for a surface switched at an event; beyond it, it is.
//   - A joint switch at a zero-length restart that changes no side but gives the sliding entries
//     another control stands (it changed the field); one that changes nothing is overruled.
//   - A surface positive at both ends of a step that dips below zero inside it (grazing): its first
//     crossing is located; noise within its rounding bound and a dip the parabola does not reach
//     are not. A surface switched at the step's start that dips through and is back by the end is
//     a bounce at the start, beyond the integration's error only.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "../src/event_locator.hpp"

namespace gfsim::detail {
namespace {

// One event function g(tau) = path(tau) along a step from tau = 0 to 1; the state is (g) itself.
struct ScalarSurface {
  std::function<double(double)> path;
  double bound = 0.0;  // rounding bound of g (0: none given)
  double side = 1.0;   // g = side * y: a crossing switches the side
  int crossings = 0, slides = 0, resolves = 0;
  // Optional: the equivalent control a slide gets (its event function min(m, 1 - m) while
  // sliding, through values_of); NaN: no values_of.
  double slide_mask = std::numeric_limits<double>::quiet_NaN();
  bool sliding = false;
  // Optional joint switch: its answer at each call (nullopt: one surface at a time).
  std::function<std::optional<EventHooks::Resolution>(int call)> joint;
  EventHooks hooks() {
    EventHooks h;
    if (joint)
      h.resolve = [this](TimePoint, const Vec&, const std::vector<Index>&, int) { return joint(resolves++); };
    h.values = [this](TimePoint, const Vec& y, Vec& g) { g = side * y; };
    if (bound > 0) h.round_off = [this](TimePoint, const Vec&, Vec& r) { r = Vec::Constant(1, bound); };
    h.cross = [this](TimePoint, const Vec&, Index) {
      ++crossings;
      if (sliding) {  // the exit: here to the side across the surface from the slide's start
        sliding = false;
        side = -side;
        return;
      }
      side = -side;
    };
    h.slide = [this](TimePoint, const Vec&, Index) {
      ++slides;
      sliding = true;
      return true;
    };
    if (!std::isnan(slide_mask))
      h.values_of = [this](TimePoint, const Vec& y, const std::vector<Index>&, Vec& g) {
        g = sliding ? Vec::Constant(1, std::min(slide_mask, 1 - slide_mask)) : Vec(side * y);
      };
    return h;
  }
  StepInterpolant interpolant() {
    return [this](double tau, Vec& out) { out = Vec::Constant(1, path(tau)); };
  }
};

Vec scalar(double v) { return Vec::Constant(1, v); }

// g = 0 at the step's start (a value reset as round-off, or a surface left exactly on it).
double locate_from_zero(ScalarSurface& s, double rtol = 1e-8) {
  const EventHooks hooks = s.hooks();
  EventLocator loc(hooks, Clock{ClockKind::t}, rtol);
  const Vec y0 = scalar(0.0), y1 = scalar(s.path(1.0));
  if (!loc.crossed(0.0, y0, 1.0, y1)) return -1.0;
  Vec y_event;
  return loc.locate(0.0, y0, 1.0, s.interpolant(), y_event);
}

TEST(EventLocator, StraightBackThroughTheSurfaceIsABounceAtTheStart) {
  ScalarSurface s;
  s.path = [](double tau) { return -0.5 * tau; };
  EXPECT_EQ(locate_from_zero(s), 0.0);
}

TEST(EventLocator, LeavingAndComingBackInsideTheStepIsACrossingThere) {
  ScalarSurface s;
  s.path = [](double tau) { return tau - 1.5 * tau * tau; };  // positive until 2/3, then negative
  EXPECT_NEAR(locate_from_zero(s), 2.0 / 3.0, 1e-12);
}

// Through the integration loop: a surface handled at an event whose value then moves below the
// integration's error is no bounce; beyond it, it is.
TEST(EventLocator, AHandledSurfaceBouncesOnlyBeyondTheIntegrationsError) {
  const double rtol = 1e-8, u = std::numeric_limits<double>::epsilon() / 2;
  for (double move : {0.1, 10.0}) {  // in units of the scaled bound (rtol / u) r
    ScalarSurface s;
    s.bound = 1e-14;
    const double noise = rtol / u * s.bound;
    const EventHooks hooks = s.hooks();
    EventLocator loc(hooks, Clock{ClockKind::t}, rtol);
    // A first step crosses g = 0 at tau = 1/2: located and switched (the surface is now handled).
    s.path = [](double tau) { return 0.5 - tau; };
    Vec y0 = scalar(0.5), y1 = scalar(-0.5), x = y1;
    double tau = 1.0;
    std::size_t next = 0;
    SolverCounters c;
    ASSERT_TRUE(loc.crossed(0.0, y0, 1.0, y1));
    ASSERT_FALSE(loc.stop_at_event(0.0, y0, tau, x, s.interpolant(), {}, {}, next,
                                   [](std::int64_t, double, const Vec&) {}, c));
    ASSERT_EQ(s.crossings, 1);
    EXPECT_NEAR(tau, 0.5, 1e-12);
    // The next step (the switched function is -y): it moves by `move` noise to the wrong side.
    const Vec start = scalar(0.0), end = scalar(move * noise);
    const bool bounced = loc.crossed(tau, start, tau + 0.25, end);
    EXPECT_EQ(bounced, move > 1) << "move " << move;
  }
}

// A crossing at tau = 1/2 switched one at a time, then straight back through the surface at the
// restart (a zero-length restart), where the joint switch answers with no crossing, entry or exit
// and `moved` for the masks of the entries that keep sliding: returns the slides that the
// one-at-a-time switch then made.
int slides_after_a_joint_switch_without_side_changes(bool moved, ScalarSurface&& s = ScalarSurface()) {
  s.joint = [moved](int call) -> std::optional<EventHooks::Resolution> {
    if (call == 0) return std::nullopt;  // the first event: one at a time
    EventHooks::Resolution r;
    r.masks_moved = moved;
    return r;
  };
  const EventHooks hooks = s.hooks();
  EventLocator loc(hooks, Clock{ClockKind::t}, 1e-8);
  s.path = [](double tau) { return 0.5 - tau; };
  Vec y0 = scalar(0.5), x = scalar(-0.5);
  double tau = 1.0;
  std::size_t next = 0;
  SolverCounters c;
  auto observe = [](std::int64_t, double, const Vec&) {};
  EXPECT_TRUE(loc.crossed(0.0, y0, 1.0, x));
  EXPECT_FALSE(loc.stop_at_event(0.0, y0, tau, x, s.interpolant(), {}, {}, next, observe, c));
  EXPECT_EQ(s.crossings, 1);
  // The new side's field carries the state straight back: g = -y falls from 0 at the restart.
  const double tau0 = tau;
  s.path = [tau0](double t) { return 0.5 * (t - tau0); };
  const Vec start = x, end = scalar(s.path(tau0 + 0.25));
  double tau1 = tau0 + 0.25;
  Vec x1 = end;
  EXPECT_TRUE(loc.crossed(tau0, start, tau1, end));
  EXPECT_FALSE(loc.stop_at_event(tau0, start, tau1, x1, s.interpolant(), {}, {}, next, observe, c));
  EXPECT_EQ(tau1, tau0) << "a bounce at the restart";
  EXPECT_EQ(s.resolves, 2);
  if (!std::isnan(s.slide_mask)) {
    EXPECT_EQ(s.sliding, s.slide_mask >= 0 && s.slide_mask <= 1) << "mask " << s.slide_mask;
    EXPECT_EQ(s.crossings, s.sliding ? 1 : 2) << "mask " << s.slide_mask;
  }
  return s.slides;
}

TEST(EventLocator, AJointSwitchThatMovesSlidingMasksIsAChange) {
  EXPECT_EQ(slides_after_a_joint_switch_without_side_changes(true), 0);  // the joint answer stands
  EXPECT_EQ(slides_after_a_joint_switch_without_side_changes(false), 1);  // overruled: the bounce slides
}

// The overruled bounce's slide gets an equivalent control outside [0,1] (both one-sided rates of
// one sign, the 100-16-1 copy at t = 1.55e7: m = 1.54): no sliding mode, the state leaves at once
// (a crossing to the side the rates point to), instead of going on with the mask outside [0,1].
TEST(EventLocator, ASlideWithTheControlOutsideTheBoxLeavesAtOnce) {
  for (double m : {0.3, 1.54, -0.2}) {
    ScalarSurface s;
    s.slide_mask = m;
    EXPECT_EQ(slides_after_a_joint_switch_without_side_changes(false, std::move(s)), 1) << m;
  }
}

// A step from tau = 0 to 1 along `path` with the interpolant (the grazing test): the located
// event's clock value, or -1 if the step has none.
double locate_in_step(ScalarSurface& s) {
  const EventHooks hooks = s.hooks();
  EventLocator loc(hooks, Clock{ClockKind::t}, 1e-8);
  const Vec y0 = scalar(s.path(0.0)), y1 = scalar(s.path(1.0));
  const StepInterpolant interpolate = s.interpolant();
  if (!loc.crossed(0.0, y0, 1.0, y1, &interpolate)) return -1.0;
  Vec y_event;
  return loc.locate(0.0, y0, 1.0, interpolate, y_event);
}

TEST(EventLocator, ADipInsideTheStepIsLocatedAtItsFirstCrossing) {
  ScalarSurface s;
  // Positive at both ends (0.24), negative on (0.4, 0.6): the ends see nothing.
  s.path = [](double tau) { return (tau - 0.5) * (tau - 0.5) - 0.01; };
  EXPECT_NEAR(locate_in_step(s), 0.4, 1e-12);
  // Off centre, and not a parabola: negative on (0.2, 0.3).
  s.path = [](double tau) { return (tau - 0.2) * (tau - 0.3) * (1.0 + tau); };
  EXPECT_NEAR(locate_in_step(s), 0.2, 1e-12);
  // The same dip without the interpolant: the sign check at the ends alone misses it.
  const EventHooks hooks = s.hooks();
  EventLocator loc(hooks, Clock{ClockKind::t}, 1e-8);
  EXPECT_FALSE(loc.crossed(0.0, scalar(s.path(0.0)), 1.0, scalar(s.path(1.0))));
}

TEST(EventLocator, NoDipNoEventAndRoundOffIsNoDip) {
  ScalarSurface s;
  s.path = [](double tau) { return (tau - 0.5) * (tau - 0.5) + 0.01; };  // a minimum above zero
  EXPECT_EQ(locate_in_step(s), -1.0);
  // Below zero by less than its rounding bound: noise, not two crossings.
  s.path = [](double tau) { return (tau - 0.5) * (tau - 0.5) - 1e-16; };
  s.bound = 1e-15;
  EXPECT_EQ(locate_in_step(s), -1.0);
  s.bound = 1e-17;
  EXPECT_GT(locate_in_step(s), 0.49);
}

// A surface switched at an event whose next step takes it straight back through (a bounce) and to
// the chosen side again by the step's end: the ends alone see nothing wrong; the dip is a bounce at
// the step's start (on bench/relu_deep.toml gd_polar at rtol 1e-10 such a step carried the state
// past a sliding mode). A dip below the integration's error is none.
TEST(EventLocator, ABounceCarriedBackByTheStepsEndIsABounceAtTheStart) {
  const double rtol = 1e-8, u = std::numeric_limits<double>::epsilon() / 2;
  for (double depth : {0.1, 10.0}) {  // the dip's depth in units of the scaled bound (rtol / u) r
    ScalarSurface s;
    s.bound = 1e-14;
    const double noise = rtol / u * s.bound;
    const EventHooks hooks = s.hooks();
    EventLocator loc(hooks, Clock{ClockKind::t}, rtol);
    s.path = [](double tau) { return 0.5 - tau; };  // crosses at tau = 1/2: switched, handled
    Vec y0 = scalar(0.5), x = scalar(-0.5);
    double tau = 1.0;
    std::size_t next = 0;
    SolverCounters c;
    ASSERT_TRUE(loc.crossed(0.0, y0, 1.0, x));
    ASSERT_FALSE(loc.stop_at_event(0.0, y0, tau, x, s.interpolant(), {}, {}, next,
                                   [](std::int64_t, double, const Vec&) {}, c));
    ASSERT_NEAR(tau, 0.5, 1e-12);
    // The switched function is g = -y: below zero on (tau0, tau0 + 1/2) with its minimum -depth
    // noise at tau0 + 1/4, positive at the step's end tau0 + 1.
    const double tau0 = tau, a = 16 * depth * noise;
    s.path = [tau0, a](double t) { return -a * ((t - tau0) * (t - tau0) - 0.5 * (t - tau0)); };
    const Vec start = scalar(s.path(tau0)), end = scalar(s.path(tau0 + 1.0));
    ASSERT_GT(-end[0], 0.0);
    const StepInterpolant interpolate = s.interpolant();
    const bool event = loc.crossed(tau0, start, tau0 + 1.0, end, &interpolate);
    EXPECT_EQ(event, depth > 1) << "depth " << depth;
    if (!event) continue;
    Vec y_event;
    EXPECT_EQ(loc.locate(tau0, start, tau0 + 1.0, interpolate, y_event), tau0) << "a bounce at the start";
  }
}

}  // namespace
}  // namespace gfsim::detail
