#pragma once
// The sliding set of a Filippov system with several switching surfaces as one box-constrained
// complementarity problem (docs/events.md, "Sliding sets"). Candidate surfaces j = 1..C carry a
// mask m_j in [0,1] (0: the inactive side's field, 1: the active side's, in between the
// equivalent control); r_j(m) = dh_j/dt along the field with masks m. A consistent set is
//     0 < m_j < 1  =>  r_j = 0       (slides on h_j = 0)
//     m_j = 0      =>  r_j <= 0      (stays on the inactive side)
//     m_j = 1      =>  r_j >= 0      (stays on the active side)
// i.e. the mixed complementarity problem MCP(-r, [0,1]^C). For ReLU nets r is affine in m with
// one hidden layer and multi-affine deeper. Solved by an active-set semismooth Newton method on
//     Phi_j(m) = s_j (m_j - clamp(m_j + r_j(m)/s_j, 0, 1))     (s_j = |dr_j/dm_j| at the start)
// which is zero exactly at a consistent set; Armijo backtracking on |Phi|^2, warm start m0.
// Singular interior blocks (coincident surfaces: duplicate data points) take the least-norm
// Newton step, which keeps the warm start's split of their control; share_coincident ends them
// with one common mask (the Filippov control of one surface). Where the problem has several
// solutions (repelling surfaces, -dr/dm not a P-matrix) the one reached from m0 is returned:
// deterministic for a given warm start, and a bound whose sign conditions hold at m0 stays.
//
//   auto f = [&](const Vec& m, Vec& r, Mat* J) { r = r0 + A * m; if (J) *J = A; };
//   SlidingSetResult s = solve_sliding_set(f, Vec::Zero(C));
//   if (s.converged) ... s.m, s.r
#include <functional>

#include "gfsim/types.hpp"

