// args: a read-only, typed view of a YAML map from a configuration file — a child's `args`,
// an application's `env` — through which C++ code reads its settings. A read never throws:
// a missing required key, a value of the wrong type or an unexpected key is recorded, with its
// file:line:column and key path, in the view's diagnostics sink, and the read returns the
// fallback (or a value-initialized T), so that a kind reports all its errors at once, as the
// loader does. A view is cheap to copy (two shared pointers) and keeps the document alive.
//
// Reads are typed as YAML 1.2's core schema: plain true/false are booleans, plain numbers are
// numbers, a quoted scalar is a string (so "5" is not an integer). get<std::string> accepts any
// scalar. Durations are strings like 500ms or 5s (units us, ms, s, m, h).
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <grove/config/diagnostics.hpp>

namespace grove::config {

namespace detail {
struct tree_node;
struct args_view;
struct args_access;
}  // namespace detail

// The types args::get reads.
template <class T>
concept args_value = std::same_as<T, bool> || std::same_as<T, int> || std::same_as<T, std::int64_t> ||
    std::same_as<T, double> || std::same_as<T, std::string> || std::same_as<T, std::chrono::nanoseconds> ||
    std::same_as<T, std::vector<std::string>> || std::same_as<T, std::vector<std::int64_t>>;

class args {
 public:
  // An empty map with a sink of its own.
  args();

  // Parses a YAML map (for tests, and for settings that come from elsewhere). Syntax errors,
  // a document that is not a map, and unset environment variables are recorded in `sink`
  // (a new one when null); ${NAME} and ${NAME:-default} are expanded as in a config file.
  static args parse(std::string_view yaml, const std::string& file_name = "<args>",
                    std::shared_ptr<diagnostics> sink = nullptr);

  // The same view, recording its errors (and those of every view taken from it) into `sink`.
  args with_sink(std::shared_ptr<diagnostics> sink) const;
  const std::shared_ptr<diagnostics>& sink() const noexcept { return sink_; }

  bool has(std::string_view key) const;
  bool empty() const;                     // no keys (also when the key was absent or null)
  std::vector<std::string> keys() const;  // in file order

  template <args_value T>
  T get(std::string_view key, T fallback) const {
    read(key, fallback, false);
    return fallback;
  }
  // A required value: when missing, records "missing required key" and returns T{}.
  template <args_value T>
  T get(std::string_view key) const {
    T out{};
    read(key, out, true);
    return out;
  }

  // The value when the key is there and reads as T; nullopt when it is absent (nothing recorded)
  // or does not read (the error is recorded). A kind checks its own rules on a value only when
  // there is one, so a missing key is reported once, not once more as a zero.
  template <args_value T>
  std::optional<T> find(std::string_view key) const {
    T out{};
    if (!read(key, out, false)) return std::nullopt;
    return out;
  }
  // The same for a required key: absent records "missing required key".
  template <args_value T>
  std::optional<T> require(std::string_view key) const {
    T out{};
    if (!read(key, out, true)) return std::nullopt;
    return out;
  }
  // Records a kind's own error about `key`, at its value's line and column (at this map's when
  // the key is absent), with its key path: `.error("interval", "got 0s", "a duration > 0")`.
  void error(std::string_view key, std::string message, std::string expected = {}, std::string hint = {}) const;

  // A nested map (an empty view when the key is absent; an error when it is not a map).
  args at(std::string_view key) const;
  // A list of maps, each as a view (empty when the key is absent; an error when not a list).
  std::vector<args> list(std::string_view key) const;

  // This map with `over`'s keys merged onto it (nested maps key by key, anything else replaced),
  // as a template's args with those given at run time; each value keeps its own position.
  args merged(const args& over) const;

  // Records "unknown key" (with the nearest allowed key as a hint) for every other key.
  void only(std::initializer_list<std::string_view> keys) const;

  // Where this map is (for an absent key: where its parent is) and its key path in the file.
  source_pos pos() const;
  std::string path() const;

 private:
  friend struct detail::args_access;
  args(std::shared_ptr<const detail::args_view> view, std::shared_ptr<diagnostics> sink);

  // Each writes `out` only on success; records an error otherwise.
  bool read(std::string_view key, bool& out, bool required) const;
  bool read(std::string_view key, int& out, bool required) const;
  bool read(std::string_view key, std::int64_t& out, bool required) const;
  bool read(std::string_view key, double& out, bool required) const;
  bool read(std::string_view key, std::string& out, bool required) const;
  bool read(std::string_view key, std::chrono::nanoseconds& out, bool required) const;
  bool read(std::string_view key, std::vector<std::string>& out, bool required) const;
  bool read(std::string_view key, std::vector<std::int64_t>& out, bool required) const;

  std::shared_ptr<const detail::args_view> view_;  // the node (null: an empty map), its path and position
  std::shared_ptr<diagnostics> sink_;
};

}  // namespace grove::config
