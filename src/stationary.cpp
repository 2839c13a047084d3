#include "gfsim/stationary.hpp"

#include <fmt/format.h>

#include <Eigen/Dense>
#include <algorithm>
#include <optional>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gfsim/flow_problem.hpp"
#include "gfsim/integrate.hpp"
#include "gfsim/spectrum.hpp"

namespace gfsim {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The spectrum on the sphere tangent space at V: every eigenvalue (dense) up to dense_max, else the
// nev smallest and largest (Spectra). Returns the P-space eigenvectors matching the eigenvalues.
Mat sphere_spectrum(const SphereProblem& sp, const Vec& V, const StationaryOptions& o, StationaryResult& r) {
  const Index P = sp.dim(), m = sp.tangent_dim();
  const TangentBasis B(sp.flow().network(), V);
  TangentSpectrum& s = r.spectrum;
  Mat X;
  if (m >= 1 && (m <= o.dense_max && !(o.force_spectra && m > 2 * o.nev + 2))) {
    r.spectrum_method = SpectrumMethod::dense;
    const Mat Bd = B.dense();
    Mat HB(P, m);
    for (Index j = 0; j < m; ++j) HB.col(j) = sp.hessian(V, Bd.col(j));
    r.hvps += m;
    Mat Ht = Bd.transpose() * HB;
    Ht = 0.5 * (Ht + Ht.transpose()).eval();
    Eigen::SelfAdjointEigenSolver<Mat> es(Ht);
    s.eigenvalues = es.eigenvalues();
    X = Bd * es.eigenvectors();
    const Mat R = HB * es.eigenvectors() - X * s.eigenvalues.asDiagonal();
    s.residuals = R.colwise().norm().transpose();
  } else if (m >= 1) {
    r.spectrum_method = SpectrumMethod::spectra;
    SymOperator op{m, [&](const double* in, double* out) {
                     const Vec y = Eigen::Map<const Vec>(in, m);
                     Eigen::Map<Vec>(out, m) = B.apply_transpose(sp.hessian(V, B.apply(y)));
                   }};
    const Index nev = std::min(o.nev, m - 2);
    const ExtremeEigs e = extreme_eigenvalues(op, nev, {.tol = o.spectra_tol});
    r.hvps += e.matvecs;
    r.info_smallest = e.info_smallest;
    r.info_largest = e.info_largest;
    const Index ns = e.smallest.size(), nl = e.largest.size();
    s.eigenvalues.resize(ns + nl);
    s.eigenvalues << e.smallest, e.largest;
    X.resize(P, ns + nl);
    for (Index j = 0; j < ns; ++j) X.col(j) = B.apply(e.smallest_vectors.col(j));
    for (Index j = 0; j < nl; ++j) X.col(ns + j) = B.apply(e.largest_vectors.col(j));
    s.residuals.resize(ns + nl);
    for (Index j = 0; j < ns + nl; ++j) s.residuals[j] = (sp.hessian(V, X.col(j)) - s.eigenvalues[j] * X.col(j)).norm();
    r.hvps += ns + nl;
  }
  return X;
}

// Spectrum of the Hessian on the tangent space of the spheres and of every active kink surface.
// There the loss is that of the net with the kinked (unit, point) outputs held at zero, a smooth
// function whose Hessian is the plain one (ReLU'(0) = 0); for first-layer kinks h is linear in V_1
// and the surfaces are flat in the sphere tangent space, so projecting is exact. Deeper kink
// surfaces are curved: their curvature times the multiplier of the projected-out gradient is not
// included (reported through kink_grad, which is small at a sliding equilibrium only when that
// multiplier is).
void kink_surface_spectrum(const SphereProblem& sp, const Vec& V, const std::vector<Index>& kinks,
                           const std::vector<std::pair<std::string, Mat>>& cands, const StationaryOptions& o,
                           StationaryResult& r) {
  const Mat W = kink_surface_basis(sp, V, kinks, &r.kink_constraint_rank);
  r.kink_surface_dim = W.cols();
  r.kink_grad = (W.transpose() * sp.gradient(V)).norm();
  bool deep = false;
  for (const auto& k : r.kinks) deep = deep || k[0] > 1;
  r.kink_spectrum_status = deep ? KinkSpectrumStatus::computed_without_curvature : KinkSpectrumStatus::computed;
  TangentSpectrum& s = r.kink_spectrum;
  if (W.cols() > 0) {
    Mat HW;
    const Mat Hk = projected_hessian(sp, V, W, &HW);
    r.hvps += W.cols();
    Eigen::SelfAdjointEigenSolver<Mat> es(Hk);
    s.eigenvalues = es.eigenvalues();
    const Mat Xk = W * es.eigenvectors();
    const Mat R = W * (W.transpose() * (HW * es.eigenvectors())) - Xk * s.eigenvalues.asDiagonal();
    s.residuals = R.colwise().norm().transpose();
    const std::vector<Index> kz = s.classify(o.zero_rel * std::max(s.eigenvalues.cwiseAbs().maxCoeff(), 1e-300));
    Mat Nk(sp.dim(), Index(kz.size()));
    for (std::size_t j = 0; j < kz.size(); ++j) Nk.col(Index(j)) = Xk.col(kz[j]);
    s.null_dim = Nk.cols();
    s.explained = explain_null_space(sp, V, Nk, cands, &W, s.eigenvalues.cwiseAbs().maxCoeff(), o.verify_rel,
                                     s.mechanisms, r.hvps);
    s.unexplained = s.null_dim - s.explained;
  }
  s.describe(false);
}

// The verdict on the point (the spectrum that describes it, and whether Newton converged) and the
// notes that qualify it.
void conclude(const SphereProblem& sp, const StationaryOptions& o, StationaryResult& r) {
  const bool partial = r.spectrum_method == SpectrumMethod::spectra;
  r.verdict = r.spectrum.verdict;
  // A point held on kink surfaces (the flow slid there) is a stationary point of the nonsmooth
  // problem restricted to them: the plain spectrum (ReLU'(0) = 0) does not describe it.
  if (r.on_kink_surfaces()) r.verdict = "on kink surfaces: " + r.kink_spectrum.verdict;
  const double rel_grad = r.grad_norms.empty() ? 0.0 : r.grad_norms.back() / sp.loss_scale(r.V);
  if (!r.newton_converged)
    r.verdict = fmt::format("undetermined: not a stationary point (relative |grad| = {:.2e}); at this point: {}",
                            rel_grad, r.verdict);
  std::vector<std::string> notes;
  if (r.newton_converged && r.describing_spectrum().curvature != Curvature::hyperbolic)
    notes.push_back(fmt::format(
        "CONTRADICTS the paper's claim (Lemma 1, Theorem 3.1) that the fixed-rho flow converges to hyperbolic minima "
        "at every finite rho: at rho = {:.6g} the stationary point found is {}",
        r.rho, r.verdict));
  if (partial)
    notes.push_back(fmt::format("spectrum from Spectra: only the {} smallest and {} largest eigenvalues; inertia counts "
                                "those only",
                                o.nev, o.nev));
  if (!r.kinks.empty())
    notes.push_back(fmt::format("{} (unit, point) pairs sit on ReLU kinks (|h| <= {:.1e} max|h|): the plain spectrum "
                                "uses ReLU'(0) = 0; on the tangent space of the kink surfaces (dim {}): {} [{}]",
                                r.kinks.size(), o.kink_rel, r.kink_surface_dim, r.kink_spectrum.verdict,
                                to_string(r.kink_spectrum_status)));
  if (!r.newton_kinks.empty())
    notes.push_back(fmt::format("Newton held {} (unit, point) pairs on their kink surfaces (the flow phase ended there)",
                                r.newton_kinks.size()));
  if (!r.newton_converged)
    notes.push_back("Newton did not reach round-off: the point is approximate, spectrum accordingly");
  r.notes.clear();
  for (std::size_t i = 0; i < notes.size(); ++i) r.notes += (i ? "; " : "") + notes[i];
}

}  // namespace

