// Processes: spawn, send, receive, links, monitors, exit signals.
//
// A process is a unit of isolated state with a pid and a mailbox. Two forms share every rule:
//  - a *body* process runs a function on a fiber of its own for its whole life and may block
//    (receive, sleep, blocking()) anywhere;
//  - a *handler* process has no stack while idle: when a message arrives a pooled fiber runs
//    its handler and is taken back when the handler returns. A handler that suspends (a nested
//    receive, a sleep) keeps the fiber until it resumes and returns.
//
// Guarantees (see docs/concepts/processes.md): messages from one sender to one receiver keep
// their order; a message sent before a process dies arrives before the exit or down signal
// its death causes; sending never blocks on an unbounded mailbox and never fails for a dead
// target. Exit signals take effect at the receiver's next suspension point (receive, sleep,
// yield, blocking): a process that computes without suspending cannot be stopped.
//
// Free functions that act on "the current process" must be called from inside a process;
// otherwise they throw not_in_process.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <grove/detail/envelope.hpp>
#include <grove/detail/receive.hpp>
#include <grove/detail/unique_function.hpp>
#include <grove/runtime/errors.hpp>
#include <grove/runtime/exit_reason.hpp>
#include <grove/runtime/message.hpp>
#include <grove/runtime/pid.hpp>
#include <grove/runtime/process_options.hpp>

