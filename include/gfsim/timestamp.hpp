#pragma once
// The one UTC timestamp format of gfsim's files and reports (ISO 8601, seconds, "Z").
#include <chrono>
#include <string>

#include <fmt/chrono.h>

namespace gfsim {

inline std::string utc_timestamp_now() {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                     std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
}

}  // namespace gfsim
