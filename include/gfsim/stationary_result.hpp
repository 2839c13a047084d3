#pragma once
// What `gfsim stationary` finds at one rho: the options of the pipeline and its result (the point,
// the flow phase and Newton polish that located it, the tangent spectrum and the verdict).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gfsim/tangent_spectrum.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

struct StationaryOptions {
  double flow_tol = 1e-6;     ///< flow phase ends at ||grad|| <= flow_tol * loss_scale
  double newton_tol = 1e-14;  ///< Newton ends at ||grad|| <= newton_tol * loss_scale (or stagnation)
  int max_newton = 40;
  double flow_t_end = 1e60;   ///< horizon of the flow phase (physical time; log clock)
  std::int64_t flow_max_steps = 200000;
  Index dense_newton_max = 600;  ///< tangent dim up to which Newton uses a dense eigen-solve
  Index dense_max = 2000;        ///< tangent dim up to which the spectrum is dense (else Spectra)
  Index nev = 10;                ///< Spectra: eigenvalues at each end
  double spectra_tol = 1e-12;
  double zero_rel = 1e-8;        ///< |lambda| <= zero_rel * max|lambda| counts as zero
  double verify_rel = 1e-6;      ///< analytic null vector accepted when ||H v|| <= verify_rel * max|lambda|
  double kink_rel = 1e-9;        ///< |pre-activation| <= kink_rel * max |pre-activation| is on a kink
  /// Newton on a kink surface: the pairs with |h| <= kink_surface_rel * max|h| when the polish
  /// starts are held on h = 0 (the flow phase ended there, e.g. stalled on a kink).
  double kink_surface_rel = 1e-6;
  double minres_rtol = 1e-12;    ///< Newton system above dense_newton_max (MINRES on the tangent space)
  bool skip_flow = false;        ///< start Newton at V0 directly
  bool force_spectra = false;    ///< use Spectra even for small problems (tests)
};

/// The spectrum on the tangent space of the kink surfaces: not needed (no kinks), not computed
/// (the spectrum is not dense: tangent dim > dense_max), computed (kinks in layer 1 only: the
/// surfaces are flat in the sphere tangent space), or computed without the surfaces' curvature term
/// (kinks beyond layer 1).
enum class KinkSpectrumStatus { no_kinks, not_computed, computed, computed_without_curvature };
inline constexpr std::array<std::string_view, 4> kKinkSpectrumStatusNames{
    "no kinks", "not computed: tangent dim > dense_max", "computed",
    "computed (kinks beyond layer 1: surface curvature term omitted)"};
inline std::string_view to_string(KinkSpectrumStatus s) { return kKinkSpectrumStatusNames[std::size_t(s)]; }

struct StationaryResult {
  double rho = 0;
  Vec V;  ///< the stationary direction
  // flow phase
  std::string flow_status;            ///< the solver's status name, or "converged" / "skipped"
  double flow_t = 0;
  std::int64_t flow_steps = 0;
  double flow_grad = 0;  ///< ||grad|| when the flow phase ended
  std::string flow_message;           ///< the solver's message when it did not converge
  bool flow_at_kink = false;          ///< the flow phase stopped stalled on a ReLU kink surface
  std::int64_t flow_kink_events = 0;  ///< kink events (crossings, sliding) during the flow phase
  // Newton
  std::vector<double> grad_norms;  ///< ||grad|| at entry and after every Newton step
  std::vector<double> step_norms;  ///< ||xi|| of every step
  std::vector<int> inner_iterations;  ///< of every accepted step (dense: the tangent dimension)
  Index newton_hvps = 0;  ///< Hessian products of all Newton steps, the rejected last one (round-off) included
  bool newton_converged = false;
  double loss_scale = 0, log_loss = 0, margin = 0;
  // spectrum on the tangent space of the spheres
  SpectrumMethod spectrum_method = SpectrumMethod::none;
  TangentSpectrum spectrum;
  Mat eigenvectors;             ///< P-space unit columns (only the near-zero ones are kept for large P)
  std::string info_smallest = "n/a", info_largest = "n/a";  ///< Spectra's CompInfo
  Index hvps = 0;
  double spectrum_seconds = 0, total_seconds = 0;
  // kinks
  std::vector<std::array<Index, 3>> kinks;  ///< (layer 1-based, unit, point)
  std::vector<double> kink_preactivations;
  // Newton restricted to the active kink surfaces (the flow phase ended on kinks)
  std::vector<Index> newton_kinks;  ///< preactivation indices held at h = 0 during the polish
  // spectrum on the tangent space of the spheres and of every active kink surface h_j = 0
  KinkSpectrumStatus kink_spectrum_status = KinkSpectrumStatus::no_kinks;
  Index kink_surface_dim = 0;       ///< dimension of that tangent space
  Index kink_constraint_rank = 0;   ///< rank of the kink normals on the sphere tangent space
  double kink_grad = 0;             ///< ||gradient projected onto it||
  TangentSpectrum kink_spectrum;
  std::string verdict;
  std::string notes;

  /// The point was held on kink surfaces and their (flat) spectrum is known: that spectrum, not the
  /// plain one (ReLU'(0) = 0), describes the point.
  bool on_kink_surfaces() const {
    return !newton_kinks.empty() && kink_spectrum_status == KinkSpectrumStatus::computed;
  }
  /// The spectrum that describes the point (kink_spectrum when on_kink_surfaces()).
  const TangentSpectrum& describing_spectrum() const { return on_kink_surfaces() ? kink_spectrum : spectrum; }
};

}  // namespace gfsim
