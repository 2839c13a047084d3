#pragma once
// One flow kind (equations.md section 3): its state layout and its field, written in terms of the
// loss descent that Flow evaluates (forward and backward passes, loss weights, caching, the ReLU
// pattern). A new kind is one file in src/flows/ and one line of the table in src/flow_kinds.cpp:
//
//   class MyKind final : public FlowKindModel { ... };                            // src/flows/my.cpp
//   std::unique_ptr<FlowKindModel> make_my_kind(const FlowSpec& spec) { ... }
//   {"my", "dW/dt = ...", make_my_kind},                                           // src/flow_kinds.cpp
//
// The state must determine the weights theta (a time-dependent quantity that changes the weights
// belongs in the state), so that observables, events and restarts need no time.
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gfsim/clock.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/network.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

class Flow;

/// How the state velocity of layer k answers a change dG_k of the loss descent, the one thing the
/// closed-form sliding solve of one hidden layer needs to know about a kind: the field's block
/// V_k = y.segment(offset + layer_offset(k), layer_size(k)) changes by alpha (dG_k - c V_k),
/// c = <V_k, dG_k>/|V_k|^2, when projected, by alpha dG_k otherwise, and theta_k = weight_scale V_k.
struct LayerResponse {
  Index offset = 0;
  double alpha = 1.0;
  double weight_scale = 1.0;
  bool projected = false;
};

class FlowKindModel {
 public:
  virtual ~FlowKindModel() = default;

  virtual Index state_size(const Network& net) const = 0;
  /// False when F depends on t other than through the clock's factor e^{log_scale}.
  virtual bool autonomous() const { return true; }

  /// theta -> state; DomainError for weights the kind cannot represent (e.g. a zero layer).
  virtual Vec initial_state(const Network& net, const Vec& theta) const = 0;
  /// state -> theta.
  virtual Vec theta(const Network& net, const Vec& y) const = 0;
  /// d theta(y + e v)/de at e = 0 (state velocity -> weight velocity).
  virtual Vec theta_tangent(const Network& net, const Vec& y, const Vec& v) const = 0;
  /// state -> per-layer normalized weights V_k = W_k/||W_k||, concatenated.
  virtual Vec direction(const Network& net, const Vec& y) const = 0;
  /// state -> per-layer norms rho_k.
  virtual Vec layer_norms(const Network& net, const Vec& y) const = 0;

  /// dy = e^{tp.log_scale} F(tp.t, y), from flow.loss_descent (and its siblings).
  virtual void field(const Flow& flow, TimePoint tp, const Vec& y, Vec& dy) const = 0;
  /// jv = d/de field(y + e v) at e = 0, exact, from flow.loss_descent_tangent.
  virtual void field_tangent(const Flow& flow, TimePoint tp, const Vec& y, const Vec& v, Vec& jv) const = 0;
  /// Dense Jacobian of field in closed form, when cheaper than state_size tangents; false: Flow
  /// assembles it column by column from field_tangent.
  virtual bool dense_jacobian(const Flow&, TimePoint, const Vec&, Mat&) const { return false; }
  /// dft = e^{tp.log_scale} dF/dt (t, y), the partial derivative in physical time (non-autonomous
  /// kinds only; the default is for autonomous ones).
  virtual void time_derivative(const Flow& flow, TimePoint tp, const Vec& y, Vec& dft) const;

  /// Safe screening (equations.md section 9): Gamma with |F(all points) - F(kept points)| <=
  /// Gamma sum_{dropped} |x_n| |a_n| at y, a_n the loss weights the field is evaluated with, for a
  /// network 1-homogeneous per layer (output_gradient_bound, screening.hpp). 0: none known, so
  /// nothing is ever dropped.
  virtual double screening_gain(const Network&, TimePoint, const Vec&) const { return 0.0; }

  /// Known discontinuities of the field (or of its time derivative) in physical time, as
  /// DifferentialEquations.jl's d_discontinuities: the first strictly after t, +inf if none. The
  /// integration loop stops exactly on each one and restarts its stepper there (integrate.hpp,
  /// Discontinuities). A staircase rho(t) jumps; a table's knots break the slope.
  virtual double next_discontinuity(double /*t*/) const { return std::numeric_limits<double>::infinity(); }
  /// The integration continues on the smooth piece of the field that starts at t: until the next
  /// call, the field (and its tangents) is that piece's formula extended past its ends; t = NaN:
  /// evaluate from the arguments again (integrate.hpp, Discontinuities::enter). May correct y.
  virtual void enter_piece(const Network& /*net*/, double /*t*/, Vec& /*y*/) const {}

  virtual LayerResponse layer_response(const Network& net, TimePoint tp, const Vec& y, Index k) const = 0;
  /// True when the flow lives on the spheres at a fixed rho: its diagnostic gradient norm is then
  /// the norm of its (Riemannian) field instead of ||grad_W L||.
  virtual bool on_spheres() const { return false; }
};

using FlowKindFactory = std::unique_ptr<FlowKindModel> (*)(const FlowSpec& spec);

/// One line of the kind table: the name in `flow.kind`, a one-line description, the factory.
struct FlowKindEntry {
  const char* name;
  const char* description;
  FlowKindFactory make;
};

/// The table, in the order of the built-in kinds (src/flow_kinds.cpp) then of registrations.
const std::vector<FlowKindEntry>& flow_kind_table();
/// The model of spec.kind with spec's parameters; std::invalid_argument for a name not in the
/// table (the model reader admits only table names), DomainError for parameters it refuses.
std::unique_ptr<FlowKindModel> make_flow_kind(const FlowSpec& spec);
/// Adds a kind to the table (for tests: a kind that is not part of the simulator). The name must
/// be new and must outlive the program (a string literal); std::invalid_argument otherwise.
void register_flow_kind(const FlowKindEntry& entry);

}  // namespace gfsim
