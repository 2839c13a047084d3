#pragma once
// Memory a run needs, estimated from the model before anything large is allocated, so that a model
// too large for the machine is refused with a message naming the keys that set its size (exit 2)
// instead of ending in std::bad_alloc.
//
//   const MemoryEstimate estimate = estimate_memory(spec, n, d0);   // d0 includes the bias column
//   check_memory(spec, estimate);                                    // throws SpecError
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gfsim/integrate.hpp"
#include "gfsim/model_spec.hpp"
#include "gfsim/types.hpp"

namespace gfsim {

/// One block of memory, in bytes, and the model keys that set its size.
struct MemoryPart {
  std::string name;   ///< e.g. "data matrix"
  double bytes = 0;   ///< a double: sizes of impossible models overflow 64-bit integers
  std::string keys;   ///< e.g. "data.n, data.dim"
};

struct MemoryEstimate {
  std::vector<MemoryPart> parts;  ///< data matrix, network workspace, solver, outputs
  double total() const;
  const MemoryPart& part(const std::string& name) const;
};

/// Sizes of the objects a `gfsim run` of `spec` allocates on n points of dimension d0 (bias column
/// included), with `solver` the resolved solver options (resolve_solver):
/// - data matrix: the n x d0 points held three times (the data set, the flow's d0 x n transpose, the
///   row-major copy written to the output), labels;
/// - network workspace: per point and unit, the activations, masks, tangents, backprop signals and
///   their tangents, the activation pattern of event runs (network.hpp Workspace), loss weights;
/// - solver: the stepper's state vectors; rosenbrock4 a dense Jacobian, its copy and the LU (3 S^2,
///   S = state size); cvode dense Jacobian, CVODE's saved copy, LU and matrix (4 S^2) when
///   S <= kCvodeDenseMaxSize, else the Krylov basis (kCvodeKrylovDim + 1 vectors) and CVODE's vectors;
/// - outputs: one HDF5 chunk of each observable and the final extras (weights, labels).
MemoryEstimate estimate_memory(const ModelSpec& spec, const SolverOptions& solver, Index n, Index d0);

/// Bytes of memory available: MemAvailable of /proc/meminfo (nothing when it cannot be read).
std::optional<double> available_memory_bytes();

/// Throws SpecError when the estimate exceeds solver.max_memory (if > 0) or the available memory,
/// naming the parts and the keys that set them.
void check_memory(const ModelSpec& spec, const MemoryEstimate& estimate,
                  std::optional<double> available = available_memory_bytes());

/// "7.2 TB", "512.0 MB": for messages.
std::string format_bytes(double bytes);

}  // namespace gfsim
