#pragma once
// The columns of the data points of a few pre-activation entries: their inputs and the pattern's
// masks there, for passes over a handful of the n points where only these entries are needed (the
// rates of a deep-net sliding solve, the event functions of a root search; docs/events.md). A pass
// over a column is the full pass's column: every layer acts on each point separately.
#include <algorithm>
#include <utility>
#include <vector>

#include "gfsim/flow.hpp"
#include "gfsim/network.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

class PointColumns {
 public:
  /// Where an entry's pre-activation is: hidden layer (0-based), unit, column of this subset.
  struct Place {
    Index layer = 0, unit = 0, column = 0;
  };

  /// The distinct points of `entries` (indices into Flow::preactivations()), in order of first use.
  /// `as_full_pass`: pad the columns so that the passes round as the full pass does (below).
  PointColumns(const Flow& flow, const std::vector<Index>& entries, bool as_full_pass) : places_(entries.size()) {
    for (std::size_t s = 0; s < entries.size(); ++s) {
      const auto kink = flow.kink_of(entries[s]);
      auto it = std::find(points_.begin(), points_.end(), kink.point);
      if (it == points_.end()) it = points_.insert(points_.end(), kink.point);
      places_[s] = {kink.layer - 1, kink.unit, Index(it - points_.begin())};
    }
    // Padded with copies of the first point to at least kMinColumns columns, a multiple of 8 (a
    // register block): Eigen sends a product with one column, or with depth + rows + columns < 20,
    // to its matrix-vector or coefficient-wise kernels, which round differently from the blocked
    // GEMM of the full pass, where each column is a sequence of FMAs in depth order whatever the
    // number of columns. Rounded like the full pass, a root search on the subset brackets the
    // root of the full event functions it is checked against (EventLocator::locate), bit for bit.
    const Index used = Index(points_.size());
    const Index cols = used == 0 || !as_full_pass ? used : std::max(kMinColumns, (used + 7) / 8 * 8);
    X_.resize(flow.inputs().rows(), cols);
    for (Index q = 0; q < cols; ++q) X_.col(q) = flow.inputs().col(points_[std::size_t(q < used ? q : 0)]);
    ws.pattern = &masks_;
  }
  PointColumns(const PointColumns&) = delete;  // ws points at masks_
  PointColumns& operator=(const PointColumns&) = delete;

  const std::vector<Index>& points() const { return points_; }
  const Place& place(std::size_t s) const { return places_[s]; }
  /// The subset's inputs, padded (see the constructor): column q < |points| is point q.
  const Mat& inputs() const { return X_; }
  /// The pattern's masks at the subset's columns (hidden layer k: d_k x inputs().cols()).
  const std::vector<Mat>& masks() const { return masks_; }

  /// The forward pass over the subset at theta with the pattern's current masks there.
  void forward(const Network& net, const Vec& theta, const std::vector<Mat>& pattern) {
    masks_.resize(pattern.size());
    const Index used = Index(points_.size());
    for (std::size_t k = 0; k < pattern.size(); ++k) {
      masks_[k].resize(pattern[k].rows(), X_.cols());
      for (Index q = 0; q < X_.cols(); ++q) masks_[k].col(q) = pattern[k].col(points_[std::size_t(q < used ? q : 0)]);
    }
    net.forward(theta, X_, ws);
  }
  /// After forward: the pre-activation of entry s, and (after forward_tangent) its tangent.
  double preactivation(std::size_t s) const { return ws.pre[std::size_t(places_[s].layer)](places_[s].unit, places_[s].column); }
  double preactivation_tangent(std::size_t s) const {
    return ws.dpre[std::size_t(places_[s].layer)](places_[s].unit, places_[s].column);
  }

  /// After forward_tangent at (theta, dtheta): the rounding scale of entry s's tangent, the
  /// magnitudes of the products its layer sums, |dW_k row| . |input| + |W_k row| . |d input|
  /// (the input's tangent is 0 for the first layer), and that of its pre-activation,
  /// |W_k row| . |input|.
  std::pair<double, double> rounding_scales(const Network& net, const Vec& theta, const Vec& dtheta,
                                            std::size_t s) const {
    const Place& at = places_[s];
    const auto W = net.layer(theta, at.layer).row(at.unit).cwiseAbs();
    const auto dW = net.layer(dtheta, at.layer).row(at.unit).cwiseAbs();
    if (at.layer == 0) {
      const auto in = X_.col(at.column).cwiseAbs();
      return {dW.dot(in), W.dot(in)};
    }
    const std::size_t below = std::size_t(at.layer - 1);
    const auto in = ws.post[below].col(at.column).cwiseAbs();
    const auto din = ws.dpost[below].col(at.column).cwiseAbs();
    return {dW.dot(in) + W.dot(din), W.dot(in)};
  }

  Network::Workspace ws;  ///< the passes over the subset (and its padding columns)

 private:
  static constexpr Index kMinColumns = 24;
  std::vector<Index> points_;
  std::vector<Place> places_;
  Mat X_;
  std::vector<Mat> masks_;
};

/// Whether the layer below is inactive at one data point up to round-off: its activations
/// mask * h all within 1e-12 of `scale`, the largest |h| of that layer over all points. The entries
/// above then have h identically 0.
inline bool inactive_below(const Eigen::Ref<const Vec>& h_below, const Eigen::Ref<const Vec>& mask_below, double scale) {
  return (h_below.array() * mask_below.array()).abs().maxCoeff() <= 1e-12 * scale;
}

}  // namespace gfsim
