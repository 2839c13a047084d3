#pragma once
// Every exception type gfsim throws on purpose, in one place. The mapping to exit codes lives in
// main.cpp only: SpecError and IoError -> 2 (bad input, file trouble); anything else -> internal
// error. Numerical outcomes are never exceptions: they are statuses (result.hpp).
//
// Layering: the mathematics (network, flows, max margin, ...) knows no model keys. It throws
// DomainError naming the mathematical condition ("layer 2 has zero norm"); the build layer, which
// knows which model keys produced the objects, catches it and rethrows a SpecError naming the key.
#include <stdexcept>

namespace gfsim {

/// Bad user input (model file, --set override, data file, command-line value): the message names
/// the key (or file:line:column), the value and the rule it broke. Exit code 2.
class SpecError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A file could not be opened, created, read or written: the message names the file, the
/// operation and the HDF5 object. Exit code 2.
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A mathematical precondition failed on the objects given (a zero layer in a polar flow, a
/// non-separable data set for the max-margin problem, ...). Knows no model keys: the build layer
/// translates it into a SpecError naming them.
class DomainError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace gfsim
