#pragma once
// The build layer: the only place that turns ModelSpec values into objects (data set, network,
// flow, initial state, solver options). The commands (run, stationary, verify) call it instead of
// constructing objects themselves. The mathematics below it throws DomainError naming a
// mathematical condition; this layer rethrows it as a SpecError naming the model keys behind it.
//
//   const Dataset data = make_dataset(spec);        // refuses runs that cannot fit in memory
//   const Network net = flow_network(spec, data.dim());
//   const Flow flow = make_flow(spec, net, data);
//   const Vec y0 = initial_state(spec, flow, initial_weights(spec, net));
#include <vector>

#include "gfsim/data_split.hpp"
#include "gfsim/dataset.hpp"
#include "gfsim/flow.hpp"
#include "gfsim/integrate.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/network.hpp"

namespace gfsim {

/// The data set of the spec. Before allocating a generated data set (and after reading a CSV file)
/// it checks the memory estimate of the whole run (memory_estimate.hpp) and throws SpecError
/// naming the keys that set it when the run cannot fit.
Dataset make_dataset(const ModelSpec& spec);
/// The same with the held-out test set and what was done to the data (data_split.hpp); the
/// training set is make_dataset's.
HeldOutData make_held_out_data(const ModelSpec& spec);
/// Network widths {d_0, hidden..., 1} for a spec and data dimension.
std::vector<Index> network_widths(const ModelSpec& spec, Index data_dim);
/// The network a run integrates: with dynamics.kinks = "smooth" its ReLU is smoothed at width
/// dynamics.kink_width (network.hpp); otherwise exact.
Network flow_network(const ModelSpec& spec, Index data_dim);
/// The exact network (ReLU never smoothed): `stationary` and `verify` check laws of the exact flow.
Network exact_network(const ModelSpec& spec, Index data_dim);
/// Initial weights in the theta layout: network.init_file (number_table.hpp: one number per line),
/// or network.init_scale * N(0,1)/sqrt(fan_in) drawn from network.seed.
Vec initial_weights(const ModelSpec& spec, const Network& net);
/// The flow of the spec (flow.kind, flow.rho, loss.kind) on `net` and `data`.
Flow make_flow(const ModelSpec& spec, const Network& net, const Dataset& data);
/// A flow of another kind on the same spec (stationary: fixed_rho at each swept rho; `rho_key`
/// names where rho came from, e.g. "--rho", for messages).
Flow make_flow(const ModelSpec& spec, const Network& net, const Dataset& data, FlowKind kind, double rho,
               const char* rho_key = "flow.rho");
/// The initial state of `flow` from weights theta0 (polar flows: every layer must be non-zero).
/// SpecError naming the keys when the flow's right-hand side there is not finite (e.g. the exp loss
/// of huge margins overflows at t = 0).
Vec initial_state(const ModelSpec& spec, const Flow& flow, const Vec& theta0);
/// Solver options with method/clock "auto" resolved (documented in models/README.md).
SolverOptions resolve_solver(const ModelSpec& spec);

}  // namespace gfsim