namespace gfsim {

/// r(m), and J = dr/dm at m when J is not null (exact: Newton converges quadratically only with it).
using SlidingRates = std::function<void(const Vec& m, Vec& r, Mat* J)>;

struct SlidingSetOptions {
  double rel_tol = 1e-12;   ///< stop when |Phi|_inf <= rel_tol * (|r(m0)|_inf + s)
  int max_iterations = 50;  ///< Newton iterations (each one evaluation of r, plus backtracking)
  int max_jacobians = 50;   ///< evaluations of J (each 2C evaluations of r for the callers' rates)
  /// false: no box, solve r(m) = 0 (the equivalent control of a given sliding set, whose masks
  /// leaving [0,1] are events of their own).
  bool box = true;
  /// Coincident entries (rows and columns of J pairwise parallel: one surface met at several data
  /// points) get one common mask at the end, their combination sum |J col j| m_j unchanged.
  bool share_coincident = false;
  /// Damping by the natural monotonicity test (Deuflhard) instead of Armijo on |Phi|^2: a step
  /// lambda is accepted if the simplified Newton correction at the trial (the old J) is shorter,
  /// |dm_bar| <= (1 - lambda/4) |dm|; J exact at every iterate. Affine covariant: blind to how the
  /// rows of r are scaled and combined, so it does not crawl along the curved valleys of |Phi|^2
  /// that nearly dependent rows make (two surfaces of one point that constrain the same direction
  /// of its activations: docs/events.md, "Sliding sets"). The callers' second attempt.
  bool natural_monotonicity = false;
  /// Converge each entry against the rounding of its own rate: its complementarity error in rate
  /// units (|r_j| for 0 < m_j < 1, max(r_j, 0) at m_j = 0, max(-r_j, 0) at m_j = 1) at most
  /// rel_tol (|r_j(0)| + sum_l |J_jl| m_l), instead of |Phi|_inf <= rel_tol (|r(m0)|_inf + max s).
  /// Needs `affine` (r(0) = r(m) - J m). One hidden layer's joint switch: late in the log clock the
  /// loss weights of a net's points span 1e-80..1 (misclassified points at output 0 beside
  /// well-classified ones), so the candidates' rates and jumps span 1e-4..1e12, and a shared
  /// absolute tolerance, or one from each entry's start, accepted masks with rates of 0.1
  /// unmatched (docs/relu_deep.md, sessions 18 and 19). The interior Newton solves then also
  /// equilibrate the columns of J before their rank decisions (cond 3e13 -> 18 on such a unit).
  /// Rates that are not affine (deeper nets' sliding field, no box): the same test with r(m) - J m
  /// for r(0), plus the entry's own jump |J_jj| and, where given, rate_rounding; an unboxed
  /// entry's error is |r_j| whatever m_j (the box's one-sided tests would accept a warm start at
  /// 0 or 1), and the inverse of J is taken with its columns equilibrated; where that J is
  /// numerically singular (a rank-deficient cluster: Newton only linear) the shared test applies.
  bool per_entry_tolerance = false;
  /// Per entry, a rounding scale of its rate beyond the masks' terms (per_entry_tolerance): the
  /// sum of the magnitudes of the products its last pass adds, of which the rest of the field's
  /// terms cancel in r_j. Read at every test, so the caller may fill it at its first evaluation of
  /// r. Without it an entry whose mask terms are small beside the rest of its rate stalls below
  /// its own rounding (docs/relu_deep.md, session 17's `drift` branch).
  const Vec* rate_rounding = nullptr;
  /// r is affine in m (one hidden layer: F(m) = F(0) + sum_l m_l D_l): J evaluated once is exact at
  /// every iterate and is never evaluated again (2C evaluations of r each; with 500 candidates the
  /// per-entry Newton iterations of the joint switch re-evaluated it at most steps).
  bool affine = false;
};

struct SlidingSetResult {
  Vec m;                 ///< masks in [0,1]^C
  Vec r;                 ///< rates at m
  double residual = 0;   ///< |Phi(m)|_inf, in rate units
  int iterations = 0;    ///< Newton iterations taken
  int evaluations = 0;   ///< evaluations of r
  int jacobians = 0;     ///< evaluations of J (each with r)
  bool converged = false;
  /// Converged with a residual above the tolerance but within 1e3 of it (1e-9 relative by default)
  /// where Newton stopped making progress: the exact step is at m's rounding level (the rest does
  /// not depend on the masks) or the iteration budget was spent (coincident surfaces: J singular).
  bool at_rounding_floor = false;
};

/// Solve the sliding set from the warm start m0 (clamped into [0,1] with the box). `jacobian`, if
/// given and C x C, is a Jacobian from a nearby earlier solve: the first steps use it (chord
/// steps, one evaluation of r each) and J is evaluated afresh only when a step fails to reduce the
/// residual by half; the Jacobian last used is stored back. Without the box, `jacobian_inverse`
/// (if given) keeps that Jacobian's inverse between solves: used as such when C x C (the caller
/// keeps the two consistent, e.g. rescales both or empties it), stored back, or emptied.
SlidingSetResult solve_sliding_set(const SlidingRates& rates, const Vec& m0, const SlidingSetOptions& opt = {},
                                   Mat* jacobian = nullptr, Mat* jacobian_inverse = nullptr);

/// Column l of dr/dm at m for rates at most quadratic in each mask (ReLU sliding sets, any depth):
/// the central difference r(m + e_l/2) - r(m - e_l/2), exact for such rates. `evaluate` sets r(m).
Vec mask_jacobian_column(const std::function<void(const Vec& m, Vec& r)>& evaluate, const Vec& m, Index l);

/// Column scales 1/|A_:,j| (1 for a zero or non-finite column): A diag(scales) has unit columns,
/// so rank decisions do not depend on the columns' units. One hidden unit's masks enter its rates
/// with its points' loss weights, 1e12 apart late in the log clock (docs/relu_deep.md, session 19).
Vec unit_column_scales(const Mat& A);

/// The least-norm solution of J m = rhs with J's columns equilibrated (unit_column_scales) and the
/// rank threshold of the sliding solves, 1e-13.
Vec equilibrated_least_norm_solve(const Mat& J, const Vec& rhs);

/// The complementarity residual Phi(m) in rate units for rates r at m, scales s_j > 0.
Vec sliding_set_residual(const Vec& m, const Vec& r, const Vec& s);

/// The box problem by projected nonlinear Gauss-Seidel sweeps, for rates affine in each entry's own
/// mask (ReLU sliding sets at any depth: m_j enters the field, not h_j's gradient). Each sweep sets
/// every mask in turn to the consistent value of its one-dimensional problem with the others fixed,
/// from its rates at m_j = 0 and 1 (two evaluations of r per entry); after 4, 8, 16, ... sweeps,
/// solve_sliding_set(opt) from the iterate, whose result is returned once it converges or when
/// max_evaluations (sweeps and Newton together) would be exceeded; its `iterations` count the
/// sweeps and the last Newton solve's steps, `evaluations` all evaluations of r. The joint switch's fallback
/// where Newton stalls: a consistent set always exists (MCP(-r, [0,1]^C) is a variational
/// inequality over a compact convex set with continuous r: Hartman-Stampacchia), so a failure is
/// the method's. For the gradient flows (every kind but the rho-controlled ones) the update of an
/// entry whose rate falls with its mask is the exact minimization of |y'(m)|^2 / 2 (the velocity in
/// the flow's metric) over that mask: sweeps over such entries are coordinate descent on it
/// (docs/events.md, "Sliding sets").
SlidingSetResult solve_sliding_set_by_sweeps(const SlidingRates& rates, const Vec& m0, const SlidingSetOptions& opt,
                                             int max_evaluations);

}  // namespace gfsim
