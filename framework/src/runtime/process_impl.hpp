// The process control block and the operations on it. Control blocks live in the node's
// process table, one per slot, and are reused for the slot's next generation; they are never
// freed while the node runs, so a sender holding a stale pid can always lock the block and
// check the generation safely.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/fiber/context.hpp>
#include <boost/fiber/detail/spinlock.hpp>
#include <boost/fiber/scheduler.hpp>

#include <grove/detail/envelope.hpp>
#include <grove/detail/unique_function.hpp>
#include <grove/runtime/process.hpp>

#include "asan_fiber.hpp"
#include "mailbox.hpp"
#include "spinlock.hpp"

namespace grove::detail {

class node_impl;
class scheduler;

struct monitor_entry {
  std::uint64_t ref;
  pid other;
};

enum class life : std::uint8_t { free, alive, exiting };

class process {
 public:
  process(node_impl* n, std::uint32_t slot) : node(n), slot(slot) {}

  pid self() const noexcept;

  // ---- set at spawn, constant while alive ----
  node_impl* const node;
  const std::uint32_t slot;
  std::atomic<std::uint32_t> generation{0};  // changes only under lock, when the slot is reused
  bool handler_form = false;
  bool pinned = false;              // body form: never migrates from the thread it started on
  std::uint16_t turn_receives = 0;  // receives since it last resumed (the turn budget, scheduler.hpp)
  std::size_t stack_size = 0;
  std::string label;
  unique_function body;
  std::unique_ptr<process_handler> handler;

  // ---- guarded by lock ----
  mutable spinlock lock;
  life state = life::free;
  bool owner = false;  // exit hooks must run at its death (mark_owner)
  std::vector<pid> links;
  std::vector<monitor_entry> monitors;      // this process watches `other`
  std::vector<monitor_entry> monitored_by;  // `other` watches this process

  // ---- the mailbox: lock-free for senders (mailbox.hpp) ----
  detail::mailbox mail;
  // Written by the owner before it starts waiting, read by the one push that ends the wait:
  // its fiber, and the thread it waits from (a waker on that thread needs no lock: the
  // owner's switch is over; any other takes `lock`, which the owner holds until it is).
  boost::fibers::context* waiter = nullptr;
  scheduler* wait_thread = nullptr;

  // ---- owner only ----
  std::vector<std::uint64_t> aliases;  // active reply aliases: a reply to any other is dropped
  bool started = false;
  std::uint64_t receive_token = 0;  // the receive waiting with a timeout, 0 if none
  std::uint64_t next_token = 0;
  bool timed_out = false;
  bool by_signal = false;               // it is ending because of an exit signal, not by itself
  std::unique_ptr<exit_reason> ending;  // handler form: end when the callback returns (a pointer: 8 bytes per process)
  std::atomic<scheduler*> home{nullptr};        // where its fiber last ran (body form)
  std::unique_ptr<spawn_overrides> next_spawn;  // for the next process it spawns (a pointer: 8 bytes per process)

  // ---- read by anyone ----
  std::atomic<std::uint64_t> messages_out{0};
  std::atomic<bool> trapping{false};
  std::atomic<process_status> status{process_status::waiting};
  std::atomic<std::int64_t> running_since{0};  // steady ns; 0 while not running

  process* run_next = nullptr;  // intrusive link of a scheduler's run queue
};

// Each of our fibers binds one of these (on its own stack) when it starts and re-binds it
// whenever it resumes, so the running fiber's slot is always a thread-local read away.
struct fiber_slot {
  process* p = nullptr;
  boost::fibers::context* ctx = nullptr;
  stack_bounds stack;  // for AddressSanitizer (asan_fiber.hpp)
};
void bind_fiber(fiber_slot* s);
fiber_slot* this_fiber_slot() noexcept;
// Call right after one of our fibers resumes from a suspension, with its own slot.
void on_resume(fiber_slot* mine) noexcept;
// Makes a suspended fiber ready. An attached one (a worker, a manager, a pinned body fiber)
// runs on its own thread; a detached one (a body process waiting for mail) runs next on the
// waker's thread if that is one of the node's, else on `home`, the thread it last ran on.
void wake(boost::fibers::context* ctx, scheduler* home) noexcept;
// Set by each scheduler thread at start: the Boost.Fiber scheduler of this thread.
void set_thread_fiber_scheduler(boost::fibers::scheduler* s) noexcept;

// The process running on this fiber, or null.
process* current() noexcept;
// Nodes alive with node_options::record_messages: a send looks at its node's flag only when
// there is one (a word that stays in cache), not at every send.
extern std::atomic<int> recording_nodes;
process& current_or_throw(const char* what);
void set_current(process* p) noexcept;
void mark_running(process* p) noexcept;

// Moves incoming into the queue, acting on signals in order; throws process_exit when one
// ends the process.
void drain(process* p);
// Runs the death pipeline in the process's own context: releases its resources, sends exit
// and down signals, frees the slot.
void die(process* p, const exit_reason& reason);
// Delivers without counting a sender and without throwing (timers, completions, the node).
void deliver_quiet(const pid& to, std::unique_ptr<envelope> env);
// Converts an exception escaping a process into its exit reason.
exit_reason reason_of_current_exception() noexcept;
// Runs a handler process's pending work (worker fibers call this).
void run_activation(process* p);
// The fiber function of a body process.
void run_body(process* p);

// Helpers shared by the runtime's files.

// The control block of p's slot on p's node, or null; its generation may not be p's.
process* lookup(const pid& p) noexcept;
// What became of an envelope pushed to a process.
// grove::yield(); a body process that may not migrate stays on its thread.
void yield_turn(bool may_migrate);
// Lets the senders waiting for p's backlog go on (p has had its turn, or is ending).
void release_room(process& p);
// The owner: lets the senders it saw asking go on, and forgets their request.
inline void release_seen_room(process& p) {
  p.mail.forget_room();
  release_room(p);
}
// The owner, at the end of a turn: lets them go if any asked.
inline void release_room_if_wanted(process& p) {
  if (p.mail.room_wanted()) release_seen_room(p);
}
// The owner took e out of its queue to handle it: uncounts it, and once the backlog is under
// half the mark lets the senders it saw asking for room go on (body receives and handler
// activations). No locked instruction: the counter is the owner's.
inline void took_from_queue(process& p, const envelope& e) {
  if (e.is_message()) p.mail.sub_queued(1);
  if (p.mail.room_seen() && p.mail.size() < mailbox::backlog / 2) release_seen_room(p);
}

enum class push_result { ok, backlogged, dead, dropped, full };  // backlogged: ok, behind a backlog
// Appends env to the mailbox of `to` unless it is gone, and wakes it (see process::push).
push_result push_to(const pid& to, std::unique_ptr<envelope> env);
// Pushes a signal (exit, down: token is the monitor's ref) from `from` to `to`.
void send_signal(const pid& to, envelope_kind k, const pid& from, const exit_reason& r, std::uint64_t token = 0);
// drain; returns true if it removed anything from the queue (a scan position may be gone).
bool drain_impl(process* p);

}  // namespace grove::detail
