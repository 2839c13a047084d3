#include "gfsim/network.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <stdexcept>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace gfsim {

void configure_kernels(int threads) {
  Eigen::setNbThreads(threads);
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
}

namespace {
using MapRow = Eigen::Map<RowMat>;
using ConstMapRow = Eigen::Map<const RowMat>;
}  // namespace

Network::Network(std::vector<Index> widths, Activation activation, double kink_width)
    : widths_(std::move(widths)), activation_(activation),
      kink_width_(activation == Activation::relu ? kink_width : 0.0) {
  if (!(kink_width >= 0.0) || !std::isfinite(kink_width))
    throw std::invalid_argument(fmt::format("Network: kink width {} must be finite and >= 0", kink_width));
  if (widths_.size() < 2) throw std::invalid_argument("Network: need at least input and output widths");
  if (widths_.back() != 1) throw std::invalid_argument("Network: the output width d_K must be 1");
  offsets_.assign(1, 0);
  for (std::size_t k = 1; k < widths_.size(); ++k) {
    if (widths_[k - 1] < 1 || widths_[k] < 1) throw std::invalid_argument("Network: widths must be >= 1");
    offsets_.push_back(offsets_.back() + widths_[k] * widths_[k - 1]);
  }
}

Eigen::Map<const RowMat> Network::layer(const Eigen::Ref<const Vec>& theta, Index k) const {
  return ConstMapRow(theta.data() + offsets_[k], widths_[k + 1], widths_[k]);
}

void Network::forward(const Eigen::Ref<const Vec>& theta, const Inputs& XT, Workspace& ws,
                      bool first_layer_held) const {
  const Index K = num_layers();
  ws.pre.resize(K);
  ws.post.resize(K - 1);
  ws.mask.resize(K - 1);
  const bool smoothed = activation_ == Activation::relu && kink_width_ > 0.0 && !ws.pattern;
  ws.curv.resize(smoothed ? K - 1 : 0);
  for (Index k = 0; k < K; ++k) {
    const auto W = layer(theta, k);
    const Inputs input = k == 0 ? XT : Inputs(ws.post[k - 1]);
    if (k > 0 || !first_layer_held) ws.pre[k].noalias() = W * input;
    if (k + 1 < K) {
      if (smoothed) {
        // z = eps t, E = e^{-|t|} <= 1 (no overflow), R = 1/(1 + E), S = E R = sigma(-|t|) <= 1/2:
        // s = eps log(1 + e^t) = max(z, 0) - eps log R, s' = sigma(t) = R or S by the sign of t,
        // s'' = sigma(t) sigma(-t)/eps = S (1 - S)/eps. Vectorized exp, log and division only
        // (libm's scalar log1p cost as much as the two GEMMs at P = 1e5).
        const double eps = kink_width_;
        const auto H = ws.pre[k].array();
        auto S = ws.curv[k].array();
        auto R = ws.mask[k].array();
        S = (H.abs() * (-1.0 / eps)).exp();
        // Flushed to 0 below 1e-300 (|t| > 690): e^{-|t|} for |t| in 708..745 is subnormal, and
        // products with subnormal operands are slow (microcode assists), in the masks' GEMMs of
        // the backward pass too; a term of 1e-300 beside s' <= 1 is far below any rounding.
        S = (S < 1e-300).select(0.0, S);
        R = (1.0 + S).inverse();
        ws.post[k] = H.max(0.0) - eps * R.log();
        S *= R;
        R = (H >= 0.0).select(R, S);
        S *= (1.0 - S) * (1.0 / eps);
      } else if (activation_ == Activation::relu && ws.pattern) {
        ws.mask[k] = (*ws.pattern)[k];
        ws.post[k] = ws.pre[k].cwiseProduct(ws.mask[k]);
      } else if (activation_ == Activation::relu) {
        ws.mask[k] = (ws.pre[k].array() > 0.0).cast<double>();
        ws.post[k] = ws.pre[k].cwiseProduct(ws.mask[k]);
      } else {
        ws.mask[k].setOnes(ws.pre[k].rows(), ws.pre[k].cols());
        ws.post[k] = ws.pre[k];
      }
    }
  }
  ws.f = ws.pre[K - 1].row(0).transpose();
}

