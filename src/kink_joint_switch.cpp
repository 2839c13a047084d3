// KinkPattern::resolve: the joint switch of an event's surfaces as one box-constrained
// complementarity problem (docs/events.md, "Sliding sets"; the solver is sliding_set.hpp).
#include "gfsim/kink_pattern.hpp"
#include "gfsim/preactivation_rounding.hpp"
#include "gfsim/sliding_set.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace gfsim {

namespace {

// The joint switch's box problem from the current masks m0 (the selection where the problem has
// several solutions), then, should Newton stall (rates that are not monotone in the masks), from
// the two sides, then with affine-covariant damping.
SlidingSetResult solve_with_fallbacks(const SlidingRates& rates, const Vec& m0, const SlidingSetOptions& opt) {
  const Index C = m0.size();
  SlidingSetResult res = solve_sliding_set(rates, m0, opt);
  // Affine rates: from the equivalent control of every entry sliding, m = -J^+ r(0), clamped to
  // [0,1]. It is the answer where every candidate slides, and close to it where a few leave. A
  // restart has no stored control (run_resume.hpp), and from its signs, from 0 and from 1 Newton
  // had not reached the answer of a block of the 100-16-1 copy whose 41 entries all slide.
  if (!res.converged && opt.affine) {
    Vec r0;
    Mat J;
    rates(Vec::Zero(C), r0, &J);
    const Vec control = equilibrated_least_norm_solve(J, -r0);
    if (control.allFinite()) res = solve_sliding_set(rates, control.cwiseMax(0.0).cwiseMin(1.0), opt);
  }
  for (double start : {0.0, 1.0}) {
    if (res.converged) break;
    res = solve_sliding_set(rates, Vec::Constant(C, start), opt);
  }
  // Then from the current masks again with affine-covariant damping (the natural monotonicity
  // test, sliding_set.hpp). Two surfaces of one point in consecutive layers, the deeper unit fed
  // by the other (h_b = W[b, a] relu(h_a) + rest), while the point's activations below span few
  // directions: both constrain the same direction of them, rest's rate is a multiple of h_a's up
  // to the weights' own motion, and the rows of J are nearly dependent. |Phi|^2 then has a curved
  // valley that Armijo's steps crawl along (1e-2 of the Newton step each). [8,8,8,8] gd, seed 2,
  // t = 1.6529: layer 2 unit 1 and layer 3 unit 5 at point 27 among 33 surfaces, residual 0.025
  // after 50 steps from the current masks (0.0098, 1); the root (0.757, 0.034) exists (mapped by
  // solving the other 31 for fixed masks of the two) and this reaches it in 37 steps.
  if (!res.converged) {
    SlidingSetOptions natural = opt;
    natural.natural_monotonicity = true;
    res = solve_sliding_set(rates, m0, natural);
  }
  // Last, Gauss-Seidel sweeps of the one-entry problems, then Newton from there. A consistent set
  // exists (sliding_set.hpp); where Newton stalls in a crowded cluster its local model misleads
  // it ([8,8,8,8] gd seed 13 at t = 1.4617: 27 surfaces of four layers, residual 0.012 after 50
  // steps from each start), while the sweeps, which for a gradient flow lower |theta'|^2 entry by
  // entry, bring the masks into Newton's reach (converged after 128 sweeps, 9556 evaluations of
  // r). Bounded: at most 600 evaluations of r per candidate and 30000 in all (a 150-surface set
  // of [8,8,8,8] gd_polar seed 11 spent 90 s in a few such solves), and not for the hundreds of
  // candidates of a state gone wrong.
  constexpr Index kSweepMaxCandidates = 256;
  constexpr int kSweepEvaluationsPerCandidate = 600, kSweepEvaluations = 30000;
  if (!res.converged && C <= kSweepMaxCandidates) {
    const int budget = std::min(kSweepEvaluationsPerCandidate * int(C), kSweepEvaluations);
    SlidingSetResult swept = solve_sliding_set_by_sweeps(rates, m0, opt, budget);
    if (swept.converged) res = swept;
  }
  return res;
}

}  // namespace

