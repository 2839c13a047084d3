#pragma once
// What `gfsim verify` reports: the JSON document (STEM.json, also stored as /verify@json), the
// /verify group of STEM_gd.h5 (docs/file-format.md) and the printed verdict table.
#include <iosfwd>
#include <string>

#include "gfsim/verify.hpp"

namespace gfsim {

/// The report as JSON (keys in a fixed order; NaN and infinities as null).
std::string verify_json(const VerifyReport& report);
/// Adds the /verify group (series, fits, laws, the JSON) to report.gd_path.
void write_verify_group(const VerifyReport& report, const std::string& json);
void print_verify(std::ostream& out, const VerifyReport& report);

}  // namespace gfsim
