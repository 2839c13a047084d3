#pragma once
// The part of the field shared by the kinds whose state holds the per-layer directions V_k (the
// polar kinds and fixed_rho): dV_k/dt = alpha_k (G_k - c_k V_k), c_k = <V_k, G_k>/|V_k|^2, the
// loss descent G_k projected onto the tangent space of the sphere of V_k with the exact projector
// X - V <V,X>/<V,V> (equations.md section 2), times a kind-specific rate alpha_k.
#include <fmt/format.h>

#include <string_view>

#include "gfsim/errors.hpp"
#include "gfsim/network.hpp"
#include "gfsim/types.hpp"

namespace gfsim::flows {

/// Per-layer norms of theta for a start in V coordinates; DomainError for a zero layer.
inline Vec nonzero_layer_norms(const Network& net, const Vec& theta, std::string_view kind) {
  const Vec rho = net.layer_norms(theta);
  for (Index k = 0; k < net.num_layers(); ++k)
    if (!(rho[k] > 0))
      throw DomainError(fmt::format("the {} flow needs every layer norm rho_k > 0: layer {} of the initial "
                                    "weights is zero (rho_{} = 0)", kind, k + 1, k + 1));
  return rho;
}

/// dy.segment(off, P) = the projected field; alpha(k) the rate of layer k.
template <typename Rate>
void projected_field(const Network& net, const Eigen::Ref<const Vec>& V, const Vec& G, Index off, Rate alpha,
                     Vec& dy) {
  for (Index k = 0; k < net.num_layers(); ++k) {
    const Index o = net.layer_offset(k), m = net.layer_size(k);
    const auto Vk = V.segment(o, m);
    const auto Gk = G.segment(o, m);
    const double c = Vk.dot(Gk) / Vk.squaredNorm();
    dy.segment(off + o, m) = alpha(k) * (Gk - c * Vk);
  }
}

/// Its tangent along (dV, dG): rate(k) returns {alpha_k, dalpha_k}.
template <typename RateTangent>
void projected_field_tangent(const Network& net, const Eigen::Ref<const Vec>& V, const Eigen::Ref<const Vec>& dV,
                             const Vec& G, const Vec& dG, Index off, RateTangent rate, Vec& jv) {
  for (Index k = 0; k < net.num_layers(); ++k) {
    const Index o = net.layer_offset(k), m = net.layer_size(k);
    const auto Vk = V.segment(o, m);
    const auto dVk = dV.segment(o, m);
    const auto Gk = G.segment(o, m);
    const auto dGk = dG.segment(o, m);
    const auto [alpha, dalpha] = rate(k);
    const double n2 = Vk.squaredNorm();
    const double c = Vk.dot(Gk) / n2;
    const double dc = (dVk.dot(Gk) + Vk.dot(dGk)) / n2 - 2.0 * c * Vk.dot(dVk) / n2;
    jv.segment(off + o, m) = dalpha * (Gk - c * Vk) + alpha * (dGk - dc * Vk - c * dVk);
  }
}

struct RateAndTangent {
  double alpha, dalpha;
};

}  // namespace gfsim::flows