void analyse_stationary(const SphereProblem& sp, StationaryResult& r, const StationaryOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const Flow& flow = sp.flow();
  const Vec& V = r.V;
  const Index P = sp.dim();
  TangentSpectrum& s = r.spectrum;
  const Mat X = sphere_spectrum(sp, V, o, r);  // P-space eigenvectors matching s.eigenvalues
  const double lmax = s.eigenvalues.size() ? s.eigenvalues.cwiseAbs().maxCoeff() : 0.0;
  const std::vector<Index> zero_idx = s.classify(o.zero_rel * lmax);
  // Keep the null space (and, if none, the lowest eigenvectors) as the stored eigenvectors.
  Mat N(P, Index(zero_idx.size()));
  for (std::size_t j = 0; j < zero_idx.size(); ++j) N.col(Index(j)) = X.col(zero_idx[j]);
  s.null_dim = N.cols();
  const Index keep = std::min<Index>(X.cols(), std::max<Index>(s.null_dim, std::min<Index>(o.nev, X.cols())));
  r.eigenvectors = X.leftCols(keep);
  r.spectrum_seconds = seconds_since(t0);

  // Zero modes: analytic vectors per mechanism, checked against the Hessian, then projected.
  const auto cands = zero_mode_candidates(sp, V);
  s.explained = explain_null_space(sp, V, N, cands, nullptr, lmax, o.verify_rel, s.mechanisms, r.hvps);
  s.unexplained = s.null_dim - s.explained;
  s.describe(r.spectrum_method == SpectrumMethod::spectra);

  // ReLU kinks.
  r.kinks.clear();
  r.kink_preactivations.clear();
  const std::vector<Index> kinks = kink_indices(flow, V, o.kink_rel);
  {
    const Vec h = flow.preactivations(V);
    for (Index j : kinks) {
      const auto kk = flow.kink_of(j);
      r.kinks.push_back({kk.layer, kk.unit, kk.point});
      r.kink_preactivations.push_back(h[j]);
    }
  }
  r.kink_spectrum = TangentSpectrum{};
  if (kinks.empty())
    r.kink_spectrum_status = KinkSpectrumStatus::no_kinks;
  else if (r.spectrum_method != SpectrumMethod::dense)
    r.kink_spectrum_status = KinkSpectrumStatus::not_computed;
  else
    kink_surface_spectrum(sp, V, kinks, cands, o, r);
  conclude(sp, o, r);
}

