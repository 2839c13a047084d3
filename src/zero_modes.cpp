#include "gfsim/zero_modes.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

namespace gfsim {

Mat orthogonal_symmetry_vectors(const Network& net, const Vec& V) {
  // W_{k+1} -> W_{k+1} exp(A)^T, W_k -> exp(A) W_k (A antisymmetric, d_k x d_k) keeps f and every
  // ||W_k||: xi_k = A V_k, xi_{k+1} = -V_{k+1} A (linear hidden layer k).
  std::vector<Vec> cols;
  if (net.activation() != Activation::linear) return Mat(net.num_params(), 0);
  for (Index k = 0; k + 1 < net.num_layers(); ++k) {
    const Index d = net.layer_rows(k);
    const auto Vk = net.layer(V, k);
    const auto Vn = net.layer(V, k + 1);
    for (Index i = 0; i < d; ++i)
      for (Index j = i + 1; j < d; ++j) {
        Vec x = Vec::Zero(net.num_params());
        Eigen::Map<RowMat> Xk(x.data() + net.layer_offset(k), d, net.layer_cols(k));
        Eigen::Map<RowMat> Xn(x.data() + net.layer_offset(k + 1), net.layer_rows(k + 1), d);
        // A = E_ij - E_ji: (A V_k) row i = V_k row j, row j = -V_k row i
        Xk.row(i) = Vk.row(j);
        Xk.row(j) = -Vk.row(i);
        // -V_{k+1} A: column j gets -V col i, column i gets +V col j
        Xn.col(j) = -Vn.col(i);
        Xn.col(i) = Vn.col(j);
        cols.push_back(std::move(x));
      }
  }
  Mat M(net.num_params(), Index(cols.size()));
  for (std::size_t j = 0; j < cols.size(); ++j) M.col(Index(j)) = cols[j];
  return M;
}

Mat relu_group_vectors(const Network& net, const Vec& V, double tol) {
  // Hidden units i in a group with parallel incoming rows r_i = a_i u (a_i > 0) and parallel
  // outgoing columns c_i = b_i c (any sign) contribute (sum_i a_i b_i) c relu(u.h). Moving (a, b)
  // with a.da = 0, b.db = 0, a.db + b.da = 0 keeps f and both layer norms: 2m - 3 directions.
  std::vector<Vec> cols;
  if (net.activation() != Activation::relu) return Mat(net.num_params(), 0);
  for (Index k = 0; k + 1 < net.num_layers(); ++k) {
    const Index d = net.layer_rows(k);
    const auto Vk = net.layer(V, k);
    const auto Vn = net.layer(V, k + 1);
    const double rmax = Vk.rowwise().norm().maxCoeff(), cmax = Vn.colwise().norm().maxCoeff();
    std::vector<bool> used(std::size_t(d), false);
    for (Index i = 0; i < d; ++i) {
      if (used[i] || Vk.row(i).norm() <= tol * rmax || Vn.col(i).norm() <= tol * cmax) continue;
      const Vec u = Vk.row(i).transpose().normalized();
      const Vec c = Vn.col(i).normalized();
      std::vector<Index> group{i};
      for (Index j = i + 1; j < d; ++j) {
        if (used[j] || Vk.row(j).norm() <= tol * rmax || Vn.col(j).norm() <= tol * cmax) continue;
        const Vec uj = Vk.row(j).transpose().normalized();
        const Vec cj = Vn.col(j).normalized();
        if ((uj - u).norm() <= tol && std::abs(std::abs(cj.dot(c)) - 1.0) <= tol * tol) group.push_back(j);
      }
      if (group.size() < 2) continue;
      for (Index j : group) used[j] = true;
      const Index m = Index(group.size());
      Vec a(m), b(m);
      for (Index q = 0; q < m; ++q) {
        a[q] = Vk.row(group[q]).norm();
        b[q] = Vn.col(group[q]).dot(c);
      }
      Mat C = Mat::Zero(3, 2 * m);
      C.block(0, 0, 1, m) = a.transpose();
      C.block(1, m, 1, m) = b.transpose();
      C.block(2, 0, 1, m) = b.transpose();
      C.block(2, m, 1, m) = a.transpose();
      Eigen::FullPivLU<Mat> lu(C);
      lu.setThreshold(1e-10);
      const Mat N = lu.kernel();
      if (lu.rank() == 2 * m) continue;
      for (Index col = 0; col < N.cols(); ++col) {
        Vec x = Vec::Zero(net.num_params());
        Eigen::Map<RowMat> Xk(x.data() + net.layer_offset(k), d, net.layer_cols(k));
        Eigen::Map<RowMat> Xn(x.data() + net.layer_offset(k + 1), net.layer_rows(k + 1), d);
        for (Index q = 0; q < m; ++q) {
          Xk.row(group[q]) = N(q, col) * u.transpose();
          Xn.col(group[q]) = N(m + q, col) * c;
        }
        cols.push_back(std::move(x));
      }
    }
  }
  Mat M(net.num_params(), Index(cols.size()));
  for (std::size_t j = 0; j < cols.size(); ++j) M.col(Index(j)) = cols[j];
  return M;
}

Mat vanished_unit_vectors(const SphereProblem& sp, const Vec& V, double tol) {
  // A hidden unit with zero outgoing column (or zero incoming row, or a dead ReLU unit: negative
  // pre-activation on every point) does not feel rotations of its incoming row (resp. outgoing
  // column) orthogonal to that row (column): they keep f and the layer norms.
  const Network& net = sp.flow().network();
  std::vector<Vec> cols;
  const Vec h = sp.flow().preactivations(V);  // relu only; theta-scaled
  const Index n = net.num_layers() > 1 && h.size() ? h.size() / [&] {
    Index units = 0;
    for (Index k = 0; k + 1 < net.num_layers(); ++k) units += net.layer_rows(k);
    return units;
  }() : 0;
  const double hmax = h.size() ? h.cwiseAbs().maxCoeff() : 0.0;
  Index hoff = 0;
  auto add_rotations = [&](Index layer, bool row, Index unit) {
    const Index rows = net.layer_rows(layer), colsn = net.layer_cols(layer);
    const auto W = net.layer(V, layer);
    const Vec w = row ? Vec(W.row(unit).transpose()) : Vec(W.col(unit));
    const double w2 = w.squaredNorm();
    for (Index j = 0; j < w.size(); ++j) {
      Vec e = Vec::Zero(w.size());
      e[j] = 1;
      if (w2 > 0) e -= w * (w[j] / w2);
      if (e.norm() < 1e-12) continue;
      Vec x = Vec::Zero(net.num_params());
      Eigen::Map<RowMat> X(x.data() + net.layer_offset(layer), rows, colsn);
      if (row) X.row(unit) = e.transpose();
      else X.col(unit) = e;
      cols.push_back(std::move(x));
    }
  };
  for (Index k = 0; k + 1 < net.num_layers(); ++k) {
    const Index d = net.layer_rows(k);
    const auto Vk = net.layer(V, k);
    const auto Vn = net.layer(V, k + 1);
    const double rmax = Vk.rowwise().norm().maxCoeff(), cmax = Vn.colwise().norm().maxCoeff();
    for (Index i = 0; i < d; ++i) {
      const bool zero_out = Vn.col(i).norm() <= tol * cmax;
      const bool zero_in = Vk.row(i).norm() <= tol * rmax;
      bool dead = false;
      if (n > 0 && net.activation() == Activation::relu) {
        dead = true;
        for (Index p = 0; p < n && dead; ++p) dead = h[hoff + p * d + i] < -1e-9 * hmax;
      }
      if (zero_out || dead) add_rotations(k, true, i);
      if (zero_in || dead) add_rotations(k + 1, false, i);
    }
    if (n > 0) hoff += d * n;
  }
  Mat M(net.num_params(), Index(cols.size()));
  for (std::size_t j = 0; j < cols.size(); ++j) M.col(Index(j)) = cols[j];
  return M;
}

namespace {

// Orthonormal basis of the column span of M (rank-revealing QR).
Mat orthonormal_span(const Mat& M, double rel_tol = 1e-8) {
  if (M.cols() == 0) return Mat(M.rows(), 0);
  Eigen::ColPivHouseholderQR<Mat> qr(M);
  qr.setThreshold(rel_tol);
  const Index r = qr.rank();
  Mat Q = qr.householderQ() * Mat::Identity(M.rows(), r);
  return Q;
}

// Dimension of the part of span(N) (orthonormal columns) lying inside span(Q) (orthonormal).
Index subspace_overlap(const Mat& N, const Mat& Q) {
  if (N.cols() == 0 || Q.cols() == 0) return 0;
  const Mat C = N.transpose() * Q;
  Eigen::JacobiSVD<Mat> svd(C);
  Index count = 0;
  for (Index i = 0; i < svd.singularValues().size(); ++i)
    if (svd.singularValues()[i] > 0.99) ++count;
  return count;
}

}  // namespace

// Per mechanism: first-order symmetry directions that are not exact families (e.g. at balanced groups)
// have positive curvature and drop out at the verification.
Index explain_null_space(const SphereProblem& sp, const Vec& V, const Mat& N,
                         const std::vector<std::pair<std::string, Mat>>& cands, const Mat* W, double lmax,
                         double verify_rel, std::vector<ZeroModeMechanism>& out, Index& hvps) {
  const Index P = sp.dim();
  out.clear();
  auto proj = [&](const Vec& x) { return W ? Vec(*W * (W->transpose() * x)) : sp.project(V, x); };
  std::vector<Vec> all;
  for (const auto& [name, C] : cands) {
    ZeroModeMechanism mech;
    mech.name = name;
    mech.candidates = C.cols();
    Mat S(P, C.cols());
    for (Index j = 0; j < C.cols(); ++j) S.col(j) = proj(C.col(j));
    const Mat Q = orthonormal_span(S);
    std::vector<Vec> ok;
    if (Q.cols() > 0) {
      Mat HQ(P, Q.cols());
      for (Index j = 0; j < Q.cols(); ++j) HQ.col(j) = proj(sp.hessian(V, Q.col(j)));
      hvps += Q.cols();
      Mat M = Q.transpose() * HQ;
      M = 0.5 * (M + M.transpose()).eval();
      Eigen::SelfAdjointEigenSolver<Mat> es(M);
      for (Index i = 0; i < M.rows(); ++i) {
        const Vec v = Q * es.eigenvectors().col(i);
        const double res = (HQ * es.eigenvectors().col(i)).norm();
        if (res <= verify_rel * lmax) {
          ok.push_back(v);
          mech.max_residual = std::max(mech.max_residual, res);
        }
      }
    }
    mech.verified = Index(ok.size());
    Mat Sv(P, Index(ok.size()));
    for (std::size_t j = 0; j < ok.size(); ++j) Sv.col(Index(j)) = ok[j];
    mech.span_dim = orthonormal_span(Sv).cols();
    mech.explained = subspace_overlap(N, orthonormal_span(Sv));
    for (auto& v : ok) all.push_back(std::move(v));
    out.push_back(mech);
  }
  Mat S(P, Index(all.size()));
  for (std::size_t j = 0; j < all.size(); ++j) S.col(Index(j)) = all[j];
  return subspace_overlap(N, orthonormal_span(S));
}

std::vector<std::pair<std::string, Mat>> zero_mode_candidates(const SphereProblem& sp, const Vec& V) {
  const Network& net = sp.flow().network();
  std::vector<std::pair<std::string, Mat>> cands;
  if (net.num_layers() >= 2) {
    cands.emplace_back("orthogonal", orthogonal_symmetry_vectors(net, V));
    cands.emplace_back("relu_group", relu_group_vectors(net, V));
    cands.emplace_back("vanished", vanished_unit_vectors(sp, V));
  }
  return cands;
}

}  // namespace gfsim
