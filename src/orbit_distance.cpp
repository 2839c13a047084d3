#include "gfsim/orbit_distance.hpp"

#include <Eigen/SVD>
#include <cmath>
#include <vector>

namespace gfsim {

double orthogonal_orbit_distance(const Network& net, const Vec& A, const Vec& B, int sweeps) {
  const Index K = net.num_layers();
  auto layer = [&](const Vec& x, Index k) { return Mat(net.layer(x, k)); };
  std::vector<Mat> a, b, Q(std::size_t(K + 1));
  for (Index k = 0; k < K; ++k) a.push_back(layer(A, k)), b.push_back(layer(B, k));
  for (Index k = 0; k <= K; ++k) Q[std::size_t(k)] = Mat::Identity(net.widths()[std::size_t(k)], net.widths()[std::size_t(k)]);
  auto distance = [&] {
    double d2 = 0;
    for (Index k = 0; k < K; ++k)
      d2 += (Q[std::size_t(k + 1)] * a[std::size_t(k)] * Q[std::size_t(k)].transpose() - b[std::size_t(k)]).squaredNorm();
    return std::sqrt(d2);
  };
  if (K < 2) return distance();
  for (int s = 0; s < sweeps; ++s) {
    for (Index j = 1; j < K; ++j) {
      const std::size_t u = std::size_t(j);
      // Terms with Q_j: ||Q_j A_{j-1} Q_{j-1}^T - B_{j-1}||^2 + ||Q_{j+1} A_j Q_j^T - B_j||^2; maximize tr(Q_j M).
      const Mat M = a[u - 1] * Q[u - 1].transpose() * b[u - 1].transpose() +
                    a[u].transpose() * Q[u + 1].transpose() * b[u];
      Eigen::JacobiSVD<Mat> svd(M, Eigen::ComputeFullU | Eigen::ComputeFullV);
      Q[u] = svd.matrixV() * svd.matrixU().transpose();
    }
  }
  return std::min(distance(), (A - B).norm());
}

}  // namespace gfsim
