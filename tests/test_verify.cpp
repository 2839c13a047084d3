// gfsim verify: estimators on synthetic series, the closed-form example, non-separable input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "gfsim/model_spec.hpp"
#include "gfsim/verify.hpp"

namespace {

using namespace gfsim;

std::string temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("gfsim_test_verify_" + name);
  std::filesystem::create_directories(dir);
  return dir.string();
}

TEST(VerifyEstimators, LineSlopeOfKnownSeries) {
  std::vector<double> x, y;
  std::mt19937_64 gen(3);
  std::normal_distribution<double> noise(0.0, 1e-3);
  for (int i = 0; i < 200; ++i) {
    const double lt = 10 + i;
    x.push_back(lt);
    y.push_back(2.5 * lt + 7.0 + noise(gen));  // rho = (1/gamma) log t + O(1) with 1/gamma = 2.5
  }
  const LineFit f = fit_line(x, y);
  EXPECT_NEAR(f.slope, 2.5, 1e-5);
  EXPECT_NEAR(f.intercept, 7.0, 1e-3);
  EXPECT_GT(f.r2, 0.999999);
}

TEST(VerifyEstimators, InverseLogFitRecoversCAndB) {
  std::vector<double> lt, eps;
  for (int i = 0; i < 100; ++i) {
    lt.push_back(5.0 + 2.0 * i);
    eps.push_back(0.7 / (lt.back() + 12.5));
  }
  const InverseLogFit f = fit_inverse_log(lt, eps, true);
  EXPECT_NEAR(f.C, 0.7, 1e-6);
  EXPECT_NEAR(f.b, 12.5, 1e-4);
  EXPECT_LT(f.max_rel_residual, 1e-6);
  // The plain C/log t law misses the shift: a large relative residual at small log t.
  const InverseLogFit g = fit_inverse_log(lt, eps, false);
  EXPECT_GT(g.max_rel_residual, 0.3);
  // A negative shift is found too.
  for (std::size_t i = 0; i < lt.size(); ++i) eps[i] = 2.0 / (lt[i] - 3.0);
  const InverseLogFit h = fit_inverse_log(lt, eps, true);
  EXPECT_NEAR(h.C, 2.0, 1e-5);
  EXPECT_NEAR(h.b, -3.0, 1e-4);
}

TEST(VerifyEstimators, PowerLogFitRecoversThePaperLaw) {
  std::vector<double> lt, le;
  for (int i = 0; i < 60; ++i) {
    lt.push_back(1.0 + 0.1 * i);
    le.push_back(0.3 - 0.5 * lt.back() * lt.back());  // eps = e^0.3 t^(-(1/2) log t)
  }
  const PowerLogFit f = fit_power_log(lt, le);
  EXPECT_NEAR(f.p, 2.0, 1e-4);
  EXPECT_NEAR(f.c, -0.5, 1e-4);
  EXPECT_NEAR(f.a, 0.3, 1e-3);
}

TEST(Verify, ClosedFormExampleHolds) {
  const auto spec = load_model_spec(std::string(GFSIM_SOURCE_DIR) + "/models/verify_closed_form.toml",
                                    {"time.t_end=1e100"});
  const auto dir = temp_dir("closed_form");
  const VerifyReport r = verify_model(spec, {.output = dir + "/cf.h5"});
  ASSERT_TRUE(r.has_reference);
  EXPECT_NEAR(r.mm.gamma, 1.0, 1e-12);           // w_hat = (1, 0) in closed form
  EXPECT_NEAR(r.mm.direction[0], 1.0, 1e-12);
  EXPECT_EQ(r.near_support, (std::vector<Index>{0, 1}));
  auto law = [&](const std::string& name) {
    for (const auto& l : r.laws)
      if (l.law == name) return l;
    ADD_FAILURE() << "no law " << name;
    return LawVerdict{};
  };
  EXPECT_EQ(law("rho_slope_gd").verdict, "holds");
  EXPECT_LT(law("rho_slope_gd").rel_error, 1e-3);
  EXPECT_EQ(law("rho_slope_wn").verdict, "holds");
  EXPECT_LT(law("rho_slope_wn").rel_error, 1e-3);
  EXPECT_EQ(law("direction_gd").verdict, "holds");
  EXPECT_LT(law("direction_gd").rel_error, 0.01);
  EXPECT_EQ(law("margin_gd").verdict, "holds");
  EXPECT_LT(r.gd.eps_end, 2e-3);
  EXPECT_TRUE(std::filesystem::exists(r.json_path));
  EXPECT_TRUE(std::filesystem::exists(r.gd_path));
  EXPECT_TRUE(std::filesystem::exists(r.wn_path));
}

TEST(Verify, NonSeparableDataFailsClearly) {
  const auto dir = temp_dir("nonsep");
  {
    std::ofstream csv(dir + "/data.csv");
    csv << "1,1,0\n-1,1,0\n";  // z_1 = (1, 0), z_2 = (-1, 0): z_1 + z_2 = 0
  }
  const auto spec = parse_model_spec("[data]\nkind = \"csv\"\npath = \"data.csv\"\n", dir + "/nonsep.toml",
                                     {"time.t_end=1e6"});
  try {
    verify_model(spec, {.output = dir + "/ns.h5"});
    FAIL() << "expected SpecError";
  } catch (const SpecError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("max-margin"), std::string::npos) << msg;
    EXPECT_NE(msg.find("separable"), std::string::npos) << msg;
  }
}

}  // namespace
