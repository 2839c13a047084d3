#pragma once
// The Riemannian geometry of F(V) = L(rho f~(V)) on the product of unit spheres (one sphere per
// layer), equations.md section 7:
//
//   F(V) = L(c V),  c = rho^(1/K)                            (theta = c V, every layer scaled alike)
//   grad F = P (c grad_theta L),                             = -Flow::rhs(V, 0) for flow kind fixed_rho
//   Hess[xi]_k = P_k (c^2 nabla^2_theta L xi)_k - <V_k, c (grad_theta L)_k> xi_k
//
// and an implicit orthonormal basis of its tangent space (TangentBasis).
#include <vector>

#include "gfsim/flow.hpp"
#include "gfsim/network.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// F on the sphere product. `flow` must have kind fixed_rho and outlive this object (its scratch
/// space is used: not thread-safe).
class SphereProblem {
 public:
  explicit SphereProblem(const Flow& flow);
  const Flow& flow() const { return flow_; }
  double rho() const { return flow_.fixed_rho(); }
  /// c = rho^(1/K): theta = c V.
  double layer_scale() const;
  Index dim() const { return flow_.num_params(); }                         ///< P
  Index tangent_dim() const { return flow_.num_params() - flow_.num_layers(); }  ///< P - K

  /// Per-layer tangent projection X_k - V_k <V_k, X_k> (V on the spheres).
  Vec project(const Vec& V, const Vec& X) const;
  /// Retraction R_V(xi): V_k + xi_k normalized per layer.
  Vec retract(const Vec& V, const Vec& xi) const;
  /// Per-layer normalization (SpecError for a zero layer).
  Vec normalize(const Vec& V) const;
  /// F(V), as log F (no overflow at large rho).
  double log_loss(const Vec& V) const;
  /// Euclidean gradient of F at V.
  Vec euclidean_gradient(const Vec& V) const;
  /// Euclidean Hessian-vector product of F at V (exact, forward over reverse).
  Vec euclidean_hvp(const Vec& V, const Vec& x) const;
  /// Riemannian gradient P grad F (= -Flow::rhs at log_scale 0).
  Vec gradient(const Vec& V) const;
  /// Riemannian Hessian applied to xi (xi is projected onto the tangent space first).
  Vec hessian(const Vec& V, const Vec& xi) const;
  /// The same from Flow::jvp of the fixed-rho rhs: Hess[xi] = -P D(rhs)[xi] (for cross-checks).
  Vec hessian_from_jvp(const Vec& V, const Vec& xi) const;
  /// Scale of the gradient: rho * F(V) (||grad F|| <= rho F max_n ||x_n|| for exp loss, K = 1).
  double loss_scale(const Vec& V) const;

 private:
  const Flow& flow_;
};

/// Orthonormal basis B (P x (P - K)) of the tangent space at V, applied implicitly: per layer the
/// Householder reflection Q_k with Q_k e_1 = +-V_k; its columns 2..m_k span V_k^perp.
class TangentBasis {
 public:
  TangentBasis(const Network& net, const Vec& V);
  Index rows() const { return P_; }
  Index cols() const { return P_ - Index(w_.size()); }
  Vec apply(const Vec& y) const;            ///< B y
  Vec apply_transpose(const Vec& x) const;  ///< B^T x
  Mat dense() const;                        ///< B explicitly (small problems, tests)

 private:
  Index P_;
  std::vector<Index> offsets_, sizes_;
  std::vector<Vec> w_;  // Householder vectors
};

/// W^T Hess W (symmetrized) for orthonormal tangent columns W at V (W.cols() Hessian products);
/// Hess W itself in *HW when given.
Mat projected_hessian(const SphereProblem& sp, const Vec& V, const Mat& W, Mat* HW = nullptr);

}  // namespace gfsim
