// Stationary points of the fixed-rho flow and the tangent-space Hessian spectrum (issue 6).
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <filesystem>
#include <unistd.h>

#include "gfsim/hdf5_file.hpp"
#include "gfsim/max_margin.hpp"
#include "gfsim/spectrum.hpp"
#include "gfsim/stationary.hpp"
#include "test_util.hpp"

namespace gfsim {
namespace {

// The first k columns of an orthonormal basis of range(E).
Mat orthonormal_columns(const Mat& E, Index k) {
  Eigen::ColPivHouseholderQR<Mat> qr(E);
  return Mat(qr.householderQ()).leftCols(k);
}

Vec random_direction(const Network& net, std::uint64_t seed) {
  Vec V = test::random_vector(net.num_params(), seed);
  for (Index k = 0; k < net.num_layers(); ++k) V.segment(net.layer_offset(k), net.layer_size(k)).normalize();
  return V;
}

// Riemannian Hessian vs finite differences of the Riemannian gradient along the retraction
// V(h) = R_V(h xi): Hess[xi] = P_V d/dh grad(V(h)) at h = 0 (Levi-Civita connection of the
// embedded product of spheres), at a generic (non-stationary) point; and vs the Flow::jvp form.
TEST(Stationary, RiemannianHessianMatchesFiniteDifferences) {
  for (Activation act : {Activation::linear, Activation::relu}) {
    const Dataset data = test::separable_data(30, 4, 11);
    Network net({4, 5, 3, 1}, act);
    Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 3.0);
    SphereProblem sp(flow);
    const Vec V = random_direction(net, 5);
    const Vec xi = sp.project(V, test::random_vector(net.num_params(), 6));
    const Vec H = sp.hessian(V, xi);
    const double h = 1e-5;
    const Vec fd = sp.project(V, (sp.gradient(sp.retract(V, h * xi)) - sp.gradient(sp.retract(V, -h * xi))) / (2 * h));
    EXPECT_LT((H - fd).norm(), 1e-6 * H.norm()) << to_string(act);
    EXPECT_LT((H - sp.hessian_from_jvp(V, xi)).norm(), 1e-11 * H.norm()) << to_string(act);
    // Tangent and symmetric.
    const Vec eta = sp.project(V, test::random_vector(net.num_params(), 7));
    EXPECT_NEAR(eta.dot(H), xi.dot(sp.hessian(V, eta)), 1e-11 * H.norm() * eta.norm());
    EXPECT_LT(sp.project(V, H).norm() - H.norm(), 1e-12 * H.norm());
    // Riemannian gradient = -rhs of the fixed-rho flow.
    Vec dy;
    flow.rhs(V, 0.0, dy);
    EXPECT_LT((sp.gradient(V) + dy).norm(), 1e-12 * dy.norm());
  }
}

// The dense tangent Hessian B^T Hess B: every column against central differences of the
// Riemannian gradient along the retraction, B^T P_V d/dh grad(R_V(h b_j)); symmetric; and its
// extreme eigenvalues are those Spectra finds matrix-free (generic point of a ReLU net, distinct
// eigenvalues).
TEST(Stationary, TangentHessianMatrixMatchesFiniteDifferencesAndSpectra) {
  const Dataset data = test::separable_data(40, 6, 13);
  Network net({6, 8, 1}, Activation::relu);
  Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 3.0);
  SphereProblem sp(flow);
  const Vec V = random_direction(net, 14);
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

TEST(Stationary, TangentBasisIsOrthonormalAndTangent) {
  Network net({4, 3, 1}, Activation::linear);
  const Vec V = random_direction(net, 9);
  TangentBasis B(net, V);
  const Mat Bd = B.dense();
  EXPECT_EQ(Bd.cols(), net.num_params() - 2);
  EXPECT_LT((Bd.transpose() * Bd - Mat::Identity(Bd.cols(), Bd.cols())).norm(), 1e-13);
  for (Index k = 0; k < 2; ++k)
    EXPECT_LT((V.segment(net.layer_offset(k), net.layer_size(k)).transpose() *
               Bd.middleRows(net.layer_offset(k), net.layer_size(k)))
                  .norm(),
              1e-13);
  const Vec y = test::random_vector(Bd.cols(), 3);
  EXPECT_LT((B.apply_transpose(B.apply(y)) - y).norm(), 1e-13);
}

// Independent minimizer for K = 1, exp loss: projected gradient descent on the sphere, written
// from the data alone (no Flow): F(v) = sum_n exp(-rho v.z_n).
Vec projected_descent(const Dataset& data, double rho, Vec v, int steps, double eta) {
  const Mat Z = data.signed_points();
  for (int i = 0; i < steps; ++i) {
    const Vec w = (-rho * (Z * v).array()).exp().matrix();
    Vec g = -rho * Z.transpose() * w;
    g -= v * v.dot(g);
    v = (v - eta * g).normalized();
  }
  return v;
}

TEST(Stationary, LinearK1IsHyperbolicFixedPointAndNewtonIsQuadratic) {
  const Dataset data = test::separable_data(40, 5, 21);
  Network net({5, 1}, Activation::linear);
  const double rho = 4.0;
  Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, rho);
  StationaryOptions o;
  o.flow_tol = 1e-2;  // leave work for Newton so its convergence order is visible
  const StationaryResult r = find_stationary(flow, random_direction(net, 1), o);
  ASSERT_TRUE(r.newton_converged);
  EXPECT_EQ(r.verdict, "hyperbolic");
  EXPECT_EQ(r.n_negative, 0);
  EXPECT_EQ(r.n_zero, 0);
  EXPECT_EQ(r.n_positive, 4);
  EXPECT_GT(r.eigenvalues.minCoeff(), 0.0);
  EXPECT_LT(r.residuals.maxCoeff(), 1e-10 * r.eigenvalues.maxCoeff());
  // Fixed-point condition: v = G/||G||, G = sum_n e^{-rho v.z_n} z_n.
  const Mat Z = data.signed_points();
  const Vec G = Z.transpose() * (-rho * (Z * r.V).array()).exp().matrix();
  EXPECT_LT((r.V - G.normalized()).norm(), 1e-12);
  // Independent minimization.
  const double eta = 0.5 / r.eigenvalues.maxCoeff();
  const Vec v_start = Z.colwise().sum().transpose().normalized();  // a reasonable start, from the data
  const Vec v_pgd = projected_descent(data, rho, v_start, 20000, eta);
  EXPECT_LT((r.V - v_pgd).norm(), 1e-8);
  // Quadratic convergence: e_{k+1} <= C e_k^2 while above round-off (relative gradients).
  ASSERT_GE(r.grad_norms.size(), 3u);
  const double s = r.loss_scale;
  int quadratic_steps = 0;
  for (std::size_t i = 0; i + 1 < r.grad_norms.size(); ++i) {
    const double e0 = r.grad_norms[i] / s, e1 = r.grad_norms[i + 1] / s;
    if (e1 < 1e-13) break;
    EXPECT_LT(e1, 50.0 * e0 * e0) << "step " << i;
    ++quadratic_steps;
  }
  EXPECT_GE(quadratic_steps, 1);
  EXPECT_LT(r.grad_norms.back() / s, 1e-13);
}

