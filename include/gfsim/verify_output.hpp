#pragma once
// What `gfsim verify` reports: the JSON document (STEM.json, also stored as /verify@json), the
// /verify group of STEM_gd.h5 (docs/file-format.md) and the printed verdict table.
#include <iosfwd>
#include <string>

#include "gfsim/hdf5_file.hpp"
#include "gfsim/verify.hpp"

namespace gfsim {

/// The report as JSON (keys in a fixed order; NaN and infinities as null).
std::string verify_json(const VerifyReport& report);
/// Writes the /verify group (series, fits, laws, the JSON) into `file`, the open gd output file
/// (from RunOptions::write_extra_groups of the gd run, before the file closes).
void write_verify_group(h5::File& file, const VerifyReport& report, const std::string& json);
void print_verify(std::ostream& out, const VerifyReport& report);

}  // namespace gfsim
