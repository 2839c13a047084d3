// The build layer (build.hpp): spec values -> objects, with the mathematics' DomainError turned into
// SpecError messages that name the model keys.
#include "gfsim/build.hpp"

#include <fmt/format.h>

#include <cmath>
#include <random>

#include "gfsim/memory_estimate.hpp"
#include "gfsim/number_table.hpp"

namespace gfsim {
namespace {

/// Points and dimension (bias column included) a generated data set will have.
Index generated_dim(const DataSpec& data) { return Index(data.dim) + (data.bias ? 1 : 0); }

}  // namespace

Dataset make_dataset(const ModelSpec& spec) { return make_held_out_data(spec).train; }

HeldOutData make_held_out_data(const ModelSpec& spec) {
  const SolverOptions solver = resolve_solver(spec);
  if (spec.data.kind != DataKind::csv)  // refuse before allocating: the sizes are in the spec
    check_memory(spec, estimate_memory(spec, solver, spec.data.n, generated_dim(spec.data)));
  HeldOutData data;
  try {
    data = make_held_out_data(spec.data);
  } catch (const DomainError& error) {
    throw SpecError(fmt::format("data.kind = \"{}\": {}", to_string(spec.data.kind), error.what()));
  }
  if (spec.data.kind == DataKind::csv)  // the file's size bounds the table just read
    check_memory(spec, estimate_memory(spec, solver, data.train.n(), data.train.dim()));
  return data;
}

std::vector<Index> network_widths(const ModelSpec& spec, Index data_dim) {
  std::vector<Index> widths{data_dim};
  for (int h : spec.network.hidden) widths.push_back(h);
  widths.push_back(1);
  return widths;
}

Network flow_network(const ModelSpec& spec, Index data_dim) {
  const double eps = spec.dynamics.kinks == KinkMode::smooth ? spec.dynamics.kink_width : 0.0;
  return Network(network_widths(spec, data_dim), spec.network.activation, eps);
}

Network exact_network(const ModelSpec& spec, Index data_dim) {
  return Network(network_widths(spec, data_dim), spec.network.activation);
}

Vec initial_weights(const ModelSpec& spec, const Network& net) {
  const Index P = net.num_params();
  if (!spec.network.init_file.empty()) {
    NumberTableFormat format;
    format.exact_columns = 1;
    format.row_rule = "one number per line";
    const NumberTable table = read_number_table(spec.network.init_file, format, "network.init_file");
    if (Index(table.values.size()) != P)
      throw SpecError(fmt::format("{}: {} numbers, the network {} has P = {} parameters (theta layout: W_1..W_K, "
                                  "each row-major)", spec.network.init_file, table.values.size(), net.describe(), P));
    return Eigen::Map<const Vec>(table.values.data(), P);
  }
  Vec theta = Vec::Zero(P);
  std::mt19937_64 gen(spec.network.seed);
  std::normal_distribution<double> normal;
  for (Index k = 0; k < net.num_layers(); ++k) {
    const double scale = spec.network.init_scale / std::sqrt(double(net.layer_cols(k)));
    for (Index i = 0; i < net.layer_size(k); ++i) theta[net.layer_offset(k) + i] = scale * normal(gen);
  }
  return theta;
}

Flow make_flow(const ModelSpec& spec, const Network& net, const Dataset& data) {
  return make_flow(spec, net, data, spec.flow.kind, spec.flow.rho);
}

Flow make_flow(const ModelSpec& spec, const Network& net, const Dataset& data, FlowKind kind, double rho,
               const char* rho_key) {
  try {
    FlowSpec flow = spec.flow;  // the kind's own parameters, with the caller's kind and rho
    flow.kind = kind;
    flow.rho = rho;
    return Flow(net, data, spec.loss.kind, flow);
  } catch (const DomainError& error) {
    throw SpecError(fmt::format("flow.kind = \"{}\", {} = {}: {}", to_string(kind), rho_key, rho, error.what()));
  }
}

Vec initial_state(const ModelSpec& spec, const Flow& flow, const Vec& theta0) {
  const std::string source = spec.network.init_file.empty()
                                 ? fmt::format("network.init_scale = {}", spec.network.init_scale)
                                 : fmt::format("network.init_file = \"{}\"", spec.network.init_file);
  Vec y0;
  try {
    y0 = flow.initial_state(theta0);
  } catch (const DomainError& error) {
    throw SpecError(fmt::format("flow.kind = \"{}\", {}: {}", to_string(flow.kind()), source, error.what()));
  }
  // A flow that cannot be evaluated where it starts would end at t = 0 with status non_finite:
  // refuse it here, naming what sets the scale of the margins y f(x) (data and weights).
  // At the TimePoint t = 0 (the field of a time-dependent kind, nm, needs its time).
  Vec dy(flow.state_size());
  flow.rhs(TimePoint{0.0, 0.0}, y0, dy);
  if (!y0.allFinite() || !dy.allFinite())
    throw SpecError(fmt::format("flow.kind = \"{}\", loss.kind = \"{}\", {}: the flow is not finite at t = 0 "
                                "(the loss overflows: margins y f(x) of the initial weights on these data are "
                                "too large); rescale the data or lower the initial weights",
                                to_string(flow.kind()), to_string(spec.loss.kind), source));
  return y0;
}

SolverOptions resolve_solver(const ModelSpec& spec) {
  SolverOptions o;
  o.rtol = spec.solver.rtol;
  o.atol = spec.solver.atol;
  o.max_steps = spec.solver.max_steps;
  o.max_wall_seconds = spec.solver.max_wall_seconds;
  o.clock = spec.solver.clock;
  if (o.clock == ClockKind::auto_select) o.clock = spec.time.t_end > 1e3 ? ClockKind::log : ClockKind::t;
  o.method = spec.solver.method;
  if (o.method == Method::auto_select) {
    // Late-time flows are stiff (the loss concentrates on the support vectors): CVODE's BDF,
    // dense exact Jacobian up to 400 state components, matrix-free SPGMR on exact J v above.
    // Measured 4x faster than rosenbrock4 and 12x than dopri5 on the issue-5 problem to t = 1e12
    // (docs/benchmarks.md).
    o.method = Method::cvode;
    // ReLU kinks as events: every crossing restarts the integrator, which costs CVODE ~8 steps
    // (back up from order 1) and dopri5 one; measured 2-11x faster with dopri5 over whole runs
    // (thousands of crossings, docs/relu_late_benchmarks.md). cvode stays available for late,
    // crossing-free stretches.
    const bool relu_events = spec.network.activation == Activation::relu && !spec.network.hidden.empty() &&
                             spec.dynamics.kinks == KinkMode::events;
    if (relu_events) o.method = Method::dopri5;
  }
  return o;
}

}  // namespace gfsim
