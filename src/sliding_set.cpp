#include "gfsim/sliding_set.hpp"

#include <Eigen/LU>
#include <Eigen/QR>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace gfsim {

Vec sliding_set_residual(const Vec& m, const Vec& r, const Vec& s) {
  // Zero exactly at a consistent set: interior m_j with r_j = 0, m_j = 0 with r_j <= 0, m_j = 1
  // with r_j >= 0 (the natural residual of MCP(-r, [0,1]^C), scaled back to rate units).
  return s.cwiseProduct(m - (m + r.cwiseQuotient(s)).cwiseMax(0.0).cwiseMin(1.0));
}

Vec mask_jacobian_column(const std::function<void(const Vec& m, Vec& r)>& evaluate, const Vec& m, Index l) {
  Vec ml = m, rp, rm;
  ml[l] = m[l] + 0.5;
  evaluate(ml, rp);
  ml[l] = m[l] - 0.5;
  evaluate(ml, rm);
  return rp - rm;
}

namespace {

// Rank-revealing complete orthogonal decomposition with a relative rank threshold of 1e-13. The
// threshold must be set before compute(): the decomposition forms the Householder coefficients of
// Z for the rank it finds then, and a threshold set afterwards changes rank() without them, so
// solve() read uninitialized coefficients (valgrind; the deep event runs then depended on the
// heap's contents, i.e. on the command line).
Eigen::CompleteOrthogonalDecomposition<Mat> least_norm(const Mat& J) {
  Eigen::CompleteOrthogonalDecomposition<Mat> cod(J.rows(), J.cols());
  cod.setThreshold(1e-13);
  cod.compute(J);
  return cod;
}

// The interior block's Newton equations J step = rhs. Least-norm (complete orthogonal
// decomposition) where the block may be singular by design: the box problem's candidates include
// coincident surfaces (duplicate data points), which then share the correction equally. Without
// the box (the equivalent control of a given sliding set, transversal surfaces) a partial-pivot
// LU, cheaper and without rank decisions; the least-norm step where its condition estimate shows
// a numerically singular block (a kept Jacobian's zero row of a new entry, start_sliding).
Vec interior_solve(const Mat& J, const Vec& rhs, bool box) {
  if (!box) {
    const Eigen::PartialPivLU<Mat> lu(J);
    if (lu.rcond() > 1e-13) {
      Vec step = lu.solve(rhs);
      if (step.allFinite()) return step;
    }
  }
  return least_norm(J).solve(rhs);
}

// Active-set Newton step on Phi: entries whose z = m + r/s leaves [0,1] go to that bound, the
// others solve J_II step_I = -(r_I + J_IB step_B) (the linearized rates vanish there). Without
// the box every entry is interior.
// An entry whose mask moves no rate (its column of J below 1e-12 of the largest diagonal, e.g. a
// unit whose backward signal at that point is blocked by inactive units above: both one-sided
// fields are the same field) has no equivalent control: it takes the bound its rate points to
// (r > 0: the active side, r < 0: the inactive one), z = +-inf. With s_j replaced by the largest
// scale (its own is zero) z stayed inside [0,1], the Newton row was zero and the mask stayed where
// the warm start had it: [8,8,8,8] gd (seed 3) at t = 1.855e6 kept such a surface on its active
// side with rate -0.0112 (scaled by e^s) and slid on it with a mask that moved nothing.
// `scale`: each rate's own scale (a mask moves rate i if |J_ij| > 1e-12 scale_i; the largest
// diagonal for every row unless SlidingSetOptions::per_entry_tolerance).
Vec newton_step(const Vec& m, const Vec& r, const Mat& J, const Vec& s, bool box, const Vec& scale, bool equilibrate) {
  const Index C = m.size();
  Vec step = Vec::Zero(C);
  std::vector<Index> interior;
  for (Index j = 0; j < C; ++j) {
    const bool inert = box && r[j] != 0 && !((J.col(j).cwiseAbs().array() > 1e-12 * scale.array()).any());
    const double z = inert ? (r[j] > 0 ? 2.0 : -1.0) : m[j] + r[j] / s[j];
    if (box && z <= 0.0)
      step[j] = -m[j];
    else if (box && z >= 1.0)
      step[j] = 1.0 - m[j];
    else
      interior.push_back(j);
  }
  // The same for an interior entry whose mask moves no interior rate, its own included (its column
  // of J vanishes on the interior rows; what it moves are rates of entries at a bound only): the
  // interior equations cannot fix it, so its rate, the same on both sides of its surface, takes
  // it to that side. A layer-2 surface sliding at a point whose only active layer-3 unit just
  // went inactive there: no backward signal through it, J_aa = 0, and its mask moves only the
  // rate of the layer-3 surface it feeds (W[b, a] r_a). Least-norm steps left its mask where it
  // was, its rate 0.22 unmatched ([8,8,8] gd seed 2, t = 0.4616). Entries leaving the interior
  // can make this true of others: repeated until none changes.
  for (bool moved = box; moved;) {
    moved = false;
    for (auto it = interior.begin(); it != interior.end();) {
      const Index j = *it;
      bool moves = false;
      for (Index i : interior) moves |= std::abs(J(i, j)) > 1e-12 * scale[i];
      if (r[j] != 0 && !moves) {
        step[j] = (r[j] > 0 ? 1.0 : 0.0) - m[j];
        it = interior.erase(it);
        moved = true;
      } else {
        ++it;
      }
    }
  }
  if (interior.empty()) return step;
  const Index ni = Index(interior.size());
  Mat JII(ni, ni);
  Vec rhs(ni);
  for (Index p = 0; p < ni; ++p) {
    const Index j = interior[std::size_t(p)];
    rhs[p] = -r[j] - J.row(j).dot(step);  // step is zero on the interior entries here
    for (Index q = 0; q < ni; ++q) JII(p, q) = J(j, interior[std::size_t(q)]);
  }
  // Per-entry scales (one hidden layer): columns of J_II equilibrated before the rank decisions
  // of the least-norm solve. A unit's columns are its points' loss weights times their Gram
  // columns, and late in the log clock the weights of misclassified and well-classified points
  // sliding on one unit differ by 1e12: cond(J_II) = 3e13 against 18 for the equilibrated block,
  // so the threshold 1e-13 cut directions of the light points' masks and Newton stalled there
  // (the 100-16-1 copy of relu_large, t = 1e9; docs/relu_deep.md, session 19).
  const Vec col_scale = equilibrate ? unit_column_scales(JII) : Vec(Vec::Ones(ni));
  const Vec si = col_scale.cwiseProduct(interior_solve(JII * col_scale.asDiagonal(), rhs, box));
  for (Index p = 0; p < ni; ++p) step[interior[std::size_t(p)]] = si[p];
  return step;
}

// The inverse of an unboxed problem's Jacobian: Newton steps are then one matrix-vector product
// and Broyden's update of J is a rank-one update of it (Sherman-Morrison), so a solve factors J
// only when it evaluates J afresh. Least-norm (pseudo-inverse) where J is numerically singular;
// `singular` tells which.
Mat inverse_of(const Mat& J, bool& singular) {
  const Eigen::PartialPivLU<Mat> lu(J);
  singular = false;
  if (lu.rcond() > 1e-13) {
    Mat inv = lu.inverse();
    if (inv.allFinite()) return inv;
  }
  singular = true;
  return least_norm(J).pseudoInverse();
}

// The same with J's columns equilibrated first (per-entry tolerance: columns 1e12 apart, e.g.
// a dead point's entries beside others, would otherwise lose the light columns' directions to
// the rank threshold).
Mat equilibrated_inverse_of(const Mat& J, bool& singular) {
  const Vec scale = unit_column_scales(J);
  return scale.asDiagonal() * inverse_of(J * scale.asDiagonal(), singular);
}

// True if a and b are nonzero and point the same way to within an angle of 1e-8 radians.
bool parallel(const Vec& a, const Vec& b) {
  const double aa = a.squaredNorm(), bb = b.squaredNorm(), ab = a.dot(b);
  if (!(aa > 0 && bb > 0 && ab > 0)) return false;
  return (a - (ab / bb) * b).squaredNorm() <= 1e-16 * aa;
}

// Groups of coincident entries: rows and columns of J pairwise parallel (the same surface seen
// at several points, e.g. one unit at points whose activations below are parallel: their rates
// are proportional and their masks enter the field through one combination sum_j w_j m_j,
// w_j = |column j|). Sets every group's masks to their common value sum w m / sum w, the
// combination unchanged. Returns false if there is no group.
bool share_coincident(const Mat& J, Vec& m) {
  const Index C = m.size();
  std::vector<Index> group(std::size_t(C), -1);
  bool any = false;
  for (Index a = 0; a < C; ++a) {
    if (group[std::size_t(a)] >= 0) continue;
    for (Index b = a + 1; b < C; ++b) {
      if (group[std::size_t(b)] >= 0) continue;
      if (parallel(J.col(a), J.col(b)) && parallel(J.row(a).transpose(), J.row(b).transpose())) {
        group[std::size_t(a)] = group[std::size_t(b)] = a;
        any = true;
      }
    }
  }
  if (!any) return false;
  for (Index a = 0; a < C; ++a) {
    if (group[std::size_t(a)] != a) continue;
    double wm = 0, w = 0;
    for (Index j = a; j < C; ++j)
      if (group[std::size_t(j)] == a) {
        const double wj = J.col(j).norm();
        wm += wj * m[j];
        w += wj;
      }
    for (Index j = a; j < C; ++j)
      if (group[std::size_t(j)] == a) m[j] = wm / w;
  }
  return true;
}

}  // namespace

