// What `gfsim compare` reports (compare.hpp): the JSON beside the HDF5 files (read by
// analysis/plot_compare.py) and the printed table.
#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <ostream>

#include "gfsim/compare.hpp"

namespace gfsim {

namespace {
using ordered_json = nlohmann::ordered_json;

ordered_json reaches_json(const std::vector<Reach>& reaches) {
  ordered_json a = ordered_json::array();
  for (const Reach& r : reaches)
    a.push_back({{"threshold", r.threshold},
                 {"reached", r.reached},
                 {"t", r.t},
                 {"rhs_evals", r.rhs_evals},
                 {"wall_seconds", r.wall_seconds}});
  return a;
}

ordered_json rate_json(const RateFit& f) {
  return {{"power_of_t", f.power},       {"power_of_t_r2", f.power_r2}, {"power_of_log_t", f.log_power},
          {"power_of_log_t_r2", f.log_power_r2}, {"exp_rate_in_t", f.exp_rate}, {"exp_rate_in_t_r2", f.exp_rate_r2},
          {"points", f.points}};
}

std::string cell(const Reach& r) {
  if (!r.reached) return "-";
  return fmt::format("{:.3g}/{:.0f}/{:.3g}s", r.t, r.rhs_evals, r.wall_seconds);
}
}  // namespace

std::string compare_json(const CompareReport& r) {
  ordered_json j;
  j["model"] = r.model_name;
  j["K"] = r.K;
  j["has_reference"] = r.has_reference;
  j["gamma"] = r.gamma;
  j["direction_measure"] = r.direction_measure;
  j["noise_floor"] = r.floor;
  j["thresholds"] = std::vector<double>(std::begin(kCompareThresholds), std::end(kCompareThresholds));
  j["wall_seconds"] = r.wall_seconds;
  j["notes"] = r.notes;
  ordered_json flows = ordered_json::array();
  for (const FlowComparison& f : r.flows) {
    ordered_json o;
    o["flow"] = f.flow;
    o["file"] = f.output_path;
    o["status"] = status_name(f.run.result.status);
    o["t_final"] = f.run.result.t_final;
    o["rhs_evals"] = f.run.result.counters.rhs_evals;
    o["solver"] = f.run.result.method;
    o["clock"] = f.run.result.clock;
    o["margin_gap_reach"] = reaches_json(f.gap_reach);
    o["direction_reach"] = reaches_json(f.direction_reach);
    o["margin_gap_rate"] = rate_json(f.gap_rate);
    o["direction_rate"] = rate_json(f.direction_rate);
    o["series"] = {{"t", f.t},
                   {"margin", f.margin},
                   {"margin_gap", f.gap},
                   {"direction", f.direction_error},
                   {"rhs_evals", f.rhs_evals},
                   {"wall_seconds", f.wall_seconds}};
    flows.push_back(std::move(o));
  }
  j["flows"] = std::move(flows);
  return j.dump(1) + "\n";
}

void print_compare(std::ostream& out, const CompareReport& r) {
  fmt::print(out, "\n  compare {} (K = {}): gamma = {:.10g} ({}), direction measure: {}\n", r.model_name, r.K, r.gamma,
             r.has_reference ? "max-margin reference" : "best margin reached", r.direction_measure);
  fmt::print(out, "  cells: t / RHS evaluations / wall seconds at which the quantity went below the threshold for good\n");
  fmt::print(out, "\n  {:<23} {:<9} {:<24} {:<24} {:<24} {}\n", "flow", "quantity", "< 1e-2", "< 1e-3", "< 1e-4",
             "rate: t^-a (R2) | (log t)^-b (R2) | e^-kt (R2)");
  for (const FlowComparison& f : r.flows) {
    const auto row = [&](const char* what, const std::vector<Reach>& reach, const RateFit& rate, const std::string& name) {
      fmt::print(out, "  {:<23} {:<9} {:<24} {:<24} {:<24} a = {:.3g} ({:.3f}) | b = {:.3g} ({:.3f}) | k = {:.3g} ({:.3f})\n",
                 name, what, cell(reach[0]), cell(reach[1]), cell(reach[2]), rate.power, rate.power_r2, rate.log_power,
                 rate.log_power_r2, rate.exp_rate, rate.exp_rate_r2);
    };
    row("gap", f.gap_reach, f.gap_rate, f.flow);
    row("dir", f.direction_reach, f.direction_rate, "");
  }
  for (const FlowComparison& f : r.flows)
    fmt::print(out, "  {}: {} at t = {:.3g}, {} RHS, {} ({} clock), file {}\n", f.flow, status_name(f.run.result.status),
               f.run.result.t_final, f.run.result.counters.rhs_evals, f.run.result.method, f.run.result.clock,
               f.output_path);
  for (const auto& n : r.notes) fmt::print(out, "  note: {}\n", n);
  fmt::print(out, "  JSON: {}\n  wall time {:.2f} s\n", r.json_path, r.wall_seconds);
}

}  // namespace gfsim