void Network::forward_tangent(const Eigen::Ref<const Vec>& theta, const Eigen::Ref<const Vec>& dtheta,
                              const Inputs& XT, Workspace& ws) const {
  const Index K = num_layers();
  ws.dpre.resize(K);
  ws.dpost.resize(K - 1);
  for (Index k = 0; k < K; ++k) {
    const auto W = layer(theta, k);
    const auto dW = layer(dtheta, k);
    const Inputs input = k == 0 ? XT : Inputs(ws.post[k - 1]);
    ws.dpre[k].noalias() = dW * input;
    if (k > 0) ws.dpre[k].noalias() += W * ws.dpost[k - 1];
    // The tangent of A_k is s'(H_k) dH_k (s'' enters the backward pass).
    if (k + 1 < K) ws.dpost[k] = ws.dpre[k].cwiseProduct(ws.mask[k]);
  }
  ws.df = ws.dpre[K - 1].row(0).transpose();
}

void Network::backward(const Eigen::Ref<const Vec>& theta, const Vec& a, const Inputs& XT, Workspace& ws,
                       Eigen::Ref<Vec> grad) const {
  const Index K = num_layers();
  ws.delta.resize(K);
  ws.delta[K - 1] = a.transpose();
  for (Index k = K - 1; k >= 0; --k) {
    const Inputs input = k == 0 ? XT : Inputs(ws.post[k - 1]);
    MapRow G(grad.data() + offsets_[k], widths_[k + 1], widths_[k]);
    G.noalias() = ws.delta[k] * input.transpose();
    if (k > 0) {
      ws.delta[k - 1].noalias() = layer(theta, k).transpose() * ws.delta[k];
      ws.delta[k - 1].array() *= ws.mask[k - 1].array();
    }
  }
}

void Network::backward_tangent(const Eigen::Ref<const Vec>& theta, const Eigen::Ref<const Vec>& dtheta,
                               const Vec& a, const Vec& da, const Inputs& XT, Workspace& ws,
                               Eigen::Ref<Vec> grad, Eigen::Ref<Vec> dgrad, bool with_grad) const {
  const Index K = num_layers();
  ws.delta.resize(K);
  ws.ddelta.resize(K);
  ws.delta[K - 1] = a.transpose();
  ws.ddelta[K - 1] = da.transpose();
  for (Index k = K - 1; k >= 0; --k) {
    const Inputs input = k == 0 ? XT : Inputs(ws.post[k - 1]);
    MapRow G(grad.data() + offsets_[k], widths_[k + 1], widths_[k]);
    MapRow dG(dgrad.data() + offsets_[k], widths_[k + 1], widths_[k]);
    if (with_grad) G.noalias() = ws.delta[k] * input.transpose();
    dG.noalias() = ws.ddelta[k] * input.transpose();
    if (k > 0) dG.noalias() += ws.delta[k] * ws.dpost[k - 1].transpose();
    if (k > 0) {
      const auto W = layer(theta, k);
      const auto dW = layer(dtheta, k);
      // delta_{k-1} = (W^T delta_k) o s'(H), so its tangent is
      // (dW^T delta_k + W^T ddelta_k) o s'(H) + (W^T delta_k) o s''(H) o dH.
      ws.delta[k - 1].noalias() = W.transpose() * ws.delta[k];
      ws.ddelta[k - 1].noalias() = dW.transpose() * ws.delta[k];
      ws.ddelta[k - 1].noalias() += W.transpose() * ws.ddelta[k];
      ws.ddelta[k - 1].array() *= ws.mask[k - 1].array();
      if (!ws.curv.empty())
        ws.ddelta[k - 1].array() += ws.delta[k - 1].array() * ws.curv[k - 1].array() * ws.dpre[k - 1].array();
      ws.delta[k - 1].array() *= ws.mask[k - 1].array();
    }
  }
}

Vec Network::layer_norms(const Eigen::Ref<const Vec>& theta) const {
  Vec rho(num_layers());
  for (Index k = 0; k < num_layers(); ++k) rho[k] = theta.segment(offsets_[k], layer_size(k)).norm();
  return rho;
}

Vec Network::layer_directions(const Eigen::Ref<const Vec>& theta) const {
  Vec V = theta;
  for (Index k = 0; k < num_layers(); ++k) {
    auto layer = V.segment(offsets_[k], layer_size(k));
    const double norm = layer.norm();
    if (norm > 0) layer /= norm;
  }
  return V;
}

std::string Network::describe() const {
  const std::string s = fmt::format("{}", fmt::join(widths_, "-"));
  if (activation_ != Activation::relu) return s + " linear";
  return kink_width_ > 0 ? s + fmt::format(" relu (smoothed, eps = {:g})", kink_width_) : s + " relu";
}

}  // namespace gfsim
