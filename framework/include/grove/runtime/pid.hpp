// pid: the address of a process. A small copyable value (node, slot, generation): hashable,
// ordered and printable as <node.slot.generation>. A slot is reused only with a new
// generation, so a stale pid never reaches the slot's next occupant: it is simply dead.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

namespace grove {

class pid {
 public:
  constexpr pid() noexcept = default;
  constexpr pid(std::uint32_t node, std::uint32_t slot, std::uint32_t generation) noexcept
      : node_(node), slot_(slot), generation_(generation) {}

  constexpr std::uint32_t node() const noexcept { return node_; }
  constexpr std::uint32_t slot() const noexcept { return slot_; }
  constexpr std::uint32_t generation() const noexcept { return generation_; }
  // A default-constructed pid names no process; every real pid has generation >= 1.
  constexpr explicit operator bool() const noexcept { return generation_ != 0; }

  friend constexpr auto operator<=>(const pid&, const pid&) noexcept = default;
  friend constexpr bool operator==(const pid&, const pid&) noexcept = default;

  std::string str() const;

 private:
  std::uint32_t node_ = 0;
  std::uint32_t slot_ = 0;
  std::uint32_t generation_ = 0;
};

std::ostream& operator<<(std::ostream& os, const pid& p);
// Reads "<node.slot.generation>" (as str() prints it); nullopt for anything else.
std::optional<pid> parse_pid(std::string_view text);

// A unique reference (monitor, timer, request tag), like Erlang's make_ref().
struct ref {
  std::uint64_t id = 0;
  constexpr explicit operator bool() const noexcept { return id != 0; }
  friend constexpr auto operator<=>(const ref&, const ref&) noexcept = default;
  friend constexpr bool operator==(const ref&, const ref&) noexcept = default;
};
using monitor_ref = ref;
using timer_ref = ref;

std::ostream& operator<<(std::ostream& os, const ref& r);

}  // namespace grove

template <>
struct std::hash<grove::pid> {
  std::size_t operator()(const grove::pid& p) const noexcept {
    std::uint64_t v = (std::uint64_t{p.slot()} << 32) ^ p.generation() ^ (std::uint64_t{p.node()} << 52);
    return std::hash<std::uint64_t>{}(v);
  }
};

template <>
struct std::hash<grove::ref> {
  std::size_t operator()(const grove::ref& r) const noexcept { return std::hash<std::uint64_t>{}(r.id); }
};
