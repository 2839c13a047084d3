#include "gfsim/verify_output.hpp"

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include <ostream>
#include <vector>

#include "gfsim/hdf5_file.hpp"

namespace gfsim {

namespace {
using ordered_json = nlohmann::ordered_json;
}  // namespace

std::string verify_json(const VerifyReport& r) {
  ordered_json j;
  j["model"] = r.model_name;
  j["loss"] = r.loss;
  j["activation"] = r.activation;
  j["gd_file"] = r.gd_path;
  j["wn_file"] = r.wn_path;
  j["K"] = r.K;
  j["t_end"] = r.t_end;
  j["wall_seconds"] = r.wall_seconds;
  j["has_reference"] = r.has_reference;
  if (r.has_reference) {
    j["gamma"] = r.mm.gamma;
    j["v_star"] = std::vector<double>(r.mm.direction.data(), r.mm.direction.data() + r.mm.direction.size());
    j["kkt_max_residual"] = r.mm.kkt.max_residual();
    j["near_support"] = {{"index", r.near_support}, {"margin", r.near_margins}, {"exponent", r.near_exponents}};
  }
  for (const FlowLaws* f : {&r.gd, &r.wn}) {
    ordered_json o;
    o["status"] = status_name(f->run.result.status);
    o["t_final"] = f->run.result.t_final;
    o["samples"] = f->run.samples;
    o["rho_slope"] = f->slope_fit.slope;
    o["window_log_t"] = f->window_log_t;
    o["window_slope_rel_error"] = f->window_slope_rel_error;
    o["eps_end"] = f->eps_end;
    o["fit_c_over_log_t"] = {
        {"C", f->inv_log.C}, {"max_rel_residual", f->inv_log.max_rel_residual}, {"r2_log", f->inv_log.r2}};
    o["fit_c_over_log_t_plus_b"] = {{"C", f->inv_log_b.C},
                                    {"b", f->inv_log_b.b},
                                    {"max_rel_residual", f->inv_log_b.max_rel_residual},
                                    {"r2_log", f->inv_log_b.r2}};
    o["fit_log_eps_power"] = {{"a", f->power.a}, {"c", f->power.c}, {"p", f->power.p}, {"r2", f->power.r2}};
    o["fit_log_t_range"] = {f->fit_log_t_min, f->fit_log_t_max};
    o["margin_end"] = f->margin_end;
    o["margin_monotone_from"] = f->margin_monotone_from;
    o["balance_drift"] = f->run.balance_drift;
    o["layer_exponents"] = f->layer_exponents;
    o["stopped_early"] = f->stopped_early;
    o["kkt"] = {{"log_t", f->kkt_log_t},
                {"stationarity", f->kkt_stationarity},
                {"complementarity", f->kkt_complementarity},
                {"active", f->kkt_active},
                {"residual_end", f->kkt_end},
                {"trend_exponent_log_t", f->kkt_trend.slope}};
    ordered_json st = {{"t", ordered_json::array()},        {"rho", ordered_json::array()},
                       {"distance", ordered_json::array()}, {"raw_distance", ordered_json::array()},
                       {"optimum_to_reference", ordered_json::array()}, {"grad_rel", ordered_json::array()},
                       {"converged", ordered_json::array()}, {"method", ordered_json::array()}};
    for (const auto& d : f->stationary) {
      st["t"].push_back(d.t);
      st["rho"].push_back(d.rho);
      st["distance"].push_back(d.distance);
      st["raw_distance"].push_back(d.raw_distance);
      st["optimum_to_reference"].push_back(d.optimum_to_reference);
      st["grad_rel"].push_back(d.grad_rel);
      st["converged"].push_back(d.converged);
      st["method"].push_back(d.describe());
    }
    o["stationary"] = std::move(st);
    j[f->flow] = std::move(o);
  }
  j["notes"] = r.notes;
  ordered_json laws = ordered_json::array();
  for (const auto& l : r.laws)
    laws.push_back({{"law", l.law},
                    {"statement", l.statement},
                    {"expected", l.expected},
                    {"measured", l.measured},
                    {"rel_error", l.rel_error},
                    {"verdict", l.verdict}});
  j["laws"] = std::move(laws);
  return j.dump(2) + "\n";
}

void write_verify_group(h5::File& file, const VerifyReport& r, const std::string& json) {
  {
    auto g = file.create_group("verify");
    g.set_string_attr("json", json);
    g.set_string_attr("wn_file", r.wn_path);
    g.set_int64_attr("K", r.K);
    g.set_double_attr("wall_seconds", r.wall_seconds);
    if (r.has_reference) {
      g.set_double_attr("gamma", r.mm.gamma);
      auto vec = [](const Vec& v) { return std::vector<double>(v.data(), v.data() + v.size()); };
      g.write_dataset("v_star", vec(r.mm.direction));
      g.write_dataset("w_hat", vec(r.mm.w_hat));
      g.write_dataset("alpha", vec(r.mm.alpha));
      std::vector<double> idx(r.near_support.begin(), r.near_support.end());
      if (!idx.empty()) {
        g.write_dataset("near_support/index", idx);
        g.write_dataset("near_support/margin", r.near_margins);
        g.write_dataset("near_support/exponent", r.near_exponents);
      }
    }
    for (const FlowLaws* f : {&r.gd, &r.wn}) {
      if (f->log_t.empty()) continue;
      g.write_dataset(f->flow + "/log_t", f->log_t);
      g.write_dataset(f->flow + "/rho", f->rho);
      g.write_dataset(f->flow + "/margin", f->margin);
      if (!f->eps.empty()) g.write_dataset(f->flow + "/eps", f->eps);
      for (std::size_t k = 0; k < f->rho_k.size(); ++k) g.write_dataset(fmt::format("{}/rho_{}", f->flow, k + 1), f->rho_k[k]);
      if (!f->kkt_log_t.empty()) {
        g.write_dataset(f->flow + "/kkt/log_t", f->kkt_log_t);
        g.write_dataset(f->flow + "/kkt/stationarity", f->kkt_stationarity);
        g.write_dataset(f->flow + "/kkt/complementarity", f->kkt_complementarity);
        g.write_dataset(f->flow + "/kkt/active", f->kkt_active);
      }
      if (!f->stationary.empty()) {
        std::vector<double> t, rho, dist, raw, opt;
        for (const auto& d : f->stationary)
          t.push_back(d.t), rho.push_back(d.rho), dist.push_back(d.distance), raw.push_back(d.raw_distance),
              opt.push_back(d.optimum_to_reference);
        g.write_dataset(f->flow + "/stationary/raw_distance", raw);
        g.write_dataset(f->flow + "/stationary/t", t);
        g.write_dataset(f->flow + "/stationary/rho", rho);
        g.write_dataset(f->flow + "/stationary/distance", dist);
        g.write_dataset(f->flow + "/stationary/optimum_to_reference", opt);
      }
    }
    for (const auto& law : r.laws) {
      auto lg = g.create_group("laws/" + law.law);
      lg.set_string_attr("statement", law.statement);
      lg.set_string_attr("expected", law.expected);
      lg.set_string_attr("measured", law.measured);
      lg.set_double_attr("rel_error", law.rel_error);
      lg.set_string_attr("verdict", law.verdict);
    }
  }
}

void print_verify(std::ostream& out, const VerifyReport& r) {
  fmt::print(out, "\n  verify {} (K = {}, {}, {} loss), both flows to t_end = {:.3g} (the model's time.t_end)\n",
             r.model_name, r.K, r.activation, r.loss, r.t_end);
  if (r.has_reference) {
    fmt::print(out, "  max-margin reference: gamma = {:.10g}, 1/gamma = {:.10g}, {} support vectors, KKT max residual "
                    "{:.1e}\n", r.mm.gamma, 1 / r.mm.gamma, r.mm.support.size(), r.mm.kkt.max_residual());
    std::string ns;
    for (std::size_t i = 0; i < r.near_support.size() && i < 12; ++i)
      ns += fmt::format("{}{} ({:.3g})", i ? ", " : "", r.near_support[i], r.near_exponents[i]);
    if (r.near_support.size() > 12) ns += ", ...";
    fmt::print(out, "  near-support points (z_n.v* <= 1.05 gamma): {}; point (exponent m_n/gamma - 1 of the loss-weight "
                    "decay t^-(m_n/gamma - 1)): {}\n", r.near_support.size(), ns);
  }
  for (const FlowLaws* f : {&r.gd, &r.wn})
    fmt::print(out, "  {} flow: {} at t = {:.3g}, {} samples, eps(t_end) = {:.3e}, wall {:.2f} s\n", f->flow,
               status_name(f->run.result.status), f->run.result.t_final, f->run.samples, f->eps_end,
               f->run.result.counters.wall_seconds);
  fmt::print(out, "\n  {:<14} {:<10} {:<14} {}\n", "law", "rel.error", "expected", "verdict / measured");
  for (const auto& l : r.laws) {
    fmt::print(out, "  {:<14} {:<10} {:<14} {}\n", l.law, format_percent(l.rel_error), l.expected.substr(0, 14), l.verdict);
    fmt::print(out, "  {:<14} {:<10} {:<14}   statement: {}\n", "", "", "", l.statement);
    fmt::print(out, "  {:<14} {:<10} {:<14}   measured:  {}\n", "", "", "", l.measured);
  }
  for (const auto& n : r.notes) fmt::print(out, "  note: {}\n", n);
  fmt::print(out, "  files: {}, {}, {}\n  wall time {:.2f} s\n", r.gd_path, r.wn_path, r.json_path, r.wall_seconds);
}

}  // namespace gfsim
