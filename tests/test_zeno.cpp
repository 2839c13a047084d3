// A Zeno accumulation of events stops the run with a named status after a bounded amount of work
// (docs/events.md, "Zeno guard"): a run never spins on events that accumulate at one instant.
//
// The toy is the twisting system x' = y, y' = -s_x - k s_y with the discrete state (s_x, s_y),
// the signs of (x, y), switched at the events x = 0 and y = 0 (0 < k < 1). From (0, y0), y0 > 0,
// a half-turn (x > 0: y falls at rate 1 + k to 0, then at rate 1 - k until x = 0) takes
// y0 (1/(1+k) + 1/sqrt(1-k^2)) and ends at (0, -rho y0), rho = sqrt((1-k)/(1+k)): the switches
// accumulate at the origin at T = y0 (1/(1+k) + 1/sqrt(1-k^2)) / (1 - rho), after infinitely many
// events. The hooks offer no sliding mode (the origin is a codimension-2 point), so the run must
// stop there with stalled_at_kink after a bounded number of events, naming the surface and the time.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "gfsim/integrate.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

struct Twisting {
  double k;
  double sx = 1, sy = 1;
  long events = 0;
  OdeProblem problem() {
    OdeProblem p;
    p.size = 2;
    // The problem carries the clock's factor (integrate.hpp: dy = e^{log_scale} F(t, y)); without
    // it the log clock would integrate another ODE, dy/ds = F, whose switches accumulate at
    // s = T, i.e. t = e^T - 1.
    p.rhs = [this](TimePoint tp, const Vec& y, Vec& dy) {
      dy.resize(2);
      dy << y[1], -sx - k * sy;
      dy *= std::exp(tp.log_scale);
    };
    p.jacobian = [](TimePoint tp, const Vec&, Mat& J) {
      J = Mat::Zero(2, 2);
      J(0, 1) = std::exp(tp.log_scale);
    };
    p.events.values = [this](TimePoint, const Vec& y, Vec& g) {
      g.resize(2);
      g << sx * y[0], sy * y[1];
    };
    p.events.cross = [this](TimePoint, const Vec&, Index j) {
      ++events;
      (j == 0 ? sx : sy) = -(j == 0 ? sx : sy);
    };
    p.events.describe = [](Index j) { return std::string(j == 0 ? "x = 0" : "y = 0"); };
    return p;
  }
};

TEST(Zeno, TwistingSwitchesStopAtTheirAccumulationPointWithAStatus) {
  for (double k : {0.5, 0.2}) {
    Twisting toy{k};
    toy.sx = 1;  // x = 0 with y > 0: x grows, the positive side
    const double y0 = 1.0;
    const double rho = std::sqrt((1 - k) / (1 + k));
    const double T = y0 * (1 / (1 + k) + 1 / std::sqrt(1 - k * k)) / (1 - rho);
    Vec x0(2);
    x0 << 0.0, y0;
    for (ClockKind clock : {ClockKind::t, ClockKind::log}) {
      toy.sx = 1;
      toy.sy = 1;
      toy.events = 0;
      auto o = test::solver_options(Method::dopri5, clock, 1e-10);
      Vec last;
      const auto r = integrate(toy.problem(), x0, {0.0, 10 * T}, o,
                               [&](std::int64_t, double, const Vec& y) { last = y; });
      EXPECT_EQ(r.status, Status::stalled_at_kink) << "k = " << k << ": " << r.message;
      EXPECT_NEAR(r.t_final, T, 1e-7 * T) << "k = " << k << ": " << r.message;
      EXPECT_NE(r.message.find("= 0"), std::string::npos) << r.message;  // names the surface
      // Bounded work: the guards stop within a few thousand events of the accumulation.
      EXPECT_LT(toy.events, 2 * 2048 + 1000) << "k = " << k;
      EXPECT_LT(r.counters.accepted, 50000) << "k = " << k;
    }
  }
}

// Every stepper and clock: the run never passes the accumulation point and stops near it after
// bounded work. CVODE restarts each leg with a short first step; near T that step falls below the
// clock's resolution (the state moves, the clock does not), and the crossings of such a step must
// still be events (they were once dropped and the run restarted at the same point until max_steps).
// The lower bound is the solver's resolution of the spiral: a leg from amplitude a takes a time
// proportional to a, so stopping a relative 1e-4 before T means the state is still ~1e-4 of y0.
TEST(Zeno, EveryMethodAndClockStopsAtTheAccumulationPoint) {
  const double k = 0.9;  // rho ~ 0.23: a fast accumulation, few events before the clock's resolution
  const double y0 = 1.0;
  const double rho = std::sqrt((1 - k) / (1 + k));
  const double T = y0 * (1 / (1 + k) + 1 / std::sqrt(1 - k * k)) / (1 - rho);
  Vec x0(2);
  x0 << 0.0, y0;
  for (Method method : {Method::dopri5, Method::rosenbrock4, Method::cvode}) {
    for (ClockKind clock : {ClockKind::t, ClockKind::log}) {
      Twisting toy{k};
      auto o = test::solver_options(method, clock, 1e-10);
      o.max_steps = 200000;  // a spin ends here with max_steps, not after minutes
      const auto r = integrate(toy.problem(), x0, {0.0, 10 * T}, o, [](std::int64_t, double, const Vec&) {});
      const std::string what = std::string(to_string(method)) + ", clock " + to_string(clock) + ": " + r.message;
      EXPECT_EQ(r.status, Status::stalled_at_kink) << what;
      EXPECT_LE(r.t_final, T * (1 + 1e-9)) << what;
      EXPECT_GE(r.t_final, T * (1 - 1e-4)) << what;
      EXPECT_NE(r.message.find("= 0 at t = "), std::string::npos) << what;  // the surface and the time
      EXPECT_LT(toy.events, 2 * 2048 + 1000) << what;
      EXPECT_LT(r.counters.accepted, 50000) << what;
    }
  }
}

