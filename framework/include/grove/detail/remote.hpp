// Internal: how messages and signals reach processes of other nodes. The runtime knows pids of
// its own nodes only; a pid whose node id was handed out here by add_remote_node belongs to a
// node across the network, and what is sent to it (a message, an exit signal, a link, a
// monitor) goes to that node's carrier (the dist layer, docs/concepts/distribution.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <grove/detail/envelope.hpp>
#include <grove/runtime/pid.hpp>

namespace grove {
class node;
}

namespace grove::detail {

class remote_carrier {
 public:
  virtual ~remote_carrier() = default;
  // A message or signal for `to`; false if it cannot go (it is then dropped, as a send to a
  // dead process is).
  virtual bool push(const pid& to, std::unique_ptr<envelope> e) = 0;
  // `from` (a local process, already holding the link or monitor on its side) links to or
  // monitors `to`; when the other node cannot be told, `from` gets noconnection at once.
  virtual void link(const pid& from, const pid& to) = 0;
  virtual void unlink(const pid& from, const pid& to) = 0;
  virtual void monitor(const pid& from, const pid& to, std::uint64_t ref) = 0;
  virtual void demonitor(const pid& from, const pid& to, std::uint64_t ref) = 0;
};

// A node id no local node ever has, whose pids `c` carries; remove it when the carrier goes.
std::uint32_t add_remote_node(std::shared_ptr<remote_carrier> c);
void remove_remote_node(std::uint32_t id);
// The carrier of a remote node id (null for a local or unknown one).
std::shared_ptr<remote_carrier> remote_node(std::uint32_t id);

// A link made by a remote process to a local one: false when `local` does not live.
bool add_remote_link(const pid& local, const pid& remote);
void remove_remote_link(const pid& local, const pid& remote);

// A monitor of a local process held by a remote one, under `ref` (a ref of the carrier's making):
// when `local` ends, a down signal with that ref goes to `remote`. false when `local` does not
// live.
bool add_remote_monitor(const pid& local, const pid& remote, std::uint64_t ref);
void remove_remote_monitor(const pid& local, std::uint64_t ref);

// An exit signal or a monitor's down from a process of another node, to a local process (`from`
// is the remote pid; `token` the monitor's ref for a down).
void signal_from_remote(const pid& to, envelope_kind k, const pid& from, const exit_reason& r, std::uint64_t token = 0);

// Output held back on a scheduler thread: a carrier that would rather write once for all a
// process sends in its turn registers `fn`, which the thread runs when it moves on (to another
// fiber or process, or to idle). Elsewhere (another thread) it writes at once: false.
bool flush_later(void (*fn)());
void run_flush_later() noexcept;

// Input the scheduler threads wait on themselves (the dist layer's sockets), so that the thread
// that reads a message runs the process it wakes, with no hand-over from another thread. An
// idle scheduler thread waits on fd() (one thread at a time) instead of sleeping; a busy one
// looks at it between processes, at most every poll_interval. When fd() is readable, that
// thread runs ready() in a fiber of its own (no current process), before anything else it has.
// ready() must not block for long, and must cope with finding nothing: the owner may look too
// when no scheduler thread has for a while (io_polled), and another caller may have taken the
// input first.
class io_poller {
 public:
  virtual ~io_poller() = default;
  virtual int fd() const noexcept = 0;  // readable (poll(2)) when there is input
  // Whether there is input, without waiting (one system call where poll(2) on fd() and then
  // ready()'s own look would take two): true, ready() handles what it found.
  virtual bool peek() noexcept = 0;
  virtual void ready() noexcept = 0;
};
inline constexpr std::chrono::microseconds poll_interval{20};
// Registers p with n's scheduler threads (null: none); returns once no thread uses the one
// before. One per node.
void set_io_poller(node& n, io_poller* p);
// Whether a scheduler thread of n waits for input now or looked within `within`: the poller's
// owner need not look itself.
bool io_polled(node& n, std::chrono::nanoseconds within) noexcept;

// {Name, Node}: what server_ref(name, node) resolves to, as the dist layer answers (a pid of the
// calling process's node when Node is its own name, an address on another node, or nullopt).
using remote_name_resolver = std::optional<pid> (*)(const std::string& name, const std::string& node);
void set_remote_name_resolver(remote_name_resolver r);
std::optional<pid> resolve_remote_name(const std::string& name, const std::string& node);

}  // namespace grove::detail
