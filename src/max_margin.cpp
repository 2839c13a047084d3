// Max-margin reference for K = 1 (see max_margin.hpp).
//
// Method: the dual active-set method of Goldfarb & Idnani (Math. Programming 27:1-33, 1983) on the primal
//   min ||w||^2/2  s.t.  Z w >= 1.
// With Hessian I it is an active-set method on the dual NNQP  min_a ||Z^T a||^2/2 - sum a, a >= 0, in which
// every iterate is the exact optimum over its active set. Chosen over the alternatives because it
//  - starts from the unconstrained minimiser w = 0 and needs no feasible point;
//  - terminates finitely at the exact optimum up to round-off: each added constraint strictly increases
//    ||w||^2/2 (the dual objective), so no active set repeats. Dual coordinate ascent (Hsieh et al. 2008)
//    converges only linearly and would need an accuracy threshold on a continuous iteration;
//  - keeps the active normals linearly independent (a dependent violated point first takes over the
//    multiplier of an active one), so degenerate data - more points on the margin than dimensions,
//    duplicates - never produce a singular subproblem;
//  - detects non-separability finitely and LP-free: a violated z_p = sum_j r_j z_j with every r_j <= 0
//    gives z_p + sum_j |r_j| z_j = 0, a Gordan certificate that no w has z_n . w > 0 for all n.
// Lawson-Hanson NNLS on the equivalent least-distance problem is also finite but recovers w through
// 1 - sum u = 1/(1 + ||w||^2), which cancels catastrophically when the margin is small.
//
// Hessian I reduces the factorisation to N = J R, N = [z_j for j active]: J has orthonormal columns
// (classical Gram-Schmidt with one reorthogonalisation, "twice is enough") and R is upper triangular;
// adding or dropping a constraint costs O(d q). The violated constraint is picked from a working set C of
// candidate rows, refilled from a full pass over Z only when none of them is violated: the method is
// correct for any choice of violated constraint, so C changes the cost (O(|C| d) instead of O(n d) per
// step), not the answer. C starts as the support guessed by a few hundred epochs of dual coordinate
// ascent (Hsieh et al. 2008, C = infinity): started from w = 0 on all points, Goldfarb-Idnani drops about
// two constraints for every one it keeps (n = 1e4, d = 1e3: 6200 steps, 14 s); from the guess it needs
// 1500 steps (2.4 s including the ascent). The final active set is re-solved from a fresh QR (polish).
#include "gfsim/max_margin.hpp"

#include <Eigen/Jacobi>
#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <stdexcept>
#include <string>

#include "gfsim/model_spec.hpp"

namespace gfsim {

double KktCertificate::max_residual() const {
  return std::max({primal_infeasibility, dual_infeasibility, complementarity, stationarity, duality_gap});
}

namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();
// A violated z_p whose component orthogonal to the active normals is below this fraction of ||z_p|| is
// treated as a combination of them. CGS2 resolves that component to ~eps ||z_p||; the margin above it keeps
// R well conditioned. Consequence: data separable only by an angle near 1e-10 may be reported as
// non-separable; the message shows the certificate's residual, so the user can judge.
constexpr double kDependenceTol = 1e-10;
// on_margin: z_n . w_hat - 1 <= kOnMarginFactor * tol, three orders above the round-off of polished margins.
constexpr double kOnMarginFactor = 1e3;

[[noreturn]] void throw_not_separable(const std::string& reason) {
  throw SpecError("data are not linearly separable through the origin: " + reason);
}

void check_points(const Mat& Z) {
  if (Z.rows() == 0) throw SpecError("max_margin: no points (Z has 0 rows)");
  for (Index n = 0; n < Z.rows(); ++n) {
    if (!Z.row(n).allFinite())
      throw SpecError(fmt::format("max_margin: point {} (0-based row of Z = y x) has a non-finite coordinate", n));
    if (Z.row(n).isZero(0.0))
      throw_not_separable(fmt::format(
          "point {} (0-based row of Z = y x) is zero, so z_{} . w > 0 fails for every w", n, n));
  }
}

/// Goldfarb-Idnani state: the iterate w, the active set (indices, multipliers) and N = J R.
class DualActiveSet {
 public:
  DualActiveSet(const Mat& Z, const Vec& row_norms)
      : Z_(Z), row_norms_(row_norms), w_(Vec::Zero(Z.cols())),
        J_(Z.cols(), std::min(Z.rows(), Z.cols())),
        R_(Mat::Zero(J_.cols(), J_.cols())), is_active_(Z.rows(), false) {}

  const Vec& w() const { return w_; }
  const std::vector<Index>& active() const { return active_; }
  bool is_active(Index n) const { return is_active_[n]; }
  int iterations() const { return iterations_; }