// 2-layer deep linear net d_0 - d_1 - 1 at fixed rho: F depends on V only through w = V_2 V_1,
// and ||V_2 V_1|| <= 1 with equality iff V_1 = V_2^T b^T. The minimum is V_2 = a^T, V_1 = a b*^T
// with b* the K = 1 minimizer and a free on S^{d_1 - 1}: a manifold of dimension d_1 - 1, generated
// by the orthogonal transformations A (A a spans a^perp; generators fixing a act trivially).
// Transversally the Hessian is positive. So: null space dimension d_1 - 1, all explained.
TEST(Stationary, DeepLinearNullSpaceIsOrthogonalSymmetry) {
  const Dataset data = test::separable_data(30, 4, 31);
  for (Index d1 : {2, 3, 5}) {
    Network net({4, d1, 1}, Activation::linear);
    Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 3.0);
    const StationaryResult r = find_stationary(flow, random_direction(net, 40 + std::uint64_t(d1)), {});
    ASSERT_TRUE(r.newton_converged) << d1;
    EXPECT_EQ(r.n_negative, 0) << d1;
    EXPECT_EQ(r.null_dim, d1 - 1) << d1;
    EXPECT_EQ(r.explained_total, d1 - 1) << d1;
    EXPECT_EQ(r.unexplained, 0) << d1;
    ASSERT_EQ(r.mechanisms.front().name, "orthogonal");
    EXPECT_EQ(r.mechanisms.front().explained, d1 - 1) << d1;
    EXPECT_EQ(r.mechanisms.front().span_dim, d1 - 1) << d1;
    // The analytic vectors are null vectors of the Hessian.
    SphereProblem sp(flow);
    const Mat A = orthogonal_symmetry_vectors(net, r.V);
    for (Index j = 0; j < A.cols(); ++j) {
      const Vec v = sp.project(r.V, A.col(j));
      if (v.norm() < 1e-10) continue;
      EXPECT_LT(sp.hessian(r.V, v).norm(), 1e-9 * r.eigenvalues.maxCoeff() * v.norm());
    }
    EXPECT_NE(r.verdict.find("not hyperbolic: " + std::to_string(d1 - 1) + " zero modes"), std::string::npos)
        << r.verdict;
    // Rank-one structure of the minimum: ||V_2 V_1|| = 1.
    EXPECT_NEAR((net.layer(r.V, 1) * net.layer(r.V, 0)).norm(), 1.0, 1e-10);
  }
}

