// gfsim verify: estimators on synthetic series, the closed-form example, non-separable input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include <unistd.h>

#include <Eigen/QR>

#include "gfsim/model_spec.hpp"
#include "gfsim/network.hpp"
#include "gfsim/verify.hpp"

namespace {

using namespace gfsim;

std::string temp_dir(const std::string& name) {
  // Per process: /tmp is shared with other checkouts running the same tests at the same time.
  const auto dir = std::filesystem::temp_directory_path() /
                   ("gfsim_test_verify_" + name + "_" + std::to_string(::getpid()));
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

TEST(VerifyEstimators, OrthogonalOrbitDistanceSeesThroughHiddenRotations) {
  std::mt19937_64 gen(21);
  std::normal_distribution<double> normal;
  auto random_mat = [&](Index r, Index c) {
    Mat M(r, c);
    for (Index i = 0; i < r; ++i)
      for (Index j = 0; j < c; ++j) M(i, j) = normal(gen);
    return M;
  };
  const Network net({5, 4, 3, 1}, Activation::linear);
  Vec A(net.num_params());
  for (Index i = 0; i < A.size(); ++i) A[i] = normal(gen);
  // B = the same network with hidden layers rotated: W_1 -> Q_1 W_1, W_2 -> Q_2 W_2 Q_1^T, W_3 -> W_3 Q_2^T.
  const Mat Q1 = random_mat(4, 4).householderQr().householderQ(), Q2 = random_mat(3, 3).householderQr().householderQ();
  Vec B(A.size());
  auto put = [&](Index k, const Mat& W) { Eigen::Map<RowMat>(B.data() + net.layer_offset(k), W.rows(), W.cols()) = W; };
  put(0, Q1 * Mat(net.layer(A, 0)));
  put(1, Q2 * Mat(net.layer(A, 1)) * Q1.transpose());
  put(2, Mat(net.layer(A, 2)) * Q2.transpose());
  EXPECT_GT((A - B).norm(), 0.5);
  EXPECT_LT(orthogonal_orbit_distance(net, A, B), 1e-8);
  // Off the orbit: never more than the plain distance, and not zero.
  Vec C = B;
  for (Index i = 0; i < C.size(); ++i) C[i] += 0.1 * normal(gen);
  const double d = orthogonal_orbit_distance(net, A, C);
  EXPECT_LE(d, (A - C).norm());
  EXPECT_GT(d, 0.05);
  EXPECT_LE(d, (B - C).norm() + 1e-8);  // B is on the orbit
}

TEST(Verify, ClosedFormExampleHolds) {
  // No override: the model's own horizon (t_end = 1e100) is the one used and reported.
  const auto spec = load_model_spec(std::string(GFSIM_SOURCE_DIR) + "/models/verify_closed_form.toml");
  const auto dir = temp_dir("closed_form");
  const VerifyReport r = verify_model(spec, {.output = dir + "/cf.h5"});
  EXPECT_EQ(r.t_end, 1e100);
  EXPECT_GT(r.gd.run.result.t_final, 0.99e100);
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
  // The JSON report: keys in their documented order, the horizon, NaN written as null.
  std::ifstream js(r.json_path);
  const std::string text((std::istreambuf_iterator<char>(js)), std::istreambuf_iterator<char>());
  EXPECT_LT(text.find("\"K\""), text.find("\"t_end\""));
  EXPECT_LT(text.find("\"t_end\""), text.find("\"wall_seconds\""));
  EXPECT_NE(text.find("\"t_end\": 1e+100"), std::string::npos);
  EXPECT_EQ(text.find("nan"), std::string::npos);
  EXPECT_EQ(text.find("NaN"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(r.gd_path));
  EXPECT_TRUE(std::filesystem::exists(r.wn_path));
}

LawVerdict find_law(const VerifyReport& r, const std::string& name) {
  for (const auto& l : r.laws)
    if (l.law == name) return l;
  ADD_FAILURE() << "no law " << name;
  return LawVerdict{};
}

// The fixed-rho optimum on the closed-form data, independently: v = (cos a, sin a) minimizing
// F(a) = sum_n exp(-rho z_n . v), from F'(a) = 0 by bisection on a in (-0.7, 0.7) (F' changes sign once
// there at large rho; the derivative, unlike F, is resolved to round-off near the minimum).
double fixed_rho_angle(double rho) {
  const double z[3][2] = {{1, 1}, {1, -2}, {2, 0.5}};
  auto dF = [&](double a) {
    double s = 0;
    for (const auto& p : z)  // scaled by e^rho against overflow
      s += -rho * (-p[0] * std::sin(a) + p[1] * std::cos(a)) *
           std::exp(-rho * (p[0] * std::cos(a) + p[1] * std::sin(a) - 1.0));
    return s;
  };
  double lo = -0.7, hi = 0.7;
  EXPECT_LT(dF(lo), 0);
  EXPECT_GT(dF(hi), 0);
  for (int i = 0; i < 200; ++i) (dF(0.5 * (lo + hi)) < 0 ? lo : hi) = 0.5 * (lo + hi);
  return 0.5 * (lo + hi);
}

TEST(Verify, FixedRhoStationaryDirectionOnTheClosedForm) {
  const auto spec = load_model_spec(std::string(GFSIM_SOURCE_DIR) + "/models/verify_closed_form.toml",
                                    {"time.t_end=1e100"});
  const VerifyReport r = verify_model(spec, {.output = temp_dir("closed_form_rho") + "/cf.h5"});
  for (const FlowLaws* f : {&r.gd, &r.wn}) {
    ASSERT_EQ(f->stationary.size(), 4u) << f->flow;
    for (const auto& d : f->stationary) {
      EXPECT_TRUE(d.converged);
      const double a = fixed_rho_angle(d.rho);
      EXPECT_NEAR(d.optimum_to_reference, 2 * std::sin(std::abs(a) / 2), 1e-9) << "rho " << d.rho;
    }
  }
  // WN sits on the fixed-rho optimum; what is left of eps is the optimum's own distance to v* (~ 1/rho).
  EXPECT_LT(r.wn.stationary.back().distance, 1e-8);
  EXPECT_NEAR(r.wn.stationary.back().optimum_to_reference, r.wn.eps_end, 1e-6);
  EXPECT_EQ(find_law(r, "fixed_rho_wn").verdict, "holds");
  // GD lags behind it, by much more.
  EXPECT_GT(r.gd.stationary.back().distance, 100 * r.wn.stationary.back().distance);
}

TEST(Verify, DeepLinearKktResidualFallsAndTheEndToEndVectorAligns) {
  // K = 2 linear net on the closed-form data: the parameter-space KKT points are balanced rank-1
  // factorizations of the SVM direction (tests/test_kkt.cpp); the Lyu-Li residual must fall to ~0.
  const auto spec = load_model_spec(std::string(GFSIM_SOURCE_DIR) + "/models/verify_closed_form.toml",
                                    {"time.t_end=1e100", "network.hidden=[3]", "network.init_scale=0.5"});
  const VerifyReport r = verify_model(spec, {.output = temp_dir("deep_linear") + "/dl.h5"});
  ASSERT_EQ(r.K, 2);
  ASSERT_TRUE(r.has_reference);
  for (const FlowLaws* f : {&r.gd, &r.wn}) {
    ASSERT_GT(f->kkt_log_t.size(), 100u);
    EXPECT_GT(std::max(f->kkt_stationarity.front(), f->kkt_complementarity.front()), 0.1) << f->flow;
    EXPECT_LT(f->kkt_end, 1e-2) << f->flow;
    EXPECT_LT(f->kkt_trend.slope, -0.3) << f->flow;  // falls like a power of 1/log t
    EXPECT_LT(f->eps_end, 2e-3) << f->flow;          // end-to-end vector -> v*
    EXPECT_EQ(find_law(r, "kkt_" + f->flow).verdict, "holds");
    EXPECT_EQ(find_law(r, "balance_" + f->flow).verdict, "holds");
    EXPECT_EQ(find_law(r, "rho_slope_" + f->flow).verdict, "holds");
  }
}

TEST(Verify, IrisSetosaVersicolorHasAReferenceAndVersicolorVirginicaFailsClearly) {
  const std::string models = std::string(GFSIM_SOURCE_DIR) + "/models/";
  const auto spec = load_model_spec(models + "verify_iris.toml", {"time.t_end=1e30"});
  const VerifyReport r = verify_model(spec, {.output = temp_dir("iris") + "/iris.h5"});
  ASSERT_TRUE(r.has_reference);
  EXPECT_LT(r.mm.kkt.max_residual(), 1e-10);
  EXPECT_EQ(r.mm.w_hat.size(), 5);  // 4 measurements + the bias feature
  EXPECT_EQ(find_law(r, "rho_slope_gd").verdict, "holds");
  const auto bad = load_model_spec(models + "verify_iris_nonseparable.toml");
  try {
    verify_model(bad, {.output = temp_dir("iris_bad") + "/bad.h5"});
    FAIL() << "expected SpecError";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("not linearly separable"), std::string::npos) << e.what();
  }
}

TEST(Verify, ReluNetLawsAndAStoppedFlowIsNotMeasured) {
  const auto spec = load_model_spec(std::string(GFSIM_SOURCE_DIR) + "/models/verify_relu.toml",
                                    {"time.t_end=1e6", "data.n=60"});
  const VerifyReport r = verify_model(spec, {.output = temp_dir("relu") + "/relu.h5"});
  ASSERT_EQ(r.K, 2);
  EXPECT_FALSE(r.has_reference);
  EXPECT_EQ(find_law(r, "balance_gd").verdict, "holds");
  EXPECT_FALSE(r.gd.kkt_log_t.empty());
  for (const FlowLaws* f : {&r.gd, &r.wn}) {
    Index listed = 0;
    for (const auto& l : r.laws) {
      if (l.law.size() < 3 || l.law.substr(l.law.size() - 3) != "_" + f->flow) continue;
      ++listed;
      // A flow that stopped before t_end (the wn flow may stall at a kink: it does not slide yet) has
      // every law listed as not measured, naming its status; nothing is measured on a cut trajectory.
      if (f->run.result.status != Status::success) {
        EXPECT_EQ(l.verdict.rfind("not measured", 0), 0u) << l.law << ": " << l.verdict;
        EXPECT_NE(l.verdict.find(status_name(f->run.result.status)), std::string::npos) << l.verdict;
      }
    }
    EXPECT_GE(listed, 5) << f->flow;  // rho slope, margin, balance, deep rho, kkt, fixed rho
  }
}

TEST(Verify, SmoothedKinksAreCheckedOnTheExactReluFlow) {
  // verify measures the laws of the ReLU flow (and wn needs a homogeneous net): a model with
  // kinks = "smooth" is verified with events, and the report says so.
  const auto spec = load_model_spec(std::string(GFSIM_SOURCE_DIR) + "/models/verify_relu.toml",
                                    {"time.t_end=1e4", "data.n=60", "dynamics.kinks=\"smooth\""});
  const VerifyReport r = verify_model(spec, {.output = temp_dir("relu_smooth") + "/relu.h5"});
  EXPECT_TRUE(r.gd.run.uses_events);
  EXPECT_TRUE(r.wn.run.uses_events);
  bool noted = false;
  for (const auto& n : r.notes) noted |= n.find("\"smooth\" replaced by \"events\"") != std::string::npos;
  EXPECT_TRUE(noted);
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
