#pragma once
// `gfsim stationary`: stationary points of the fixed-rho flow (d) and the spectrum of the
// Riemannian Hessian on the tangent space of the product of unit spheres (equations.md section 7).
//
//   F(V) = L(rho f~(V)) = L(c V),  c = rho^(1/K)            (theta = c V, every layer scaled alike)
//   grad F = P (c grad_theta L),                             = -Flow::rhs(V, 0) for flow kind fixed_rho
//   Hess[xi]_k = P_k (c^2 nabla^2_theta L xi)_k - <V_k, c (grad_theta L)_k> xi_k
//
// Pipeline (find_stationary): integrate flow (d) in the log clock until the Riemannian gradient is
// below flow_tol * loss_scale, then Riemannian Newton (Hess xi = -grad on the tangent space, dense
// pseudo-inverse for small problems, CG otherwise; retraction V_k <- (V_k + xi_k)/||V_k + xi_k||)
// until the gradient is at round-off; then the tangent spectrum (dense or Spectra), the zero modes
// and their explanation by named mechanisms, ReLU kinks, and the hyperbolicity verdict.
//
//   Flow flow(net, data, LossKind::exp, FlowKind::fixed_rho, rho);
//   StationaryResult r = find_stationary(flow, V0, {});
//   std::cout << r.verdict;
#include <array>
#include <iosfwd>
#include <string>
#include <vector>

#include "gfsim/flow.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// The Riemannian geometry of F(V) = L(rho f~(V)) on the product of unit spheres. `flow` must have
/// kind fixed_rho and outlive this object (its scratch space is used: not thread-safe).
class SphereProblem {
 public:
  explicit SphereProblem(const Flow& flow);
  const Flow& flow() const { return flow_; }
  double rho() const { return flow_.fixed_rho(); }
  Index dim() const { return flow_.num_params(); }                         ///< P
  Index tangent_dim() const { return flow_.num_params() - flow_.num_layers(); }  ///< P - K