TEST(Stationary, SpectraMatchesDense) {
  // Medium problem (tangent dim 218) at a generic point of a ReLU net: no symmetry-induced
  // repeated eigenvalues (the orthogonal symmetry of linear nets makes multiple eigenvalues, which
  // single-vector Lanczos does not resolve).
  const Dataset data = test::separable_data(60, 10, 51);
  Network net({10, 20, 1}, Activation::relu);
  Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 2.0);
  SphereProblem sp(flow);
  StationaryResult dense, sparse;
  dense.V = sparse.V = random_direction(net, 52);
  dense.newton_converged = sparse.newton_converged = true;
  StationaryOptions o;
  o.nev = 6;
  analyse_stationary(sp, dense, o);
  o.force_spectra = true;
  analyse_stationary(sp, sparse, o);
  ASSERT_EQ(dense.spectrum_method, "dense");
  ASSERT_EQ(sparse.spectrum_method, "spectra");
  EXPECT_EQ(sparse.info_smallest, "successful");
  EXPECT_EQ(sparse.info_largest, "successful");
  ASSERT_EQ(sparse.eigenvalues.size(), 12);
  const Index m = dense.eigenvalues.size();
  ASSERT_EQ(m, net.num_params() - 2);
  const double scale = dense.eigenvalues.cwiseAbs().maxCoeff();
  for (Index i = 0; i < 6; ++i) {
    EXPECT_NEAR(sparse.eigenvalues[i], dense.eigenvalues[i], 1e-8 * scale) << i;
    EXPECT_NEAR(sparse.eigenvalues[6 + i], dense.eigenvalues[m - 6 + i], 1e-8 * scale) << i;
  }
  EXPECT_LT(sparse.residuals.maxCoeff(), 1e-6 * scale);
  EXPECT_LT(dense.residuals.maxCoeff(), 1e-10 * scale);
}

