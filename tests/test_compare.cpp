// `gfsim compare` (compare.hpp): the rate fits recover known rates on synthetic series, the
// "below for good" rule, the --flows parser, and a whole comparison on the one-point problem whose
// trajectory is known in closed form (q(t) = log(e^{q0} + |z|^2 t), the part of w orthogonal to z fixed).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gfsim/build.hpp"
#include "gfsim/compare.hpp"
#include "gfsim/errors.hpp"

namespace gfsim {
namespace {

std::vector<double> log_times(double from, double to, int per_decade) {
  std::vector<double> t;
  for (double e = std::log10(from); e <= std::log10(to) + 1e-12; e += 1.0 / per_decade) t.push_back(std::pow(10.0, e));
  return t;
}

TEST(CompareRates, RecoverAPowerOfT) {
  const std::vector<double> t = log_times(1.0, 1e8, 10);
  std::vector<double> v;
  for (double x : t) v.push_back(3.0 * std::pow(x, -0.7));
  const RateFit fit = fit_rates(t, v, 1e-12);
  EXPECT_NEAR(fit.power, 0.7, 1e-10);
  EXPECT_NEAR(fit.power_r2, 1.0, 1e-12);
  EXPECT_LT(fit.log_power_r2, 1.0);
  EXPECT_GT(fit.points, 20);
}

TEST(CompareRates, RecoverAPowerOfLogT) {
  const std::vector<double> t = log_times(10.0, 1e100, 5);
  std::vector<double> v;
  for (double x : t) v.push_back(2.0 / std::log(x));  // gradient descent's 1/log t
  const RateFit fit = fit_rates(t, v, 1e-12);
  EXPECT_NEAR(fit.log_power, 1.0, 1e-10);
  EXPECT_NEAR(fit.log_power_r2, 1.0, 1e-12);
  EXPECT_LT(fit.power, 0.05);  // against t it looks nearly flat
}

TEST(CompareRates, RecoverAnExponentialRateInT) {
  // Progressive norm rescaling's claim: the gap falls like e^{-k t}. Samples log-spaced as a run's,
  // 0.4 e^{-0.05 t} down to the floor 1e-9 at t ~ 400: the fit uses the part above the floor.
  const std::vector<double> t = log_times(1.0, 1e4, 20);
  std::vector<double> v, power_law;
  for (double x : t) v.push_back(std::max(0.4 * std::exp(-0.05 * x), 1e-12));
  for (double x : t) power_law.push_back(3.0 * std::pow(x, -0.7));
  const RateFit fit = fit_rates(t, v, 1e-9);
  EXPECT_NEAR(fit.exp_rate, 0.05, 1e-10);
  EXPECT_NEAR(fit.exp_rate_r2, 1.0, 1e-12);
  EXPECT_LT(fit.power_r2, 0.99);  // against log t it bends
  // A power of t is not an exponential: its exponential fit is poor and its rate small.
  const RateFit p = fit_rates(t, power_law, 1e-12);
  EXPECT_LT(p.exp_rate_r2, 0.9);
  EXPECT_LT(p.exp_rate, 1e-3);
}

TEST(CompareRates, IgnoreValuesAtTheNoiseFloor) {
  const std::vector<double> t = log_times(1.0, 1e8, 10);
  std::vector<double> v;
  for (double x : t) v.push_back(std::max(std::pow(x, -1.0), 1e-6));  // a solver floor at 1e-6
  const RateFit fit = fit_rates(t, v, 2e-6);
  EXPECT_NEAR(fit.power, 1.0, 1e-10);
  EXPECT_TRUE(std::isnan(fit_rates({1.0, 2.0}, {1.0, 0.5}, 0.0).power));  // too few points: no fit
}

TEST(CompareRates, BelowForGood) {
  EXPECT_EQ(first_index_below_for_good({0.5, 0.05, 0.2, 0.01, 0.001}, 0.1), 3);
  EXPECT_EQ(first_index_below_for_good({0.5, 0.05, 0.2, 0.01, 0.2}, 0.1), -1);
  EXPECT_EQ(first_index_below_for_good({0.05, 0.01}, 0.1), 0);
  EXPECT_EQ(first_index_below_for_good({}, 0.1), -1);
}

TEST(CompareFlows, ParsesListsAndNamesBadOnes) {
  EXPECT_EQ(parse_flow_list("gd,wn,fixed_rho"), (std::vector<FlowKind>{FlowKind::gd, FlowKind::wn, FlowKind::fixed_rho}));
  auto message = [](const std::string& list) {
    try {
      parse_flow_list(list);
    } catch (const SpecError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("gd,sgd").find("unknown flow \"sgd\""), std::string::npos);
  EXPECT_NE(message("gd,gd").find("listed twice"), std::string::npos);
  EXPECT_NE(message("").find("at least one flow"), std::string::npos);
}

TEST(CompareRun, OnePointProblemMatchesTheClosedForm) {
  const auto dir = std::filesystem::temp_directory_path() / "gfsim_test_compare";
  std::filesystem::remove_all(dir);
  const ModelSpec spec = load_model_spec(std::string(GFSIM_SOURCE_DIR) + "/models/one_point_exact.toml",
                                         {"time.t_end=1e100", "network.init_scale=1e-3"});
  CompareOptions options;
  options.flows = {FlowKind::gd, FlowKind::gd_polar};
  options.output = (dir / "one.h5").string();
  const CompareReport r = compare_model(spec, options);
  ASSERT_TRUE(std::filesystem::exists(r.json_path));
  ASSERT_TRUE(std::filesystem::exists(dir / "one_gd.h5"));
  ASSERT_TRUE(std::filesystem::exists(dir / "one_gd_polar.h5"));

  // Closed form: w(t) = w_perp + (q(t)/|z|^2) z with q(t) = log(e^{q0} + |z|^2 t).
  const Dataset data = make_dataset(spec);
  const Vec z = data.signed_points().row(0).transpose();
  const Vec w0 = initial_weights(spec, exact_network(spec, data.dim()));
  const double q0 = z.dot(w0), z2 = z.squaredNorm();
  const Vec w_perp = w0 - q0 / z2 * z;
  EXPECT_NEAR(r.gamma, std::sqrt(z2), 1e-12);
  for (const FlowComparison& f : r.flows) {
    ASSERT_EQ(f.run.result.status, Status::success) << f.flow;
    ASSERT_GT(f.t.size(), 50u);
    std::vector<double> gap, direction;
    for (double t : f.t) {
      const double q = std::log(std::exp(q0) + z2 * t);
      const Vec w = w_perp + q / z2 * z;
      direction.push_back((w / w.norm() - z / std::sqrt(z2)).norm());
      gap.push_back(1.0 - q / (std::sqrt(z2) * w.norm()));
    }
    for (std::size_t i = 0; i < f.t.size(); ++i) {
      EXPECT_NEAR(f.direction_error[i], direction[i], 1e-7 * (1 + direction[i])) << f.flow << " t " << f.t[i];
      EXPECT_NEAR(f.gap[i], gap[i], 1e-7) << f.flow << " t " << f.t[i];
    }
    double previous_rhs = 0;
    for (std::size_t k = 0; k < 3; ++k) {
      const Index exact = first_index_below_for_good(direction, kCompareThresholds[k]);
      ASSERT_GE(exact, 0) << f.flow << " never below " << kCompareThresholds[k];
      EXPECT_TRUE(f.direction_reach[k].reached);
      EXPECT_EQ(f.direction_reach[k].t, f.t[std::size_t(exact)]) << f.flow << " threshold " << kCompareThresholds[k];
      EXPECT_GE(f.direction_reach[k].rhs_evals, previous_rhs);
      EXPECT_LE(f.direction_reach[k].rhs_evals, double(f.run.result.counters.rhs_evals));
      EXPECT_GE(f.direction_reach[k].wall_seconds, 0.0);
      previous_rhs = f.direction_reach[k].rhs_evals;
    }
    // Direction error ~ |w_perp| |z| / q = O(1/log t): the fit against log t finds power 1.
    EXPECT_NEAR(f.direction_rate.log_power, 1.0, 0.05) << f.flow;
  }
  std::ifstream js(r.json_path);
  const std::string text((std::istreambuf_iterator<char>(js)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"margin_gap_reach\""), std::string::npos);
  EXPECT_NE(text.find("\"gd_polar\""), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gfsim
