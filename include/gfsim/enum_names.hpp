#pragma once
// The name table of each option enum (enums.hpp), declared once: EnumNames<E>::table is the one list
// of (value, name) pairs that the TOML reader, the canonical writer, the messages ("must be one of
// ...", in table order) and to_string() use. C++17-clean like enums.hpp.
#include <array>
#include <utility>
#include <vector>

#include "gfsim/enums.hpp"

namespace gfsim {

template <typename Enum>
struct EnumNames;

template <>
struct EnumNames<DataKind> {
  static constexpr std::array<std::pair<DataKind, const char*>, 3> table{
      {{DataKind::gaussian, "gaussian"}, {DataKind::teacher, "teacher"}, {DataKind::csv, "csv"}}};
};
template <>
struct EnumNames<Activation> {
  static constexpr std::array<std::pair<Activation, const char*>, 2> table{
      {{Activation::relu, "relu"}, {Activation::linear, "linear"}}};
};
template <>
struct EnumNames<LossKind> {
  static constexpr std::array<std::pair<LossKind, const char*>, 3> table{
      {{LossKind::exp, "exp"}, {LossKind::logistic, "logistic"}, {LossKind::square, "square"}}};
};
/// The flow kinds' names come from the kind table (src/flow_kinds.cpp), which tests may extend
/// (register_flow_kind): a view read when iterated, so the reader, the writer and the messages
/// always see the current table.
const std::vector<std::pair<FlowKind, const char*>>& flow_kind_names();
template <>
struct EnumNames<FlowKind> {
  struct View {
    auto begin() const { return flow_kind_names().begin(); }
    auto end() const { return flow_kind_names().end(); }
  };
  static constexpr View table{};
};
template <>
struct EnumNames<Method> {
  static constexpr std::array<std::pair<Method, const char*>, 6> table{{{Method::auto_select, "auto"},
                                                                         {Method::dopri5, "dopri5"},
                                                                         {Method::rkf78, "rkf78"},
                                                                         {Method::cash_karp, "cash_karp"},
                                                                         {Method::rosenbrock4, "rosenbrock4"},
                                                                         {Method::cvode, "cvode"}}};
};
template <>
struct EnumNames<ClockKind> {
  static constexpr std::array<std::pair<ClockKind, const char*>, 3> table{
      {{ClockKind::auto_select, "auto"}, {ClockKind::log, "log"}, {ClockKind::t, "t"}}};
};
template <>
struct EnumNames<KinkMode> {
  static constexpr std::array<std::pair<KinkMode, const char*>, 3> table{
      {{KinkMode::events, "events"}, {KinkMode::ignore, "ignore"}, {KinkMode::smooth, "smooth"}}};
};

template <>
struct EnumNames<LambdaKind> {
  static constexpr std::array<std::pair<LambdaKind, const char*>, 3> table{
      {{LambdaKind::power, "power"}, {LambdaKind::log, "log"}, {LambdaKind::table, "table"}}};
};
template <>
struct EnumNames<RhoScheduleKind> {
  static constexpr std::array<std::pair<RhoScheduleKind, const char*>, 5> table{
      {{RhoScheduleKind::logarithmic, "logarithmic"},
       {RhoScheduleKind::power, "power"},
       {RhoScheduleKind::exponential, "exponential"},
       {RhoScheduleKind::staircase, "staircase"},
       {RhoScheduleKind::table, "table"}}};
};

/// The name of an enum value in files, messages and TOML ("exp", "gd_polar", "auto", ...).
template <typename Enum>
const char* enum_name(Enum value) {
  for (const auto& [entry, name] : EnumNames<Enum>::table)
    if (entry == value) return name;
  return "?";
}

}  // namespace gfsim
