// The Riemannian Hessian's spectrum on the tangent space: dense, Spectra, inertia (gfsim/tangent_spectrum.hpp).
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <vector>
#include "gfsim/stationary.hpp"
#include "stationary_test_util.hpp"

namespace gfsim {
namespace {

// The dense tangent Hessian B^T Hess B: every column against central differences of the
// Riemannian gradient along the retraction, B^T P_V d/dh grad(R_V(h b_j)); symmetric; and its
// extreme eigenvalues are those Spectra finds matrix-free (generic point of a ReLU net, distinct
// eigenvalues).
TEST(TangentSpectrum, TangentHessianMatrixMatchesFiniteDifferencesAndSpectra) {
  const Dataset data = test::separable_data(40, 6, 13);
  Network net({6, 8, 1}, Activation::relu);
  Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 3.0);
  SphereProblem sp(flow);
  const Vec V = test::random_direction(net, 14);
  const TangentBasis B(net, V);
  const Mat Ht = tangent_hessian_matrix(sp, V);
  const Index m = sp.tangent_dim();
  ASSERT_EQ(Ht.rows(), m);
  ASSERT_EQ(Ht.cols(), m);
  EXPECT_EQ((Ht - Ht.transpose()).norm(), 0.0);
  const double h = 1e-5;
  Vec e = Vec::Zero(m);
  for (Index j = 0; j < m; ++j) {
    e[j] = 1;
    const Vec b = B.apply(e);
    e[j] = 0;
    const Vec fd = sp.project(V, (sp.gradient(sp.retract(V, h * b)) - sp.gradient(sp.retract(V, -h * b))) / (2 * h));
    EXPECT_LT((B.apply_transpose(fd) - Ht.col(j)).norm(), 1e-6 * Ht.norm()) << j;
  }
  const Vec lam = Eigen::SelfAdjointEigenSolver<Mat>(Ht, Eigen::EigenvaluesOnly).eigenvalues();
  Index hvps = 0;
  const Vec sparse = tangent_extreme_eigenvalues(sp, V, 4, /*dense_max=*/0, &hvps);
  EXPECT_GT(hvps, 0);
  const double scale = lam.cwiseAbs().maxCoeff();
  for (Index i = 0; i < 4; ++i) {
    EXPECT_NEAR(sparse[i], lam[i], 1e-9 * scale) << i;
    EXPECT_NEAR(sparse[4 + i], lam[m - 4 + i], 1e-9 * scale) << i;
  }
}

TEST(TangentSpectrum, SpectraMatchesDense) {
  // Medium problem (tangent dim 218) at a generic point of a ReLU net: no symmetry-induced
  // repeated eigenvalues (the orthogonal symmetry of linear nets makes multiple eigenvalues, which
  // single-vector Lanczos does not resolve).
  const Dataset data = test::separable_data(60, 10, 51);
  Network net({10, 20, 1}, Activation::relu);
  Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 2.0);
  SphereProblem sp(flow);
  StationaryResult dense, sparse;
  dense.V = sparse.V = test::random_direction(net, 52);
  dense.newton_converged = sparse.newton_converged = true;
  StationaryOptions o;
  o.nev = 6;
  analyse_stationary(sp, dense, o);
  o.force_spectra = true;
  analyse_stationary(sp, sparse, o);
  ASSERT_EQ(dense.spectrum_method, SpectrumMethod::dense);
  ASSERT_EQ(sparse.spectrum_method, SpectrumMethod::spectra);
  EXPECT_EQ(sparse.info_smallest, "successful");
  EXPECT_EQ(sparse.info_largest, "successful");
  ASSERT_EQ(sparse.spectrum.eigenvalues.size(), 12);
  const Index m = dense.spectrum.eigenvalues.size();
  ASSERT_EQ(m, net.num_params() - 2);
  const double scale = dense.spectrum.eigenvalues.cwiseAbs().maxCoeff();
  for (Index i = 0; i < 6; ++i) {
    EXPECT_NEAR(sparse.spectrum.eigenvalues[i], dense.spectrum.eigenvalues[i], 1e-8 * scale) << i;
    EXPECT_NEAR(sparse.spectrum.eigenvalues[6 + i], dense.spectrum.eigenvalues[m - 6 + i], 1e-8 * scale) << i;
  }
  EXPECT_LT(sparse.spectrum.residuals.maxCoeff(), 1e-6 * scale);
  EXPECT_LT(dense.spectrum.residuals.maxCoeff(), 1e-10 * scale);
}

