#pragma once
// The one UTC timestamp format of gfsim's files and reports (ISO 8601, seconds, "Z").
// fmt::gmtime, not a formatted time_point: fmt 9 (Debian 12) formats time_points in local time.
#include <ctime>
#include <string>

#include <fmt/chrono.h>

namespace gfsim {

inline std::string utc_timestamp_now() { return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::time(nullptr))); }

}  // namespace gfsim
