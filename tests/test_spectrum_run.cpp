// [spectrum] in run model files: parsing, bad input, and a run whose stored tangent-space Hessian
// eigenvalues match an independent dense computation at the final state.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <filesystem>

#include "gfsim/hdf5_file.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/run.hpp"
#include "gfsim/stationary.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

std::string spec_error(const std::string& toml) {
  try {
    parse_model_spec(toml, "x.toml");
  } catch (const SpecError& error) {
    return error.what();
  }
  ADD_FAILURE() << "no SpecError for:\n" << toml;
  return {};
}

TEST(SpectrumSpec, ParsesAndRoundTrips) {
  const ModelSpec none = parse_model_spec("", "m.toml");
  EXPECT_FALSE(none.spectrum.enabled());
  EXPECT_EQ(none.resolved_toml.find("[spectrum]"), std::string::npos);
  const ModelSpec a = parse_model_spec("[spectrum]\nsamples_per_decade = 2\nk = 3\n", "m.toml");
  EXPECT_TRUE(a.spectrum.enabled());
  EXPECT_EQ(a.spectrum.samples_per_decade, 2);
  EXPECT_EQ(a.spectrum.k, 3);
  EXPECT_EQ(parse_model_spec(a.resolved_toml, "again.toml").spectrum, a.spectrum);
  const ModelSpec b = parse_model_spec("[time]\nt_end = 100.0\n[spectrum]\ntimes = [1, 2.5, 100]\n", "m.toml");
  EXPECT_EQ(b.spectrum.times, (std::vector<double>{1.0, 2.5, 100.0}));
  EXPECT_EQ(b.spectrum.k, 5);
  EXPECT_EQ(parse_model_spec(b.resolved_toml, "again.toml").spectrum, b.spectrum);
}

TEST(SpectrumSpec, BadInputNamesKeyValueAndRule) {
  const std::string both = spec_error("[spectrum]\ntimes = [1.0]\nsamples_per_decade = 2\n");
  EXPECT_NE(both.find("spectrum.samples_per_decade = 2: give spectrum.times or spectrum.samples_per_decade, not both"),
            std::string::npos)
      << both;
  const std::string order = spec_error("[spectrum]\ntimes = [2.0, 1.0]\n");
  EXPECT_NE(order.find("spectrum.times = [2.0, 1.0]: must be a non-empty array of times in (0, time.t_end], "
                       "strictly increasing"),
            std::string::npos)
      << order;
  const std::string late = spec_error("[time]\nt_end = 10.0\n[spectrum]\ntimes = [1.0, 20.0]\n");
  EXPECT_NE(late.find("spectrum.times"), std::string::npos) << late;
  EXPECT_NE(spec_error("[spectrum]\ntimes = []\n").find("spectrum.times"), std::string::npos);
  EXPECT_NE(spec_error("[spectrum]\ntimes = [\"a\"]\n").find("spectrum.times"), std::string::npos);
  const std::string lonely = spec_error("[spectrum]\nk = 4\n");
  EXPECT_NE(lonely.find("spectrum.k = 4: needs spectrum.times or spectrum.samples_per_decade"), std::string::npos)
      << lonely;
  EXPECT_NE(spec_error("[spectrum]\nsamples_per_decade = 1\nk = 0\n").find("spectrum.k = 0"), std::string::npos);
  EXPECT_NE(spec_error("[spectrum]\nsamples_per_decade = 0\n").find("spectrum.samples_per_decade = 0"),
            std::string::npos);
  EXPECT_NE(spec_error("[spectrum]\nsamples = 3\n").find("samples"), std::string::npos);
}

// Independent spectrum at a state: the full P x P operator P_V Hess P_V (Hess from the Flow::jvp
// form of the fixed-rho flow) plus a large multiple of the normal projector, eigen-decomposed; the
// K normal eigenvalues sit at the shift and are removed.
Vec independent_tangent_spectrum(const Network& net, const Dataset& data, LossKind loss, const Vec& theta) {
  const Index P = net.num_params(), K = net.num_layers();
  Vec V = theta;
  double rho = 1;
  for (Index k = 0; k < K; ++k) {
    auto seg = V.segment(net.layer_offset(k), net.layer_size(k));
    rho *= seg.norm();
    seg.normalize();
  }
  Flow flow(net, data, loss, FlowKind::fixed_rho, rho);
  SphereProblem sp(flow);
  Mat H(P, P);
  for (Index j = 0; j < P; ++j) H.col(j) = sp.hessian_from_jvp(V, Vec::Unit(P, j));
  H = 0.5 * (H + H.transpose()).eval();
  Mat normal = Mat::Zero(P, P);
  for (Index k = 0; k < K; ++k) {
    const Vec v = V.segment(net.layer_offset(k), net.layer_size(k));
    normal.block(net.layer_offset(k), net.layer_offset(k), v.size(), v.size()) = v * v.transpose();
  }
  const double shift = 1e3 * (1.0 + H.cwiseAbs().maxCoeff());
  const Vec all = Eigen::SelfAdjointEigenSolver<Mat>(H + shift * normal, Eigen::EigenvaluesOnly).eigenvalues();
  return all.head(P - K);  // ascending; the K shifted ones are the largest
}

TEST(SpectrumRun, StoredEigenvaluesMatchIndependentDenseSpectrum) {
  const auto dir = std::filesystem::temp_directory_path() / "gfsim_test_spectrum_run";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "run.h5").string();
  for (const char* flow_kind : {"gd", "gd_polar", "wn"}) {
    const std::string toml = std::string(R"(
[data]
kind = "gaussian"
n = 20
dim = 3
[network]
activation = "linear"
hidden = [4]
init_scale = 0.5
[flow]
kind = ")") + flow_kind + R"("
[time]
t_end = 100.0
samples_per_decade = 2
[spectrum]
times = [0.5, 3.0, 100.0]
k = 3
[output]
path = ")" + path + "\"\n";
    const ModelSpec spec = parse_model_spec(toml, "spec.toml");
    const RunReport rep = run_model(spec);
    ASSERT_EQ(rep.result.status, Status::success) << rep.result.message;
    EXPECT_EQ(rep.spectrum_samples, 3);
    auto file = h5::File::open(path, h5::Access::read_only);
    const std::vector<double> t = file.open_dataset("observables/hessian_eigs/time").read_doubles();
    ASSERT_EQ(t.size(), 3u);
    EXPECT_DOUBLE_EQ(t[1], 3.0);
    auto value = file.open_dataset("observables/hessian_eigs/value");
    EXPECT_EQ(value.shape(), (std::vector<std::int64_t>{3, 6}));
    const std::vector<double> v = value.read_doubles();
    const std::vector<double> theta_final = file.open_dataset("final/theta").read_doubles();
    file.close();
    // The samples at t = 3 are also in the ordinary output grid.
    const Dataset data = make_dataset(spec.data);
    Network net(network_widths(spec, data.dim()), spec.network.activation);
    const Vec theta = Eigen::Map<const Vec>(theta_final.data(), Index(theta_final.size()));
    const Vec lam = independent_tangent_spectrum(net, data, spec.loss.kind, theta);
    const Index m = lam.size();
    const double scale = lam.cwiseAbs().maxCoeff();
    for (Index i = 0; i < 3; ++i) {
      EXPECT_NEAR(v[12 + std::size_t(i)], lam[i], 1e-9 * scale) << flow_kind << " smallest " << i;
      EXPECT_NEAR(v[15 + std::size_t(i)], lam[m - 3 + i], 1e-9 * scale) << flow_kind << " largest " << i;
    }
  }
}

}  // namespace
}  // namespace gfsim
