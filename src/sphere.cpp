#include "gfsim/sphere.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "gfsim/errors.hpp"

namespace gfsim {

// ---- SphereProblem -----------------------------------------------------------------------------

SphereProblem::SphereProblem(const Flow& flow) : flow_(flow) {
  if (flow.kind() != FlowKind::fixed_rho)
    throw std::invalid_argument("SphereProblem: the flow must have kind fixed_rho");
}

double SphereProblem::layer_scale() const { return std::pow(rho(), 1.0 / double(flow_.num_layers())); }

Vec SphereProblem::project(const Vec& V, const Vec& X) const {
  const Network& net = flow_.network();
  Vec out = X;
  for (Index k = 0; k < net.num_layers(); ++k) {
    const Index o = net.layer_offset(k), m = net.layer_size(k);
    const auto Vk = V.segment(o, m);
    out.segment(o, m) -= Vk * (Vk.dot(X.segment(o, m)) / Vk.squaredNorm());
  }
  return out;
}

Vec SphereProblem::normalize(const Vec& V) const {
  const Network& net = flow_.network();
  Vec out = V;
  for (Index k = 0; k < net.num_layers(); ++k) {
    auto seg = out.segment(net.layer_offset(k), net.layer_size(k));
    const double r = seg.norm();
    if (!(r > 0)) throw SpecError(fmt::format("stationary: layer {} of the start direction is zero", k + 1));
    seg /= r;
  }
  return out;
}

Vec SphereProblem::retract(const Vec& V, const Vec& xi) const { return normalize(V + xi); }

double SphereProblem::log_loss(const Vec& V) const { return flow_.diagnostics(V).log_loss; }

double SphereProblem::loss_scale(const Vec& V) const {
  return std::max(rho() * std::exp(log_loss(V)), std::numeric_limits<double>::min());
}

Vec SphereProblem::euclidean_gradient(const Vec& V) const {
  const double c = layer_scale();
  Vec g;
  flow_.loss_gradient(c * V, g);
  return c * g;
}

Vec SphereProblem::euclidean_hvp(const Vec& V, const Vec& x) const {
  const double c = layer_scale();
  Vec h;
  flow_.loss_hvp(c * V, x, h);
  return (c * c) * h;
}

Vec SphereProblem::gradient(const Vec& V) const { return project(V, euclidean_gradient(V)); }

Vec SphereProblem::hessian(const Vec& V, const Vec& xi) const {
  const Network& net = flow_.network();
  const Vec t = project(V, xi);
  const Vec eg = euclidean_gradient(V);
  Vec h = project(V, euclidean_hvp(V, t));
  for (Index k = 0; k < net.num_layers(); ++k) {
    const Index o = net.layer_offset(k), m = net.layer_size(k);
    const double a = V.segment(o, m).dot(eg.segment(o, m)) / V.segment(o, m).squaredNorm();
    h.segment(o, m) -= a * t.segment(o, m);
  }
  return h;
}

Vec SphereProblem::hessian_from_jvp(const Vec& V, const Vec& xi) const {
  Vec jv;
  flow_.jvp(V, 0.0, project(V, xi), jv);
  return -project(V, jv);
}

// ---- TangentBasis ------------------------------------------------------------------------------

TangentBasis::TangentBasis(const Network& net, const Vec& V) : P_(net.num_params()) {
  for (Index k = 0; k < net.num_layers(); ++k) {
    const Index o = net.layer_offset(k), m = net.layer_size(k);
    Vec v = V.segment(o, m).normalized();
    const double s = v[0] >= 0 ? 1.0 : -1.0;
    v[0] += s;  // w = v + sign(v_0) e_1: Q e_1 = -sign(v_0) v
    offsets_.push_back(o);
    sizes_.push_back(m);
    w_.push_back(v);
  }
}

Vec TangentBasis::apply(const Vec& y) const {
  Vec x(P_);
  Index j = 0;
  for (std::size_t k = 0; k < w_.size(); ++k) {
    const Index o = offsets_[k], m = sizes_[k];
    Vec z(m);
    z[0] = 0;
    z.tail(m - 1) = y.segment(j, m - 1);
    j += m - 1;
    x.segment(o, m) = z - w_[k] * (2.0 * w_[k].dot(z) / w_[k].squaredNorm());
  }
  return x;
}

Vec TangentBasis::apply_transpose(const Vec& x) const {
  Vec y(cols());
  Index j = 0;
  for (std::size_t k = 0; k < w_.size(); ++k) {
    const Index o = offsets_[k], m = sizes_[k];
    const auto xs = x.segment(o, m);
    const Vec z = xs - w_[k] * (2.0 * w_[k].dot(xs) / w_[k].squaredNorm());
    y.segment(j, m - 1) = z.tail(m - 1);
    j += m - 1;
  }
  return y;
}

Mat TangentBasis::dense() const {
  Mat B(P_, cols());
  Vec e = Vec::Zero(cols());
  for (Index j = 0; j < cols(); ++j) {
    e[j] = 1;
    B.col(j) = apply(e);
    e[j] = 0;
  }
  return B;
}

// Dense Riemannian Hessian on the columns of an orthonormal tangent basis W: W^T H W.
Mat projected_hessian(const SphereProblem& sp, const Vec& V, const Mat& W, Mat* HW) {
  Mat HWl(W.rows(), W.cols());
  for (Index j = 0; j < W.cols(); ++j) HWl.col(j) = sp.hessian(V, W.col(j));
  Mat Ht = W.transpose() * HWl;
  Ht = 0.5 * (Ht + Ht.transpose()).eval();
  if (HW) *HW = std::move(HWl);
  return Ht;
}
}  // namespace gfsim