Vec unit_column_scales(const Mat& A) {
  Vec scale = Vec::Ones(A.cols());
  for (Index q = 0; q < A.cols(); ++q)
    if (const double norm = A.col(q).norm(); norm > 0 && std::isfinite(norm)) scale[q] = 1.0 / norm;
  return scale;
}

Vec equilibrated_least_norm_solve(const Mat& J, const Vec& rhs) {
  const Vec scale = unit_column_scales(J);
  return scale.cwiseProduct(least_norm(J * scale.asDiagonal()).solve(rhs));
}

SlidingSetResult solve_sliding_set(const SlidingRates& rates, const Vec& m0, const SlidingSetOptions& opt,
                                   Mat* jacobian, Mat* jacobian_inverse) {
  // A rest up to kFloor tolerances (1e-9 relative by default) where Newton stops making progress is
  // the rounding of r: accepted (SlidingSetResult::at_rounding_floor).
  constexpr double kFloor = 1e3;
  SlidingSetResult res;
  const Index C = m0.size();
  const bool box = opt.box;
  auto project = [box](const Vec& m) -> Vec { return box ? Vec(m.cwiseMax(0.0).cwiseMin(1.0)) : m; };
  auto residual = [box](const Vec& m, const Vec& r, const Vec& s) -> Vec {
    return box ? sliding_set_residual(m, r, s) : Vec(-r);
  };
  res.m = project(m0);
  res.r.resize(C);
  if (C == 0) {
    res.converged = true;
    return res;
  }
  auto invert = [&opt](const Mat& A, bool& sing) {
    return opt.per_entry_tolerance ? equilibrated_inverse_of(A, sing) : inverse_of(A, sing);
  };
  Mat J, Jinv;
  bool exact = false;       // J evaluated at the current m
  bool has_inverse = false;  // Jinv is J's inverse (unboxed problems only)
  bool singular = false;     // ... its least-norm pseudo-inverse (J numerically singular)
  if (jacobian && jacobian->rows() == C && jacobian->cols() == C) {
    J = *jacobian;
    if (!box && jacobian_inverse && jacobian_inverse->rows() == C && jacobian_inverse->cols() == C) {
      Jinv = *jacobian_inverse;
      has_inverse = true;
    }
    rates(res.m, res.r, nullptr);
  } else {
    rates(res.m, res.r, &J);
    exact = true;
    ++res.jacobians;
  }
  res.evaluations = 1;
  // Rate scales: |dr_j/dm_j| is the normal speed change between the two sides of surface j (the
  // jump of the field seen by h_j), the natural unit of entry j's complementarity residual; it
  // also decides the side when both one-sided rates have one sign (z = m + r/s leaves [0,1]).
  double smax = J.diagonal().cwiseAbs().maxCoeff();
  if (!(smax > 0)) smax = J.cwiseAbs().maxCoeff();
  if (!(smax > 0)) smax = std::max(res.r.cwiseAbs().maxCoeff(), 1.0);
  Vec s = J.diagonal().cwiseAbs();
  // Per entry (per_entry_tolerance): its diagonal floored only where it vanishes (then its own
  // row's largest entry), and the scale of its rate |r_j(m0)| + s_j for the inert tests; otherwise
  // against the largest diagonal, and that for every rate.
  Vec scale = Vec::Constant(C, smax);
  for (Index j = 0; j < C; ++j) {
    const double row = opt.per_entry_tolerance ? J.row(j).cwiseAbs().maxCoeff() : smax;
    if (!(s[j] > (opt.per_entry_tolerance ? 0.0 : 1e-12 * row))) s[j] = opt.per_entry_tolerance && row > 0 ? row : smax;
    if (opt.per_entry_tolerance) scale[j] = std::abs(res.r[j]) + s[j];
  }
  const double tol = opt.rel_tol * (res.r.cwiseAbs().maxCoeff() + smax);
  // Converged: |Phi|_inf <= tol; per entry (affine rates), each entry's complementarity error in
  // rate units (|r_j| inside the box, the wrong-signed part of r_j at a bound) against rel_tol
  // times the rounding scale of its rate at m, |r_j(0)| + sum_l |J_jl| m_l, the size of the terms
  // it is summed from. Phi_j = s_j (m_j - clamp(m_j + r_j/s_j)) is no such measure across scales:
  // for an entry whose own jump s_j is small beside its rate (a well-classified point, loss weight
  // 1e-13, on a unit beside misclassified ones at weight 1) it is at most s_j whatever r_j; and a
  // tolerance from |r_j(m0)| + s_j (or s_j floored by its row's largest entry, the misclassified
  // points' 1e12 in the log clock at t = 4e9) accepted interior masks with |r_j| = 0.1 (the
  // 100-16-1 copy of relu_large; docs/relu_deep.md, session 19).
  auto within = [&](const Vec& m, const Vec& r, const Vec& ph, double factor) {
    // A numerically singular J of unboxed rates (more surfaces of one unit than its inputs: Newton
    // converges only linearly in the rest): the shared tolerance, as before per-entry tests.
    if (!opt.per_entry_tolerance || (!box && singular)) return (ph.cwiseAbs().array() <= factor * tol).all();  // false on NaN
    Vec rounding = (r - J * m).cwiseAbs() + J.cwiseAbs() * m.cwiseAbs();
    // Rates that are not affine (deeper nets): plus the caller's rounding of the terms that cancel
    // in r_j, and the entry's own jump s_j, the unit of its complementarity residual. Without s_j
    // the tolerance in crowded clusters (40 surfaces of one point, nearly dependent rows, t ~ 1..2
    // on [8,8,8,8]) fell 30..1000 times below the shared one and the solves there failed more
    // often; s_j is the entry's own diagonal, not its row's largest entry, which a dead point's
    // column (1e13) sets (docs/relu_deep.md, session 20).
    if (opt.rate_rounding && opt.rate_rounding->size() == C) rounding += *opt.rate_rounding;
    if (!opt.affine) rounding += s;
    for (Index j = 0; j < C; ++j) {
      const double err = !box           ? std::abs(r[j])
                         : m[j] <= 0.0 ? std::max(r[j], 0.0)
                         : m[j] >= 1.0 ? std::max(-r[j], 0.0)
                                       : std::abs(r[j]);
      if (!(err <= factor * opt.rel_tol * rounding[j])) return false;
    }
    return true;
  };
  Vec phi = residual(res.m, res.r, s);
  double merit = phi.squaredNorm();
  Vec rt(C), trial(C), trial_phi;
  for (; res.iterations < opt.max_iterations; ++res.iterations) {
    res.residual = phi.lpNorm<Eigen::Infinity>();
    if (within(res.m, res.r, phi, 1.0)) {
      res.converged = true;
      break;
    }
    if (!(res.residual < std::numeric_limits<double>::infinity())) break;  // NaN or Inf rates: no solve
    if (res.jacobians > opt.max_jacobians) break;
    if (!box && !has_inverse) {
      Jinv = invert(J, singular);
      has_inverse = true;
      // A kept J that is numerically singular (a new entry's zero row, or stale columns next to
      // fresh ones of nearly coincident surfaces) is evaluated afresh before it steps: its
      // pseudo-inverse resolves directions the exact J does not (the stale and the fresh columns
      // of one coincident group differ by more than its near-null singular values), and its least-
      // norm steps moved a mask of such a group by 2e-2 while the group's others moved by 5e-5.
      if (singular && !exact) {
        rates(res.m, res.r, &J);
        ++res.evaluations;
        ++res.jacobians;
        exact = true;
        Jinv = invert(J, singular);
        phi = residual(res.m, res.r, s);
        merit = phi.squaredNorm();
      }
    }
    const Vec step = box ? newton_step(res.m, res.r, J, s, box, scale, opt.per_entry_tolerance) : Vec(-(Jinv * res.r));
    // With the exact Jacobian a step at the rounding level of m cannot lower the residual: what is
    // left does not depend on the masks (e.g. an entry whose pre-activation vanishes identically,
    // its rate round-off). If that rest is small (kFloor tolerances), the masks are as good as
    // they get: converged at the floor. A large rest is an inconsistent set (no solution).
    if (exact && within(res.m, res.r, phi, kFloor) &&
        step.lpNorm<Eigen::Infinity>() <= 1e-12 * std::max(1.0, res.m.lpNorm<Eigen::Infinity>())) {
      res.converged = res.at_rounding_floor = true;
      break;
    }
    // Projected step with Armijo backtracking on |Phi|^2. A stale Jacobian that does not give a
    // decrease at once is evaluated afresh; with the exact one, a full step when no decrease is
    // found (the iteration count bounds the work either way).
    // With natural_monotonicity the test is Deuflhard's restricted one on the simplified Newton
    // correction at the trial (the same J): affine covariant.
    double lambda = 1.0, trial_merit = 0.0;
    bool accepted = false;
    const double step_norm = step.norm();
    for (int back = 0; back < (exact ? 30 : 1); ++back, lambda *= 0.5) {
      trial = project(res.m + lambda * step);
      rates(trial, rt, nullptr);
      ++res.evaluations;
      trial_phi = residual(trial, rt, s);
      trial_merit = trial_phi.squaredNorm();
      if (opt.natural_monotonicity ? newton_step(trial, rt, J, s, box, scale, opt.per_entry_tolerance).norm() <= (1.0 - 0.25 * lambda) * step_norm
                                   : trial_merit <= (1.0 - 1e-4 * lambda) * merit) {
        accepted = true;
        break;
      }
    }
    if (!accepted && !exact) {
      rates(res.m, res.r, &J);
      ++res.evaluations;
      ++res.jacobians;
      exact = true;
      has_inverse = false;
      continue;
    }
    if (!accepted) {
      trial = project(res.m + step);
      rates(trial, rt, nullptr);
      ++res.evaluations;
      trial_phi = residual(trial, rt, s);
      trial_merit = trial_phi.squaredNorm();
    }
    // A step that does not lower the residual tenfold (box: chord steps) or halve it (no box:
    // Broyden steps, which converge linearly at first, often by less than tenfold a step; the
    // tenfold rule re-evaluated J, 2C evaluations of r, several times as often there for a step
    // or two saved) evaluates J afresh.
    const bool slow = opt.natural_monotonicity || trial_merit > (box ? 1e-2 : 0.25) * merit;
    // A numerically singular J (nearly coincident surfaces: the same unit at points whose
    // activations below are nearly parallel, whose masks enter the field through one combination
    // only; or the zero rows of entries that started sliding) gets no secant update: a rank-one
    // update of a pseudo-inverse is no least-norm operator, and its steps moved the masks along
    // J's near-null directions, where the residual does not change, by whatever they happened to
    // be ([8,8,8,8] gd, t = 1.145: two masks the joint switch set to 1e-5 went to -0.06 within
    // one step, an exit each time, and the joint switch put them back 65 times). Chord steps with
    // the least-norm inverse leave those components where the warm start (the joint switch's
    // split) put them; a stall evaluates J afresh (below), which fills new entries' rows.
    if (!box && !singular && !opt.natural_monotonicity) {
      // Broyden's update of a kept Jacobian along the step taken: superlinear chord steps. Its
      // inverse follows by Sherman-Morrison (a tiny denominator: factor afresh at the next step).
      const Vec dm = trial - res.m;
      const double dm2 = dm.squaredNorm();
      if (dm2 > 0) {
        const Vec dr = rt - res.r;
        J += (dr - J * dm) * (dm.transpose() / dm2);
        const Vec u = Jinv * dr;
        const double denom = dm.dot(u);
        if (std::abs(denom) > 1e-12 * std::sqrt(dm2) * u.norm() && std::isfinite(denom)) {
          const Vec w = Jinv.transpose() * dm;  // (dm^T Jinv)^T
          Jinv += (dm - u) * (w.transpose() / denom);
        } else {
          has_inverse = false;
        }
      }
    }
    res.m.swap(trial);
    res.r.swap(rt);
    phi.swap(trial_phi);
    merit = trial_merit;
    // Rates affine in the masks (one hidden layer): the Jacobian of the start is exact everywhere.
    exact = opt.affine;
    if (slow && !opt.affine && !within(res.m, res.r, phi, 1.0)) {
      rates(res.m, res.r, &J);
      ++res.evaluations;
      ++res.jacobians;
      exact = true;
      has_inverse = false;
    }
  }
  res.residual = phi.lpNorm<Eigen::Infinity>();
  // Newton's budget spent within kFloor tolerances: the same floor (coincident surfaces make J
  // singular, and its near-null directions take steps that the rounding of r does not reward).
  if (!res.at_rounding_floor && !within(res.m, res.r, phi, 1.0) && within(res.m, res.r, phi, kFloor))
    res.at_rounding_floor = true;
  res.converged = within(res.m, res.r, phi, 1.0) || res.at_rounding_floor;
  // Coincident surfaces share their control equally: the Filippov field of one surface met at
  // several points takes one mask for all of them (its two sides have them all 0 or all 1), and
  // least-norm steps from a warm start keep whatever split the start had. Where such a split
  // left one mask at 1e-11 and its twins at 0.74, the sliding field's steps took that one below 0
  // at once: an exit, and the joint switch put it back ([8,8,8,8] gd, t = 1.1456, 65 times).
  // Kept only if the residual stays within the tolerance (the rates move at second order).
  if (opt.share_coincident && C >= 2 && res.converged && (box || singular)) {
    Vec ms = res.m;
    if (share_coincident(J, ms)) {
      rates(ms, rt, nullptr);
      ++res.evaluations;
      const Vec phis = residual(ms, rt, s);
      if (phis.lpNorm<Eigen::Infinity>() <= std::max(tol, res.residual)) {
        res.m.swap(ms);
        res.r.swap(rt);
        phi = phis;
        res.residual = phi.lpNorm<Eigen::Infinity>();
      }
    }
  }
  if (jacobian) *jacobian = J;
  if (jacobian_inverse) {
    // A pseudo-inverse is not kept: the next solve factors the kept J again and knows it singular.
    if (has_inverse && !singular)
      jacobian_inverse->swap(Jinv);
    else
      jacobian_inverse->resize(0, 0);
  }
  return res;
}

