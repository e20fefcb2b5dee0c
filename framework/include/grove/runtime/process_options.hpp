// What a process is spawned with and what a send returns: the overflow policies of a bounded
// mailbox, placement, spawn_options, and the callbacks of a handler process.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include <grove/runtime/message.hpp>

namespace grove {

class node;

enum class overflow_policy : std::uint8_t {
  drop_newest,  // the message being sent is dropped (send returns dropped)
  drop_oldest,  // the oldest message not yet received is dropped to make room
  fail,         // send throws mailbox_full
};

const char* to_string(overflow_policy p) noexcept;  // "drop_newest", "drop_oldest", "fail"

enum class send_result : std::uint8_t { ok, dead, dropped };

// Where a new body process runs. A new process is queued on the spawner's scheduler thread (or
// round-robin when spawned from outside the node); idle threads steal queued work, and a body
// process woken by another process runs next on the waker's thread, so chatty partners end up
// together without being told. Placement is a hint on top of that.
enum class placement : std::uint8_t {
  spread,       // the default: starts where spawned, then goes where the work is
  with_parent,  // the same today (kept for compatibility: partners are co-located anyway)
  pinned        // stays on the thread it first runs on for its whole life (thread-affine code)
};

// The largest mailbox_capacity (what a mailbox's head word counts); spawn rejects more.
inline constexpr std::size_t max_mailbox_capacity = (std::size_t{1} << 19) - 1;  // 524,287

struct spawn_options {
  std::size_t stack_size = 0;        // bytes, body processes only; 0 = the node's default
  std::string label;                 // shown in introspection
  std::size_t mailbox_capacity = 0;  // messages; 0 = unbounded (signals never count); <= max_mailbox_capacity
  overflow_policy overflow = overflow_policy::drop_newest;
  grove::placement placement = grove::placement::spread;  // body processes
};

// The callbacks of a handler process. on_start runs once, in the process, before any message.
class process_handler {
 public:
  virtual ~process_handler() = default;
  virtual void on_start() {}
  virtual void on_message(message& m) = 0;
};

using duration = std::chrono::nanoseconds;

}  // namespace grove
