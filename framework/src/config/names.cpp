// The YAML spelling of the config enums, and durations written back in the same units.
#include <grove/config/config.hpp>

namespace grove::config {

std::string_view to_string(start_type v) {
  switch (v) {
    case start_type::permanent:
      return "permanent";
    case start_type::transient:
      return "transient";
    case start_type::temporary:
      return "temporary";
  }
  return "?";
}

std::string_view to_string(log_level v) {
  switch (v) {
    case log_level::trace:
      return "trace";
    case log_level::debug:
      return "debug";
    case log_level::info:
      return "info";
    case log_level::warning:
      return "warning";
    case log_level::error:
      return "error";
    case log_level::off:
      return "off";
  }
  return "?";
}

std::string format_duration(duration d) {
  struct unit {
    std::int64_t ns;
    const char* name;
  };
  static constexpr unit units[] = {
      {3'600'000'000'000, "h"}, {60'000'000'000, "m"}, {1'000'000'000, "s"}, {1'000'000, "ms"}, {1'000, "us"}};
  std::int64_t ns = d.count();
  if (ns == 0) return "0s";
  for (const auto& u : units)
    if (ns % u.ns == 0) return std::to_string(ns / u.ns) + u.name;
  return std::to_string(ns) + "ns";
}

}  // namespace grove::config