// A deep linear net at its stationary point has blocks of repeated eigenvalues (the orthogonal
// symmetry between linear layers: a whole null block, and repeated nonzero eigenvalues): the
// shift-invert smallest end of Spectra must still match the dense spectrum, multiplicities included.
TEST(Stationary, SpectraMatchesDenseWithRepeatedEigenvalues) {
  const Dataset data = test::separable_data(40, 6, 57);
  Network net({6, 10, 10, 1}, Activation::linear);
  Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 2.0);
  SphereProblem sp(flow);
  StationaryOptions o;
  o.nev = 8;
  const StationaryResult dense = find_stationary(flow, random_direction(net, 58), o);
  ASSERT_TRUE(dense.newton_converged);
  ASSERT_EQ(dense.spectrum_method, "dense");
  ASSERT_GT(dense.n_zero, o.nev);  // the 8 smallest are one repeated (zero) eigenvalue
  StationaryResult sparse;
  sparse.V = dense.V;
  sparse.newton_converged = true;
  o.force_spectra = true;
  analyse_stationary(sp, sparse, o);
  ASSERT_EQ(sparse.spectrum_method, "spectra");
  EXPECT_EQ(sparse.info_smallest, "successful");
  EXPECT_EQ(sparse.info_largest, "successful");
  ASSERT_EQ(sparse.eigenvalues.size(), 16);
  const Index m = dense.eigenvalues.size();
  const double scale = dense.eigenvalues.cwiseAbs().maxCoeff();
  for (Index i = 0; i < 8; ++i) {
    EXPECT_NEAR(sparse.eigenvalues[i], dense.eigenvalues[i], 1e-8 * scale) << i;
    EXPECT_NEAR(sparse.eigenvalues[8 + i], dense.eigenvalues[m - 8 + i], 1e-8 * scale) << i;
  }
  EXPECT_LT(sparse.residuals.maxCoeff(), 1e-6 * scale);
}

TEST(Stationary, ExtremeEigenvaluesOfKnownMatrix) {
  const Index n = 100;
  Vec d(n);
  for (Index i = 0; i < n; ++i) d[i] = double(i) - 10.0;
  const Mat Q = Eigen::HouseholderQR<Mat>(Eigen::Map<const Mat>(test::random_vector(n * n, 3).data(), n, n))
                    .householderQ();
  const Mat A = Q * d.asDiagonal() * Q.transpose();
  SymOperator op{n, [&](const double* in, double* out) {
                   Eigen::Map<Vec>(out, n) = A * Eigen::Map<const Vec>(in, n);
                 }};
  const ExtremeEigs e = extreme_eigenvalues(op, 4);
  ASSERT_EQ(e.smallest.size(), 4);
  for (Index i = 0; i < 4; ++i) {
    EXPECT_NEAR(e.smallest[i], d[i], 1e-9);
    EXPECT_NEAR(e.largest[i], d[n - 4 + i], 1e-9);
  }
  EXPECT_GT(e.matvecs, 0);
  EXPECT_FALSE(e.used_shift_invert);  // distinct eigenvalues: the flipped Lanczos result stands
}

// A 12-fold zero eigenvalue (a zero-mode block) below a wide spectrum. The default (automatic)
// sees the repeated value and switches to shift-invert, which finds the multiplicity. The flipped Lanczos (lambda_max I - H) reports success here with only 2
// of the 8 zero copies (measured): exactly repeated eigenvalues are invisible to single-vector
// Lanczos beyond rounding, which is why it is not the default. With the flipped Lanczos starved of
// iterations, `automatic` falls back to shift-invert.
TEST(Stationary, SmallestEndWithRepeatedEigenvalueAllMethods) {
  const Index n = 200;
  Vec d(n);
  for (Index i = 0; i < n; ++i) d[i] = i < 12 ? 0.0 : 0.5 + 5.0 * double(i - 12);
  const Mat Q = Eigen::HouseholderQR<Mat>(Eigen::Map<const Mat>(test::random_vector(n * n, 13).data(), n, n))
                    .householderQ();
  const Mat A = Q * d.asDiagonal() * Q.transpose();
  SymOperator op{n, [&](const double* in, double* out) {
                   Eigen::Map<Vec>(out, n) = A * Eigen::Map<const Vec>(in, n);
                 }};
  const double scale = d.maxCoeff();
  const ExtremeEigs e = extreme_eigenvalues(op, 8);
  EXPECT_TRUE(e.used_shift_invert);
  EXPECT_EQ(e.info_smallest, "successful");
  ASSERT_EQ(e.smallest.size(), 8);
  for (Index i = 0; i < 8; ++i) EXPECT_NEAR(e.smallest[i], 0.0, 1e-9 * scale) << i;
  for (Index i = 0; i < 8; ++i) EXPECT_NEAR(e.largest[i], d[n - 8 + i], 1e-9 * scale) << i;
  ExtremeEigsOptions starved;
  starved.max_iterations = 2;
  starved.ncv = 20;
  ExtremeEigsOptions flip_only = starved;
  flip_only.smallest = SmallestMethod::flip;
  const ExtremeEigs bad = extreme_eigenvalues(op, 8, flip_only);
  ASSERT_NE(bad.info_smallest, "successful");  // the case the fallback is for
  starved.max_iterations = 50;
  ExtremeEigsOptions auto_small = starved;
  auto_small.max_iterations = 2;
  const ExtremeEigs fallback = extreme_eigenvalues(op, 8, auto_small);
  EXPECT_TRUE(fallback.used_shift_invert);
  EXPECT_GT(fallback.inner_solves, 0);
  if (fallback.info_smallest == "successful")
    for (Index i = 0; i < 8; ++i) EXPECT_NEAR(fallback.smallest[i], 0.0, 1e-9 * scale) << i;
}

