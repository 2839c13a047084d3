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
  const Index C = Index(cand.size());
  Vec m0(C);
  for (Index l = 0; l < C; ++l) m0[l] = entry(cand[l]);
  Vec F;
  auto evaluate = [&](const Vec& m, Vec& r) {
    for (Index l = 0; l < C; ++l) entry(cand[l]) = m[l];
    flow_.rhs(tp, y, F);
    const Vec dh = flow_.preactivation_tangent(theta, flow_.theta_tangent(y, F));
    r.resize(C);
    for (Index l = 0; l < C; ++l) r[l] = dh[cand[l]];
  };
  // The rates are at most quadratic in each mask (sliding_rhs): central differences with step 1/2
  // are its exact derivative.
  const SlidingRates rates = [&](const Vec& m, Vec& r, Mat* J) {
    evaluate(m, r);
    if (!J) return;
    J->resize(C, C);
    for (Index l = 0; l < C; ++l) J->col(l) = mask_jacobian_column(evaluate, m, l);
  };
  // From the current masks first (the selection where the problem has several solutions), then,
  // should Newton stall (rates that are not monotone in the masks), from the two sides.
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
  SlidingSetResult res = solve_sliding_set(rates, m0, opt);
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

}  // namespace gfsim
