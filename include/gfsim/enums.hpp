#pragma once
// The option enums of a model; their names are in enum_names.hpp (one table per enum). Kept in a
// C++17-clean header of their own: stepper_odeint.cpp (odeint) is compiled as C++17.
#include <string_view>

namespace gfsim {

enum class DataKind { gaussian, teacher, csv };
enum class Activation { relu, linear };
enum class LossKind { exp, logistic, square };
/// A flow kind, by its name in the table of src/flow_kinds.cpp. Not an enum: the kinds are open (a
/// kind is one file in src/flows/ and one line of that table), so its value is the table's name.
/// FlowKind::gd etc. name the built-in kinds; FlowKind{"name"} any other.
struct FlowKind {
  std::string_view name;
  static const FlowKind gd, gd_polar, wn, fixed_rho;
  friend constexpr bool operator==(FlowKind a, FlowKind b) { return a.name == b.name; }
  friend constexpr bool operator!=(FlowKind a, FlowKind b) { return !(a == b); }
};
inline constexpr FlowKind FlowKind::gd{"gd"};
inline constexpr FlowKind FlowKind::gd_polar{"gd_polar"};
inline constexpr FlowKind FlowKind::wn{"wn"};
inline constexpr FlowKind FlowKind::fixed_rho{"fixed_rho"};

enum class Method { auto_select, dopri5, rkf78, cash_karp, rosenbrock4, cvode };
enum class ClockKind { auto_select, t, log };
enum class KinkMode { events, ignore, smooth };
enum class LambdaKind { power, log, table };
enum class RhoScheduleKind { logarithmic, power, exponential, staircase, table };

/// Names used in files, messages and TOML ("exp", "gd_polar", "auto", ...), from the name tables of
/// enum_names.hpp (defined in model_spec.cpp).
const char* to_string(DataKind);
const char* to_string(Activation);
const char* to_string(LossKind);
const char* to_string(FlowKind);
const char* to_string(Method);
const char* to_string(ClockKind);
const char* to_string(KinkMode);
const char* to_string(LambdaKind);
const char* to_string(RhoScheduleKind);

}  // namespace gfsim