// A deep linear net at its stationary point has blocks of repeated eigenvalues (the orthogonal
// symmetry between linear layers: a whole null block, and repeated nonzero eigenvalues): the
// shift-invert smallest end of Spectra must still match the dense spectrum, multiplicities included.
TEST(TangentSpectrum, SpectraMatchesDenseWithRepeatedEigenvalues) {
  const Dataset data = test::separable_data(40, 6, 57);
  Network net({6, 10, 10, 1}, Activation::linear);
  Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 2.0);
  SphereProblem sp(flow);
  StationaryOptions o;
  o.nev = 8;
  const StationaryResult dense = find_stationary(flow, test::random_direction(net, 58), o);
  ASSERT_TRUE(dense.newton_converged);
  ASSERT_EQ(dense.spectrum_method, SpectrumMethod::dense);
  ASSERT_GT(dense.spectrum.n_zero, o.nev);  // the 8 smallest are one repeated (zero) eigenvalue
  StationaryResult sparse;
  sparse.V = dense.V;
  sparse.newton_converged = true;
  o.force_spectra = true;
  analyse_stationary(sp, sparse, o);
  ASSERT_EQ(sparse.spectrum_method, SpectrumMethod::spectra);
  EXPECT_EQ(sparse.info_smallest, "successful");
  EXPECT_EQ(sparse.info_largest, "successful");
  ASSERT_EQ(sparse.spectrum.eigenvalues.size(), 16);
  const Index m = dense.spectrum.eigenvalues.size();
  const double scale = dense.spectrum.eigenvalues.cwiseAbs().maxCoeff();
  for (Index i = 0; i < 8; ++i) {
    EXPECT_NEAR(sparse.spectrum.eigenvalues[i], dense.spectrum.eigenvalues[i], 1e-8 * scale) << i;
    EXPECT_NEAR(sparse.spectrum.eigenvalues[8 + i], dense.spectrum.eigenvalues[m - 8 + i], 1e-8 * scale) << i;
  }
  EXPECT_LT(sparse.spectrum.residuals.maxCoeff(), 1e-6 * scale);
}

// The inertia and curvature class of a known spectrum under the zero rule, and the verdict words.
TEST(TangentSpectrum, ClassifiesInertiaAndCurvature) {
  TangentSpectrum s;
  s.eigenvalues = (Vec(5) << -2.0, -1e-9, 0.0, 1e-9, 3.0).finished();
  const std::vector<Index> zero = s.classify(1e-8 * 3.0);
  EXPECT_EQ(zero, (std::vector<Index>{1, 2, 3}));
  EXPECT_EQ(s.n_negative, 1);
  EXPECT_EQ(s.n_zero, 3);
  EXPECT_EQ(s.n_positive, 1);
  EXPECT_EQ(s.curvature, Curvature::saddle);
  s.unexplained = 3;
  s.describe(true);
  EXPECT_EQ(s.verdict, "not a minimum: at least 1 negative modes, at least 3 zero modes (explained: 3 unexplained)");
  s.eigenvalues = (Vec(3) << 0.0, 1.0, 2.0).finished();
  s.classify(1e-8 * 2.0);
  EXPECT_EQ(s.curvature, Curvature::degenerate);
  s.eigenvalues = (Vec(2) << 1.0, 2.0).finished();
  s.classify(1e-8 * 2.0);
  EXPECT_EQ(s.curvature, Curvature::hyperbolic);
  s.describe(false);
  EXPECT_EQ(s.verdict, "hyperbolic");
  EXPECT_EQ(to_string(Curvature::degenerate), "degenerate");
  EXPECT_EQ(to_string(SpectrumMethod::spectra), "spectra");
}

}  // namespace
}  // namespace gfsim
