// Fuzz target: opening a gfsim HDF5 file and reading it through the h5 layer (hdf5_file.hpp).
// No C++ code reads an arbitrary gfsim file yet (the readers are analysis/gfsim_io.py; C++ reopens
// only files it has just written): this target does what such a reader does, as gfsim_io.load
// does it — open read-only, the format check on the root attributes (file_type, format_version),
// the provenance (model_toml parsed back, widths), every dataset of the documented layout
// (docs/file-format.md) and the /solver attributes.
// Input: the file's bytes. Contract checked: every operation either succeeds or throws IoError
// (SpecError for a model_toml that does not parse); a dataset read returns exactly the elements
// its shape holds. Anything else (another exception, a crash, a sanitizer report, a hang, an
// allocation of gigabytes) is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gfsim/errors.hpp"
#include "gfsim/hdf5_file.hpp"
#include "gfsim/model_spec.hpp"

namespace {

template <class Read>
void attempt(Read read) {
  try {
    read();
  } catch (const gfsim::IoError&) {
  } catch (const gfsim::SpecError&) {
  }
}

std::size_t elements(const std::vector<std::int64_t>& shape) {
  std::size_t count = 1;
  for (const std::int64_t extent : shape) count *= static_cast<std::size_t>(extent);
  return count;
}

void read_dataset(const gfsim::h5::Group& group, const std::string& path) {
  attempt([&] {
    if (!group.contains(path)) return;
    const gfsim::h5::Dataset dataset = group.open_dataset(path);
    const std::vector<std::int64_t> shape = dataset.shape();
    const std::size_t expected = elements(shape);
    const std::vector<std::string> names = dataset.enum_names();
    const std::size_t got = names.empty() ? dataset.read_doubles().size() : dataset.read_int64s().size();
    if (got != expected) {
      std::fprintf(stderr, "%s: read %zu values, shape holds %zu\n", path.c_str(), got, expected);
      std::abort();
    }
    attempt([&] { (void)dataset.string_attr("description"); });
    attempt([&] { (void)dataset.string_array_attr("column_names"); });
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/gfsim_fuzz_h5_" + std::to_string(getpid()) + ".h5";
  FILE* out = std::fopen(path.c_str(), "wb");
  if (!out) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, out) != size) std::abort();
  std::fclose(out);

  gfsim::h5::File file;
  try {
    file = gfsim::h5::File::open(path, gfsim::h5::Access::read_only);
  } catch (const gfsim::IoError&) {
    return 0;  // not an HDF5 file HDF5 can open: refused with a message
  }
  // The format check and the provenance.
  attempt([&] { (void)file.string_attr("file_type"); });
  attempt([&] { (void)file.int64_attr("format_version"); });
  for (const char* attr : {"gfsim_version", "git_commit", "created", "model_name", "flow", "loss"})
    attempt([&] { (void)file.string_attr(attr); });
  attempt([&] { (void)file.int64_array_attr("widths"); });
  attempt([&] { (void)file.double_attr("t_end"); });
  attempt([&] { (void)gfsim::parse_model_spec(file.string_attr("model_toml"), path + "@model_toml"); });
  attempt([&] { (void)file.open_group("h5md").int32_array_attr("version"); });
  // The documented datasets (observables under their usual names) and the solver outcome.
  for (const char* name : {"theta", "loss", "rho", "margin", "hessian_eigs"})
    for (const char* part : {"step", "time", "value"})
      read_dataset(file, std::string("observables/") + name + "/" + part);
  for (const char* name : {"events/time", "events/layer", "events/unit", "events/point", "events/kind",
                           "events/summary", "data/X", "data/y", "initial/theta", "final/theta"})
    read_dataset(file, name);
  attempt([&] {
    if (!file.contains("solver")) return;
    const gfsim::h5::Group solver = file.open_group("solver");
    for (const char* attr : {"status", "message", "method", "clock"}) attempt([&] { (void)solver.string_attr(attr); });
    attempt([&] { (void)solver.double_attr("t_final"); });
    for (const char* attr : {"steps", "accepted", "rejected", "rhs_evals", "events"})
      attempt([&] { (void)solver.int64_attr(attr); });
  });
  return 0;
}
