#pragma once
// Bias-free K-layer network f(W; x) = W_K s(W_{K-1} ... s(W_1 x)), s = ReLU or identity, d_K = 1.
// With a kink width eps > 0 the ReLU is replaced by its smoothing s(z) = eps log(1 + e^{z/eps})
// (softplus; |s(z) - ReLU(z)| <= eps log 2, exponentially small for |z| >> eps): the flow is then
// smooth, s'' = sigma(1 - sigma)/eps enters the Hessian-vector products, and as eps -> 0 its
// trajectories tend to the Filippov solution of the ReLU flow (Sotomayor-Teixeira regularization).
// Parameters live in the theta layout: W_1..W_K, each row-major (d_k x d_{k-1}), concatenated.
// The network evaluates a whole data set at once (columns of X^T are points) and provides the
// two primitives every flow is built from:
//   backward:          sum_n a_n df_n/dtheta                       (reverse mode, backprop)
//   backward_tangent:  its directional derivative along (dtheta, da) (forward over reverse)
// A Workspace holds the per-layer activations so the hot path does not allocate after warm-up.
//
//   Network net({dim, 16, 1}, Activation::relu);
//   Network::Workspace ws;
//   net.forward(theta, XT, ws);                 // ws.f = outputs f_n
//   net.backward(theta, a, ws, grad);           // grad = sum_n a_n df_n/dtheta
#include <string>
#include <vector>

#include "gfsim/model_spec.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// Process-wide kernel settings, called once before integrating: Eigen's OpenMP thread count for
/// its matrix products (GEMM) and, with glibc, an allocator that keeps freed blocks instead of
/// returning them to the kernel (Eigen heap-allocates its GEMM packing buffers above 128 KB; with
/// glibc's default mmap threshold every large product paid ~100 page faults).
void configure_kernels(int threads);

class Network {
 public:
  /// widths = {d_0, d_1, ..., d_K} with d_K = 1 (checked).
  /// kink_width = eps > 0 smooths the ReLU (above); 0 = the exact ReLU. Ignored for linear.
  Network(std::vector<Index> widths, Activation activation, double kink_width = 0.0);

  struct Workspace {
    std::vector<Mat> pre;    ///< H_k = W_k A_{k-1}, d_k x n, k = 1..K (index k-1)
    std::vector<Mat> post;   ///< A_k = s(H_k), k = 1..K-1 (index k-1)
    std::vector<Mat> mask;   ///< s'(H_k) (0/1 for ReLU; ReLU'(0) = 0)
    std::vector<Mat> curv;   ///< s''(H_k): smoothed ReLU only (empty otherwise: s'' = 0 off kinks)
    std::vector<Mat> dpre, dpost;        ///< tangents of H_k, A_k
    std::vector<Mat> delta, ddelta;      ///< backprop signals and their tangents
    Vec f, df;               ///< outputs f_n and their tangents
    /// Event-driven ReLU integration: when set, s'(H_k) is this fixed activation pattern
    /// (entries 1 active, 0 inactive) instead of the sign of H_k, so the flow is smooth between
    /// kink crossings. Index k-1 for hidden layer k, each d_k x n.
    const std::vector<Mat>* pattern = nullptr;
  };

  Index num_layers() const { return Index(widths_.size()) - 1; }  ///< K
  Index num_params() const { return offsets_.back(); }             ///< P
  const std::vector<Index>& widths() const { return widths_; }
  Activation activation() const { return activation_; }
  double kink_width() const { return kink_width_; }
  /// The exact ReLU with hidden layers: the right-hand side jumps across h = 0 (kink surfaces).
  bool has_kinks() const { return activation_ == Activation::relu && kink_width_ == 0.0 && num_layers() > 1; }
  Index layer_offset(Index k) const { return offsets_[k]; }         ///< k = 0..K-1
  Index layer_size(Index k) const { return offsets_[k + 1] - offsets_[k]; }
  Index layer_rows(Index k) const { return widths_[k + 1]; }
  Index layer_cols(Index k) const { return widths_[k]; }

  /// Layer k (0-based) of a theta-layout vector as a row-major matrix view.
  Eigen::Map<const RowMat> layer(const Eigen::Ref<const Vec>& theta, Index k) const;

  /// The data points as columns, d_0 x n: a matrix or a block of leading columns of one (the kept
  /// points of screening live in the first columns of a buffer that never shrinks).
  using Inputs = Eigen::Ref<const Mat>;
  /// Outputs f_n for the columns of XT (d_0 x n); fills ws.pre/post/mask and ws.f.
  /// first_layer_held: ws.pre[0] already holds W_1 XT for these theta and XT (a pass at the same
  /// weights with other masks), so its product is not formed again.
  void forward(const Eigen::Ref<const Vec>& theta, const Inputs& XT, Workspace& ws,
               bool first_layer_held = false) const;
  /// After forward(): tangents dH_k and ws.df = J_f dtheta (exact JVP of the outputs).
  void forward_tangent(const Eigen::Ref<const Vec>& theta, const Eigen::Ref<const Vec>& dtheta,
                       const Inputs& XT, Workspace& ws) const;
  /// After forward(): grad = sum_n a_n df_n/dtheta.
  void backward(const Eigen::Ref<const Vec>& theta, const Vec& a, const Inputs& XT, Workspace& ws,
                Eigen::Ref<Vec> grad) const;
  /// After forward() and forward_tangent(): grad as above and dgrad, its derivative along
  /// (dtheta, da). With a_n = c(u_n) and da_n = c'(u_n) du_n this is an exact Hessian-vector
  /// product (forward over reverse). with_grad = false leaves grad untouched (one product fewer
  /// per layer, for callers that need only dgrad).
  void backward_tangent(const Eigen::Ref<const Vec>& theta, const Eigen::Ref<const Vec>& dtheta,
                        const Vec& a, const Vec& da, const Inputs& XT, Workspace& ws,
                        Eigen::Ref<Vec> grad, Eigen::Ref<Vec> dgrad, bool with_grad = true) const;

  /// Frobenius norms rho_k = ||W_k|| of each layer.
  Vec layer_norms(const Eigen::Ref<const Vec>& theta) const;
  /// The directions V_k = W_k / ||W_k|| of each layer (a zero layer stays zero).
  Vec layer_directions(const Eigen::Ref<const Vec>& theta) const;
  /// Human-readable shape, e.g. "10-16-1 relu" or "10-16-1 relu (smoothed, eps = 0.001)".
  std::string describe() const;

 private:
  std::vector<Index> widths_;
  std::vector<Index> offsets_;
  Activation activation_;
  double kink_width_ = 0.0;
};

}  // namespace gfsim