// x' = 1 (the clock's factor included), undefined for x > 1 unless *defined_everywhere: NaN there,
// with the reason in `why` (OdeProblem::field_failure).
OdeProblem undefined_beyond_one(FieldFailure& why, const bool* defined_everywhere = nullptr) {
  OdeProblem p;
  p.size = 1;
  p.rhs = [&why, defined_everywhere](TimePoint tp, const Vec& y, Vec& dy) {
    dy.resize(1);
    if (!(defined_everywhere && *defined_everywhere) && !(y[0] <= 1.0)) {
      if (std::isfinite(y[0])) why = {tp.t, "no equivalent control of the toy's sliding surfaces"};
      dy[0] = std::numeric_limits<double>::quiet_NaN();
      return;
    }
    dy[0] = std::exp(tp.log_scale);
  };
  p.jacobian = [](TimePoint, const Vec&, Mat& J) { J = Mat::Zero(1, 1); };
  p.field_failure = [&why] { return why; };
  return p;
}

// A field undefined beyond a point (KinkPattern: a sliding set without an equivalent control
// returns NaN and says why, OdeProblem::field_failure): every stepper rejects the steps into it,
// and the run stops there with stalled_at_kink and the problem's reason, not a bare non_finite.
TEST(Zeno, UndefinedFieldStopsWithTheProblemsReason) {
  // x' = 1 until x = 1, undefined beyond: the stop is at t = 1 (to the steps' resolution).
  FieldFailure why;
  OdeProblem p = undefined_beyond_one(why);
  for (Method method : {Method::dopri5, Method::rosenbrock4, Method::cvode}) {
    auto o = test::solver_options(method, ClockKind::t, 1e-10);
    const auto r = integrate(p, Vec::Zero(1), {0.0, 5.0}, o, [](std::int64_t, double, const Vec&) {});
    const std::string what = std::string(to_string(method)) + ": " + r.message;
    EXPECT_EQ(r.status, Status::stalled_at_kink) << what;
    EXPECT_NE(r.message.find("no equivalent control"), std::string::npos) << what;
    EXPECT_LE(r.t_final, 1.0 + 1e-9) << what;
    EXPECT_GE(r.t_final, 0.5) << what;
    ASSERT_EQ(r.y_final.size(), 1) << what;
    EXPECT_TRUE(r.y_final.allFinite()) << what;
  }
  // Without the problem's reason: a plain non_finite stop.
  p.field_failure = nullptr;
  const auto r = integrate(p, Vec::Zero(1), {0.0, 5.0}, test::solver_options(Method::dopri5, ClockKind::t, 1e-10),
                           [](std::int64_t, double, const Vec&) {});
  EXPECT_EQ(r.status, Status::non_finite) << r.message;
}

// The same undefined field at a state where nothing was crossed, but whose discrete state the
// problem can switch there (KinkPattern: a crowded sliding set whose control the sliding solve no
// longer finds, which the joint switch at that state resolves by letting entries leave): the loop
// asks for a joint switch at the state it cannot leave (EventLocator::rejoin with no event) and
// goes on; a switch that changes nothing ends the run with the field's reason as before.
TEST(Zeno, UndefinedFieldIsSwitchedJointlyWhereItFailsWithoutAnEvent) {
  for (bool switch_helps : {true, false}) {
    for (Method method : {Method::dopri5, Method::rosenbrock4, Method::cvode}) {
      FieldFailure why;
      bool switched = false;
      int resolves = 0;
      OdeProblem p = undefined_beyond_one(why, &switched);
      p.events.values = [](TimePoint, const Vec& y, Vec& g) { g = Vec::Constant(1, 10.0 - y[0]); };  // never met
      p.events.cross = [](TimePoint, const Vec&, Index) { ADD_FAILURE() << "no surface is crossed"; };
      p.events.resolve = [&](TimePoint, const Vec& y, const std::vector<Index>& js,
                             int) -> std::optional<EventHooks::Resolution> {
        ++resolves;
        EXPECT_TRUE(js.empty());
        EXPECT_NEAR(y[0], 1.0, 1e-6);
        EventHooks::Resolution r;
        if (switch_helps) {
          switched = true;
          r.exits = 1;
        }
        return r;
      };
      const auto r = integrate(p, Vec::Zero(1), {0.0, 5.0}, test::solver_options(method, ClockKind::t, 1e-10),
                               [](std::int64_t, double, const Vec&) {});
      const std::string what = std::string(to_string(method)) + (switch_helps ? ", switch helps: " : ": ") + r.message;
      EXPECT_EQ(resolves, 1) << what;
      if (switch_helps) {
        EXPECT_EQ(r.status, Status::success) << what;
        EXPECT_NEAR(r.y_final[0], 5.0, 1e-8) << what;
      } else {
        EXPECT_EQ(r.status, Status::stalled_at_kink) << what;
        EXPECT_NE(r.message.find("no equivalent control"), std::string::npos) << what;
        EXPECT_LE(r.t_final, 1.0 + 1e-9) << what;
      }
    }
  }
}

}  // namespace
}  // namespace gfsim
