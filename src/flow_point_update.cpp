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

}  // namespace

Flow::PointUpdate Flow::begin_point_update(std::vector<Index> points) const {
  if (points_.active) throw std::logic_error("Flow::begin_point_update: a point update is already in progress");
  if (!pattern_) throw std::logic_error("Flow::begin_point_update: needs an activation pattern (use_pattern)");
  // Its other points' part is a pass over all n: screening keeps every point while a pattern of
  // two or more hidden layers is in use (screens_with_pattern), the only users of point updates.
  if (screening_on()) throw std::logic_error("Flow::begin_point_update: not while screening drops points");
  std::sort(points.begin(), points.end());
  points.erase(std::unique(points.begin(), points.end()), points.end());
  const Index n = num_points();
  if (!points.empty() && (points.front() < 0 || points.back() >= n))
    throw std::out_of_range(fmt::format("Flow::begin_point_update: data point out of range [0, {})", n));
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
  // With a pattern in use the certificate keeps every point (flow.hpp, enable_screening).
  if (screen_.enabled && screen_.pending) certify(screen_.tp.log_scale);
}

void Flow::point_split_at(const Eigen::Ref<const Vec>& V, double rho) const {
  PointSplit& P = points_;
  if (P.V.size() == V.size() && P.rho == rho &&
      std::memcmp(P.V.data(), V.data(), sizeof(double) * std::size_t(V.size())) == 0)
    return;
  P.V = V;
  P.rho = rho;
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
    forward_on(V, false);
    const Index n = num_points();
    P.u_rest.resize(n - Index(P.points.size()));
    for (Index p = 0, o = 0, q = 0; p < n; ++p) {
      if (q < Index(P.points.size()) && P.points[std::size_t(q)] == p) {
        ++q;
        continue;
      }
      P.u_rest[o++] = rho * y_[p] * ws_.f[p];
    }
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
    // The other points' part: the full pass with the changing points' loss weights at zero (their
    // columns then add exact zeros to the backward products).
    forward_on(V, false);
    margins_and_weights(rho, log_scale, a_);
    for (Index p : P.points) a_[p] = 0.0;
    P.G_rest.resize(G.size());
    net_.backward(V, a_, XT_, ws_, P.G_rest);
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