TEST(Stationary, ReluGroupVectorsKeepTheFunction) {
  // Two hidden units with parallel rows and same-sign outputs, one unit alone: one group direction.
  Network net({3, 3, 1}, Activation::relu);
  Vec V(12);
  V << 1, 2, 0.5, 2, 4, 1, -1, 0.3, 0.2, 0.7, 1.1, -0.4;
  V.head(9).normalize();
  V.tail(3).normalize();
  const Mat G = relu_group_vectors(net, V);
  ASSERT_EQ(G.cols(), 1);  // 2m - 3 = 1
  const Dataset data = test::separable_data(20, 3, 61);
  Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 1.0);
  SphereProblem sp(flow);
  const Vec v = sp.project(V, G.col(0));
  EXPECT_LT((v - G.col(0)).norm(), 1e-12);  // already tangent
  // f~ unchanged to second order along the retraction: loss changes by O(h^2) only... and the
  // exact invariance: f~ is constant along the group family, so the loss change is O(h^2) tiny.
  const double h = 1e-4;
  const double l0 = sp.log_loss(V), l1 = sp.log_loss(sp.retract(V, h * v));
  EXPECT_LT(std::abs(l1 - l0), 1e-6);
}

// 2-layer ReLU net whose hidden units start in groups with parallel incoming rows a_q u_g and
// outputs balanced inside the group (b_q = s_g a_q): the flow keeps the groups (row q turns at the
// rate b_q / a_q, equal inside a group), and groups may merge on the way. At the stationary point a
// group of m units (rows parallel, found here from V alone) carries an (m - 1)-dimensional family
// of equivalent points (a on the sphere |a| = const, b = s a: sum_q a_q b_q and both layer norms
// fixed); first-order directions with db != s da change sum a_q b_q at second order and are not
// zero modes. Predicted null dimension: sum_g (m_g - 1). With Filippov sliding the flow phase may
// come to rest on kink surfaces (seed 88 does): the kink-surface spectrum is the meaningful one then.
// Some seeds end where Newton does not converge (reported by gfsim stationary; not used here).
TEST(Stationary, ReluGroupedParallelUnitsNullSpace) {
  for (const std::uint64_t seed : {88, 70, 76}) {
    const Dataset data = test::separable_data(30, 3, seed);
    Network net({3, 6, 1}, Activation::relu);
    Vec V = Vec::Zero(net.num_params());
    Eigen::Map<RowMat> W1(V.data(), 6, 3);
    Eigen::Map<RowMat> W2(V.data() + 18, 1, 6);
    const std::vector<Vec> u = {Vec(Eigen::Vector3d(1.0, 0.3, -0.2).normalized()),
                                Vec(Eigen::Vector3d(-0.4, 1.0, 0.5).normalized()),
                                Vec(Eigen::Vector3d(0.2, -0.5, 1.0).normalized())};
    const std::vector<int> start_group = {0, 0, 0, 1, 1, 2};
    const std::vector<double> a0 = {1.0, 0.7, 0.4, 0.9, 0.5, 0.8}, s0 = {1.0, -0.8, 0.6};
    for (Index q = 0; q < 6; ++q) {
      W1.row(q) = a0[q] * u[start_group[q]].transpose();
      W2(0, q) = s0[start_group[q]] * a0[q];
    }
    Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 2.0);
    const StationaryResult r = find_stationary(flow, V, {});
    ASSERT_TRUE(r.newton_converged) << seed << " " << r.flow_status << " " << r.flow_message;
    // With Filippov sliding the fixed-rho flow may come to rest on kink surfaces; whether it does
    // depends on the data: the check below uses the kink-surface spectrum then.
    const bool kinked = !r.kinks.empty();

    // Groups at the stationary point, from V: rows with the same direction.
    const auto U1 = net.layer(r.V, 0);
    const auto U2 = net.layer(r.V, 1);
    std::vector<std::vector<Index>> groups;
    for (Index q = 0; q < 6; ++q) {
      bool placed = false;
      for (auto& g : groups)
        if ((U1.row(q).normalized() - U1.row(g[0]).normalized()).norm() < 1e-6) {
          g.push_back(q);
          placed = true;
          break;
        }
      if (!placed) groups.push_back({q});
    }
    Index predicted = 0;
    for (const auto& g : groups) predicted += Index(g.size()) - 1;
    ASSERT_GT(predicted, 0) << seed;
    const Index null_dim = kinked ? r.kink_null_dim : r.null_dim;
    const Index unexplained = kinked ? r.kink_unexplained : r.unexplained;
    const Index negative = kinked ? r.kink_n_negative : r.n_negative;
    const auto& mechs = kinked ? r.kink_mechanisms : r.mechanisms;
    EXPECT_EQ(negative, 0) << seed << " " << r.verdict << " | " << r.kink_verdict;
    EXPECT_EQ(null_dim, predicted) << seed << " " << r.verdict << " | " << r.kink_verdict;
    EXPECT_EQ(unexplained, 0) << seed;
    ASSERT_EQ(mechs[1].name, "relu_group");
    EXPECT_EQ(mechs[1].explained, predicted) << seed;
    // The analytic null vectors: da ⊥ a inside each group, db = s da.
    SphereProblem sp(flow);
    const double lmax = (kinked ? r.kink_eigenvalues : r.eigenvalues).cwiseAbs().maxCoeff();
    Index checked = 0;
    for (const auto& members : groups) {
      const Index m = Index(members.size());
      if (m < 2) continue;
      Vec av(m), bv(m);
      for (Index i = 0; i < m; ++i) {
        av[i] = U1.row(members[i]).norm();
        bv[i] = U2(0, members[i]);
      }
      const Vec ug = U1.row(members[0]).transpose().normalized();
      const double sg = bv.dot(av) / av.squaredNorm();
      EXPECT_LT((bv - sg * av).norm(), 1e-8 * bv.norm()) << seed;  // balanced at stationarity
      const Mat Q = orthonormal_columns(Mat::Identity(m, m) - av * av.transpose() / av.squaredNorm(), m - 1);
      for (Index c = 0; c < Q.cols(); ++c) {
        Vec xi = Vec::Zero(net.num_params());
        for (Index i = 0; i < m; ++i) {
          xi.segment(members[i] * 3, 3) = Q(i, c) * ug;
          xi[18 + members[i]] = sg * Q(i, c);
        }
        EXPECT_LT((sp.project(r.V, xi) - xi).norm(), 1e-8 * xi.norm());  // tangent
        // On kink surfaces the Hessian that matters is the one restricted to their tangent space
        // (xi scales rows along u_g, so it keeps every h = 0 of the group: it lies in that space).
        const Mat Bk = kinked ? kink_surface_basis(sp, r.V, kink_indices(flow, r.V, StationaryOptions{}.kink_rel))
                              : Mat::Identity(net.num_params(), net.num_params());
        EXPECT_LT((Bk * (Bk.transpose() * xi) - xi).norm(), 1e-8 * xi.norm()) << seed;
        EXPECT_LT((Bk.transpose() * sp.hessian(r.V, xi)).norm(), 1e-8 * lmax * xi.norm()) << seed;
        // A first-order direction that is not a family (db = -s da) has positive curvature.
        Vec eta = xi;
        for (Index i = 0; i < m; ++i) eta[18 + members[i]] = -sg * Q(i, c);
        EXPECT_GT(eta.dot(sp.hessian(r.V, eta)), 1e-6 * lmax * eta.squaredNorm()) << seed;
        ++checked;
      }
    }
    EXPECT_EQ(checked, predicted);
  }
}

