#pragma once
// Small helpers shared by the C++ tests: seeded random data and parameters.
#include <random>
#include <string>
#include <vector>

#include "gfsim/dataset.hpp"
#include "gfsim/flow_kind.hpp"
#include "gfsim/integrate.hpp"
#include "gfsim/kink_pattern.hpp"
#include "gfsim/network.hpp"

namespace gfsim::test {

/// dh/dt of every pre-activation along the pattern's field at (tp, y) (sliding masks solved there).
inline Vec pattern_rates(KinkPattern& pattern, TimePoint tp, const Vec& y) {
  Vec F;
  pattern.rhs(tp, y, F);
  const Flow& flow = pattern.flow();
  return flow.preactivation_tangent(flow.theta(y), flow.theta_tangent(y, F));
}

/// A kink surface of a deep net: hidden layer (0-based), unit, data point.
struct KinkEntry {
  Index layer, unit, point;
};

/// Puts each entry's point on its unit's kink by making the unit's row orthogonal to the layer's
/// input at the point (computed with the rows changed before it, so list shallower layers first;
/// the point must be alive below the layer: false if not). Returns the flat indices of those
/// surfaces (Flow::kink_of), in order, through `js`.
inline bool put_on_kinks(const Network& net, const Dataset& data, Vec& theta, const std::vector<KinkEntry>& on,
                         std::vector<Index>& js) {
  const std::vector<Index>& widths = net.widths();
  const Index n = data.X.rows();
  js.clear();
  for (const KinkEntry& e : on) {
    Vec a = data.X.row(e.point).transpose();  // input of layer e.layer at the point
    for (Index k = 0; k < e.layer; ++k)
      a = (Eigen::Map<const RowMat>(theta.data() + net.layer_offset(k), widths[k + 1], widths[k]) * a).cwiseMax(0.0);
    if (!(a.norm() > 1e-2)) return false;
    Eigen::Map<RowMat> W(theta.data() + net.layer_offset(e.layer), widths[e.layer + 1], widths[e.layer]);
    W.row(e.unit) -= (W.row(e.unit).dot(a) / a.squaredNorm()) * a.transpose();
    Index j = e.unit + e.point * widths[e.layer + 1];
    for (Index k = 0; k < e.layer; ++k) j += widths[k + 1] * n;
    js.push_back(j);
  }
  return true;
}

inline Vec random_vector(Index n, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal;
  Vec v(n);
  for (Index i = 0; i < n; ++i) v[i] = scale * normal(gen);
  return v;
}

/// Linearly separable data through the origin: labels from a random direction, margin pushed.
inline Dataset separable_data(Index n, Index dim, std::uint64_t seed, double margin = 0.2) {
  Dataset d;
  const Vec w = random_vector(dim, seed + 1000).normalized();
  d.X = Eigen::Map<const Mat>(random_vector(n * dim, seed).data(), n, dim);
  d.y.resize(n);
  for (Index i = 0; i < n; ++i) {
    const double s = d.X.row(i).dot(w);
    d.y[i] = s >= 0 ? 1.0 : -1.0;
    d.X.row(i) += (d.y[i] * margin) * w.transpose();
  }
  return d;
}

/// The one-kink set-up of the rounding tests: 9 separable points in 3-D (seed 171), point `p` moved
/// to (1, 1, 1) and the others pushed along w = (3, -5, 2)/8 so that w . x_p = 0 exactly (binary
/// fractions) and w . x_q <= -|w|^2/2 < 0 for q != p: a unit with row w is on its kink at p and
/// inactive everywhere else.
inline Dataset one_kink_data(Index p, const Vec& w) {
  Dataset data = separable_data(9, 3, 171);
  data.X.row(p) << 1.0, 1.0, 1.0;
  for (Index q = 0; q < data.X.rows(); ++q)
    if (q != p) data.X.row(q) -= (data.X.row(q).dot(w) / w.squaredNorm() + 0.5) * w.transpose();
  return data;
}
inline Vec one_kink_row() { return (Vec(3) << 3.0, -5.0, 2.0).finished() / 8.0; }

/// Solver options for accuracy tests: atol = 1e-2 rtol.
inline SolverOptions solver_options(Method method, ClockKind clock, double rtol) {
  SolverOptions o;
  o.method = method;
  o.clock = clock;
  o.rtol = rtol;
  o.atol = rtol * 1e-2;
  return o;
}

/// Weighted error of SUNDIALS examples: max_i |a_i - b_i| / (rtol |b_i| + atol).
inline double weighted_error(const Vec& a, const Vec& b, double rtol, double atol) {
  return ((a - b).array().abs() / (rtol * b.array().abs() + atol)).maxCoeff();
}

/// The names of the flow kinds in the table (flow_kind.hpp), for tests over every kind.
inline std::vector<std::string> flow_kind_names() {
  std::vector<std::string> names;
  for (const FlowKindEntry& e : flow_kind_table()) names.emplace_back(e.name);
  return names;
}

}  // namespace gfsim::test
