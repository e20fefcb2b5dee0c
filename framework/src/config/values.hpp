// Typed reads of scalar nodes, shared by the loader and the args view: each reports what it
// got and what was expected, in one voice ("got 'ten' (expected an integer >= 1)").
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <grove/config/config.hpp>
#include <grove/config/diagnostics.hpp>

#include "tree.hpp"

namespace grove::config::detail {

// How YAML 1.2's core schema resolves a scalar (a quoted one is always a string).
enum class scalar_class : unsigned char { null, boolean, integer, floating, string };
scalar_class classify(const tree_node& n);

// What a node is, for "got ...": "a map", "a list", "null", "'abc'", "the string \"2\"".
std::string describe(const tree_node& n);

// Records "got <describe(n)> (expected <expected>)" at n.
void report_got(const tree_node& n, const std::string& path, diagnostics& errors, std::string expected,
                std::string hint = {});

// The closest candidate by edit distance, or "" when none is close enough to be a likely typo.
std::string nearest(std::string_view word, const std::vector<std::string>& candidates);
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);
// "one of: a, b, c" (at most `limit` names, then "...").
std::string one_of(const std::vector<std::string>& candidates, std::size_t limit = 40);

bool read_bool(const tree_node& n, const std::string& path, diagnostics& errors, bool& out);
bool read_int(const tree_node& n, const std::string& path, diagnostics& errors, std::int64_t& out, std::int64_t min,
              std::int64_t max, const std::string& expected);
bool read_double(const tree_node& n, const std::string& path, diagnostics& errors, double& out, double min, double max,
                 const std::string& expected);
// strict: only a scalar YAML types as a string (a plain 12 or true is refused, with a hint to
// quote it); otherwise any scalar's text.
bool read_string(const tree_node& n, const std::string& path, diagnostics& errors, std::string& out, bool strict);
// An integer and a unit (us, ms, s, m, h), at least `min`.
bool read_duration(const tree_node& n, const std::string& path, diagnostics& errors, duration& out, duration min,
                   const std::string& expected);
// Bytes: a plain integer, or an integer with KiB or MiB.
bool read_size(const tree_node& n, const std::string& path, diagnostics& errors, std::size_t& out, std::size_t min,
               const std::string& expected);

std::optional<duration> parse_duration(std::string_view s);

template <class E>
bool read_enum(const tree_node& n, const std::string& path, diagnostics& errors,
               const std::vector<std::pair<std::string_view, E>>& values, E& out) {
  std::vector<std::string> names;
  for (auto& [name, v] : values) names.emplace_back(name);
  if (n.is_scalar() && classify(n) == scalar_class::string) {
    for (auto& [name, v] : values)
      if (n.text == name) {
        out = v;
        return true;
      }
  }
  report_got(n, path, errors, one_of(names), n.is_scalar() ? did_you_mean(n.text, names) : std::string{});
  return false;
}

// The same over values named by their to_string (found by ADL): each name is written once,
// beside its enum.
template <class E>
bool read_enum(const tree_node& n, const std::string& path, diagnostics& errors, std::initializer_list<E> values,
               E& out) {
  std::vector<std::pair<std::string_view, E>> named;
  for (E v : values) named.emplace_back(to_string(v), v);
  return read_enum(n, path, errors, named, out);
}

}  // namespace grove::config::detail
