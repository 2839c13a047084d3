#include "gfsim/stationary.hpp"
#include "gfsim/timestamp.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <limits>
#include <ostream>

#include "gfsim/build.hpp"
#include "gfsim/dataset.hpp"
#include "gfsim/flow_problem.hpp"
#include "gfsim/hdf5_file.hpp"
#include "gfsim/integrate.hpp"
#include "gfsim/minres.hpp"
#include "gfsim/provenance.hpp"
#include "gfsim/recorder.hpp"
#include "gfsim/run.hpp"
#include "gfsim/spectrum.hpp"
#include "gfsim/version.hpp"

namespace gfsim {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double layer_scale(const Flow& flow) { return std::pow(flow.fixed_rho(), 1.0 / double(flow.num_layers())); }

}  // namespace

// ---- SphereProblem -----------------------------------------------------------------------------

SphereProblem::SphereProblem(const Flow& flow) : flow_(flow) {
  if (flow.kind() != FlowKind::fixed_rho)
    throw std::invalid_argument("SphereProblem: the flow must have kind fixed_rho");
}

Vec SphereProblem::project(const Vec& V, const Vec& X) const {
  const Network& net = flow_.network();
  Vec out = X;
  for (Index k = 0; k < net.num_layers(); ++k) {
    const Index o = net.layer_offset(k), m = net.layer_size(k);
    const auto Vk = V.segment(o, m);
    out.segment(o, m) -= Vk * (Vk.dot(X.segment(o, m)) / Vk.squaredNorm());
  }
  return out;
}

Vec SphereProblem::normalize(const Vec& V) const {
  const Network& net = flow_.network();
  Vec out = V;
  for (Index k = 0; k < net.num_layers(); ++k) {
    auto seg = out.segment(net.layer_offset(k), net.layer_size(k));
    const double r = seg.norm();
    if (!(r > 0)) throw SpecError(fmt::format("stationary: layer {} of the start direction is zero", k + 1));
    seg /= r;
  }
  return out;
}

Vec SphereProblem::retract(const Vec& V, const Vec& xi) const { return normalize(V + xi); }

double SphereProblem::log_loss(const Vec& V) const { return flow_.diagnostics(V).log_loss; }

double SphereProblem::loss_scale(const Vec& V) const {
  return std::max(rho() * std::exp(log_loss(V)), std::numeric_limits<double>::min());
}

Vec SphereProblem::euclidean_gradient(const Vec& V) const {
  const double c = layer_scale(flow_);
  Vec g;
  flow_.loss_gradient(c * V, g);
  return c * g;
}

Vec SphereProblem::euclidean_hvp(const Vec& V, const Vec& x) const {
  const double c = layer_scale(flow_);
  Vec h;
  flow_.loss_hvp(c * V, x, h);
  return (c * c) * h;
}

Vec SphereProblem::gradient(const Vec& V) const { return project(V, euclidean_gradient(V)); }

Vec SphereProblem::hessian(const Vec& V, const Vec& xi) const {
  const Network& net = flow_.network();
  const Vec t = project(V, xi);
  const Vec eg = euclidean_gradient(V);
  Vec h = project(V, euclidean_hvp(V, t));
  for (Index k = 0; k < net.num_layers(); ++k) {
    const Index o = net.layer_offset(k), m = net.layer_size(k);
    const double a = V.segment(o, m).dot(eg.segment(o, m)) / V.segment(o, m).squaredNorm();
    h.segment(o, m) -= a * t.segment(o, m);
  }
  return h;
}

Vec SphereProblem::hessian_from_jvp(const Vec& V, const Vec& xi) const {
  Vec jv;
  flow_.jvp(V, 0.0, project(V, xi), jv);
  return -project(V, jv);
}

// ---- TangentBasis ------------------------------------------------------------------------------

TangentBasis::TangentBasis(const Network& net, const Vec& V) : P_(net.num_params()) {
  for (Index k = 0; k < net.num_layers(); ++k) {
    const Index o = net.layer_offset(k), m = net.layer_size(k);
    Vec v = V.segment(o, m).normalized();
    const double s = v[0] >= 0 ? 1.0 : -1.0;
    v[0] += s;  // w = v + sign(v_0) e_1: Q e_1 = -sign(v_0) v
    offsets_.push_back(o);
    sizes_.push_back(m);
    w_.push_back(v);
  }
}

Vec TangentBasis::apply(const Vec& y) const {
  Vec x(P_);
  Index j = 0;
  for (std::size_t k = 0; k < w_.size(); ++k) {
    const Index o = offsets_[k], m = sizes_[k];
    Vec z(m);
    z[0] = 0;
    z.tail(m - 1) = y.segment(j, m - 1);
    j += m - 1;
    x.segment(o, m) = z - w_[k] * (2.0 * w_[k].dot(z) / w_[k].squaredNorm());
  }
  return x;
}

Vec TangentBasis::apply_transpose(const Vec& x) const {
  Vec y(cols());
  Index j = 0;
  for (std::size_t k = 0; k < w_.size(); ++k) {
    const Index o = offsets_[k], m = sizes_[k];
    const auto xs = x.segment(o, m);
    const Vec z = xs - w_[k] * (2.0 * w_[k].dot(xs) / w_[k].squaredNorm());
    y.segment(j, m - 1) = z.tail(m - 1);
    j += m - 1;
  }
  return y;
}

Mat TangentBasis::dense() const {
  Mat B(P_, cols());
  Vec e = Vec::Zero(cols());
  for (Index j = 0; j < cols(); ++j) {
    e[j] = 1;
    B.col(j) = apply(e);
    e[j] = 0;
  }
  return B;
}

// ---- Kink surfaces -----------------------------------------------------------------------------

std::vector<Index> kink_indices(const Flow& flow, const Vec& V, double rel) {
  std::vector<Index> J;
  const Vec h = flow.preactivations(V);
  if (h.size() == 0) return J;
  const double hmax = h.cwiseAbs().maxCoeff();
  for (Index j = 0; j < h.size(); ++j)
    if (std::abs(h[j]) <= rel * hmax) J.push_back(j);
  return J;
}