  /// Per-layer tangent projection X_k - V_k <V_k, X_k> (V on the spheres).
  Vec project(const Vec& V, const Vec& X) const;
  /// Retraction R_V(xi): V_k + xi_k normalized per layer.
  Vec retract(const Vec& V, const Vec& xi) const;
  /// Per-layer normalization.
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

struct StationaryOptions {
  double flow_tol = 1e-6;     ///< flow phase ends at ||grad|| <= flow_tol * loss_scale
  double newton_tol = 1e-14;  ///< Newton ends at ||grad|| <= newton_tol * loss_scale (or stagnation)
  int max_newton = 40;
  double flow_t_end = 1e60;   ///< horizon of the flow phase (physical time; log clock)
  std::int64_t flow_max_steps = 200000;
  Index dense_newton_max = 600;  ///< tangent dim up to which Newton uses a dense eigen-solve
  Index dense_max = 2000;        ///< tangent dim up to which the spectrum is dense (else Spectra)
  Index nev = 10;                ///< Spectra: eigenvalues at each end
  double spectra_tol = 1e-12;
  double zero_rel = 1e-8;        ///< |lambda| <= zero_rel * max|lambda| counts as zero
  double verify_rel = 1e-6;      ///< analytic null vector accepted when ||H v|| <= verify_rel * max|lambda|
  double kink_rel = 1e-9;        ///< |pre-activation| <= kink_rel * max |pre-activation| is on a kink
  /// Newton on a kink surface: the pairs with |h| <= kink_surface_rel * max|h| when the polish
  /// starts are held on h = 0 (the flow phase ended there, e.g. stalled on a kink).
  double kink_surface_rel = 1e-6;
  double minres_rtol = 1e-12;    ///< Newton system above dense_newton_max (MINRES on the tangent space)
  bool skip_flow = false;        ///< start Newton at V0 directly
  bool force_spectra = false;    ///< use Spectra even for small problems (tests)
};

struct ZeroModeMechanism {
  std::string name;        ///< "orthogonal", "relu_group", "vanished"
  Index candidates = 0;    ///< analytic tangent vectors generated
  Index verified = 0;      ///< of which ||H v|| <= verify threshold
  Index span_dim = 0;      ///< dimension of the span of the verified vectors
  Index explained = 0;     ///< null-space dimension inside that span
  double max_residual = 0; ///< max ||H v||/||v|| over verified vectors
};

struct StationaryResult {
  double rho = 0;
  Vec V;  ///< the stationary direction
  // flow phase
  std::string flow_status;
  double flow_t = 0;
  std::int64_t flow_steps = 0;
  double flow_grad = 0;  ///< ||grad|| when the flow phase ended
  std::string flow_message;           ///< the solver's message when it did not converge
  bool flow_at_kink = false;          ///< the flow phase stopped stalled on a ReLU kink surface
  std::int64_t flow_kink_events = 0;  ///< kink events (crossings, sliding) during the flow phase
  // Newton
  std::vector<double> grad_norms;  ///< ||grad|| at entry and after every Newton step
  std::vector<double> step_norms;  ///< ||xi|| of every step
  std::vector<int> inner_iterations;  ///< of every accepted step (dense: the tangent dimension)
  Index newton_hvps = 0;  ///< Hessian products of all Newton steps, the rejected last one (round-off) included
  bool newton_converged = false;
  double loss_scale = 0, log_loss = 0, margin = 0;
  // spectrum
  std::string spectrum_method;  ///< "dense" or "spectra"
  Vec eigenvalues;              ///< ascending (dense: all P - K; spectra: nev smallest then nev largest)
  Vec residuals;                ///< ||H x - lambda x|| (HVP-based) for each eigenvalue
  Mat eigenvectors;             ///< P-space unit columns (only the near-zero ones are kept for large P)
  Index n_negative = 0, n_zero = 0, n_positive = 0;
  double zero_threshold = 0;    ///< zero_rel * max|lambda|
  std::string info_smallest = "n/a", info_largest = "n/a";
  Index hvps = 0;
  double spectrum_seconds = 0, total_seconds = 0;
  // zero modes
  Index null_dim = 0;
  std::vector<ZeroModeMechanism> mechanisms;
  Index explained_total = 0, unexplained = 0;
  // kinks
  std::vector<std::array<Index, 3>> kinks;  ///< (layer 1-based, unit, point)
  std::vector<double> kink_preactivations;
  // Newton restricted to the active kink surfaces (the flow phase ended on kinks)
  std::vector<Index> newton_kinks;  ///< preactivation indices held at h = 0 during the polish
  // spectrum on the tangent space of the spheres and of every active kink surface h_j = 0
  std::string kink_spectrum_status = "no kinks";
  Index kink_surface_dim = 0;       ///< dimension of that tangent space
  Index kink_constraint_rank = 0;   ///< rank of the kink normals on the sphere tangent space
  double kink_grad = 0;             ///< ||gradient projected onto it||
  Vec kink_eigenvalues, kink_residuals;
  Index kink_n_negative = 0, kink_n_zero = 0, kink_n_positive = 0;
  Index kink_null_dim = 0, kink_explained = 0, kink_unexplained = 0;
  std::vector<ZeroModeMechanism> kink_mechanisms;
  std::string kink_verdict;
  std::string verdict;
  std::string notes;
};

/// The whole pipeline at flow.fixed_rho() from the direction V0 (normalized per layer first):
/// locate_stationary, then analyse_stationary.
/// ReLU flows run with kink events (crossings; a stop stalled on a kink ends the flow phase there,
/// and Newton continues on that kink surface); the pattern is cleared again on return.
StationaryResult find_stationary(Flow& flow, const Vec& V0, const StationaryOptions& options);
/// The point only: flow phase and Newton polish (r.V, flow_* and Newton fields, log_loss, margin,
/// loss_scale); no spectrum (its cost grows faster than the point's at large P: benchmarks).
StationaryResult locate_stationary(Flow& flow, const Vec& V0, const StationaryOptions& options);

/// Newton polish only (appends to r.grad_norms etc.; r.V is the start and the result).
void newton_polish(const SphereProblem& sp, StationaryResult& r, const StationaryOptions& options);
/// Spectrum, inertia, zero modes, kinks, verdict at r.V.
void analyse_stationary(const SphereProblem& sp, StationaryResult& r, const StationaryOptions& options);

/// Newton step on the tangent space (minus Hess^-1 grad): dense pseudo-inverse with |lambda|
/// (saddle-free) when `dense`, else MINRES with HVPs (the minimum-norm solution).
Vec newton_step(const SphereProblem& sp, const Vec& V, const Vec& grad, bool dense, const StationaryOptions& options,
                int& inner_iterations);

/// Indices (into Flow::preactivations) with |h| <= rel * max|h|.
std::vector<Index> kink_indices(const Flow& flow, const Vec& V, double rel);
/// Orthonormal basis (P x dim) of the tangent space of the spheres and of the kink surfaces
/// h_j = 0, j in `kinks`; `rank` = rank of the kink normals on the sphere tangent space.
Mat kink_surface_basis(const SphereProblem& sp, const Vec& V, const std::vector<Index>& kinks, Index* rank = nullptr);

/// B^T Hess B (m x m, m = P - K, symmetrized) in the implicit orthonormal tangent basis B at V
/// (TangentBasis): m Riemannian Hessian products, O(m^2) memory (B is never formed; the dense
/// spectrum route and its benchmark).
Mat tangent_hessian_matrix(const SphereProblem& sp, const Vec& V);

/// The k smallest then the k largest eigenvalues (ascending within each end) of the Riemannian
/// Hessian on the tangent space at V (any V, stationary or not): dense up to tangent dimension
/// dense_max, else Spectra (shift-invert low end). NaN where the tangent dimension is below k.
Vec tangent_extreme_eigenvalues(const SphereProblem& sp, const Vec& V, Index k, Index dense_max = 2000,
                                Index* hvps = nullptr);

/// Analytic candidate null vectors (columns, tangent at V) of one mechanism.
Mat orthogonal_symmetry_vectors(const Network& net, const Vec& V);
Mat relu_group_vectors(const Network& net, const Vec& V, double tol = 1e-7);
Mat vanished_unit_vectors(const SphereProblem& sp, const Vec& V, double tol = 1e-9);

// ---- CLI level -------------------------------------------------------------------------------
struct StationaryCliOptions {
  double rho = 0;                  ///< 0: the model's flow.rho
  std::string rho_sweep;           ///< "a:b:n" log-spaced, empty = none
  std::string output;              ///< empty: <output.path stem>_stationary.h5
  StationaryOptions numerics;
};

struct SweepPoint {
  double rho = 0, lambda_min = 0, lambda_max = 0, lambda_min_nonzero = 0, margin = 0, grad = 0;
  Index n_zero = 0, n_negative = 0;
  std::string verdict;
  Vec eigenvalues;  ///< the tangent spectrum at this rho (dense: all; Spectra: the extremes)
  Vec direction;    ///< the stationary direction V at this rho
  /// Lemma 3: a long gradient-descent run from the model's initial weights passes rho(t) = rho at
  /// time gd_time; gd_distance = ||V_gd(gd_time) - V|| (NaN when the run never reaches rho).
  double gd_time = 0, gd_distance = 0;
};

struct StationaryReport {
  std::string output_path, network, loss;
  Index P = 0, K = 0, n = 0;
  StationaryResult result;          ///< at rho (or at the last sweep rho)
  std::vector<SweepPoint> sweep;
  std::string sweep_fit;            ///< law fitted to lambda_min_nonzero(rho)
};

/// Throws SpecError / IoError for bad input.
StationaryReport stationary_model(const ModelSpec& spec, const StationaryCliOptions& options);
void print_stationary_summary(std::ostream& out, const StationaryReport& report);

}  // namespace gfsim
