#pragma once
// Helpers shared by the tests of the stationary-point concepts (sphere, tangent spectrum, zero
// modes, Newton, kink surfaces, the command).
#include <Eigen/Dense>
#include <cstdint>

#include "gfsim/network.hpp"
#include "test_util.hpp"

namespace gfsim::test {

/// The first k columns of an orthonormal basis of range(E).
inline Mat orthonormal_columns(const Mat& E, Index k) {
  Eigen::ColPivHouseholderQR<Mat> qr(E);
  return Mat(qr.householderQ()).leftCols(k);
}

/// A random point of the sphere product of `net` (each layer of unit norm).
inline Vec random_direction(const Network& net, std::uint64_t seed) {
  Vec V = random_vector(net.num_params(), seed);
  for (Index k = 0; k < net.num_layers(); ++k) V.segment(net.layer_offset(k), net.layer_size(k)).normalize();
  return V;
}

}  // namespace gfsim::test
