// Provenance and solver outcome attributes, shared by every file kind (provenance.hpp).
#include "gfsim/provenance.hpp"

#include <set>
#include <string>
#include <stdexcept>
#include <utility>

#include "gfsim/timestamp.hpp"
#include "gfsim/version.hpp"

namespace gfsim {

const std::vector<std::string>& fixed_provenance_attributes() {
  static const std::vector<std::string> names = {"file_type",  "format_version", "gfsim_version",
                                                 "git_commit", "build_target",   "created",
                                                 "model_toml", "model_name"};
  return names;
}

std::string build_target() {
#if defined(__clang__)
  std::string target = "clang " __clang_version__;
#elif defined(__GNUC__)
  std::string target = "gcc " __VERSION__;
#else
  std::string target = "unknown compiler";
#endif
#if defined(__x86_64__)
  target += ", x86-64";
#elif defined(__aarch64__)
  target += ", aarch64";
#endif
  // The SIMD extensions compiled for (-march=native, CMakeLists.txt): they set the width and the
  // FMA contraction of Eigen's kernels, and with them the last bits of every sum.
#if defined(__AVX__)
  target += " avx";
#endif
#if defined(__AVX2__)
  target += " avx2";
#endif
#if defined(__FMA__)
  target += " fma";
#endif
#if defined(__AVX512F__)
  target += " avx512f";
#endif
#if defined(__ARM_NEON)
  target += " neon";
#endif
  // ... and the CPU model they were tuned for (CMakeLists.txt): the same extensions tuned for
  // another model took other instructions and moved the last bits.
#if defined(GFSIM_TUNE)
  target += ", tuned for " GFSIM_TUNE;
#endif
  return target;
}

void validate_provenance(const Provenance& p) {
  std::set<std::string> names(fixed_provenance_attributes().begin(),
                              fixed_provenance_attributes().end());
  auto claim = [&names](const std::string& key) {
    if (key.empty() || !names.insert(key).second) {
      throw std::invalid_argument("Provenance: root attribute '" + key +
                                  "' is empty, reserved or given twice");
    }
  };
  for (const auto& entry : p.seeds) claim(entry.first);
  for (const auto& entry : p.string_attrs) claim(entry.first);
  for (const auto& entry : p.double_attrs) claim(entry.first);
  for (const auto& entry : p.int_attrs) claim(entry.first);
  for (const auto& entry : p.int_array_attrs) claim(entry.first);
}

void write_provenance(h5::Group& root, const Provenance& p) {
  validate_provenance(p);
  root.set_string_attr("file_type", p.file_type);
  root.set_int64_attr("format_version", kFormatVersion);
  root.set_string_attr("gfsim_version", kVersion);
  root.set_string_attr("git_commit", git_commit());
  root.set_string_attr("build_target", build_target());
  root.set_string_attr("created", utc_timestamp_now());
  root.set_string_attr("model_toml", p.model_toml);
  root.set_string_attr("model_name", p.model_name);
  for (const auto& [key, value] : p.seeds) root.set_int64_attr(key, value);
  for (const auto& [key, value] : p.string_attrs) root.set_string_attr(key, value);
  for (const auto& [key, value] : p.double_attrs) root.set_double_attr(key, value);
  for (const auto& [key, value] : p.int_attrs) root.set_int64_attr(key, value);
  for (const auto& [key, value] : p.int_array_attrs) root.set_int64_array_attr(key, value);
}

void write_solver_outcome(h5::Group& parent, const SolveResult& result,
                          const std::map<std::string, std::int64_t>& extra_counters) {
  const SolverCounters& c = result.counters;
  const std::pair<const char*, std::int64_t> counters[] = {
      {"steps", c.steps},
      {"accepted", c.accepted},
      {"rejected", c.rejected},
      {"rhs_evals", c.rhs_evals},
      {"jacobian_evals", c.jacobian_evals},
      {"jvp_evals", c.jvp_evals},
      {"lu_decompositions", c.lu_decompositions},
      {"events", c.events},
      {"sliding_entries", c.sliding_entries},
      {"discontinuities", c.discontinuities},
      {"reanchors", c.reanchors}};
  std::set<std::string> names;
  for (const auto& [name, value] : counters) names.insert(name);
  for (const auto& [name, value] : extra_counters) {
    if (!names.insert(name).second) {
      throw std::invalid_argument("write_solver_outcome: counter '" + name + "' given twice");
    }
  }
  h5::Group solver = parent.create_group("solver");
  solver.set_string_attr("status", status_name(result.status));
  solver.set_string_attr("message", result.message);
  solver.set_string_attr("method", result.method);
  solver.set_string_attr("clock", result.clock);
  solver.set_double_attr("t_final", result.t_final);
  for (const auto& [name, value] : counters) solver.set_int64_attr(name, value);
  for (const auto& [name, value] : extra_counters) solver.set_int64_attr(name, value);
  solver.set_double_attr("wall_seconds", c.wall_seconds);
}

}  // namespace gfsim
