// Fuzz target: the TOML model reader with --set overrides (model_spec.hpp).
// Input: TOML text, optionally followed by a line "%%" and one "section.key=value" override per
// line. Contract checked: parse_model_spec either throws SpecError (bad input, exit 2 in gfsim) or
// returns a spec whose canonical TOML parses back to the same spec. Any other exception, a crash, a
// sanitizer report or a hang is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "gfsim/errors.hpp"
#include "gfsim/model_spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string toml(input);
  std::vector<std::string> overrides;
  if (const auto split = input.find("\n%%\n"); split != std::string_view::npos) {
    toml = std::string(input.substr(0, split + 1));
    std::string_view rest = input.substr(split + 4);
    while (!rest.empty()) {
      const auto end = rest.find('\n');
      overrides.emplace_back(rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    }
  }
  gfsim::ModelSpec spec;
  try {
    spec = gfsim::parse_model_spec(toml, "/fuzz/model.toml", overrides);
  } catch (const gfsim::SpecError&) {
    return 0;  // refused with a message: the intended outcome for bad input
  }
  // The resolved model written into every output file must read back as the same experiment.
  gfsim::ModelSpec again;
  try {
    again = gfsim::parse_model_spec(spec.resolved_toml, "/fuzz/model.toml");
  } catch (const gfsim::SpecError& e) {
    std::fprintf(stderr, "canonical TOML does not parse back: %s\n---\n%s\n", e.what(), spec.resolved_toml.c_str());
    std::abort();
  }
  if (!(again == spec)) {
    std::fprintf(stderr, "canonical TOML parses to another spec:\n---\n%s\n---\n%s\n", spec.resolved_toml.c_str(),
                 again.resolved_toml.c_str());
    std::abort();
  }
  return 0;
}
