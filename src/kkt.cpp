#include "gfsim/kkt.hpp"

#include <Eigen/QR>
#include <cmath>
#include <limits>

namespace gfsim {

NnlsResult nnls(const Mat& A, const Vec& b, double tol) {
  const Index m = A.rows(), n = A.cols();
  if (n == 0) {
    NnlsResult r;
    r.residual = b.norm();
    r.converged = true;
    return r;
  }
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

KktResidual kkt_residual(const Network& net, const Dataset& data, const Vec& theta, double active_gap,
                         double kink_rel) {
  KktResidual r;
  const Vec q = point_margins(net, data, theta);
  r.q_min = q.minCoeff();
  if (!(r.q_min > 0) || !std::isfinite(r.q_min)) return r;
  r.defined = true;
  const Index K = net.num_layers();
  r.theta_tilde = theta / std::pow(r.q_min, 1.0 / double(K));
  const Vec qt = q / r.q_min;  // margins at theta~ (degree-K homogeneity): min 1
  for (Index n = 0; n < qt.size(); ++n)
    if (qt[n] <= 1 + active_gap) r.active.push_back(n);

  // Columns of the NNLS: the margin gradient of each near-active point, or for a ReLU point on kinks the
  // vertices of its Clarke subdifferential (masks in {0, 1} on the kink entries; the gradient is affine in
  // each mask, so these vertices span the hull).
  const bool relu = net.activation() == Activation::relu && K > 1;
  std::vector<double> layer_scale(std::size_t(std::max<Index>(K - 1, 0)), 0.0);
  Network::Workspace ws;
  if (relu) {
    net.forward(r.theta_tilde, data.X.transpose(), ws);
    for (Index k = 0; k + 1 < K; ++k) layer_scale[std::size_t(k)] = ws.pre[std::size_t(k)].cwiseAbs().maxCoeff();
  }
  std::vector<Vec> columns;
  std::vector<std::size_t> owner;  // active-set position of each column
  Vec a(1), g(net.num_params());
  for (std::size_t i = 0; i < r.active.size(); ++i) {
    const Index n = r.active[i];
    const Mat XT = data.X.row(n).transpose();
    net.forward(r.theta_tilde, XT, ws);
    a[0] = data.y[n];
    std::vector<std::pair<std::size_t, Index>> kinks;  // (layer, unit)
    if (relu)
      for (Index k = 0; k + 1 < K; ++k)
        for (Index u = 0; u < ws.pre[std::size_t(k)].rows(); ++u)
          if (std::abs(ws.pre[std::size_t(k)](u, 0)) <= kink_rel * layer_scale[std::size_t(k)])
            kinks.emplace_back(std::size_t(k), u);
    if (!kinks.empty()) ++r.kink_points;
    // All 2^k vertices for up to 4 kinks; beyond, the two constant masks and the single flips from 0.
    std::vector<std::vector<int>> masks;
    const std::size_t nk = kinks.size();
    if (nk <= 4) {
      for (unsigned m = 0; m < (1u << nk); ++m) {
        std::vector<int> bits(nk);
        for (std::size_t j = 0; j < nk; ++j) bits[j] = (m >> j) & 1u;
        masks.push_back(bits);
      }
    } else {
      masks.push_back(std::vector<int>(nk, 0));
      masks.push_back(std::vector<int>(nk, 1));
      for (std::size_t j = 0; j < nk; ++j) {
        std::vector<int> bits(nk, 0);
        bits[j] = 1;
        masks.push_back(bits);
      }
    }
    for (const auto& bits : masks) {
      for (std::size_t j = 0; j < nk; ++j) ws.mask[kinks[j].first](kinks[j].second, 0) = bits[j];
      net.backward(r.theta_tilde, a, XT, ws, g);
      columns.push_back(g);
      owner.push_back(i);
    }
  }
  Mat A(net.num_params(), Index(columns.size()));
  for (std::size_t j = 0; j < columns.size(); ++j) A.col(Index(j)) = columns[j];
  r.columns = Index(columns.size());
  const NnlsResult fit = nnls(A, r.theta_tilde);
  r.lambda = Vec::Zero(Index(r.active.size()));
  for (std::size_t j = 0; j < owner.size(); ++j) r.lambda[Index(owner[j])] += fit.x[Index(j)];
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