namespace {

// Rows: d h_j / dV applied to the columns of T (P x m), j in kinks. theta = c V, so
// dh = preactivation_tangent(c V, c xi). ReLU'(0) = 0 for the kinked entries themselves.
Mat kink_rows(const SphereProblem& sp, const Vec& V, const std::vector<Index>& kinks, const Mat& T) {
  const double c = layer_scale(sp.flow());
  Mat C(Index(kinks.size()), T.cols());
  const Vec theta = c * V;
  for (Index j = 0; j < T.cols(); ++j) {
    const Vec dh = sp.flow().preactivation_tangent(theta, c * T.col(j));
    for (std::size_t q = 0; q < kinks.size(); ++q) C(Index(q), j) = dh[kinks[q]];
  }
  return C;
}

// Orthonormal basis of the null space of A (k x m) as m x (m - rank) columns.
Mat null_space(const Mat& A, Index& rank) {
  const Index m = A.cols();
  if (A.rows() == 0) {
    rank = 0;
    return Mat::Identity(m, m);
  }
  Eigen::JacobiSVD<Mat> svd(A, Eigen::ComputeFullV);
  const Vec& sv = svd.singularValues();
  const double tol = 1e-10 * std::max(sv.size() ? sv[0] : 0.0, 1e-300);
  rank = 0;
  for (Index i = 0; i < sv.size(); ++i)
    if (sv[i] > tol) ++rank;
  return svd.matrixV().rightCols(m - rank);
}

// Pull V back onto h_j = 0 (j in kinks) after a Newton step: minimum-norm Gauss-Newton corrections
// on the sphere tangent space, then the retraction. For first-layer kinks h is linear in V_1 and
// the normalization keeps h = 0, so one correction is exact.
Vec restore_kinks(const SphereProblem& sp, Vec V, const std::vector<Index>& kinks) {
  if (kinks.empty()) return V;
  const double c = layer_scale(sp.flow());
  for (int it = 0; it < 5; ++it) {
    const Vec h = sp.flow().preactivations(V);
    Vec hJ(Index(kinks.size()));
    for (std::size_t q = 0; q < kinks.size(); ++q) hJ[Index(q)] = h[kinks[q]] / c;  // per unit V
    const double hmax = h.cwiseAbs().maxCoeff() / c;
    if (hJ.norm() <= 1e-15 * hmax) break;
    const Mat Bd = TangentBasis(sp.flow().network(), V).dense();
    const Mat C = kink_rows(sp, V, kinks, Bd) / c;
    const Vec d = C.completeOrthogonalDecomposition().solve(-hJ);
    V = sp.retract(V, Bd * d);
  }
  return V;
}

// Dense Riemannian Hessian on the columns of an orthonormal tangent basis W: W^T H W.
Mat projected_hessian(const SphereProblem& sp, const Vec& V, const Mat& W, Mat* HW = nullptr) {
  Mat HWl(W.rows(), W.cols());
  for (Index j = 0; j < W.cols(); ++j) HWl.col(j) = sp.hessian(V, W.col(j));
  Mat Ht = W.transpose() * HWl;
  Ht = 0.5 * (Ht + Ht.transpose()).eval();
  if (HW) *HW = std::move(HWl);
  return Ht;
}

}  // namespace

Mat kink_surface_basis(const SphereProblem& sp, const Vec& V, const std::vector<Index>& kinks, Index* rank) {
  const Mat Bd = TangentBasis(sp.flow().network(), V).dense();
  Index r = 0;
  const Mat Z = null_space(kink_rows(sp, V, kinks, Bd), r);
  if (rank) *rank = r;
  return Bd * Z;
}

// ---- Newton ------------------------------------------------------------------------------------

namespace {

// Saddle-free Newton step in an orthonormal basis W of the search space: pseudo-inverse of W^T H W
// with |lambda|; zero modes are left alone.
Vec dense_newton_step(const SphereProblem& sp, const Vec& V, const Vec& g, const Mat& W, double zero_rel) {
  const Mat Ht = projected_hessian(sp, V, W);
  Eigen::SelfAdjointEigenSolver<Mat> es(Ht);
  const Vec& lam = es.eigenvalues();
  const double thr = zero_rel * std::max(lam.cwiseAbs().maxCoeff(), 1e-300);
  const Vec gt = es.eigenvectors().transpose() * (W.transpose() * g);
  Vec y = Vec::Zero(lam.size());
  for (Index i = 0; i < lam.size(); ++i)
    if (std::abs(lam[i]) > thr) y[i] = -gt[i] / std::abs(lam[i]);
  return W * (es.eigenvectors() * y);
}

}  // namespace

Vec newton_step(const SphereProblem& sp, const Vec& V, const Vec& g, bool dense, const StationaryOptions& o,
                int& inner) {
  if (dense) {
    const Mat Bd = TangentBasis(sp.flow().network(), V).dense();
    inner = int(Bd.cols());
    return dense_newton_step(sp, V, g, Bd, o.zero_rel);
  }
  // MINRES on the tangent space: Hess maps tangent vectors to tangent vectors and is symmetric
  // there; -grad is tangent, so every Krylov vector is.
  const MinresResult m = minres([&](const Vec& v, Vec& Hv) { Hv = sp.hessian(V, v); }, -sp.project(V, g),
                                {.rtol = o.minres_rtol, .max_iterations = 4 * sp.tangent_dim()});
  inner = int(m.iterations);
  return sp.project(V, m.x);
}

void newton_polish(const SphereProblem& sp, StationaryResult& r, const StationaryOptions& o) {
  Vec V = sp.normalize(r.V);
  const std::vector<Index>& kinks = r.newton_kinks;
  const bool on_kinks = !kinks.empty();
  if (on_kinks) V = restore_kinks(sp, V, kinks);
  // On a kink surface the stationarity condition is the gradient projected onto its tangent space.
  Mat W;
  auto surface_gradient = [&](const Vec& X) {
    const Vec g = sp.gradient(X);
    if (!on_kinks) return g;
    W = kink_surface_basis(sp, X, kinks);
    return Vec(W * (W.transpose() * g));
  };
  Vec g = surface_gradient(V);
  double gn = g.norm();
  double scale = sp.loss_scale(V);
  r.grad_norms.push_back(gn);
  r.newton_converged = false;
  for (int it = 0; it < o.max_newton; ++it) {
    if (gn <= o.newton_tol * scale) {
      r.newton_converged = true;
      break;
    }
    Vec xi;
    int inner = 0;
    if (on_kinks) {
      if (sp.tangent_dim() > o.dense_newton_max) break;  // kink-surface Newton is dense only
      xi = dense_newton_step(sp, V, g, W, o.zero_rel);
      inner = int(W.cols());
    } else {
      // Inexact Newton for MINRES: relative residual ~ relative gradient (forcing term; keeps the
      // quadratic rate) and not tighter, so near-null directions (zero modes at 1e-15) are not
      // amplified by an over-solved singular system.
      // At the round-off level (relative gradient <= 1e-11, counted as converged below) MINRES
      // cannot reach a relative residual that small on the near-singular system: it ran to its
      // cap of 4 m iterations for a step the line search then rejected (99.99% of Newton's
      // Hessian products at P = 1e4, docs/spectrum_benchmarks.md). Stop instead.
      if (sp.tangent_dim() > o.dense_newton_max && gn <= 1e-11 * scale) break;
      StationaryOptions oi = o;
      oi.minres_rtol = std::clamp(gn / scale, o.minres_rtol, 1e-2);
      xi = newton_step(sp, V, g, sp.tangent_dim() <= o.dense_newton_max, oi, inner);
    }
    r.newton_hvps += inner;
    // Safeguard: accept the first step length (1, 1/2, ...) that decreases ||grad||.
    double t = 1.0;
    bool accepted = false;
    Vec Vn, gnew;
    for (int ls = 0; ls < 12; ++ls, t *= 0.5) {
      Vn = restore_kinks(sp, sp.retract(V, t * xi), kinks);
      gnew = surface_gradient(Vn);
      if (gnew.norm() < gn) {
        accepted = true;
        break;
      }
    }
    if (!accepted) break;  // stagnation: round-off reached
    V = Vn;
    g = gnew;
    gn = g.norm();
    scale = sp.loss_scale(V);
    r.step_norms.push_back(t * xi.norm());
    r.inner_iterations.push_back(inner);
    r.grad_norms.push_back(gn);
  }
  if (gn <= o.newton_tol * scale) r.newton_converged = true;
  // Stagnation at round-off also counts: relative gradient below 1e-11.
  if (!r.newton_converged && gn <= 1e-11 * scale) r.newton_converged = true;
  r.V = V;
}