namespace {

// Entry l's one-dimensional problem with the others fixed, from its rates at m_l = 0 and 1 (exact
// for a rate affine in its own mask): falling rates (an attracting surface, or a crossing) have
// one consistent value; rising ones (a repelling surface) up to three, of which the nearest to
// `old` is kept, so that a consistent side is not left for the other one.
double one_entry_mask(double r0, double r1, double old) {
  const double slope = r1 - r0;
  if (slope < 0) return r0 <= 0 ? 0.0 : r1 >= 0 ? 1.0 : r0 / (r0 - r1);
  if (r0 == 0 && r1 == 0) return old;  // the mask moves nothing and nothing moves it
  double best = old, dist = std::numeric_limits<double>::infinity();
  auto consider = [&](double v) {
    if (std::abs(v - old) < dist) {
      dist = std::abs(v - old);
      best = v;
    }
  };
  if (r0 <= 0) consider(0.0);
  if (r1 >= 0) consider(1.0);
  if (r0 < 0 && r1 > 0) consider(r0 / (r0 - r1));
  return best;
}

}  // namespace

SlidingSetResult solve_sliding_set_by_sweeps(const SlidingRates& rates, const Vec& m0, const SlidingSetOptions& opt,
                                             int max_evaluations) {
  const Index C = m0.size();
  Vec m = m0.cwiseMax(0.0).cwiseMin(1.0), r(C), trial;
  SlidingSetResult res;
  int evaluations = 0, sweeps = 0;
  for (int polish_after = 4;; polish_after *= 2) {
    for (; sweeps < polish_after && evaluations + 2 * C <= max_evaluations; ++sweeps) {
      for (Index l = 0; l < C; ++l) {
        trial = m;
        trial[l] = 0.0;
        rates(trial, r, nullptr);
        const double r0 = r[l];
        trial[l] = 1.0;
        rates(trial, r, nullptr);
        evaluations += 2;
        if (std::isfinite(r0) && std::isfinite(r[l])) m[l] = one_entry_mask(r0, r[l], m[l]);
      }
    }
    res = solve_sliding_set(rates, m, opt);  // Newton's quadratic end game from the sweeps' iterate
    evaluations += res.evaluations;
    res.iterations += sweeps;
    res.evaluations = evaluations;
    if (res.converged || evaluations + 2 * C > max_evaluations) return res;
  }
}

}  // namespace gfsim
