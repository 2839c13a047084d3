// Schedules lambda(t) and rho(t) (schedule.hpp): derivatives against central differences, the
// closed forms, table interpolation, and the log clock's scaled forms at t = 1e300.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <string>
#include <vector>

#include "gfsim/errors.hpp"
#include "gfsim/schedule.hpp"

namespace gfsim {
namespace {

/// Central difference of f at t with a step relative to 1 + t.
template <typename F>
double central_difference(F f, double t) {
  const double h = 1e-6 * (1.0 + t);
  return (f(t + h) - f(t - h)) / (2 * h);
}

const std::vector<double> kTimes{0.3, 1.0, 7.5, 123.0, 4.0e4};

TEST(LambdaSchedule, DerivativesMatchCentralDifferences) {
  ScheduleTable knots{{0.0, 2.0, 10.0}, {1.0, 0.5, 0.05}};
  const std::vector<LambdaSchedule> schedules{LambdaSchedule::power(0.7, 1.0), LambdaSchedule::power(2.0, 0.3),
                                              LambdaSchedule::inverse_log(1.5), LambdaSchedule::table(knots)};
  for (const LambdaSchedule& l : schedules)
    for (double t : kTimes) {
      const double fd = central_difference([&](double s) { return l.value(s); }, t);
      EXPECT_NEAR(l.derivative(t), fd, 1e-7 * std::abs(fd) + 1e-14) << "kind " << to_string(l.kind()) << " t " << t;
    }
}

TEST(LambdaSchedule, ClosedForms) {
  EXPECT_DOUBLE_EQ(LambdaSchedule::power(0.7, 1.0).value(3.0), 0.7 / 4.0);
  EXPECT_DOUBLE_EQ(LambdaSchedule::power(2.0, 0.5).value(8.0), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(LambdaSchedule::inverse_log(1.5).value(0.0), 1.5);  // log(e) = 1
  EXPECT_NEAR(LambdaSchedule::inverse_log(1.5).value(5.0), 1.5 / std::log(std::numbers::e + 5.0), 1e-15);
}

TEST(LambdaSchedule, TableInterpolatesLinearlyAndHoldsTheLastValue) {
  const LambdaSchedule l = LambdaSchedule::table({{0.0, 2.0, 10.0}, {1.0, 0.5, 0.1}});
  EXPECT_DOUBLE_EQ(l.value(0.0), 1.0);
  EXPECT_DOUBLE_EQ(l.value(1.0), 0.75);
  EXPECT_DOUBLE_EQ(l.value(2.0), 0.5);
  EXPECT_DOUBLE_EQ(l.value(6.0), 0.3);
  EXPECT_DOUBLE_EQ(l.value(10.0), 0.1);
  EXPECT_DOUBLE_EQ(l.value(1e6), 0.1);
  EXPECT_DOUBLE_EQ(l.derivative(1e6), 0.0);
  EXPECT_DOUBLE_EQ(l.derivative(2.0), -0.05);  // right derivative at a knot
}

TEST(LambdaSchedule, LogClockFormsStayFiniteAtHugeTimes) {
  // In the log clock s = log(1+t) the decay enters as e^s lambda(t); at t = 1e300, e^s alone is 1e300.
  const double t = 1e300, s = std::log1p(t);
  const LambdaSchedule p1 = LambdaSchedule::power(0.5, 1.0), p03 = LambdaSchedule::power(0.5, 0.3);
  EXPECT_NEAR(p1.scaled_value(t, s), 0.5, 1e-12);  // (1+t) * 0.5/(1+t)
  EXPECT_NEAR(p03.scaled_value(t, s) / std::exp(std::log(0.5) + 0.7 * s), 1.0, 1e-12);
  EXPECT_TRUE(std::isfinite(p03.scaled_derivative(t, s)));
  EXPECT_NEAR(p1.scaled_derivative(t, s) * (1.0 + t) / -0.5, 1.0, 1e-12);
  const LambdaSchedule il = LambdaSchedule::inverse_log(2.0);
  EXPECT_NEAR(il.scaled_value(t, s) / (2.0 * 1e300 / std::log(1e300)), 1.0, 1e-12);
  EXPECT_TRUE(std::isfinite(il.scaled_derivative(t, s)));
  EXPECT_LT(il.scaled_derivative(t, s), 0.0);
}

TEST(LambdaSchedule, RefusesBadParameters) {
  EXPECT_THROW(LambdaSchedule::power(0.0, 1.0), DomainError);
  EXPECT_THROW(LambdaSchedule::power(1.0, 0.0), DomainError);
  EXPECT_THROW(LambdaSchedule::power(1.0, 1.5), DomainError);
  EXPECT_THROW(LambdaSchedule::inverse_log(-1.0), DomainError);
  EXPECT_THROW(LambdaSchedule::power(1.0, 1.0).value(-1.0), DomainError);
}

std::vector<RhoSchedule> smooth_rho_schedules() {
  return {RhoSchedule::logarithmic(0.5, 2.0), RhoSchedule::power(1.5, 0.5), RhoSchedule::exponential(0.8, 0.01),
          RhoSchedule::table({{0.0, 3.0, 50.0}, {1.0, 4.0, 2.0}})};
}

TEST(RhoSchedule, DerivativesMatchCentralDifferences) {
  for (const RhoSchedule& r : smooth_rho_schedules())
    for (double t : kTimes) {
      if (r.kind() == RhoScheduleKind::exponential && t > 1e3) continue;  // e^{400}: covered by log form
      const double fd = central_difference([&](double s) { return r.value(s); }, t);
      EXPECT_NEAR(r.derivative(t), fd, 1e-7 * std::abs(fd) + 1e-14) << to_string(r.kind()) << " t " << t;
      const double fd_log = central_difference([&](double s) { return r.log_value(s); }, t);
      EXPECT_NEAR(r.log_derivative(t), fd_log, 1e-7 * std::abs(fd_log) + 1e-14) << to_string(r.kind());
      EXPECT_NEAR(r.log_value(t), std::log(r.value(t)), 1e-13 * (1.0 + std::abs(r.log_value(t))));
    }
}

TEST(RhoSchedule, ClosedForms) {
  EXPECT_DOUBLE_EQ(RhoSchedule::logarithmic(0.5, 2.0).value(std::numbers::e - 1.0), 2.5);
  EXPECT_DOUBLE_EQ(RhoSchedule::power(1.5, 0.5).value(3.0), 3.0);
  EXPECT_NEAR(RhoSchedule::exponential(0.8, 0.01).value(100.0), 0.8 * std::numbers::e, 1e-14);
}

TEST(RhoSchedule, StaircaseRescalesAfterEachPhase) {
  const RhoSchedule r = RhoSchedule::staircase(1.0, 2.0, 10.0);
  EXPECT_DOUBLE_EQ(r.value(0.0), 1.0);
  EXPECT_DOUBLE_EQ(r.value(9.999), 1.0);
  EXPECT_DOUBLE_EQ(r.value(10.0), 2.0);
  EXPECT_DOUBLE_EQ(r.value(35.0), 8.0);
  EXPECT_DOUBLE_EQ(r.derivative(35.0), 0.0);
  // Factor 1 or rate 0: a constant schedule.
  EXPECT_DOUBLE_EQ(RhoSchedule::staircase(3.0, 1.0, 1.0).value(1e5), 3.0);
  EXPECT_DOUBLE_EQ(RhoSchedule::power(3.0, 0.0).value(1e5), 3.0);
}

// The integration loop stops on the times next_discontinuity reports (integrate.hpp): rho must jump
// exactly there, not a rounding error before or after (0.7 * 3 / 0.7 < 3: floor(t / phase) alone
// would put the jump one double late), and be constant between them.
TEST(RhoSchedule, StaircaseJumpsExactlyAtTheTimesItReports) {
  for (double phase : {10.0, 0.7, 0.1, 1.0 / 3.0}) {
    const RhoSchedule r = RhoSchedule::staircase(1.5, 2.0, phase);
    double t = 0.0;
    for (int k = 1; k <= 40; ++k) {
      const double jump = r.next_discontinuity(t);
      ASSERT_GT(jump, t);
      const double before = std::nextafter(jump, 0.0);
      EXPECT_NEAR(r.value(jump) / r.value(before), 2.0, 1e-13) << "phase " << phase << " jump " << k;
      EXPECT_EQ(r.next_discontinuity(before), jump);
      // Constant up to the next jump; the piece before the jump, pinned, extends past it unchanged.
      const double after = r.next_discontinuity(jump);
      EXPECT_EQ(r.value(std::nextafter(after, 0.0)), r.value(jump));
      EXPECT_EQ(r.value(jump, before), r.value(before));
      EXPECT_EQ(r.derivative(jump, before), 0.0);
      t = jump;
    }
  }
  EXPECT_EQ(RhoSchedule::staircase(1.0, 1.0, 2.0).next_discontinuity(0.0), HUGE_VAL);  // no jump
  for (const RhoSchedule& r : smooth_rho_schedules())
    if (r.kind() != RhoScheduleKind::table) EXPECT_EQ(r.next_discontinuity(5.0), HUGE_VAL) << to_string(r.kind());
}

// A table's slope breaks at its knots: they are its discontinuities, and a pinned segment is its
// line (in log rho; in lambda) continued past the knot.
TEST(ScheduleTable, KnotsAreDiscontinuitiesAndAPinnedSegmentContinuesItsLine) {
  const RhoSchedule r = RhoSchedule::table({{0.0, 2.0, 4.0}, {1.0, 4.0, 2.0}});
  EXPECT_EQ(r.next_discontinuity(0.0), 2.0);
  EXPECT_EQ(r.next_discontinuity(2.0), 4.0);
  EXPECT_EQ(r.next_discontinuity(4.0), HUGE_VAL);
  const double line = std::log(4.0) / 2.0;  // d log rho/dt on [0, 2]
  EXPECT_NEAR(r.log_value(3.0, 1.0), 3.0 * line, 1e-15);
  EXPECT_NEAR(r.log_derivative(3.0, 1.0), line, 1e-15);
  EXPECT_NEAR(r.log_derivative(3.0), -std::log(2.0) / 2.0, 1e-15);
  const LambdaSchedule l = LambdaSchedule::table({{0.0, 1.0, 3.0}, {1.0, 0.5, 0.5}});
  EXPECT_EQ(l.next_discontinuity(0.5), 1.0);
  EXPECT_EQ(l.next_discontinuity(1.0), 3.0);
  EXPECT_EQ(l.next_discontinuity(3.0), HUGE_VAL);
  EXPECT_NEAR(l.scaled_value(1.5, 0.0, 0.5), 0.25, 1e-15);  // 1 - t/2 continued
  EXPECT_NEAR(l.scaled_derivative(1.5, 0.0, 0.5), -0.5, 1e-15);
  EXPECT_DOUBLE_EQ(l.scaled_derivative(1.5, 0.0), 0.0);
  EXPECT_EQ(LambdaSchedule::power(1.0, 1.0).next_discontinuity(0.0), HUGE_VAL);
}

TEST(RhoSchedule, TableInterpolatesLogRhoLinearly) {
  const RhoSchedule r = RhoSchedule::table({{0.0, 2.0, 4.0}, {1.0, 4.0, 4.0}});
  EXPECT_NEAR(r.value(1.0), 2.0, 1e-15);  // geometric mean of 1 and 4
  EXPECT_NEAR(r.value(3.0), 4.0, 1e-15);
  EXPECT_NEAR(r.value(100.0), 4.0, 1e-15);
  EXPECT_NEAR(r.log_derivative(0.5), std::log(4.0) / 2.0, 1e-15);
  EXPECT_DOUBLE_EQ(r.derivative(100.0), 0.0);
}

TEST(RhoSchedule, LogFormsStayFiniteAtHugeTimes) {
  const double t = 1e300;
  for (const RhoSchedule& r : smooth_rho_schedules()) {
    EXPECT_TRUE(std::isfinite(r.log_value(t))) << to_string(r.kind());
    EXPECT_TRUE(std::isfinite(r.log_derivative(t))) << to_string(r.kind());
  }
  const RhoSchedule staircase = RhoSchedule::staircase(1.0, 2.0, 10.0);
  EXPECT_NEAR(staircase.log_value(t) / (1e299 * std::log(2.0)), 1.0, 1e-12);
  EXPECT_EQ(RhoSchedule::exponential(1.0, 1.0).value(t), HUGE_VAL);  // overflows; its log does not
  EXPECT_NEAR(RhoSchedule::power(1.0, 0.5).value(t), 1e150, 1e138);
}

TEST(ScheduleTable, ReadsTwoColumnsAndNamesTheKeyInErrors) {
  const auto dir = std::filesystem::temp_directory_path() / "gfsim_test_schedule";
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    const std::string path = (dir / name).string();
    std::ofstream(path) << text;
    return path;
  };
  const ScheduleTable knots = read_schedule_table(write("ok.csv", "t,lambda\n0,1\n# a comment\n5, 0.5\n"), "flow.lambda_table");
  EXPECT_EQ(knots.t, (std::vector<double>{0.0, 5.0}));
  EXPECT_EQ(knots.value, (std::vector<double>{1.0, 0.5}));
  auto message = [&](const std::string& text) {
    try {
      read_schedule_table(write("bad.csv", text), "flow.rho_table");
    } catch (const SpecError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("1,1\n2,2\n").find("must be 0"), std::string::npos);
  EXPECT_NE(message("0,1\n3,2\n3,4\n").find("increase strictly"), std::string::npos);
  EXPECT_NE(message("0,1\n3,-2\n").find("must be > 0"), std::string::npos);
  EXPECT_NE(message("0,1,2\n").find("bad.csv"), std::string::npos);
  EXPECT_NE(message("# only a comment\n").find("flow.rho_table"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gfsim
