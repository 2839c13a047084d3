// Fuzz target: the CSV data reader (dataset.hpp, read_csv_dataset). The input is the file's bytes;
// the first byte's low bit also toggles the bias column. Contract checked: the reader either throws
// SpecError (a message with path:line:column) or returns n >= 1 points of dimension >= 1 with
// finite features and labels in {-1, +1}. Anything else is a finding.
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gfsim/dataset.hpp"
#include "gfsim/errors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The reader takes a path: one scratch file per process, rewritten for each input.
  static const std::string path = "/tmp/gfsim_fuzz_csv_" + std::to_string(getpid()) + ".csv";
  FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, file) != size) std::abort();
  std::fclose(file);
  const bool bias = size > 0 && (data[0] & 1u);
  try {
    const gfsim::Dataset ds = gfsim::read_csv_dataset(path, bias);
    if (ds.n() < 1 || ds.dim() < 1 || ds.y.size() != ds.n()) std::abort();
    if (!ds.X.allFinite()) std::abort();
    for (gfsim::Index i = 0; i < ds.n(); ++i)
      if (ds.y(i) != 1.0 && ds.y(i) != -1.0) std::abort();
  } catch (const gfsim::SpecError&) {
  }
  return 0;
}