  /// Add constraint p (violated at the current w) to the active set: the partial steps of Goldfarb-Idnani,
  /// dropping active constraints whose multipliers reach zero, until z_p . w = 1 with z_p active.
  void add_constraint(Index p) {
    const Vec z_p = Z_.row(p).transpose();
    double multiplier_p = 0;
    for (;;) {
      ++iterations_;
      const Index q = size();
      // z_p = N r + v with v orthogonal to the active normals: v is the primal step direction,
      // -r the change of the active multipliers per unit multiplier of p.
      Vec coords = J_.leftCols(q).transpose() * z_p;
      Vec v = z_p - J_.leftCols(q) * coords;
      const Vec coords_fix = J_.leftCols(q).transpose() * v;
      v -= J_.leftCols(q) * coords_fix;
      coords += coords_fix;
      const double v_norm = v.norm();
      const bool dependent = v_norm <= kDependenceTol * row_norms_(p);
      const Vec r = R_.topLeftCorner(q, q).triangularView<Eigen::Upper>().solve(coords);

      // Dual step limit: the first active multiplier that reaches zero.
      const double r_floor = 64 * kEps * (q > 0 ? r.cwiseAbs().maxCoeff() : 0.0);
      double t_dual = std::numeric_limits<double>::infinity();
      Index blocking = -1;
      for (Index j = 0; j < q; ++j) {
        if (r(j) > r_floor && multipliers_[j] / r(j) < t_dual) {
          t_dual = multipliers_[j] / r(j);
          blocking = j;
        }
      }
      if (dependent && blocking < 0) throw_gordan_certificate(p, r);

      // Primal step limit: the step along v that makes z_p . w = 1 (v . z_p = ||v||^2).
      const double t_primal = dependent ? std::numeric_limits<double>::infinity()
                                        : (1.0 - z_p.dot(w_)) / (v_norm * v_norm);
      const double t = std::min(t_primal, t_dual);
      if (!dependent) w_ += t * v;
      for (Index j = 0; j < q; ++j) multipliers_[j] -= t * r(j);
      multiplier_p += t;
      if (t_primal <= t_dual) {
        append(p, coords, v / v_norm, v_norm, multiplier_p);
        return;
      }
      remove(blocking);
    }
  }

 private:
  Index size() const { return static_cast<Index>(active_.size()); }

  void append(Index p, const Vec& coords, const Vec& unit_normal, double normal_length, double multiplier) {
    const Index q = size();
    J_.col(q) = unit_normal;
    R_.col(q).head(q) = coords;
    R_(q, q) = normal_length;
    active_.push_back(p);
    multipliers_.push_back(multiplier);
    is_active_[p] = true;
  }

  /// Drop active constraint k: deleting column k of R leaves it upper Hessenberg from column k on;
  /// Givens rotations on rows (j, j+1) restore the triangle and, applied to J, keep N = J R.
  void remove(Index k) {
    const Index q = size();
    for (Index j = k; j + 1 < q; ++j) R_.col(j).head(q) = R_.col(j + 1).head(q);
    for (Index j = k; j + 1 < q; ++j) {
      Eigen::JacobiRotation<double> rotation;
      rotation.makeGivens(R_(j, j), R_(j + 1, j));
      R_.block(0, j, q, q - 1 - j).applyOnTheLeft(j, j + 1, rotation.adjoint());
      J_.leftCols(q).applyOnTheRight(j, j + 1, rotation);
      R_(j + 1, j) = 0;
    }
    R_.row(q - 1).setZero();
    R_.col(q - 1).setZero();
    is_active_[active_[k]] = false;
    active_.erase(active_.begin() + k);
    multipliers_.erase(multipliers_.begin() + k);
  }

  /// z_p = N r with r <= 0: z_p + sum_j (-r_j) z_j = 0 is a nonnegative combination of points equal to zero.
  [[noreturn]] void throw_gordan_certificate(Index p, const Vec& r) const {
    std::vector<std::pair<Index, double>> weights{{p, 1.0}};
    for (Index j = 0; j < size(); ++j)
      if (-r(j) > 0) weights.emplace_back(active_[j], -r(j));
    double total = 0;
    for (const auto& [n, c] : weights) total += c;
    Vec combination = Vec::Zero(Z_.cols());
    double scale = 0;
    for (auto& [n, c] : weights) {
      c /= total;
      combination += c * Z_.row(n).transpose();
      scale += c * row_norms_(n);
    }
    std::sort(weights.begin(), weights.end());
    std::string terms;
    constexpr std::size_t kShown = 12;
    for (std::size_t i = 0; i < std::min(weights.size(), kShown); ++i)
      terms += fmt::format("{}{:.6g} z_{}", i > 0 ? " + " : "", weights[i].second, weights[i].first);
    if (weights.size() > kShown) terms += fmt::format(" + ... ({} points in all)", weights.size());
    throw_not_separable(fmt::format(
        "{} = 0 up to a relative residual {:.2e} (0-based rows of Z = y x, weights >= 0 summing to 1), "
        "so no w has z_n . w > 0 for all n (Gordan's alternative); found after {} active-set steps",
        terms, combination.norm() / scale, iterations_));
  }

