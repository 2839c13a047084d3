// One hidden layer's sliding field in closed form (KinkPattern::one_layer_control): the field is
// jointly affine in the sliding masks and the outputs do not see them on the surfaces, so the
// equivalent control is one linear solve by unit blocks (docs/events.md, "Sliding sets").
#include "gfsim/kink_pattern.hpp"
#include "gfsim/sliding_set.hpp"

#include <Eigen/LU>

#include <cmath>
#include <stdexcept>

namespace gfsim {

void KinkPattern::sliding_rhs_one_hidden_layer(TimePoint tp, const Vec& y, Vec& dy, Vec* masks) {
  // The same equivalent control in closed form for one hidden layer, at the cost of ~2 RHS instead
  // of S + 1 (one_layer_control). Mask m_l of sliding entry l = (unit i, point n) adds to the loss
  // gradient in the flow's coordinates the single row dG_l = a_n W2_i x_n^T in row i of layer 1
  // (a_n the loss weight, W2 the output layer of theta for gd, of V otherwise); the outputs do not
  // depend on m. The flow maps it to the state velocity D_l = alpha (dG_l - c_l V_1),
  // c_l = <V_1, dG_l>/|V_1|^2 (gd: alpha = 1, no projection).
  const Index S = Index(sliding_.size());
  if (remembered(tp, y)) {
    // The field's last evaluation was here (a step's last stage, whose end the event functions
    // are then evaluated at): the same field and masks, without a solve.
    dy = memo_dy_;
    if (masks) *masks = memo_masks_;
    return;
  }
  OneLayerControl s;
  one_layer_control(tp, y, &dy, s);  // dy = F(0) on return
  const Network& net = flow_.network();
  const Mat& XT = flow_.inputs();
  const Index d0 = net.layer_cols(0), off = s.response.offset;
  const double alpha = s.response.alpha;
  for (Index l = 0; l < S; ++l) {
    auto row = dy.segment(off + s.unit[l] * d0, d0);
    row += (alpha * s.m[l] * s.coef[l]) * XT.col(s.point[l]);
  }
  if (s.response.projected) dy.segment(off, net.layer_size(0)) -= (alpha * s.m.dot(s.c)) * y.segment(off, net.layer_size(0));
  if (masks) *masks = s.m;
  if (flow_.screening_state().enabled) return;  // an evaluation may re-choose the points: no memo
  remember(tp, y, dy, s.m);
}

Vec KinkPattern::one_layer_masks(TimePoint tp, const Vec& y) {
  if (remembered(tp, y)) return memo_masks_;
  OneLayerControl s;
  one_layer_control(tp, y, nullptr, s);
  return s.m;
}

void KinkPattern::one_layer_control(TimePoint tp, const Vec& y, Vec* F0, OneLayerControl& s) {
  // The masks m solve C m = -r, r the rates dh_j/dt of the sliding entries along F(0) (the field
  // with every sliding mask at 0), C_jl = s1 (D_l row i_j) . x_{n_j} with s1 = d theta_1 / d V_1
  // (1, rho_1 or rho^(1/2)): the kind's LayerResponse of layer 1. The entries are left at m; F(0)
  // is left in *F0 when given (the field's assembly), else discarded (the masks alone: event
  // functions, which need no assembly).
  const Network& net = flow_.network();
  const Mat& XT = flow_.inputs();
  const Index S = Index(sliding_.size()), rows = net.layer_rows(0);
  s.response = flow_.kind_model().layer_response(net, tp, y, 0);
  const bool projected = s.response.projected;
  const Index off = s.response.offset;
  for (Index j : sliding_) entry(j) = 0.0;
  Vec F_local;
  Vec& F = F0 ? *F0 : F_local;
  flow_.rhs(tp, y, F);  // F(0); leaves the loss weights and V's forward pass in the flow
  const Vec& a = flow_.loss_weights();
  const auto V1 = net.layer(y.segment(off, flow_.num_params()), 0);
  const auto W2 = y.segment(off + net.layer_offset(1), net.layer_size(1));
  const double alpha = s.response.alpha, s1 = s.response.weight_scale;
  const double v1_norm2 = projected ? V1.squaredNorm() : 1.0;
  s.unit.assign(std::size_t(S), 0);
  s.point.assign(std::size_t(S), 0);
  s.coef.resize(S);
  s.c.resize(S);
  Vec hv(S);  // dG_l = coef_l x_{n_l} in row unit_l
  for (Index l = 0; l < S; ++l) {
    const auto at = flow_.kink_of(sliding_[l]);  // a layer-1 entry
    s.unit[l] = at.unit;
    s.point[l] = at.point;
    const Index slot = flow_.point_slot(s.point[l]);  // a sliding entry's point is never dropped (screening)
    if (slot < 0) throw std::logic_error("KinkPattern: a sliding entry's data point was screened out");
    s.coef[l] = a[slot] * W2[s.unit[l]];
    hv[l] = V1.row(s.unit[l]).dot(XT.col(s.point[l]));  // pre-activation of V (0 on the surface)
    s.c[l] = projected ? s.coef[l] * hv[l] / v1_norm2 : 0.0;
  }
  // Rates along F(0): h_j = (W_1 x_{n_j})_{i_j} is linear in theta_1, so dh_j/dt = (dtheta_1 row i_j) . x_{n_j}.
  const Vec dtheta = flow_.theta_tangent(y, F);
  const auto dW1 = net.layer(dtheta, 0);
  Vec r(S);
  for (Index j = 0; j < S; ++j) r[j] = dW1.row(s.unit[j]).dot(XT.col(s.point[j]));
  // C = B - s1 alpha hv c^T: B is block diagonal (entries couple only within a unit), the
  // projection adds a rank-one term (hv = 0 on the surfaces up to the integrator's drift).
  // Solve B by unit blocks and the rank-one term by Sherman-Morrison. B's block of unit i is
  // s1 alpha K_i diag(coef), K_i the Gram matrix of the unit's sliding points: K_i depends on the
  // sliding set only and is kept while the unit's points stay (gram_blocks_; the same products
  // as computed afresh, so the same values to the bit).
  std::vector<Index> order(static_cast<std::size_t>(S));
  for (Index l = 0; l < S; ++l) order[l] = l;
  std::stable_sort(order.begin(), order.end(), [&](Index p, Index q) { return s.unit[p] < s.unit[q]; });
  if (gram_blocks_.size() != std::size_t(rows)) gram_blocks_.assign(std::size_t(rows), GramBlock{});
  std::vector<Index> pts;
  for (std::size_t b = 0; b < order.size();) {
    std::size_t e = b;
    while (e < order.size() && s.unit[order[e]] == s.unit[order[b]]) ++e;
    pts.clear();
    for (std::size_t p = b; p < e; ++p) pts.push_back(s.point[order[p]]);
    GramBlock& g = gram_blocks_[std::size_t(s.unit[order[b]])];
    if (g.points != pts) {
      const Index nb = Index(pts.size());
      g.K.resize(nb, nb);
      for (Index p = 0; p < nb; ++p)
        for (Index q = 0; q < nb; ++q) g.K(p, q) = XT.col(pts[std::size_t(q)]).dot(XT.col(pts[std::size_t(p)]));
      g.points = pts;
    }
    b = e;
  }
  auto solve_blocks = [&](const Vec& rhs) {
    Vec x(S);
    for (std::size_t b = 0; b < order.size();) {
      std::size_t e = b;
      while (e < order.size() && s.unit[order[e]] == s.unit[order[b]]) ++e;
      const Index nb = Index(e - b);
      const Mat& K = gram_blocks_[std::size_t(s.unit[order[b]])].K;
      Mat Bk(nb, nb);
      Vec rk(nb);
      for (Index p = 0; p < nb; ++p) {
        const Index j = order[b + p];
        rk[p] = rhs[j];
        for (Index q = 0; q < nb; ++q) {
          const Index l = order[b + q];
          Bk(p, q) = s1 * alpha * s.coef[l] * K(p, q);
        }
      }
      // Columns equilibrated (the mask of point l enters with its loss weight, and the weights of
      // one unit's sliding points span 1e12 late in the log clock): full pivoting's rank
      // threshold would otherwise zero the light points' masks (docs/relu_deep.md, session 19).
      const Vec col_scale = unit_column_scales(Bk);
      const Vec xk = col_scale.cwiseProduct((Bk * col_scale.asDiagonal()).fullPivLu().solve(rk));
      for (Index p = 0; p < nb; ++p) x[order[b + p]] = xk[p];
      b = e;
    }
    return x;
  };
  // Drift (Baumgarte; kink_pattern.hpp, kDriftDecay): the control holds dh_j/dclock at the decay
  // of h_j instead of 0.
  s.m = solve_blocks(-r - (drift_decay(tp) * s.response.weight_scale) * hv);
  if (projected) {
    const Vec u = -s1 * alpha * hv;  // C = B + u c^T
    const Vec Binv_u = solve_blocks(u);
    s.m -= Binv_u * (s.c.dot(s.m) / (1.0 + s.c.dot(Binv_u)));
  }
  for (Index l = 0; l < S; ++l) entry(sliding_[l]) = s.m[l];
}

}  // namespace gfsim
