// Zero modes of the tangent Hessian and their mechanisms (gfsim/zero_modes.hpp).
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <vector>
#include "gfsim/stationary.hpp"
#include "stationary_test_util.hpp"

namespace gfsim {
namespace {

// 2-layer deep linear net d_0 - d_1 - 1 at fixed rho: F depends on V only through w = V_2 V_1,
// and ||V_2 V_1|| <= 1 with equality iff V_1 = V_2^T b^T. The minimum is V_2 = a^T, V_1 = a b*^T
// with b* the K = 1 minimizer and a free on S^{d_1 - 1}: a manifold of dimension d_1 - 1, generated
// by the orthogonal transformations A (A a spans a^perp; generators fixing a act trivially).
// Transversally the Hessian is positive. So: null space dimension d_1 - 1, all explained.
class DeepLinearNullSpace : public ::testing::TestWithParam<Index> {};

TEST_P(DeepLinearNullSpace, IsOrthogonalSymmetry) {
  const Dataset data = test::separable_data(30, 4, 31);
  const Index d1 = GetParam();
  {
    Network net({4, d1, 1}, Activation::linear);
    Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, 3.0);
    const StationaryResult r = find_stationary(flow, test::random_direction(net, 40 + std::uint64_t(d1)), {});
    ASSERT_TRUE(r.newton_converged) << d1;
    EXPECT_EQ(r.spectrum.n_negative, 0) << d1;
    EXPECT_EQ(r.spectrum.null_dim, d1 - 1) << d1;
    EXPECT_EQ(r.spectrum.explained, d1 - 1) << d1;
    EXPECT_EQ(r.spectrum.unexplained, 0) << d1;
    ASSERT_EQ(r.spectrum.mechanisms.front().name, "orthogonal");
    EXPECT_EQ(r.spectrum.mechanisms.front().explained, d1 - 1) << d1;
    EXPECT_EQ(r.spectrum.mechanisms.front().span_dim, d1 - 1) << d1;
    // The analytic vectors are null vectors of the Hessian.
    SphereProblem sp(flow);
    const Mat A = orthogonal_symmetry_vectors(net, r.V);
    for (Index j = 0; j < A.cols(); ++j) {
      const Vec v = sp.project(r.V, A.col(j));
      if (v.norm() < 1e-10) continue;
      EXPECT_LT(sp.hessian(r.V, v).norm(), 1e-9 * r.spectrum.eigenvalues.maxCoeff() * v.norm());
    }
    EXPECT_NE(r.verdict.find("not hyperbolic: " + std::to_string(d1 - 1) + " zero modes"), std::string::npos)
        << r.verdict;
    // Rank-one structure of the minimum: ||V_2 V_1|| = 1.
    EXPECT_NEAR((net.layer(r.V, 1) * net.layer(r.V, 0)).norm(), 1.0, 1e-10);
  }
}

INSTANTIATE_TEST_SUITE_P(HiddenWidths, DeepLinearNullSpace, ::testing::Values(Index(2), Index(3), Index(5)),
                         [](const ::testing::TestParamInfo<Index>& info) { return "width" + std::to_string(info.param); });

TEST(ZeroModes, ReluGroupVectorsKeepTheFunction) {
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
class ReluGroupedParallelUnits : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(ReluGroupedParallelUnits, NullSpaceIsTheGroupFamilies) {
  const std::uint64_t seed = GetParam();
  {
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
    const TangentSpectrum& s = kinked ? r.kink_spectrum : r.spectrum;
    const Index null_dim = s.null_dim;
    const Index unexplained = s.unexplained;
    const Index negative = s.n_negative;
    const auto& mechs = s.mechanisms;
    EXPECT_EQ(negative, 0) << seed << " " << r.verdict << " | " << r.kink_spectrum.verdict;
    EXPECT_EQ(null_dim, predicted) << seed << " " << r.verdict << " | " << r.kink_spectrum.verdict;
    EXPECT_EQ(unexplained, 0) << seed;
    ASSERT_EQ(mechs[1].name, "relu_group");
    EXPECT_EQ(mechs[1].explained, predicted) << seed;
    // The analytic null vectors: da ⊥ a inside each group, db = s da.
    SphereProblem sp(flow);
    const double lmax = s.eigenvalues.cwiseAbs().maxCoeff();
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
      const Mat Q = test::orthonormal_columns(Mat::Identity(m, m) - av * av.transpose() / av.squaredNorm(), m - 1);
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

INSTANTIATE_TEST_SUITE_P(Seeds, ReluGroupedParallelUnits, ::testing::Values(88u, 70u, 76u),
                         [](const ::testing::TestParamInfo<std::uint64_t>& info) {
                           return "seed" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace gfsim