  const Mat& Z_;
  const Vec& row_norms_;
  Vec w_;
  Mat J_;  ///< d x min(n, d); the first q columns are an orthonormal basis of the active normals
  Mat R_;  ///< upper-left q x q: N = J R
  std::vector<Index> active_;
  std::vector<double> multipliers_;
  std::vector<bool> is_active_;
  int iterations_ = 0;
};

/// Rows of Z from which the next violated constraint is picked; refilled from a full pass when exhausted.
class CandidateSet {
 public:
  CandidateSet(const Mat& Z, const Vec& row_norms, Index batch)
      : Z_(Z), row_norms_(row_norms), batch_(batch), rows_(0, Z.cols()), is_candidate_(Z.rows(), false) {}

  /// The candidate with the largest violation distance (1 - z.w)/||z|| among those violated beyond
  /// tol (1 + ||z|| ||w||) (a scale-invariant round-off allowance), or -1.
  Index most_violated(const DualActiveSet& state, double tol) const {
    const Vec margins = rows_ * state.w();
    const double w_norm = state.w().norm();
    Index best = -1;
    double best_distance = 0;
    for (Index i = 0; i < margins.size(); ++i) {
      const Index n = indices_[i];
      const double violation = 1.0 - margins(i);
      if (state.is_active(n) || violation <= tol * (1.0 + row_norms_(n) * w_norm)) continue;
      if (violation / row_norms_(n) > best_distance) {
        best_distance = violation / row_norms_(n);
        best = n;
      }
    }
    return best;
  }

  /// Full pass over Z: add up to `batch` of the most violated non-candidates. False when none is violated.
  bool refill(const DualActiveSet& state, double tol) {
    const Vec margins = Z_ * state.w();
    const double w_norm = state.w().norm();
    std::vector<Index> violated;
    for (Index n = 0; n < Z_.rows(); ++n)
      if (!is_candidate_[n] && 1.0 - margins(n) > tol * (1.0 + row_norms_(n) * w_norm)) violated.push_back(n);
    if (violated.empty()) return false;
    const auto distance = [&](Index n) { return (1.0 - margins(n)) / row_norms_(n); };
    const auto taken = violated.begin() + std::min<Index>(batch_, static_cast<Index>(violated.size()));
    std::partial_sort(violated.begin(), taken, violated.end(),
                      [&](Index a, Index b) { return distance(a) > distance(b); });
    violated.erase(taken, violated.end());
    add(violated);
    return true;
  }

  /// Add rows that are not candidates yet (also the initial guess of the support).
  void add(const std::vector<Index>& added) {
    const Index old_rows = rows_.rows();
    rows_.conservativeResize(old_rows + static_cast<Index>(added.size()), Z_.cols());
    for (std::size_t i = 0; i < added.size(); ++i) {
      rows_.row(old_rows + static_cast<Index>(i)) = Z_.row(added[i]);
      indices_.push_back(added[i]);
      is_candidate_[added[i]] = true;
    }
  }

