// The built-in kinds, so a tree can be declared without any C++ (for demos, tests and failure
// drills), and the messages that talk to them. Their `args` are in docs/config.md.
//   echo     a GenServer answering a call with a std::string by the same string (with `prefix`),
//            and a call from another node (a dist::term) with the term itself
//   counter  a GenServer holding an integer: add (cast or call), get, reset; each tick adds 1
//   ticker   sends itself a tick every `interval`, counts them, and forwards each to `target`
//   crasher  crashes on command (crash_now), once `after` a delay, at random at `rate`, or fails
//            to start (`at_start`)
#pragma once

#include <cstdint>
#include <string>

namespace grove::builtin {

// counter
struct add {
  std::int64_t n = 1;
};                // cast: adds; call: adds and answers the new value
struct get {};    // call: the value
struct reset {};  // cast: back to `start`

// ticker
struct tick {
  std::uint64_t n = 0;  // 1, 2, ...
  std::string from;     // the ticker's child id
};
struct ticks {};  // call: how many ticks so far (std::uint64_t)

// crasher (and any built-in kind: each crashes on crash_now)
struct crash_now {
  std::string reason = "induced crash";
};

}  // namespace grove::builtin