// The Newton step by MINRES with Hessian-vector products equals the dense (pseudo-inverse) step
// where the Hessian is nonsingular: near the stationary point of K = 1 and of a generic ReLU net.
TEST(Stationary, MinresNewtonStepMatchesDense) {
  const Dataset data = test::separable_data(40, 6, 81);
  for (Activation act : {Activation::linear, Activation::relu}) {
    Network net = act == Activation::linear ? Network({6, 1}, act) : Network({6, 5, 1}, act);
    Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 3.0);
    SphereProblem sp(flow);
    StationaryOptions o;
    o.flow_tol = 1e-3;
    o.max_newton = 0;
    const StationaryResult near = find_stationary(flow, random_direction(net, 82), o);
    ASSERT_EQ(near.n_zero, 0) << to_string(act);
    const Vec g = sp.gradient(near.V);
    // Independent: the exact Newton step from the dense tangent Hessian B^T H B.
    const Mat B = TangentBasis(net, near.V).dense();
    Mat Ht(B.cols(), B.cols());
    for (Index j = 0; j < B.cols(); ++j) Ht.col(j) = B.transpose() * sp.hessian(near.V, B.col(j));
    const Vec exact = -B * Ht.partialPivLu().solve(B.transpose() * g);
    int it_dense = 0, it_minres = 0;
    const Vec iterative = newton_step(sp, near.V, g, false, o, it_minres);
    EXPECT_LT((iterative - exact).norm(), 1e-8 * exact.norm()) << to_string(act);
    // The dense (saddle-free) step equals it at a local minimum (no negative eigenvalues).
    if (near.n_negative == 0) {
      const Vec dense = newton_step(sp, near.V, g, true, o, it_dense);
      EXPECT_LT((dense - exact).norm(), 1e-8 * exact.norm()) << to_string(act);
    }
    EXPECT_GT(it_minres, 0);
    EXPECT_LE(it_minres, 2 * sp.tangent_dim());
  }
}