std::optional<KinkPattern::JointSwitch> KinkPattern::resolve(TimePoint tp, const Vec& y, const std::vector<Index>& hit,
                                                             int cluster) {
  if (masks_.empty()) return std::nullopt;
  if (cluster < kJointAfterEvents) return std::nullopt;
  const Vec h = flow_.preactivations(y);
  const double hmax = h.cwiseAbs().maxCoeff();
  // Entries with no switching surface: dead points (every unit below inactive there) and the units
  // below rounding (preactivation_rounding.hpp).
  std::vector<char> dead = dead_entries(h);
  const Vec theta = flow_.theta(y);
  const std::vector<char> below = entries_of_units_below_rounding(flow_.network(), theta, h, flow_.num_points());
  for (std::size_t j = 0; j < dead.size(); ++j) dead[j] |= below[j];
  // Near-zero pre-activations are candidates, deeper ones only if also small against their own
  // terms, |W_k row i| |a_{k-1}(n)|: at a point whose activations below are small (waking up or
  // dying as an upstream unit crosses) every deeper pre-activation is small in proportion and on
  // no surface (its sign is the weights'); against max|h| alone dozens of those at one point
  // became candidates of a joint problem without a consistent set ([8,8,8,8] at t = 1.058).
  const Network& net = flow_.network();
  const Index n = flow_.num_points();
  // Per hidden layer k >= 1 (index k): |W_k row i| and |a_{k-1}(n)| = |mask h of layer k-1 at n|.
  std::vector<Vec> row_norms(std::size_t(std::max<Index>(net.num_layers() - 1, 0))), input_norms(row_norms.size());
  for (Index k = 1, ob = 0; k + 1 < net.num_layers(); ob += net.layer_rows(k - 1) * n, ++k) {
    row_norms[std::size_t(k)] = net.layer(theta, k).rowwise().norm();
    const auto Hb = Eigen::Map<const Mat>(h.data() + ob, net.layer_rows(k - 1), n);
    input_norms[std::size_t(k)] = Hb.cwiseProduct(masks_[std::size_t(k - 1)]).colwise().norm().transpose();
  }
  // A sliding entry or a surface hit of a deeper layer whose pre-activation is not small against
  // its own terms (relative kOffSurface, far above the drift of a slide, ~1e-9) is off its surface:
  // at a point whose activations below are ~1e-12 (waking up as an upstream unit crosses) all
  // deeper pre-activations there are ~1e-13 and their signs are the weights' against the direction
  // the activations below grow in, so the locator sees them cross together with the upstream
  // surface. Their masks change the output at that point in proportion, so no equivalent control
  // exists on them, and as candidates they made the joint problem unsolvable ([8,8,8,8] gd at
  // t = 1.0582: layer 2 units 1, 2, 5, 7 at point 218, 1e-3..0.18 of their terms, 27 surfaces,
  // residual 18.6; without them 23 surfaces and a solution in 8 Newton steps). Each takes the side
  // of its sign instead; should its rate carry it through, that is its next crossing.
  constexpr double kOffSurface = 1e-6;
  // Unless |h| is within the clock's resolution of the kink at the surface's own rate: the event
  // places the state only to a few ulps of the clock value tau, over which h moves by
  // |dh/dtau| ulp(tau), and a state that close cannot be put on either side of the surface. At a
  // point that woke up long enough ago to have activations ~1e-7 but whose loss weight is still
  // large, the deeper surfaces move by more than 1e-6 of their terms per ulp of the clock:
  // [8,8,8,8] gd_polar (seed 3) at t = 1718.4 hit layer 4 units 2 and 5 at point 4 at 1e-5..2e-4
  // of their terms, 3e-17..5e-16 of |dh/dtau| max(1, tau), again and again at zero length (both
  // sides' rates pointing into them); each was put on the side of its sign, and the run stopped as
  // an accumulation of events (96 events, the last 65 at zero length). The rates of the current
  // pattern (sliding entries at their last control; dh/dtau: they carry e^{log_scale}) are taken
  // only when a surface fails the test against its terms.
  // (tau is log_scale on the log clock and t on the linear one, clock.hpp.)
  const double tau = tp.log_scale != 0 ? tp.log_scale : tp.t;
  const double clock_resolution = std::ldexp(1.0, -50) * std::max(1.0, std::abs(tau));  // 4..8 ulps of tau
  auto far_by_terms = [&](Index j) {
    const auto at = flow_.kink_of(j);
    const Index k = at.layer - 1;
    return k > 0 &&
           !(std::abs(h[j]) <= kOffSurface * row_norms[std::size_t(k)][at.unit] * input_norms[std::size_t(k)][at.point]);
  };
  Vec rates_now;
  auto need_rates = [&](Index j) { return rates_now.size() == 0 && !dead[std::size_t(j)] && far_by_terms(j); };
  if (std::any_of(sliding_.begin(), sliding_.end(), need_rates) || std::any_of(hit.begin(), hit.end(), need_rates)) {
    Vec F;
    flow_.rhs(tp, y, F);
    rates_now = flow_.preactivation_tangent(theta, flow_.theta_tangent(y, F));
  }
  auto off_surface = [&](Index j) {
    return far_by_terms(j) && !(std::abs(h[j]) <= std::abs(rates_now[j]) * clock_resolution);
  };
  JointSwitch out;
  std::vector<Index> cand, off;
  for (Index j : std::vector<Index>(sliding_)) {
    if (dead[std::size_t(j)]) {  // its point died upstream: no surface any more
      stop_sliding(j, false);
      out.changes.emplace_back(j, Switch::sliding_exit);
    } else if (off_surface(j)) {
      stop_sliding(j, h[j] > 0);
      out.changes.emplace_back(j, Switch::sliding_exit);
      off.push_back(j);
    } else {
      cand.push_back(j);
    }
  }
  auto add = [&](Index j) {
    if (!dead[std::size_t(j)] && std::find(cand.begin(), cand.end(), j) == cand.end()) cand.push_back(j);
  };
  for (Index j : hit) {
    if (dead[std::size_t(j)] || std::find(off.begin(), off.end(), j) != off.end()) continue;
    if (std::find(cand.begin(), cand.end(), j) == cand.end() && off_surface(j)) {
      const double side = h[j] > 0 ? 1.0 : 0.0;
      if (entry(j) != side) {
        entry(j) = side;
        out.changes.emplace_back(j, Switch::crossing);
      }
      continue;
    }
    add(j);
  }
  for (Index j = 0; j < h.size(); ++j) {
    if (!(std::abs(h[j]) <= 1e-10 * hmax)) continue;
    const auto at = flow_.kink_of(j);
    if (!flow_.point_kept(at.point)) continue;  // a dropped point's surfaces are not tracked (screening)
    const Index k = at.layer - 1;
    if (k > 0 && !(std::abs(h[j]) <= 1e-10 * row_norms[std::size_t(k)][at.unit] *
                                         input_norms[std::size_t(k)][at.point]))
      continue;
    add(j);
  }
  forget_solved();  // the switch writes masks outside the sliding set (crossings, trials)
  const Index C = Index(cand.size());
  Vec m0(C);
  for (Index l = 0; l < C; ++l) m0[l] = entry(cand[l]);
  Vec F;
  const double decay = drift_decay(tp);
  auto evaluate = [&](const Vec& m, Vec& r) {
    for (Index l = 0; l < C; ++l) entry(cand[l]) = m[l];
    flow_.rhs(tp, y, F);
    const Vec dh = flow_.preactivation_tangent(theta, flow_.theta_tangent(y, F));
    r.resize(C);  // with the sliding field's drift decay (sliding_rhs)
    for (Index l = 0; l < C; ++l) r[l] = dh[cand[l]] + decay * h[cand[l]];
  };
  // One hidden layer: the sliding field's own affine model of the rates (one_layer_rates), so the
  // switch solves the problem whose interior solution the field's control then is, and costs one
  // field in all. Deeper nets: the field at every trial; the rates are at most quadratic in each
  // mask (sliding_rhs), so central differences with step 1/2 are its exact derivative.
  Vec r_zero;
  Mat J_affine;
  const bool affine = one_layer_rates(tp, y, cand, r_zero, J_affine);
  const SlidingRates rates = [&](const Vec& m, Vec& r, Mat* J) {
    if (affine) {
      r.noalias() = r_zero + J_affine * m;
      if (J) *J = J_affine;
      return;
    }
    evaluate(m, r);
    if (!J) return;
    J->resize(C, C);
    for (Index l = 0; l < C; ++l) J->col(l) = mask_jacobian_column(evaluate, m, l);
  };
  // Coincident surfaces of deeper layers (one unit at points whose activations below are
  // parallel) share one mask, as in the sliding field's own solve (sliding_rhs), which then
  // continues this split instead of leaving [0,1] at once from an uneven one.
  SlidingSetOptions opt;
  opt.share_coincident = net.num_layers() > 2;
  // One hidden layer: each candidate against its own scale. Late in the log clock the loss weights
  // span 1e-12..1 (misclassified points at output 0 beside well-classified ones sliding on the same
  // units), the candidates' rates and dr/dm 1e-4..1e10, and one tolerance 1e-12 (|r|_inf + max s)
  // accepted the warm start of 502 candidates as converged with rates of 1e-2 unmatched: a surface
  // hit on the wrong side of its h by 9e-4 stayed there, stale masks projected onto [0,1] became
  // exits (the 100-16-1 copy of relu_large, t = 1.47e9; docs/relu_deep.md, session 18). Deep nets
  // keep the shared tolerance (their candidates' rates carry the rounding of terms that cancel).
  opt.per_entry_tolerance = net.num_layers() == 2;
  opt.affine = net.num_layers() == 2;  // the rates are affine in the masks: one Jacobian per solve
  SlidingSetResult res;
  if (affine && C > 1) {
    // One hidden layer: J couples the candidates of different units only through the projection's
    // rank-one term, proportional to the drift of h off the surfaces (zero for gd). Each unit's
    // block is solved alone, so that neither one unit's hard block nor a global line search over
    // 16 independent ones holds the others back, and the dense factorizations are the blocks'
    // (sum of C_i^3 instead of C^3). Their union is the answer where no term couples them, else
    // the start of the whole problem's solve.
    std::vector<Index> order(static_cast<std::size_t>(C));
    for (Index l = 0; l < C; ++l) order[std::size_t(l)] = l;
    std::vector<Index> unit(static_cast<std::size_t>(C));
    for (Index l = 0; l < C; ++l) unit[std::size_t(l)] = flow_.kink_of(cand[std::size_t(l)]).unit;
    auto unit_of = [&](Index l) { return unit[std::size_t(l)]; };
    std::stable_sort(order.begin(), order.end(), [&](Index p, Index q) { return unit_of(p) < unit_of(q); });
    Vec m_blocks = m0;
    bool coupled = false, blocks_converged = true;
    SlidingSetResult worst;
    for (std::size_t b = 0; b < order.size();) {
      std::size_t e = b;
      while (e < order.size() && unit_of(order[e]) == unit_of(order[b])) ++e;
      const Index nb = Index(e - b);
      Vec r0b(nb), m0b(nb);
      Mat Jb(nb, nb);
      for (Index p = 0; p < nb; ++p) {
        r0b[p] = r_zero[order[b + std::size_t(p)]];
        m0b[p] = m0[order[b + std::size_t(p)]];
        for (Index q = 0; q < nb; ++q) Jb(p, q) = J_affine(order[b + std::size_t(p)], order[b + std::size_t(q)]);
      }
      for (Index p = 0; p < nb && !coupled; ++p)
        for (Index l = 0; l < C && !coupled; ++l)
          coupled = unit_of(l) != unit_of(order[b]) && J_affine(order[b + std::size_t(p)], l) != 0.0;
      const SlidingRates block = [&](const Vec& m, Vec& r, Mat* J) {
        r.noalias() = r0b + Jb * m;
        if (J) *J = Jb;
      };
      const SlidingSetResult rb = solve_with_fallbacks(block, m0b, opt);
      for (Index p = 0; p < nb; ++p) m_blocks[order[b + std::size_t(p)]] = rb.m[p];
      if (!rb.converged && (blocks_converged || rb.residual > worst.residual)) worst = rb;
      blocks_converged &= rb.converged;
      b = e;
    }
    if (blocks_converged && !coupled) {
      res.m = m_blocks;
      rates(res.m, res.r, nullptr);
      res.converged = true;
    } else if (blocks_converged) {
      res = solve_sliding_set(rates, m_blocks, opt);
      if (!res.converged) res = solve_with_fallbacks(rates, m0, opt);
    } else {
      res = worst;
    }
  } else {
    res = solve_with_fallbacks(rates, m0, opt);
  }
  if (!res.converged) {
    for (Index l = 0; l < C; ++l) entry(cand[l]) = m0[l];
    out.failure = fmt::format("no consistent sliding set of {} surfaces (complementarity residual {:.3g} after {} "
                              "Newton steps)", C, res.residual, res.iterations);
    return out;
  }
  for (Index l = 0; l < C; ++l) {
    const Index j = cand[l];
    const double m = res.m[l];
    const bool was_sliding = std::find(sliding_.begin(), sliding_.end(), j) != sliding_.end();
    if (m > 0.0 && m < 1.0) {
      entry(j) = m;
      // A new control of the same sliding set changes a deep net's field (its sliding solve starts
      // from these masks), not a one-hidden-layer one's: there the closed form re-solves the
      // masks from the sliding set at every evaluation, and m0 is merely the control of the last
      // evaluation, at another state (a trial stage, the root search). Counted as a change, that
      // difference defeated EventLocator::apply's overruling of an empty switch at a zero-length
      // restart: the 100-16-1 copy of relu_large stopped after 65 restarts that switched nothing
      // (docs/relu_deep.md, session 17).
      if (was_sliding && net.num_layers() > 2) out.masks_moved = std::max(out.masks_moved, std::abs(m - m0[l]));
      if (!was_sliding) {
        start_sliding(j);
        out.changes.emplace_back(j, Switch::sliding_entry);
      }
    } else if (was_sliding) {
      stop_sliding(j, m == 1.0);
      out.changes.emplace_back(j, Switch::sliding_exit);
    } else {
      entry(j) = m;
      if (m != m0[l]) out.changes.emplace_back(j, Switch::crossing);
    }
  }
  return out;
}

