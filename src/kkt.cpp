#include "gfsim/kkt.hpp"

#include <Eigen/QR>
#include <cmath>
#include <limits>

namespace gfsim {

NnlsResult nnls(const Mat& A, const Vec& b, double tol) {
  const Index m = A.rows(), n = A.cols();
  if (tol <= 0) tol = 10 * std::numeric_limits<double>::epsilon() * A.cwiseAbs().colwise().sum().maxCoeff() *
                      double(std::max<Index>(std::max<Index>(m, n), 1));
  NnlsResult r;
  r.x = Vec::Zero(n);
  std::vector<bool> passive(std::size_t(n), false);
  const int max_outer = 3 * int(n) + 30;
  auto dual = [&] { return Vec(A.transpose() * (b - A * r.x)); };
  Vec w = dual();
  // Least squares on the passive set: s_P = argmin ||A_P s - b||, zero elsewhere.
  auto solve_passive = [&] {
    std::vector<Index> idx;
    for (Index j = 0; j < n; ++j)
      if (passive[std::size_t(j)]) idx.push_back(j);
    Mat AP(m, Index(idx.size()));
    for (std::size_t i = 0; i < idx.size(); ++i) AP.col(Index(i)) = A.col(idx[i]);
    const Vec sP = AP.colPivHouseholderQr().solve(b);
    Vec s = Vec::Zero(n);
    for (std::size_t i = 0; i < idx.size(); ++i) s[idx[i]] = sP[Index(i)];
    return s;
  };
  r.converged = true;
  std::vector<bool> refused(std::size_t(n), false);  // columns whose LS coefficient came out <= 0 when added
  while (true) {
    Index jmax = -1;
    double wmax = tol;
    for (Index j = 0; j < n; ++j)
      if (!passive[std::size_t(j)] && !refused[std::size_t(j)] && w[j] > wmax) wmax = w[j], jmax = j;
    if (jmax < 0) break;
    if (++r.iterations > max_outer) {
      r.converged = false;
      break;
    }
    passive[std::size_t(jmax)] = true;
    Vec s = solve_passive();
    if (s[jmax] <= 0) {
      // w_j > 0 promises a positive coefficient; a non-positive one is round-off in a (nearly) dependent
      // column. Refuse it for this outer step instead of cycling on it.
      passive[std::size_t(jmax)] = false;
      refused[std::size_t(jmax)] = true;
      continue;
    }
    // Inner loop: move from x towards s until a passive coefficient hits zero, drop it, re-solve.
    while (true) {
      double alpha = 1.0;
      Index blocking = -1;
      for (Index j = 0; j < n; ++j)
        if (passive[std::size_t(j)] && s[j] <= 0) {
          const double a = r.x[j] / (r.x[j] - s[j]);
          if (a < alpha) alpha = a, blocking = j;
        }
      if (blocking < 0) {
        r.x = s;
        break;
      }
      r.x += alpha * (s - r.x);
      r.x[blocking] = 0;
      for (Index j = 0; j < n; ++j)
        if (passive[std::size_t(j)] && r.x[j] <= 0) passive[std::size_t(j)] = false, r.x[j] = 0;
      s = solve_passive();
    }
    std::fill(refused.begin(), refused.end(), false);
    w = dual();
  }
  r.dual = dual();
  r.residual = (A * r.x - b).norm();
  return r;
}

Vec point_margins(const Network& net, const Dataset& data, const Vec& theta) {
  Network::Workspace ws;
  const Mat XT = data.X.transpose();
  net.forward(theta, XT, ws);
  return data.y.cwiseProduct(ws.f);
}

Mat margin_gradients(const Network& net, const Dataset& data, const Vec& theta, const std::vector<Index>& index) {
  const Index m = Index(index.size());
  Mat XT(data.dim(), m);
  for (Index i = 0; i < m; ++i) XT.col(i) = data.X.row(index[std::size_t(i)]).transpose();
  Network::Workspace ws;
  net.forward(theta, XT, ws);
  Mat G(m, net.num_params());
  Vec a = Vec::Zero(m), g(net.num_params());
  for (Index i = 0; i < m; ++i) {
    a.setZero();
    a[i] = data.y[index[std::size_t(i)]];
    net.backward(theta, a, XT, ws, g);
    G.row(i) = g.transpose();
  }
  return G;
}

Vec end_to_end(const Network& net, const Vec& theta) {
  Network::Workspace ws;
  const Mat I = Mat::Identity(net.widths().front(), net.widths().front());
  net.forward(theta, I, ws);
  return ws.f;
}

KktResidual kkt_residual(const Network& net, const Dataset& data, const Vec& theta, double active_gap) {
  KktResidual r;
  const Vec q = point_margins(net, data, theta);
  r.q_min = q.minCoeff();
  if (!(r.q_min > 0) || !std::isfinite(r.q_min)) return r;
  r.defined = true;
  const double K = double(net.num_layers());
  r.theta_tilde = theta / std::pow(r.q_min, 1.0 / K);
  const Vec qt = q / r.q_min;  // margins at theta~ (degree-K homogeneity): min 1
  for (Index n = 0; n < qt.size(); ++n)
    if (qt[n] <= 1 + active_gap) r.active.push_back(n);
  const Mat G = margin_gradients(net, data, r.theta_tilde, r.active);
  const NnlsResult fit = nnls(G.transpose(), r.theta_tilde);
  r.lambda = fit.x;
  r.stationarity = fit.residual / r.theta_tilde.norm();
  double slack = 0, total = 0;
  for (std::size_t i = 0; i < r.active.size(); ++i) {
    slack += r.lambda[Index(i)] * (qt[r.active[i]] - 1);
    total += r.lambda[Index(i)] * qt[r.active[i]];
  }
  r.complementarity = total > 0 ? slack / total : 0.0;
  return r;
}

}  // namespace gfsim