// Kink-surface tangent space: orthonormal, tangent to the spheres, and h_j stays 0 to first order.
TEST(Stationary, KinkSurfaceBasis) {
  const Dataset data = test::separable_data(20, 4, 91);
  Network net({4, 5, 1}, Activation::relu);
  Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 2.0);
  SphereProblem sp(flow);
  Vec V = random_direction(net, 92);
  // Put unit 2 on the kink of points 3 and 7: row 2 of V_1 orthogonal to x_3, x_7.
  Eigen::Map<RowMat> W1(V.data(), 5, 4);
  Mat X(4, 2);
  X << data.X.row(3).transpose(), data.X.row(7).transpose();
  const Vec w = W1.row(2).transpose();
  W1.row(2) = (w - X * X.colPivHouseholderQr().solve(w)).transpose();
  V = sp.normalize(V);
  const std::vector<Index> J = kink_indices(flow, V, 1e-12);
  ASSERT_EQ(J.size(), 2u);
  Index rank = 0;
  const Mat W = kink_surface_basis(sp, V, J, &rank);
  EXPECT_EQ(rank, 2);
  EXPECT_EQ(W.cols(), sp.tangent_dim() - 2);
  EXPECT_LT((W.transpose() * W - Mat::Identity(W.cols(), W.cols())).norm(), 1e-12);
  const double c = std::sqrt(2.0);
  for (Index j = 0; j < W.cols(); ++j) {
    EXPECT_LT((sp.project(V, W.col(j)) - W.col(j)).norm(), 1e-12);
    const Vec dh = flow.preactivation_tangent(c * V, c * W.col(j));
    for (Index q : J) EXPECT_LT(std::abs(dh[q]), 1e-12);
  }
}

