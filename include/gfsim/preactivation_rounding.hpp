#pragma once
// Rounding-error bounds of the computed hidden pre-activations h_j = (W_k a_{k-1}(x_n))_i, the event
// functions of the ReLU kinks (docs/events.md, "Round-off is not a crossing"). A computed value
// within its bound carries no sign information: a state on a kink surface in exact arithmetic (a
// unit whose row the field keeps orthogonal to a point) shows pure rounding noise there, whose sign
// flips from step to step.
//
// Dot products (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.5): a
// d-term dot product computed in any order, with or without fused multiply-adds, satisfies
//   |fl(w.x) - w.x| <= gamma_d sum_i |w_i| |x_i|,   gamma_d = d u / (1 - d u),  u = 2^-53,
// without underflow; gradual underflow adds at most d eta/2 (eta = 2^-1074, one half-ulp of a
// subnormal per product; subnormal additions are exact), here d eta.
//
// The network's pre-activations (Network::forward) at the weights theta = s V of the state (one
// rounding per weight: a common scale s does not change any sign, so h is taken at fl(s) V), with the
// activations a = m h of the frozen pattern m (0/1, or the equivalent control of a sliding entry):
//   E_1 = gamma_{d_0 + 2} |W_1| |X| + d_0 eta,
//   E_k = |W_k| (gamma_{d + 2} |A_{k-1}| + (1 + 2u) |M_{k-1}| E_{k-1}) + d eta,   d = d_{k-1},
// where W_k, A_{k-1} are the computed values: gamma_d for the product, u for the weight's rounding,
// u for the product m h of a fractional mask, and the propagated error of the activations below
// (|m| E_{k-1}), with (1-u)^-1 factors from the computed |W| absorbed in gamma_{d+2} and 1 + 2u.
// The bound itself is a sum of non-negative terms evaluated in floating point, accurate to a
// relative gamma_{d+2}: it is multiplied by 1 + gamma_{d+4}. Sound; against the worst error seen
// over random dot products (tests/test_events.cpp, terms of one sign) loose by a factor ~sqrt(d):
// 2.1 u sum|w||x| against 5 u at d = 3, 9.5 u against 52 u at d = 50, 39 u against 4002 u at
// d = 4000 (rounding errors add like a random walk; d u needs adversarial data).
#include <vector>

#include "gfsim/network.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// gamma_d = d u / (1 - d u), u = 2^-53 (unit roundoff of double).
double rounding_gamma(Index d);

/// Bound on |fl(w.x) - w.x| for a d-term dot product with sum_i |w_i| |x_i| = abs_dot.
double dot_rounding_bound(double abs_dot, Index d);

/// Bounds E (layout of Flow::preactivations: hidden layer by layer, each d_k x n column-major) on
/// |computed h - exact h| for the network at weights theta (each weight at most one rounding away
/// from the state's exact value) on the inputs XT (d_0 x n), activations masks[k-1] .* H_k.
/// `pre`: the computed pre-activations in that layout (their absolute values build the
/// activations' magnitudes of the deeper layers).
Vec preactivation_rounding(const Network& net, const Eigen::Ref<const Vec>& theta, const Network::Inputs& XT,
                           const std::vector<Mat>& masks, const Vec& pre);

/// Hidden units whose kinks change the field by less than its rounding (docs/events.md, "Units
/// below rounding"): unit i of hidden layer k (0-based k = 0..K-2) with outgoing weights and
/// pre-activations both below u against their layer's,
///   ||W_{k+2}[:, i]|| <= u ||W_{k+2}||_F   and   max_n |h_{k,i,n}| <= u max_{i',n} |h_{k,i',n}|
/// (W_{k+2} = net.layer(theta, k + 1); `pre` in the layout of preactivation_rounding). A switch of
/// its mask at point n moves the activation a = m h by at most |h|, and the backprop signal through
/// the unit by at most ||W_{k+2}[:, i]|| ||delta_{k+2}(x_n)||: both u-small against their layer's,
/// below the rounding of the sums the field is made of. Such a unit (a dead unit of a
/// prescribed-radius flow, its weights decaying to subnormal numbers; docs/rho_control.md) has no
/// meaningful kink: its surfaces are not events (an infinite rounding bound, EventHooks::round_off),
/// not settled at a start, not candidates of a joint switch. Once its weights grow past the
/// thresholds, a mask left on the wrong side of h is switched at the next step's start, while that
/// switch still moves the field by about u. Returns a flag per entry (the layout of `pre`).
std::vector<char> entries_of_units_below_rounding(const Network& net, const Eigen::Ref<const Vec>& theta,
                                                  const Vec& pre, Index n);

}  // namespace gfsim