namespace grove {

// ---- identity -------------------------------------------------------------------------------

pid self();
// True when called from inside a process.
bool in_process() noexcept;
// The node of the current process (throws not_in_process outside one).
node& this_node();
// True while the process behind p has not terminated. A stale pid is never alive again.
bool alive(const pid& p);

// ---- spawn --------------------------------------------------------------------------------
// Inside a process these spawn on the current process's node; use node::spawn outside.

template <class F>
pid spawn(F&& body, const spawn_options& opts = {}) {
  return detail::spawn_body(nullptr, detail::unique_function(std::forward<F>(body)), opts,
                            detail::spawn_link_mode::none)
      .who;
}
// Spawns and links in one step: the child can never die unlinked.
template <class F>
pid spawn_link(F&& body, const spawn_options& opts = {}) {
  return detail::spawn_body(nullptr, detail::unique_function(std::forward<F>(body)), opts,
                            detail::spawn_link_mode::link)
      .who;
}
template <class F>
std::pair<pid, monitor_ref> spawn_monitor(F&& body, const spawn_options& opts = {}) {
  auto r = detail::spawn_body(nullptr, detail::unique_function(std::forward<F>(body)), opts,
                              detail::spawn_link_mode::monitor);
  return {r.who, r.mref};
}
pid spawn_handler(std::unique_ptr<process_handler> h, const spawn_options& opts = {});
pid spawn_handler_link(std::unique_ptr<process_handler> h, const spawn_options& opts = {});
std::pair<pid, monitor_ref> spawn_handler_monitor(std::unique_ptr<process_handler> h, const spawn_options& opts = {});

// ---- messages -----------------------------------------------------------------------------

// Sends msg to `to`. A dead or stale target makes it a no-op (dead); a full bounded mailbox
// applies its overflow policy. Works from any thread, inside a process or not.
template <class T>
send_result send(const pid& to, T&& msg) {
  return detail::deliver(to, std::make_unique<detail::message_envelope<std::remove_cvref_t<T>>>(std::forward<T>(msg)));
}

// Accepts a message of type T only when pred(msg) is true; then calls fn(msg).
template <class T, class P, class F>
detail::guarded<T, std::decay_t<P>, std::decay_t<F>> when(P&& pred, F&& fn) {
  return {std::forward<P>(pred), std::forward<F>(fn)};
}

// Selective receive: waits for the first message (in arrival order) that one of the handlers
// takes — a handler takes the type of its argument; `message&` takes anything; when<T>(pred, fn)
// adds a condition. Messages no handler takes stay queued, in order, for later receives. All
// handlers return the same type, which receive returns.
template <class... H>
auto receive(H&&... handlers) {
  static_assert(sizeof...(H) > 0, "receive needs at least one handler");
  auto r = detail::receive_impl(-1, handlers...);
  if constexpr (!std::is_same_v<decltype(r), bool>) return std::move(*r);
}
// Like receive, giving up after `timeout` on the node's clock: returns false (void handlers) or
// an empty optional.
template <class... H>
auto receive_for(duration timeout, H&&... handlers) {
  static_assert(sizeof...(H) > 0, "receive_for needs at least one handler");
  return detail::receive_impl(detail::to_ns(timeout), handlers...);
}
// Suspends for `d` on the node's clock; exit signals still take effect.
void sleep(duration d);
// Lets other processes on this scheduler run; exit signals take effect.
void yield();

// ---- links, monitors, exit signals ---------------------------------------------------------

// Links the current process to p (idempotent). A dead p raises process_error(noproc), or, if
// the caller traps exits, delivers exit_signal{p, noproc}.
void link(const pid& p);
// Removes the link; an exit signal already under way because of it is dropped.
void unlink(const pid& p);
// Monitors p: exactly one down message follows its death (noproc at once if already dead).
monitor_ref monitor(const pid& p);
// Removes the monitor; with flush, a down already in the mailbox is removed too. Returns
// true if the monitor was still active.
bool demonitor(const monitor_ref& r, bool flush = false);
// Sends an exit signal with `reason` to p, as erlang:exit/2. exit_reason::kill cannot be
// trapped and ends p with `killed`. Works from any thread. Sent to the caller itself, it takes
// effect before exit returns: a caller that does not trap (or is sent kill) never returns; one
// that traps finds exit_signal{self(), reason} in its mailbox.
void exit(const pid& p, exit_reason reason);
// Ends the current process with `reason` (unwinding its stack).
[[noreturn]] void exit(exit_reason reason);
// In a handler process: ends it with `reason` once the running callback (on_start or
// on_message) returns, as an OTP behaviour does when a callback returns {stop, Reason}. Links,
// monitors and reports see the same end as with exit(reason), without the cost of unwinding
// by an exception. Throws not_in_process elsewhere (a body process ends by returning).
void exit_after_handler(exit_reason reason);
// Sets whether exit signals become exit_signal messages; returns the previous value.
bool trap_exit(bool on);

// ---- time ---------------------------------------------------------------------------------

// The node's clock (monotonic; manual in tests).
std::chrono::steady_clock::time_point now();
// Sends msg to `to` after `delay` on the node's clock. Works from any thread of a process.
template <class T>
timer_ref send_after(duration delay, const pid& to, T&& msg) {
  return detail::send_after_impl(
      detail::to_ns(delay), to,
      std::make_unique<detail::message_envelope<std::remove_cvref_t<T>>>(std::forward<T>(msg)));
}
// Cancels a timer; returns the time it had left, or nothing if it already fired or was cancelled.
std::optional<duration> cancel_timer(const timer_ref& t);

// ---- introspection --------------------------------------------------------------------------

enum class process_status : std::uint8_t { runnable, running, waiting, exiting };

struct process_info {
  grove::pid pid;
  std::string label;
  process_status status = process_status::waiting;
  bool handler_form = false;
  std::size_t mailbox_length = 0;
  std::uint64_t messages_in = 0;
  std::uint64_t messages_out = 0;
  std::vector<grove::pid> links;
  std::vector<grove::pid> monitors;      // processes this one monitors
  std::vector<grove::pid> monitored_by;  // processes monitoring this one
  bool trap_exit = false;
  std::size_t stack_size = 0;  // 0 for a handler process while idle
  int scheduler = -1;          // the scheduler thread a body process lives on (-1: not yet, or handler)
  duration running_for{0};     // time since it last suspended, while running
};

std::optional<process_info> info(const pid& p);
// The types of the first `max` messages that reached p's mailbox and were not yet looked at by
// it (a process waiting in a selective receive keeps the ones it skipped apart: those are only
// counted in process_info::mailbox_length).
std::vector<std::string> peek_mailbox(const pid& p, std::size_t max = 10);
const char* to_string(process_status s) noexcept;

}  // namespace grove