TEST(Stationary, ModelToFile) {
  const std::string toml = R"(
[data]
kind = "gaussian"
n = 30
dim = 3
[network]
activation = "linear"
hidden = [3]
init_scale = 0.5
[flow]
rho = 2.0
)";
  const auto dir = std::filesystem::temp_directory_path() / "gfsim_test_stationary";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "stat.h5").string();
  const ModelSpec spec = parse_model_spec(toml, "stat.toml");
  StationaryCliOptions o;
  o.output = path;
  o.rho_sweep = "1:4:3";
  const StationaryReport rep = stationary_model(spec, o);
  ASSERT_EQ(rep.sweep.size(), 3u);
  EXPECT_NEAR(rep.sweep[1].rho, 2.0, 1e-12);
  for (const auto& p : rep.sweep) EXPECT_EQ(p.n_zero, 2) << p.rho;
  auto file = h5::File::open(path, h5::Access::read_only);
  EXPECT_EQ(file.string_attr("file_type"), "gfsim-stationary");
  auto g = file.open_group("stationary");
  EXPECT_EQ(g.string_attr("verdict"), rep.result.verdict);
  EXPECT_NEAR(g.double_attr("rho"), 4.0, 1e-12);
  EXPECT_EQ(g.open_dataset("eigenvalues").read_doubles().size(), std::size_t(rep.P - rep.K));
  EXPECT_EQ(g.open_dataset("sweep/rho").read_doubles().size(), 3u);
  EXPECT_EQ(g.int64_array_attr("inertia").size(), 3u);
  EXPECT_EQ(g.open_dataset("sweep/direction").read_doubles().size(), std::size_t(3 * rep.P));
}

// rho continuation (each rho starts from the previous stationary point) reproduces independent
// cold-start solves at the same rho values; K = 1: the minimizer is unique (strictly convex on the
// sphere's relevant cap), so directions must agree to Newton accuracy, and they approach the
// max-margin direction as rho grows.
TEST(Stationary, ContinuationReproducesColdStarts) {
  const std::string toml = R"(
[data]
kind = "gaussian"
n = 40
dim = 4
margin = 0.2
[network]
activation = "linear"
[flow]
rho = 2.0
)";
  const ModelSpec spec = parse_model_spec(toml, "cont.toml");
  const auto dir = std::filesystem::temp_directory_path() / ("gfsim_test_cont_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  StationaryCliOptions o;
  o.output = (dir / "cont.h5").string();
  o.rho_sweep = "1:64:4";
  const StationaryReport rep = stationary_model(spec, o);
  ASSERT_EQ(rep.sweep.size(), 4u);
  const Dataset data = make_dataset(spec.data);
  Network net({4, 1}, Activation::linear);
  double previous_gap = 2.0;
  const Vec v_star = max_margin(data.signed_points()).direction;
  for (const auto& p : rep.sweep) {
    Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, p.rho);
    const StationaryResult cold = find_stationary(flow, random_direction(net, 5), {});
    ASSERT_TRUE(cold.newton_converged) << p.rho;
    EXPECT_LT((cold.V - p.direction).norm(), 1e-10) << p.rho;
    const double gap = (p.direction - v_star).norm();
    EXPECT_LT(gap, previous_gap) << p.rho;  // tends to the max-margin direction
    previous_gap = gap;
    EXPECT_TRUE(std::isfinite(p.gd_distance)) << p.rho;  // the gd run passed this rho
  }
  // Lemma 3: the gradient flow's direction at rho(t) = rho approaches the fixed-rho optimum.
  EXPECT_LT(rep.sweep.back().gd_distance, rep.sweep.front().gd_distance);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gfsim