Mat tangent_hessian_matrix(const SphereProblem& sp, const Vec& V) {
  const TangentBasis B(sp.flow().network(), V);
  const Index m = B.cols();
  Mat Ht(m, m);
  Vec e = Vec::Zero(m);
  for (Index j = 0; j < m; ++j) {
    e[j] = 1;
    Ht.col(j) = B.apply_transpose(sp.hessian(V, B.apply(e)));
    e[j] = 0;
  }
  // Symmetric in exact arithmetic; averaging removes the round-off asymmetry (in place, no copy).
  for (Index j = 0; j < m; ++j)
    for (Index i = j + 1; i < m; ++i) Ht(i, j) = Ht(j, i) = 0.5 * (Ht(i, j) + Ht(j, i));
  return Ht;
}

Vec tangent_extreme_eigenvalues(const SphereProblem& sp, const Vec& V0, Index k, Index dense_max, Index* hvps) {
  const Vec V = sp.normalize(V0);
  const Index m = sp.tangent_dim();
  Vec out = Vec::Constant(2 * k, std::numeric_limits<double>::quiet_NaN());
  const TangentBasis B(sp.flow().network(), V);
  if (m <= dense_max || k >= m - 2) {
    const Mat Ht = tangent_hessian_matrix(sp, V);
    if (hvps) *hvps += m;
    const Vec lam = Eigen::SelfAdjointEigenSolver<Mat>(Ht, Eigen::EigenvaluesOnly).eigenvalues();
    for (Index i = 0; i < k && i < m; ++i) out[i] = lam[i];
    for (Index i = 0; i < k; ++i)
      if (m - k + i >= 0) out[k + i] = lam[m - k + i];
    return out;
  }
  SymOperator op{m, [&](const double* in, double* o) {
                   Eigen::Map<Vec>(o, m) = B.apply_transpose(sp.hessian(V, B.apply(Eigen::Map<const Vec>(in, m))));
                 }};
  const ExtremeEigs e = extreme_eigenvalues(op, k);
  if (hvps) *hvps += e.matvecs;
  for (Index i = 0; i < e.smallest.size(); ++i) out[i] = e.smallest[i];
  for (Index i = 0; i < e.largest.size(); ++i) out[k + i] = e.largest[i];
  return out;
}

// ---- Analytic null vectors ---------------------------------------------------------------------

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

// ---- Analysis ----------------------------------------------------------------------------------

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