 private:
  const Mat& Z_;
  const Vec& row_norms_;
  Index batch_;
  Mat rows_;
  std::vector<Index> indices_;
  std::vector<bool> is_candidate_;
};

/// Dual coordinate ascent on  max_a sum a - ||Z^T a||^2/2, a >= 0  (exact line search per coordinate,
/// cyclic order): the points with a_n > 0 after `epochs` sweeps, a guess of the support. Only a guess: it
/// seeds the candidate set, the answer comes from the active-set method.
std::vector<Index> coordinate_ascent_support_guess(const Mat& Z, const Vec& row_norms, int epochs) {
  const RowMat rows = Z;  // contiguous rows for the per-point dot products
  Vec a = Vec::Zero(Z.rows());
  Vec w = Vec::Zero(Z.cols());
  for (int epoch = 0; epoch < epochs; ++epoch) {
    for (Index n = 0; n < Z.rows(); ++n) {
      const double updated = std::max(0.0, a(n) + (1.0 - rows.row(n).dot(w)) / (row_norms(n) * row_norms(n)));
      if (updated != a(n)) {
        w += (updated - a(n)) * rows.row(n).transpose();
        a(n) = updated;
      }
    }
  }
  std::vector<Index> guess;
  for (Index n = 0; n < Z.rows(); ++n)
    if (a(n) > 0) guess.push_back(n);
  return guess;
}

/// Re-solve the final (linearly independent) active set from scratch with a column-pivoted QR, N P = Q R:
/// w_hat is the least-norm solution of N^T w = 1, w = Q [R^{-T} 1; 0] (backward stable, so the active
/// margins are 1 to round-off even when N is ill-conditioned), and the multipliers solve N a = w by back
/// substitution, a = P R^{-1} R^{-T} 1. One step of iterative refinement on N^T w = 1 follows.
void polish(const Mat& Z, const std::vector<Index>& active, Vec& w, Vec& alpha) {
  const Index q = static_cast<Index>(active.size());
  const Mat N = Z(active, Eigen::indexing::all).transpose();
  const Eigen::ColPivHouseholderQR<Mat> qr(N);
  const auto R = qr.matrixR().topLeftCorner(q, q).triangularView<Eigen::Upper>();
  const auto Q = qr.householderQ();
  Vec y = R.transpose().solve(Vec::Ones(q));  // P^T 1 = 1
  Vec padded = Vec::Zero(N.rows());
  padded.head(q) = y;
  w = Q * padded;
  padded.head(q) = R.transpose().solve(qr.colsPermutation().transpose() * (Vec::Ones(q) - N.transpose() * w));
  w += Q * padded;
  y += padded.head(q);
  alpha = Vec::Zero(Z.rows());
  alpha(active) = qr.colsPermutation() * R.solve(y);
}

KktCertificate certify(const Mat& Z, const Vec& w, const Vec& alpha) {
  const Vec slack = Z * w - Vec::Ones(Z.rows());
  const Vec combination = Z.transpose() * alpha;
  const double primal = 0.5 * w.squaredNorm();
  const double dual = alpha.sum() - 0.5 * combination.squaredNorm();
  KktCertificate kkt;
  kkt.primal_infeasibility = std::max(0.0, -slack.minCoeff());
  kkt.dual_infeasibility = std::max(0.0, -alpha.minCoeff());
  kkt.complementarity = alpha.cwiseProduct(slack).cwiseAbs().maxCoeff() / alpha.maxCoeff();
  kkt.stationarity = (w - combination).norm() / w.norm();
  kkt.duality_gap = std::abs(primal - dual) / primal;
  return kkt;
}

}  // namespace

MaxMarginResult max_margin(const Mat& Z, double tol) {
  if (!(tol > 0 && tol < 1)) throw std::invalid_argument(fmt::format("max_margin: tol = {} not in (0, 1)", tol));
  check_points(Z);
  const Vec row_norms = Z.rowwise().norm();

  // A generous safeguard against round-off cycling; Goldfarb-Idnani terminates finitely in exact arithmetic
  // and in practice needs about twice the number of support vectors.
  const Index max_iterations = 50 * (Z.rows() + Z.cols()) + 1000;
  // Each active-set step costs O(|C| d): refill with a quarter of the largest possible support (d points)
  // per O(n d) full pass.
  const Index batch = std::max<Index>(Z.cols() / 4, 64);
  // Ascent epochs cost O(n d) each; 200 cut the active-set steps 4-fold at n = 1e4, d = 1e3 (50: 3-fold,
  // 500: 5-fold but slower overall).
  constexpr int kAscentEpochs = 200;

  DualActiveSet state(Z, row_norms);
  CandidateSet candidates(Z, row_norms, batch);
  candidates.add(coordinate_ascent_support_guess(Z, row_norms, kAscentEpochs));
  for (;;) {
    const Index p = candidates.most_violated(state, tol);
    if (p < 0) {
      if (!candidates.refill(state, tol)) break;
      continue;
    }
    state.add_constraint(p);
    if (state.iterations() > max_iterations)
      throw std::runtime_error(fmt::format(
          "max_margin: no convergence after {} active-set steps (n = {}, d = {}); round-off cycling",
          state.iterations(), Z.rows(), Z.cols()));
  }

  MaxMarginResult result;
  polish(Z, state.active(), result.w_hat, result.alpha);
  const double w_norm = result.w_hat.norm();
  result.gamma = 1.0 / w_norm;
  result.direction = result.w_hat / w_norm;
  result.margins = Z * result.direction;
  const double alpha_max = result.alpha.maxCoeff();
  for (Index n = 0; n < Z.rows(); ++n) {
    if (result.alpha(n) > tol * alpha_max) result.support.push_back(n);
    if (result.margins(n) <= result.gamma * (1.0 + kOnMarginFactor * tol)) result.on_margin.push_back(n);
  }
  result.kkt = certify(Z, result.w_hat, result.alpha);
  result.iterations = state.iterations();
  return result;
}

}  // namespace gfsim