bool KinkPattern::one_layer_rates(TimePoint tp, const Vec& y, const std::vector<Index>& entries, Vec& r0, Mat& J) {
  const Network& net = flow_.network();
  if (masks_.empty() || net.num_layers() != 2) return false;
  const Index C = Index(entries.size());
  if (C == 0) {
    r0.resize(0);
    J.resize(0, 0);
    return true;
  }
  const auto size = static_cast<std::size_t>(C);
  std::vector<Index> unit(size), point(size), slot(size);
  for (Index l = 0; l < C; ++l) {
    const auto at = flow_.kink_of(entries[std::size_t(l)]);
    unit[std::size_t(l)] = at.unit;
    point[std::size_t(l)] = at.point;
    if (!flow_.point_kept(at.point)) return false;
  }
  // As one_layer_control: mask m_l adds dG_l = coef_l x_{n_l} to row i_l of layer 1's loss descent,
  // which the kind maps to alpha (dG_l - c_l V_1) in the state and s1 times that in theta_1.
  const LayerResponse response = flow_.kind_model().layer_response(net, tp, y, 0);
  const Index off = response.offset;
  for (Index j : entries) entry(j) = 0.0;
  Vec F;
  flow_.rhs(tp, y, F);  // F(0): leaves the loss weights of these masks in the flow
  // The evaluation may have screened the points afresh: their slots in the loss weights are read
  // after it.
  for (Index l = 0; l < C; ++l)
    if ((slot[std::size_t(l)] = flow_.point_slot(point[std::size_t(l)])) < 0) return false;
  const Vec& a = flow_.loss_weights();
  const Mat& XT = flow_.inputs();
  const auto V1 = net.layer(y.segment(off, flow_.num_params()), 0);
  const auto W2 = y.segment(off + net.layer_offset(1), net.layer_size(1));
  const double v1_norm2 = response.projected ? V1.squaredNorm() : 1.0;
  const double gain = response.weight_scale * response.alpha;
  Vec coef(C), hv(C), c(C);
  for (Index l = 0; l < C; ++l) {
    const auto i = unit[std::size_t(l)];
    const auto x = XT.col(point[std::size_t(l)]);
    coef[l] = a[slot[std::size_t(l)]] * W2[i];
    hv[l] = V1.row(i).dot(x);  // 0 on the surface up to the integrator's drift
    c[l] = response.projected ? coef[l] * hv[l] / v1_norm2 : 0.0;
  }
  const Vec dtheta = flow_.theta_tangent(y, F);  // net.layer maps it: it must outlive dW1
  const auto dW1 = net.layer(dtheta, 0);
  r0.resize(C);
  // The rates the sliding field holds at 0 are r_j + kDriftDecay h_j (one_layer_control).
  for (Index l = 0; l < C; ++l)
    r0[l] = dW1.row(unit[std::size_t(l)]).dot(XT.col(point[std::size_t(l)])) +
            drift_decay(tp) * response.weight_scale * hv[l];
  J.noalias() = (-gain * hv) * c.transpose();
  for (Index j = 0; j < C; ++j)
    for (Index l = 0; l < C; ++l)
      if (unit[std::size_t(j)] == unit[std::size_t(l)])
        J(j, l) += gain * coef[l] * XT.col(point[std::size_t(j)]).dot(XT.col(point[std::size_t(l)]));
  return true;
}

}  // namespace gfsim
