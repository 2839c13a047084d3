// The flow-kind name table: `flow.kind` names, their descriptions and factories (one line per kind,
// each kind in its own file of src/flows/). The model reader, the resolved-model writer and the
// messages take the names from here (EnumNames<FlowKind> in enum_names.hpp).
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "gfsim/flow_kind.hpp"

namespace gfsim {

std::unique_ptr<FlowKindModel> make_gd_flow(const FlowSpec&);
std::unique_ptr<FlowKindModel> make_gd_polar_flow(const FlowSpec&);
std::unique_ptr<FlowKindModel> make_wn_flow(const FlowSpec&);
std::unique_ptr<FlowKindModel> make_fixed_rho_flow(const FlowSpec&);
std::unique_ptr<FlowKindModel> make_nm_flow(const FlowSpec&);
std::unique_ptr<FlowKindModel> make_nm_polar_flow(const FlowSpec&);
std::unique_ptr<FlowKindModel> make_rho_schedule_flow(const FlowSpec&);
std::unique_ptr<FlowKindModel> make_normalized_flow(const FlowSpec&);
std::unique_ptr<FlowKindModel> make_rho_schedule_normalized_flow(const FlowSpec&);

namespace {

struct Table {
  std::vector<FlowKindEntry> entries{
      {"gd", "gradient flow of the weights, dW/dt = -grad L", make_gd_flow},
      {"gd_polar", "the gd flow in polar form, state (rho_k, V_k)", make_gd_polar_flow},
      {"wn", "weight normalization, state (rho_k, V_k)", make_wn_flow},
      {"fixed_rho", "the flow of V on the spheres at a fixed product of layer norms flow.rho", make_fixed_rho_flow},
      {"nm", "norm-minimizing flow dW/dt = -grad L - lambda(t) W (flow.lambda)", make_nm_flow},
      {"nm_polar", "the nm flow in polar form, state (rho_k, V_k)", make_nm_polar_flow},
      {"rho_schedule", "the fixed-rho flow of V at a prescribed rho(t) (flow.rho_schedule), state (t, V_k)", make_rho_schedule_flow},
      {"normalized", "loss-normalized gradient flow dW/dt = -grad L / L", make_normalized_flow},
      {"rho_schedule_normalized", "the rho_schedule field divided by L: dV/dt = -P grad_V log L at the prescribed rho(t)", make_rho_schedule_normalized_flow},
  };
  std::vector<std::pair<FlowKind, const char*>> names = name_pairs(entries);

  static std::vector<std::pair<FlowKind, const char*>> name_pairs(const std::vector<FlowKindEntry>& entries) {
    std::vector<std::pair<FlowKind, const char*>> names;
    for (const FlowKindEntry& e : entries) names.emplace_back(FlowKind{e.name}, e.name);
    return names;
  }
};

Table& table() {
  static Table t;
  return t;
}

}  // namespace

const std::vector<FlowKindEntry>& flow_kind_table() { return table().entries; }

const std::vector<std::pair<FlowKind, const char*>>& flow_kind_names() { return table().names; }

std::unique_ptr<FlowKindModel> make_flow_kind(const FlowSpec& spec) {
  for (const FlowKindEntry& e : table().entries)
    if (spec.kind.name == e.name) return e.make(spec);
  throw std::invalid_argument(fmt::format("no flow kind \"{}\" in the kind table", spec.kind.name));
}

void register_flow_kind(const FlowKindEntry& entry) {
  Table& t = table();
  if (!entry.name || !entry.make ||
      std::any_of(t.entries.begin(), t.entries.end(), [&](const FlowKindEntry& e) { return std::strcmp(e.name, entry.name) == 0; }))
    throw std::invalid_argument(fmt::format("register_flow_kind: \"{}\" is unnamed, has no factory or is taken",
                                            entry.name ? entry.name : ""));
  t.entries.push_back(entry);
  t.names.emplace_back(FlowKind{entry.name}, entry.name);
}

void FlowKindModel::time_derivative(const Flow&, TimePoint, const Vec& y, Vec& dft) const {
  dft.setZero(y.size());
}

}  // namespace gfsim