StationaryResult find_stationary(Flow& flow, const Vec& V0, const StationaryOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  StationaryResult r = locate_stationary(flow, V0, o);
  analyse_stationary(SphereProblem(flow), r, o);
  r.total_seconds = seconds_since(t0);
  return r;
}

Vec run_flow_phase(Flow& flow, const Vec& V, const StationaryOptions& o, StationaryResult& r) {
  const SphereProblem sp(flow);
  SolverOptions so;
  so.method = flow.state_size() <= 400 ? Method::rosenbrock4 : Method::dopri5;
  so.clock = ClockKind::log;
  so.rtol = 1e-9;
  so.atol = 1e-12;
  so.max_steps = o.flow_max_steps;
  auto monitor = [&](double t, const Vec& y, const SolverCounters& c) -> std::optional<Status> {
    const FlowDiagnostics d = flow.diagnostics(y);
    r.flow_t = t;
    r.flow_steps = c.accepted;
    r.flow_grad = d.grad_norm;
    const bool reached =
        d.grad_norm <= o.flow_tol * std::max(r.rho * std::exp(d.log_loss), std::numeric_limits<double>::min());
    return reached ? std::optional(Status::converged) : std::nullopt;
  };
  // The path of flow (d) in a normalized time: dV/dtau = rhs(V) / (rho L(V)). Same trajectory,
  // but O(1) speed whatever the loss scale (a start with L ~ e^30 is otherwise too stiff to leave).
  // ReLU: kink events (the activation pattern is a discrete state, crossings located exactly).
  // For this flow kind sliding may be unsupported: the run then stops stalled on the kink, and the
  // flow phase ends there.
  const bool relu_events = flow.num_preactivations() > 0;
  std::optional<KinkPattern> pattern;
  if (relu_events) pattern.emplace(flow);
  const OdeProblem base =
      relu_events ? to_event_problem(*pattern, V, [&](double, Index, Index, Index, KinkEvent) { ++r.flow_kink_events; })
                  : to_ode_problem(flow);
  OdeProblem scaled = base;
  scaled.rhs = [&](TimePoint tp, const Vec& y, Vec& dy) {
    base.rhs(tp, y, dy);
    dy /= sp.loss_scale(y);
  };
  scaled.jacobian = [&](TimePoint tp, const Vec& y, Mat& J) {
    base.jacobian(tp, y, J);
    Vec dy;
    base.rhs(tp, y, dy);
    const double ls_scale = sp.loss_scale(y);
    const Vec dlogL = sp.euclidean_gradient(y) / std::exp(sp.log_loss(y));
    J = (J - dy * dlogL.transpose()) / ls_scale;
  };
  scaled.jvp = {};
  const SolveResult res = integrate(scaled, V, {0.0, o.flow_t_end}, so, [](std::int64_t, double, const Vec&) {}, monitor);
  // Filippov sliding: the flow came to rest on kink surfaces; Newton must stay on them.
  const std::size_t sliding_count = relu_events ? pattern->sliding().size() : 0;
  const bool ended_sliding = sliding_count > 0;
  pattern.reset();
  const bool reached = res.status == Status::converged;
  r.flow_status = status_name(res.status);
  r.flow_message =
      reached ? (ended_sliding ? fmt::format("sliding on {} kink surfaces", sliding_count) : "") : res.message;
  const Vec end = sp.normalize(res.y_final);
  if (res.status == Status::stalled_at_kink || ended_sliding) {
    r.flow_at_kink = true;
    r.newton_kinks = kink_indices(flow, end, o.kink_surface_rel);
  }
  return end;
}

StationaryResult locate_stationary(Flow& flow, const Vec& V0, const StationaryOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const SphereProblem sp(flow);
  StationaryResult r;
  r.rho = flow.fixed_rho();
  Vec V = sp.normalize(V0);
  r.flow_grad = sp.gradient(V).norm();
  if (!o.skip_flow && r.flow_grad > o.flow_tol * sp.loss_scale(V))
    V = run_flow_phase(flow, V, o, r);
  else
    r.flow_status = o.skip_flow ? "skipped" : "converged";
  r.V = V;
  newton_polish(sp, r, o);
  const FlowDiagnostics d = flow.diagnostics(r.V);
  r.log_loss = d.log_loss;
  r.margin = d.margin;
  r.loss_scale = sp.loss_scale(r.V);
  r.total_seconds = seconds_since(t0);
  return r;
}

}  // namespace gfsim
