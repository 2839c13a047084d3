// Flow::begin_point_update (flow.hpp): the loss sums a field is made of, G = sum_n a_n df_n/dV,
// S = sum_n a_n f_n and L = sum_n l(u_n), split into the few data points whose masks change (the
// points of a sliding solve's entries: recomputed at every evaluation) and all the others (one
// pass over all points per weight state, kept). Each term of the sums depends only on its own
// point's column of the pattern, so the split is exact at any masks, also off the kink surfaces;
// the kinds' fields read the sums and are left as they are (docs/events.md, "Incremental sliding
// field").
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <span>
#include <stdexcept>

#include "gfsim/flow.hpp"

namespace gfsim {

namespace {

// log(e^a + e^b); -inf for two empty sums.
double log_add(double a, double b) {
  if (a < b) std::swap(a, b);
  if (a == -std::numeric_limits<double>::infinity()) return a;
  return a + std::log1p(std::exp(b - a));
}

// The other points' slots in the pass of forward_on(V, true): the kept points (all without
// screening) except the changing ones. Calls f(slot, point).
template <class F>
void for_other_points(const std::vector<Index>& changing, Index slots, const std::vector<Index>* kept_points, F f) {
  for (Index q = 0, c = 0; q < slots; ++q) {
    const Index p = kept_points ? (*kept_points)[std::size_t(q)] : q;
    while (c < Index(changing.size()) && changing[std::size_t(c)] < p) ++c;
    if (c < Index(changing.size()) && changing[std::size_t(c)] == p) continue;
    f(q, p);
  }
}

}  // namespace

Flow::PointUpdate Flow::begin_point_update(std::vector<Index> points) const {
  if (points_.active) throw std::logic_error("Flow::begin_point_update: a point update is already in progress");
  if (!pattern_) throw std::logic_error("Flow::begin_point_update: needs an activation pattern (use_pattern)");
  std::sort(points.begin(), points.end());
  points.erase(std::unique(points.begin(), points.end()), points.end());
  const Index n = num_points();
  if (!points.empty() && (points.front() < 0 || points.back() >= n))
    throw std::out_of_range(fmt::format("Flow::begin_point_update: data point out of range [0, {})", n));
  // With screening the other points' part is a pass over the kept points; the changing points
  // (a sliding solve's) are never dropped (flow_screening.cpp keeps the pattern's sliding points).
  for (Index p : points)
    if (!point_kept(p))
      throw std::logic_error(fmt::format("Flow::begin_point_update: data point {} is screened out", p));
  PointSplit& P = points_;
  P.points = std::move(points);
  const Index np = Index(P.points.size());
  P.X.resize(XT_.rows(), np);
  P.y.resize(np);
  for (Index q = 0; q < np; ++q) {
    P.X.col(q) = XT_.col(P.points[std::size_t(q)]);
    P.y[q] = y_[P.points[std::size_t(q)]];
  }
  P.masks.resize(pattern_->size());
  P.ws.pattern = &P.masks;
  P.V.resize(0);
  P.has_log_loss = P.has_descent = false;
  P.active = true;
  return PointUpdate(this);
}

void Flow::end_point_update() const {
  points_.active = false;
  points_.has_log_loss = points_.has_descent = false;
}

void Flow::settle_screening() const {
  // The evaluation's certificate (it may re-choose the kept points, which point_split_at notices).
  if (screen_.enabled && screen_.pending) certify(screen_.tp.log_scale);
}

void Flow::point_split_at(const Eigen::Ref<const Vec>& V, double rho) const {
  PointSplit& P = points_;
  const std::uint64_t set = screening_on() ? screen_.generation : 0;
  if (P.V.size() == V.size() && P.rho == rho && P.kept_set == set &&
      std::memcmp(P.V.data(), V.data(), sizeof(double) * std::size_t(V.size())) == 0)
    return;
  P.V = V;
  P.rho = rho;
  P.kept_set = set;
  P.has_log_loss = P.has_descent = false;
}

void Flow::point_forward(const Eigen::Ref<const Vec>& V, double rho) const {
  PointSplit& P = points_;
  const std::vector<Mat>& pattern = *pattern_;
  for (std::size_t k = 0; k < pattern.size(); ++k) {
    P.masks[k].resize(pattern[k].rows(), P.X.cols());
    for (Index q = 0; q < P.X.cols(); ++q) P.masks[k].col(q) = pattern[k].col(P.points[std::size_t(q)]);
  }
  net_.forward(V, P.X, P.ws);
  P.u = rho * P.y.cwiseProduct(P.ws.f);
}

double Flow::point_log_loss(const Eigen::Ref<const Vec>& V, double rho) const {
  PointSplit& P = points_;
  settle_screening();
  point_split_at(V, rho);
  if (!P.has_log_loss) {
    forward_on(V, true);
    const Index slots = ws_.f.size();
    // (A changing point a rescreen inside the scope dropped is in neither the pass nor the count.)
    P.u_rest.resize(slots);
    Index o = 0;
    for_other_points(P.points, slots, screening_on() ? &screen_.kept_points : nullptr,
                     [&](Index q, Index p) { P.u_rest[o++] = rho * y_[p] * ws_.f[q]; });
    P.u_rest.conservativeResize(o);
    P.log_loss = loss_.log_total(std::span<const double>(P.u_rest.data(), std::size_t(P.u_rest.size())));
    P.has_log_loss = true;
  }
  point_forward(V, rho);
  return log_add(P.log_loss, loss_.log_total(std::span<const double>(P.u.data(), std::size_t(P.u.size()))));
}

void Flow::point_loss_descent(const Eigen::Ref<const Vec>& V, double rho, double log_scale, Eigen::Ref<Vec> G) const {
  PointSplit& P = points_;
  settle_screening();
  point_split_at(V, rho);
  if (!P.has_descent) {
    // The other points' part: the pass over the points in use (the kept ones with screening) with
    // the changing points' loss weights at zero (their columns then add exact zeros to the
    // backward products).
    forward_on(V, true);
    margins_and_weights(rho, log_scale, a_);
    for (Index p : P.points)
      if (const Index q = point_slot(p); q >= 0) a_[q] = 0.0;
    P.G_rest.resize(G.size());
    net_.backward(V, a_, inputs_in_use(), ws_, P.G_rest);
    P.S_rest = a_.dot(ws_.f);
    P.log_scale = log_scale;
    P.has_descent = true;
  }
  point_forward(V, rho);
  P.a.resize(P.u.size());
  loss_.weights(P.u, log_scale, P.a);
  P.a.array() *= P.y.array();
  P.G.resize(G.size());
  if (P.points.empty())
    P.G.setZero();
  else
    net_.backward(V, P.a, P.X, P.ws, P.G);
  const double S_points = P.a.dot(P.ws.f);
  // The weights are e^{log_scale} g(u): another log scale (the normalized kinds' log L moves with
  // the changing points' margins) rescales the kept part.
  if (log_scale == P.log_scale) {
    G = P.G_rest + P.G;
    P.S = P.S_rest + S_points;
  } else {
    const double c = std::exp(log_scale - P.log_scale);
    G = c * P.G_rest + P.G;
    P.S = c * P.S_rest + S_points;
  }
}

}  // namespace gfsim