// Explain the null space N (orthonormal P-space columns) by the analytic candidates: per mechanism,
// the candidates (projected onto the tangent space, or onto span(W) if given) span Q; the Hessian
// on Q (q HVPs) has a null space whose vectors, with ||H v|| <= verify_rel * lmax, are the verified
// analytic null vectors (first-order symmetry directions that are not exact families, e.g. at
// balanced groups, have positive curvature and drop out here). Returns the dimension of N inside
// the span of all verified vectors.
Index explain_null_space(const SphereProblem& sp, const Vec& V, const Mat& N,
                         const std::vector<std::pair<std::string, Mat>>& cands, const Mat* W, double lmax,
                         const StationaryOptions& o, std::vector<ZeroModeMechanism>& out, Index& hvps) {
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
        if (res <= o.verify_rel * lmax) {
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

std::string verdict_text(Index n_negative, Index n_zero, const std::vector<ZeroModeMechanism>& mechs, Index unexplained,
                         bool partial) {
  std::string expl;
  for (const auto& mech : mechs) expl += fmt::format("{} {}, ", mech.explained, mech.name);
  expl += fmt::format("{} unexplained", unexplained);
  const std::string atleast = partial ? "at least " : "";
  if (n_negative > 0) {
    std::string v = fmt::format("not a minimum: {}{} negative modes", atleast, n_negative);
    if (n_zero > 0) v += fmt::format(", {}{} zero modes (explained: {})", atleast, n_zero, expl);
    return v;
  }
  if (n_zero > 0) return fmt::format("not hyperbolic: {}{} zero modes (explained: {})", atleast, n_zero, expl);
  return "hyperbolic";
}

}  // namespace

void analyse_stationary(const SphereProblem& sp, StationaryResult& r, const StationaryOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const Flow& flow = sp.flow();
  const Network& net = flow.network();
  const Vec& V = r.V;
  const Index P = sp.dim(), m = sp.tangent_dim();
  const TangentBasis B(net, V);
  Mat X;  // P-space eigenvectors matching r.eigenvalues
  if (m >= 1 && (m <= o.dense_max && !(o.force_spectra && m > 2 * o.nev + 2))) {
    r.spectrum_method = "dense";
    const Mat Bd = B.dense();
    Mat HB(P, m);
    for (Index j = 0; j < m; ++j) HB.col(j) = sp.hessian(V, Bd.col(j));
    r.hvps += m;
    Mat Ht = Bd.transpose() * HB;
    Ht = 0.5 * (Ht + Ht.transpose()).eval();
    Eigen::SelfAdjointEigenSolver<Mat> es(Ht);
    r.eigenvalues = es.eigenvalues();
    X = Bd * es.eigenvectors();
    const Mat R = HB * es.eigenvectors() - X * r.eigenvalues.asDiagonal();
    r.residuals = R.colwise().norm().transpose();
  } else if (m >= 1) {
    r.spectrum_method = "spectra";
    SymOperator op{m, [&](const double* in, double* out) {
                     const Vec y = Eigen::Map<const Vec>(in, m);
                     Eigen::Map<Vec>(out, m) = B.apply_transpose(sp.hessian(V, B.apply(y)));
                   }};
    const Index nev = std::min(o.nev, m - 2);
    const ExtremeEigs e = extreme_eigenvalues(op, nev, {.tol = o.spectra_tol});
    r.hvps += e.matvecs;
    r.info_smallest = e.info_smallest;
    r.info_largest = e.info_largest;
    const Index ns = e.smallest.size(), nl = e.largest.size();
    r.eigenvalues.resize(ns + nl);
    r.eigenvalues << e.smallest, e.largest;
    X.resize(P, ns + nl);
    for (Index j = 0; j < ns; ++j) X.col(j) = B.apply(e.smallest_vectors.col(j));
    for (Index j = 0; j < nl; ++j) X.col(ns + j) = B.apply(e.largest_vectors.col(j));
    r.residuals.resize(ns + nl);
    for (Index j = 0; j < ns + nl; ++j) r.residuals[j] = (sp.hessian(V, X.col(j)) - r.eigenvalues[j] * X.col(j)).norm();
    r.hvps += ns + nl;
  }
  const double lmax = r.eigenvalues.size() ? r.eigenvalues.cwiseAbs().maxCoeff() : 0.0;
  r.zero_threshold = o.zero_rel * lmax;
  r.n_negative = r.n_zero = r.n_positive = 0;
  std::vector<Index> zero_idx;
  for (Index i = 0; i < r.eigenvalues.size(); ++i) {
    const double l = r.eigenvalues[i];
    if (std::abs(l) <= r.zero_threshold) {
      ++r.n_zero;
      zero_idx.push_back(i);
    } else if (l < 0) {
      ++r.n_negative;
    } else {
      ++r.n_positive;
    }
  }
  // Keep the null space (and, if none, the lowest eigenvector) as the stored eigenvectors.
  Mat N(P, Index(zero_idx.size()));
  for (std::size_t j = 0; j < zero_idx.size(); ++j) N.col(Index(j)) = X.col(zero_idx[j]);
  r.null_dim = N.cols();
  const Index keep = std::min<Index>(X.cols(), std::max<Index>(r.null_dim, std::min<Index>(o.nev, X.cols())));
  r.eigenvectors = X.leftCols(keep);
  r.spectrum_seconds = seconds_since(t0);

  // Zero modes: analytic vectors per mechanism, checked against the Hessian, then projected.
  std::vector<std::pair<std::string, Mat>> cands;
  if (net.num_layers() >= 2) {
    cands.emplace_back("orthogonal", orthogonal_symmetry_vectors(net, V));
    cands.emplace_back("relu_group", relu_group_vectors(net, V));
    cands.emplace_back("vanished", vanished_unit_vectors(sp, V));
  }
  r.explained_total = explain_null_space(sp, V, N, cands, nullptr, lmax, o, r.mechanisms, r.hvps);
  r.unexplained = r.null_dim - r.explained_total;

  // ReLU kinks.
  r.kinks.clear();
  r.kink_preactivations.clear();
  const std::vector<Index> kinks = kink_indices(flow, V, o.kink_rel);
  {
    const Vec h = flow.preactivations(V);
    for (Index j : kinks) {
      const auto kk = flow.kink_of(j);
      r.kinks.push_back({kk.layer, kk.unit, kk.point});
      r.kink_preactivations.push_back(h[j]);
    }
  }
  r.kink_eigenvalues.resize(0);
  r.kink_residuals.resize(0);
  r.kink_mechanisms.clear();
  if (kinks.empty()) {
    r.kink_spectrum_status = "no kinks";
  } else if (r.spectrum_method != "dense") {
    r.kink_spectrum_status = fmt::format("not computed: tangent dim {} > dense_max {}", m, o.dense_max);
  } else {
    // Spectrum of the Hessian on the tangent space of the spheres and of every active kink surface.
    // There the loss is that of the net with the kinked (unit, point) outputs held at zero, a smooth
    // function whose Hessian is the plain one (ReLU'(0) = 0); for first-layer kinks h is linear in
    // V_1 and the surfaces are flat in the sphere tangent space, so projecting is exact. Deeper
    // kink surfaces are curved: their curvature times the multiplier of the projected-out gradient
    // is not included (reported through kink_grad, which is small at a sliding equilibrium only
    // when that multiplier is).
    const Mat W = kink_surface_basis(sp, V, kinks, &r.kink_constraint_rank);
    r.kink_surface_dim = W.cols();
    r.kink_grad = (W.transpose() * sp.gradient(V)).norm();
    bool deep = false;
    for (const auto& k : r.kinks) deep = deep || k[0] > 1;
    r.kink_spectrum_status = deep ? "computed (kinks beyond layer 1: surface curvature term omitted)" : "computed";
    if (W.cols() > 0) {
      Mat HW;
      const Mat Hk = projected_hessian(sp, V, W, &HW);
      r.hvps += W.cols();
      Eigen::SelfAdjointEigenSolver<Mat> es(Hk);
      r.kink_eigenvalues = es.eigenvalues();
      const Mat Xk = W * es.eigenvectors();
      const Mat R = W * (W.transpose() * (HW * es.eigenvectors())) - Xk * r.kink_eigenvalues.asDiagonal();
      r.kink_residuals = R.colwise().norm().transpose();
      const double thr = o.zero_rel * std::max(r.kink_eigenvalues.cwiseAbs().maxCoeff(), 1e-300);
      r.kink_n_negative = r.kink_n_zero = r.kink_n_positive = 0;
      std::vector<Index> kz;
      for (Index i = 0; i < r.kink_eigenvalues.size(); ++i) {
        const double l = r.kink_eigenvalues[i];
        if (std::abs(l) <= thr) {
          ++r.kink_n_zero;
          kz.push_back(i);
        } else if (l < 0) {
          ++r.kink_n_negative;
        } else {
          ++r.kink_n_positive;
        }
      }
      Mat Nk(P, Index(kz.size()));
      for (std::size_t j = 0; j < kz.size(); ++j) Nk.col(Index(j)) = Xk.col(kz[j]);
      r.kink_null_dim = Nk.cols();
      r.kink_explained = explain_null_space(sp, V, Nk, cands, &W, r.kink_eigenvalues.cwiseAbs().maxCoeff(), o,
                                            r.kink_mechanisms, r.hvps);
      r.kink_unexplained = r.kink_null_dim - r.kink_explained;
    }
    r.kink_verdict = verdict_text(r.kink_n_negative, r.kink_n_zero, r.kink_mechanisms, r.kink_unexplained, false);
  }

  // Verdict.
  const bool partial = r.spectrum_method == "spectra";
  r.verdict = verdict_text(r.n_negative, r.n_zero, r.mechanisms, r.unexplained, partial);
  // A point held on kink surfaces (the flow slid there) is a stationary point of the nonsmooth
  // problem restricted to them: the plain spectrum (ReLU'(0) = 0) does not describe it.
  const bool on_kinks = !r.newton_kinks.empty() && r.kink_spectrum_status == "computed";
  if (on_kinks) r.verdict = "on kink surfaces: " + r.kink_verdict;
  const double rel_grad = r.grad_norms.empty() ? 0.0 : r.grad_norms.back() / sp.loss_scale(V);
  if (!r.newton_converged)
    r.verdict = fmt::format("undetermined: not a stationary point (relative |grad| = {:.2e}); at this point: {}",
                            rel_grad, r.verdict);
  std::vector<std::string> notes;
  if (r.newton_converged && r.verdict != "hyperbolic" && r.verdict != "on kink surfaces: hyperbolic")
    notes.push_back(fmt::format(
        "CONTRADICTS the paper's claim (Lemma 1, Theorem 3.1) that the fixed-rho flow converges to hyperbolic minima "
        "at every finite rho: at rho = {:.6g} the stationary point found is {}",
        r.rho, r.verdict));
  if (partial)
    notes.push_back(fmt::format("spectrum from Spectra: only the {} smallest and {} largest eigenvalues; inertia counts "
                                "those only",
                                o.nev, o.nev));
  if (!r.kinks.empty())
    notes.push_back(fmt::format("{} (unit, point) pairs sit on ReLU kinks (|h| <= {:.1e} max|h|): the plain spectrum "
                                "uses ReLU'(0) = 0; on the tangent space of the kink surfaces (dim {}): {} [{}]",
                                r.kinks.size(), o.kink_rel, r.kink_surface_dim, r.kink_verdict,
                                r.kink_spectrum_status));
  if (!r.newton_kinks.empty())
    notes.push_back(fmt::format("Newton held {} (unit, point) pairs on their kink surfaces (the flow phase ended there)",
                                r.newton_kinks.size()));
  if (!r.newton_converged)
    notes.push_back("Newton did not reach round-off: the point is approximate, spectrum accordingly");
  r.notes.clear();
  for (std::size_t i = 0; i < notes.size(); ++i) r.notes += (i ? "; " : "") + notes[i];
}

StationaryResult find_stationary(Flow& flow, const Vec& V0, const StationaryOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  StationaryResult r = locate_stationary(flow, V0, o);
  analyse_stationary(SphereProblem(flow), r, o);
  r.total_seconds = seconds_since(t0);
  return r;
}

StationaryResult locate_stationary(Flow& flow, const Vec& V0, const StationaryOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const SphereProblem sp(flow);
  StationaryResult r;
  r.rho = flow.fixed_rho();
  Vec V = sp.normalize(V0);
  r.flow_grad = sp.gradient(V).norm();
  if (!o.skip_flow && r.flow_grad > o.flow_tol * sp.loss_scale(V)) {
    SolverOptions so;
    so.method = flow.state_size() <= 400 ? Method::rosenbrock4 : Method::dopri5;
    so.clock = ClockKind::log;
    so.rtol = 1e-9;
    so.atol = 1e-12;
    so.max_steps = o.flow_max_steps;
    auto monitor = [&](double t, const Vec& y, const SolverCounters& c) -> std::optional<Status> {
      const FlowDiagnostics d = flow.diagnostics(y);
      r.flow_t = t;
      r.flow_steps = c.accepted;
      r.flow_grad = d.grad_norm;
      const bool reached =
          d.grad_norm <= o.flow_tol * std::max(r.rho * std::exp(d.log_loss), std::numeric_limits<double>::min());
      return reached ? std::optional(Status::converged) : std::nullopt;
    };
    // The path of flow (d) in a normalized time: dV/dtau = rhs(V) / (rho L(V)). Same trajectory,
    // but O(1) speed whatever the loss scale (a start with L ~ e^30 is otherwise too stiff to leave).
    // ReLU: kink events (the activation pattern is a discrete state, crossings located exactly).
    // For this flow kind sliding may be unsupported: the run then stops stalled on the kink, and the
    // flow phase ends there.
    const bool relu_events = flow.num_preactivations() > 0;
    const OdeProblem base =
        relu_events ? to_event_problem(flow, V, [&](double, Index, Index, Index, KinkEvent) { ++r.flow_kink_events; })
                    : to_ode_problem(flow);
    OdeProblem scaled = base;
    scaled.rhs = [&](TimePoint tp, const Vec& y, Vec& dy) {
      base.rhs(tp, y, dy);
      dy /= sp.loss_scale(y);
    };
    scaled.jacobian = [&](TimePoint tp, const Vec& y, Mat& J) {
      base.jacobian(tp, y, J);
      Vec dy;
      base.rhs(tp, y, dy);
      const double ls_scale = sp.loss_scale(y);
      const Vec dlogL = sp.euclidean_gradient(y) / std::exp(sp.log_loss(y));
      J = (J - dy * dlogL.transpose()) / ls_scale;
    };
    scaled.jvp = {};
    const SolveResult res = integrate(scaled, V, {0.0, o.flow_t_end}, so,
                                    [](std::int64_t, double, const Vec&) {}, monitor);
    // Filippov sliding: the flow came to rest on kink surfaces; Newton must stay on them.
    const std::size_t sliding_count = relu_events ? flow.sliding().size() : 0;
    const bool ended_sliding = sliding_count > 0;
    if (relu_events) flow.clear_pattern();
    const bool reached = res.status == Status::converged;
    r.flow_status = status_name(res.status);
    r.flow_message = reached ? (ended_sliding ? fmt::format("sliding on {} kink surfaces", sliding_count) : "")
                             : res.message;
    V = sp.normalize(res.y_final);
    if (res.status == Status::stalled_at_kink || ended_sliding) {
      r.flow_at_kink = true;
      r.newton_kinks = kink_indices(flow, V, o.kink_surface_rel);
    }
  } else {
    r.flow_status = o.skip_flow ? "skipped" : "converged";
  }
  r.V = V;
  newton_polish(sp, r, o);
  const FlowDiagnostics d = flow.diagnostics(r.V);
  r.log_loss = d.log_loss;
  r.margin = d.margin;
  r.loss_scale = sp.loss_scale(r.V);
  r.total_seconds = seconds_since(t0);
  return r;
}

// ---- CLI level ---------------------------------------------------------------------------------

namespace {

std::vector<double> parse_sweep(const std::string& s) {
  double a = 0, b = 0;
  long n = 0;
  char c1 = 0, c2 = 0;
  std::istringstream in(s);
  if (!(in >> a >> c1 >> b >> c2 >> n) || c1 != ':' || c2 != ':' || !(a > 0) || !(b > 0) || n < 1 || !in.eof())
    throw SpecError(fmt::format("--rho-sweep \"{}\": expected a:b:n with a, b > 0 and n >= 1 (log-spaced)", s));
  std::vector<double> rhos;
  for (long i = 0; i < n; ++i)
    rhos.push_back(n == 1 ? a : std::exp(std::log(a) + (std::log(b) - std::log(a)) * double(i) / double(n - 1)));
  return rhos;
}

SweepPoint sweep_point(const StationaryResult& r) {
  // On kink surfaces (the flow slid there and Newton was held on them) the kink-surface spectrum
  // describes the point; the plain one (ReLU'(0) = 0) does not.
  const bool on_kinks = !r.newton_kinks.empty() && r.kink_spectrum_status == "computed";
  const Vec& eig = on_kinks ? r.kink_eigenvalues : r.eigenvalues;
  SweepPoint p;
  p.rho = r.rho;
  p.lambda_min = eig.size() ? eig.minCoeff() : 0;
  p.lambda_max = eig.size() ? eig.maxCoeff() : 0;
  p.lambda_min_nonzero = std::numeric_limits<double>::quiet_NaN();
  for (Index i = 0; i < eig.size(); ++i)
    if (eig[i] > r.zero_threshold) {
      p.lambda_min_nonzero = eig[i];
      break;
    }
  p.margin = r.margin;
  p.grad = r.grad_norms.empty() ? 0 : r.grad_norms.back();
  p.n_zero = on_kinks ? r.kink_n_zero : r.n_zero;
  p.n_negative = on_kinks ? r.kink_n_negative : r.n_negative;
  p.verdict = r.verdict;
  p.eigenvalues = eig;
  p.direction = r.V;
  return p;
}

// Least-squares fit of log lambda = a + p log rho - q rho; reports p, q and the rms residual.
std::string fit_decay(const std::vector<SweepPoint>& sweep) {
  std::vector<std::pair<double, double>> pts;
  for (const auto& s : sweep)
    if (std::isfinite(s.lambda_min_nonzero) && s.lambda_min_nonzero > 0) pts.push_back({s.rho, s.lambda_min_nonzero});
  if (pts.size() < 3) return "fewer than 3 points with a positive smallest nonzero eigenvalue: no fit";
  const bool three = pts.size() >= 4;
  Mat A(Index(pts.size()), three ? 3 : 2);
  Vec y(Index(pts.size()));
  for (std::size_t i = 0; i < pts.size(); ++i) {
    A(Index(i), 0) = 1;
    A(Index(i), 1) = std::log(pts[i].first);
    if (three) A(Index(i), 2) = -pts[i].first;
    y[Index(i)] = std::log(pts[i].second);
  }
  const Vec c = A.colPivHouseholderQr().solve(y);
  const double rms = std::sqrt((A * c - y).squaredNorm() / double(pts.size()));
  // Pure power law for comparison.
  const Vec c2 = A.leftCols(2).colPivHouseholderQr().solve(y);
  const double rms2 = std::sqrt((A.leftCols(2) * c2 - y).squaredNorm() / double(pts.size()));
  std::string s = fmt::format("power law lambda_min ~ {:.4g} rho^{:.4f} (rms log residual {:.2e})", std::exp(c2[0]),
                              c2[1], rms2);
  if (three)
    s += fmt::format("; lambda_min ~ {:.4g} rho^{:.4f} exp(-{:.5g} rho) (rms log residual {:.2e})", std::exp(c[0]), c[1],
                     c[2], rms);
  return s;
}

void write_stationary_file(const std::string& path, const ModelSpec& spec, const StationaryReport& rep,
                           const StationaryOptions& o) {
  auto file = h5::File::create(path, h5::FileFormat::earliest);
  write_provenance(file, {.file_type = "gfsim-stationary",
                          .model_toml = spec.resolved_toml,
                          .model_name = spec.name,
                          .seeds = {{"data_seed", std::int64_t(spec.data.seed)},
                                    {"network_seed", std::int64_t(spec.network.seed)}},
                          .string_attrs = {{"loss", rep.loss},
                                           {"network", rep.network},
                                           {"theta_layout", "W_1..W_K, each row-major (d_k x d_{k-1}), concatenated"}},
                          .double_attrs = {},
                          .int_attrs = {{"K", rep.K}, {"P", rep.P}, {"n", rep.n}},
                          .int_array_attrs = {}});
  const StationaryResult& r = rep.result;
  auto g = file.create_group("stationary");
  g.set_double_attr("rho", r.rho);
  g.set_string_attr("verdict", r.verdict);
  g.set_string_attr("notes", r.notes);
  g.set_string_attr("flow_status", r.flow_status);
  g.set_string_attr("flow_message", r.flow_message);
  g.set_int64_attr("flow_at_kink", r.flow_at_kink ? 1 : 0);
  g.set_int64_attr("flow_kink_events", r.flow_kink_events);
  g.set_double_attr("flow_t", r.flow_t);
  g.set_int64_attr("flow_steps", r.flow_steps);
  g.set_int64_attr("newton_converged", r.newton_converged ? 1 : 0);
  g.set_int64_attr("newton_steps", std::int64_t(r.step_norms.size()));
  g.set_double_attr("loss_scale", r.loss_scale);
  g.set_double_attr("log_loss", r.log_loss);
  g.set_double_attr("margin", r.margin);
  g.set_string_attr("spectrum_method", r.spectrum_method);
  g.set_string_attr("spectra_info_smallest", r.info_smallest);
  g.set_string_attr("spectra_info_largest", r.info_largest);
  g.set_int64_attr("hessian_vector_products", r.hvps);
  g.set_double_attr("spectrum_seconds", r.spectrum_seconds);
  g.set_double_attr("zero_rel", o.zero_rel);
  g.set_double_attr("zero_threshold", r.zero_threshold);
  g.set_string_attr("zero_rule", "|lambda| <= zero_rel * max|lambda| counts as zero");
  g.set_int64_array_attr("inertia", std::vector<std::int64_t>{r.n_negative, r.n_zero, r.n_positive});
  g.set_string_attr("inertia_order", "negative, zero, positive");
  auto span = [](const Vec& v) { return std::span<const double>(v.data(), std::size_t(v.size())); };
  g.write_dataset("direction", span(r.V));
  g.write_dataset("grad_norms", r.grad_norms);
  g.write_dataset("step_norms", r.step_norms);
  g.write_dataset("eigenvalues", span(r.eigenvalues));
  g.write_dataset("residuals", span(r.residuals));
  {
    auto ev = g.write_dataset("eigenvectors", std::span<const double>(r.eigenvectors.data(),
                                                                        std::size_t(r.eigenvectors.size())));
    ev.set_int64_array_attr("shape", std::vector<std::int64_t>{r.eigenvectors.cols(), r.eigenvectors.rows()});
    ev.set_string_attr("description", "unit eigenvectors (rows, theta layout) of the lowest eigenvalues, "
                                      "the whole null space included");
  }
  auto z = g.create_group("zero_modes");
  z.set_int64_attr("null_dim", r.null_dim);
  z.set_int64_attr("explained_total", r.explained_total);
  z.set_int64_attr("unexplained", r.unexplained);
  std::vector<std::string> names;
  std::vector<std::int64_t> cand, ver, spn, expl;
  std::vector<double> res;
  for (const auto& m : r.mechanisms) {
    names.push_back(m.name);
    cand.push_back(m.candidates);
    ver.push_back(m.verified);
    spn.push_back(m.span_dim);
    expl.push_back(m.explained);
    res.push_back(m.max_residual);
  }
  z.set_string_array_attr("mechanisms", names);
  z.set_int64_array_attr("candidates", cand);
  z.set_int64_array_attr("verified", ver);
  z.set_int64_array_attr("span_dim", spn);
  z.set_int64_array_attr("explained", expl);
  z.set_double_array_attr("max_residual", res);
  auto kg = g.create_group("kinks");
  kg.set_int64_attr("count", std::int64_t(r.kinks.size()));
  kg.set_double_attr("kink_rel", o.kink_rel);
  kg.set_string_attr("kink_rule", "|h| <= kink_rel * max|h| sits on a kink (h: hidden pre-activations at theta = rho^(1/K) V)");
  kg.set_string_attr("surface_spectrum_status", r.kink_spectrum_status);
  kg.set_string_attr("surface_verdict", r.kink_verdict);
  kg.set_int64_attr("surface_dim", r.kink_surface_dim);
  kg.set_int64_attr("constraint_rank", r.kink_constraint_rank);
  kg.set_double_attr("surface_grad_norm", r.kink_grad);
  kg.set_int64_array_attr("surface_inertia",
                          std::vector<std::int64_t>{r.kink_n_negative, r.kink_n_zero, r.kink_n_positive});
  kg.set_int64_attr("surface_null_dim", r.kink_null_dim);
  kg.set_int64_attr("surface_explained", r.kink_explained);
  kg.set_int64_attr("surface_unexplained", r.kink_unexplained);
  kg.set_int64_attr("newton_constraints", std::int64_t(r.newton_kinks.size()));
  kg.write_dataset("surface_eigenvalues", span(r.kink_eigenvalues));
  kg.write_dataset("surface_residuals", span(r.kink_residuals));
  std::vector<double> kl, ku, kp;
  for (const auto& k : r.kinks) {
    kl.push_back(double(k[0]));
    ku.push_back(double(k[1]));
    kp.push_back(double(k[2]));
  }
  kg.write_dataset("layer", kl);
  kg.write_dataset("unit", ku);
  kg.write_dataset("point", kp);
  kg.write_dataset("preactivation", r.kink_preactivations);
  if (!rep.sweep.empty()) {
    auto s = g.create_group("sweep");
    std::vector<double> rho, lmin, lmax, lnz, marg, grad, nz, nn;
    for (const auto& p : rep.sweep) {
      rho.push_back(p.rho);
      lmin.push_back(p.lambda_min);
      lmax.push_back(p.lambda_max);
      lnz.push_back(p.lambda_min_nonzero);
      marg.push_back(p.margin);
      grad.push_back(p.grad);
      nz.push_back(double(p.n_zero));
      nn.push_back(double(p.n_negative));
    }
    s.write_dataset("rho", rho);
    s.write_dataset("lambda_min", lmin);
    s.write_dataset("lambda_max", lmax);
    s.write_dataset("lambda_min_nonzero", lnz);
    s.write_dataset("margin", marg);
    s.write_dataset("grad_norm", grad);
    s.write_dataset("n_zero", nz);
    s.write_dataset("n_negative", nn);
    std::vector<double> gd_t, gd_d;
    for (const auto& p : rep.sweep) {
      gd_t.push_back(p.gd_time);
      gd_d.push_back(p.gd_distance);
    }
    s.write_dataset("gd_time", gd_t);
    s.write_dataset("gd_distance", gd_d);
    s.set_string_attr("fit", rep.sweep_fit);
    {
      std::vector<double> rows;
      for (const auto& p : rep.sweep) rows.insert(rows.end(), p.direction.data(), p.direction.data() + p.direction.size());
      auto dir = s.create_extendible_dataset("direction", h5::ElementType::float64, rep.P, 64);
      dir.append_rows(std::span<const double>(rows));
      dir.set_string_attr("description", "stationary direction V (theta layout, unit layers) per sweep rho");
    }
    // [n_rho, width]: every rho's spectrum (same width for all: same method at every rho).
    Index width = rep.sweep.front().eigenvalues.size();
    for (const auto& p : rep.sweep) width = std::min(width, p.eigenvalues.size());
    if (width > 0) {
      std::vector<double> rows;
      for (const auto& p : rep.sweep) rows.insert(rows.end(), p.eigenvalues.data(), p.eigenvalues.data() + width);
      auto ev = s.create_extendible_dataset("eigenvalues", h5::ElementType::float64, width, 64);
      ev.append_rows(std::span<const double>(rows));
      ev.set_string_attr("description", "tangent-space Hessian eigenvalues (ascending) per rho, one row per sweep rho");
    }
  }
  file.close();
}

}  // namespace

namespace {
// Lemma 3: the gradient flow's direction at the time its rho(t) = prod_k ||W_k|| passes a sweep rho
// and the fixed-rho stationary direction at that rho have the same limit. One gd run (kink events for
// ReLU) from the model's initial weights, sampled 20 times per decade of t, stopped once rho(t)
// exceeds the largest sweep rho; V_gd at rho is interpolated linearly in rho between the two
// bracketing samples (each layer renormalised).
void compare_with_gradient_descent(const ModelSpec& spec, const Network& net, const Dataset& data,
                                   const Vec& theta0, std::vector<SweepPoint>& sweep) {
  double rho_max = 0;
  for (auto& p : sweep) {
    rho_max = std::max(rho_max, p.rho);
    p.gd_time = p.gd_distance = std::numeric_limits<double>::quiet_NaN();
  }
  Flow gd(net, data, spec.loss.kind, FlowKind::gd);
  const bool relu = gd.num_preactivations() > 0;
  const OdeProblem problem = relu ? to_event_problem(gd, theta0) : to_ode_problem(gd);
  SolverOptions so;
  so.method = relu ? Method::dopri5 : Method::rosenbrock4;
  so.clock = ClockKind::log;
  so.rtol = 1e-9;
  so.atol = 1e-12;
  so.max_steps = 2000000;
  so.max_wall_seconds = 300;
  std::vector<double> ts, rhos;
  std::vector<Vec> dirs;
  integrate(problem, theta0, log_spaced_times(1e-2, 1e300, 20), so,
            [&](std::int64_t, double t, const Vec& y) {
              ts.push_back(t);
              rhos.push_back(net.layer_norms(y).prod());
              dirs.push_back(gd.direction(y));
            },
            [&](double, const Vec& y, const SolverCounters&) -> std::optional<Status> {
              if (net.layer_norms(y).prod() <= 1.05 * rho_max) return std::nullopt;
              return Status::converged;  // past the sweep's largest rho: the comparison has its path
            });
  for (auto& p : sweep)
    for (std::size_t i = 0; i + 1 < rhos.size(); ++i) {
      if (!(rhos[i] <= p.rho && p.rho < rhos[i + 1])) continue;
      const double w = (p.rho - rhos[i]) / (rhos[i + 1] - rhos[i]);
      Vec V = (1 - w) * dirs[i] + w * dirs[i + 1];
      for (Index k = 0; k < net.num_layers(); ++k) V.segment(net.layer_offset(k), net.layer_size(k)).normalize();
      p.gd_time = std::exp((1 - w) * std::log(std::max(ts[i], 1e-300)) + w * std::log(ts[i + 1]));
      p.gd_distance = (V - p.direction).norm();
      break;
    }
}
}  // namespace

StationaryReport stationary_model(const ModelSpec& spec, const StationaryCliOptions& options) {
  const Dataset data = make_dataset(spec);
  Network net = exact_network(spec, data.dim());
  const Vec theta0 = initial_weights(spec, net);
  StationaryReport rep;
  rep.network = net.describe();
  rep.loss = to_string(spec.loss.kind);
  rep.P = net.num_params();
  rep.K = net.num_layers();
  rep.n = data.n();
  if (options.output.empty()) {
    std::filesystem::path p(spec.output.path);
    rep.output_path = (p.parent_path() / (p.stem().string() + "_stationary.h5")).string();
  } else {
    rep.output_path = options.output;
  }
  std::vector<double> rhos;
  if (!options.rho_sweep.empty()) rhos = parse_sweep(options.rho_sweep);
  else rhos = {options.rho > 0 ? options.rho : spec.flow.rho};
  Vec V;
  for (double rho : rhos) {
    if (!(rho > 0)) throw SpecError(fmt::format("--rho = {}: must be > 0", rho));
    Flow flow = make_flow(spec, net, data, FlowKind::fixed_rho, rho, options.rho > 0 || rhos.size() > 1 ? "--rho" : "flow.rho");
    if (V.size() == 0) V = initial_state(spec, flow, theta0);
    rep.result = find_stationary(flow, V, options.numerics);
    V = rep.result.V;
    if (rhos.size() > 1) rep.sweep.push_back(sweep_point(rep.result));
  }
  if (!rep.sweep.empty()) {
    rep.sweep_fit = fit_decay(rep.sweep);
    compare_with_gradient_descent(spec, net, data, theta0, rep.sweep);
  }
  write_stationary_file(rep.output_path, spec, rep, options.numerics);
  return rep;
}

void print_stationary_summary(std::ostream& out, const StationaryReport& rep) {
  const StationaryResult& r = rep.result;
  auto line = [&](const std::string& k, const std::string& v) { fmt::print(out, "  {:<24} {}\n", k, v); };
  fmt::print(out, "\n");
  line("model", fmt::format("{} (P = {}, K = {}), {} loss, n = {}", rep.network, rep.P, rep.K, rep.loss, rep.n));
  line("rho", fmt::format("{:.6g}", r.rho));
  line("flow phase", fmt::format("{} (t = {:.3g}, {} steps, {} kink events, |grad| = {:.3e})", r.flow_status,
                                 r.flow_t, r.flow_steps, r.flow_kink_events, r.flow_grad));
  if (r.flow_at_kink) line("flow phase ended at kink", r.flow_message);
  std::string gn;
  for (std::size_t i = 0; i < r.grad_norms.size(); ++i) gn += fmt::format("{}{:.2e}", i ? " " : "", r.grad_norms[i]);
  line("Newton |grad| per step", gn);
  line("Newton", fmt::format("{} steps, {} (loss scale rho*L = {:.3e}, relative |grad| = {:.2e})",
                             r.step_norms.size(), r.newton_converged ? "converged" : "NOT converged", r.loss_scale,
                             r.grad_norms.empty() ? 0.0 : r.grad_norms.back() / r.loss_scale));
  line("log loss / margin", fmt::format("{:.10g} / {:.10g}", r.log_loss, r.margin));
  line("spectrum", fmt::format("{} on the tangent space (dim {}), {} eigenvalues, {} HVPs, {:.3f} s", r.spectrum_method,
                               rep.P - rep.K, r.eigenvalues.size(), r.hvps, r.spectrum_seconds));
  if (r.spectrum_method == "spectra")
    line("Spectra CompInfo", fmt::format("smallest {}, largest {}", r.info_smallest, r.info_largest));
  const Index show = std::min<Index>(r.eigenvalues.size(), 6);
  std::string lo, hi;
  for (Index i = 0; i < show; ++i) lo += fmt::format("{}{:.6e}", i ? " " : "", r.eigenvalues[i]);
  for (Index i = r.eigenvalues.size() - show; i < r.eigenvalues.size(); ++i)
    hi += fmt::format("{}{:.6e}", i > r.eigenvalues.size() - show ? " " : "", r.eigenvalues[i]);
  line("smallest eigenvalues", lo);
  line("largest eigenvalues", hi);
  line("max residual", fmt::format("{:.2e}", r.residuals.size() ? r.residuals.maxCoeff() : 0.0));
  line("inertia (-, 0, +)", fmt::format("{}, {}, {} (zero: |lambda| <= {:.3e})", r.n_negative, r.n_zero, r.n_positive,
                                        r.zero_threshold));
  for (const auto& m : r.mechanisms)
    line("zero modes: " + m.name, fmt::format("{} candidates, {} verified (max |Hv| {:.1e}), span {}, explains {}",
                                              m.candidates, m.verified, m.max_residual, m.span_dim, m.explained));
  line("zero modes", fmt::format("{} in the null space: {} explained, {} unexplained", r.null_dim, r.explained_total,
                                 r.unexplained));
  std::string kinks = fmt::format("{} (unit, point) pairs", r.kinks.size());
  for (std::size_t i = 0; i < std::min<std::size_t>(r.kinks.size(), 5); ++i)
    kinks += fmt::format("{} (layer {}, unit {}, point {})", i ? "," : ":", r.kinks[i][0], r.kinks[i][1], r.kinks[i][2]);
  line("ReLU kinks", kinks);
  if (!r.kinks.empty()) {
    line("kink-surface spectrum", fmt::format("{}: dim {} (constraint rank {}), |projected grad| = {:.2e}",
                                              r.kink_spectrum_status, r.kink_surface_dim, r.kink_constraint_rank,
                                              r.kink_grad));
    if (r.kink_eigenvalues.size())
      line("kink-surface inertia", fmt::format("{}, {}, {} (lambda in [{:.6e}, {:.6e}])", r.kink_n_negative,
                                               r.kink_n_zero, r.kink_n_positive, r.kink_eigenvalues.minCoeff(),
                                               r.kink_eigenvalues.maxCoeff()));
    line("kink-surface verdict", r.kink_verdict);
  }
  line("verdict", r.verdict);
  if (!r.notes.empty()) line("notes", r.notes);
  if (!rep.sweep.empty()) {
    fmt::print(out, "\n  {:>12} {:>14} {:>14} {:>14} {:>12} {:>7} {:>5} {:>11} {:>11}\n", "rho", "lambda_min",
               "lambda_min_nz", "lambda_max", "margin", "zero", "neg", "gd t", "|V_gd - V|");
    for (const auto& p : rep.sweep)
      fmt::print(out, "  {:>12.5g} {:>14.6e} {:>14.6e} {:>14.6e} {:>12.8f} {:>7} {:>5} {:>11.3e} {:>11.3e}\n", p.rho,
                 p.lambda_min, p.lambda_min_nonzero, p.lambda_max, p.margin, p.n_zero, p.n_negative, p.gd_time,
                 p.gd_distance);
    line("decay fit", rep.sweep_fit);
  }
  line("output", rep.output_path);
}

}  // namespace gfsim
