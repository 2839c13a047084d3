#pragma once
// Distance modulo the hidden-layer rotations of a deep linear net.
#include "gfsim/network.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// Deep linear nets (K > 1): f is invariant under W_k -> Q_k W_k Q_{k-1}^T for orthogonal Q_k on every hidden
/// layer (Q_0 = I, Q_K = 1), and so is every fixed-rho stationary set. Distance from B to the orbit of A:
/// min over the Q_k of ||(Q_k A_k Q_{k-1}^T)_k - B||, by alternating orthogonal Procrustes (each Q_k given
/// the others: Q_k = V U^T from the SVD U S V^T of its coupling matrix), `sweeps` sweeps from Q_k = I.
/// The result is <= ||A - B|| and is 0 on the orbit (up to the convergence of the sweeps).
double orthogonal_orbit_distance(const Network& net, const Vec& A, const Vec& B, int sweeps = 50);

}  // namespace gfsim
