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
#include <grove/detail/unique_function.hpp>
#include <grove/runtime/errors.hpp>
#include <grove/runtime/exit_reason.hpp>
#include <grove/runtime/message.hpp>
#include <grove/runtime/pid.hpp>

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

namespace detail {
class process;
enum class spawn_link_mode : std::uint8_t { none, link, monitor };
struct spawn_result {
  pid who;
  monitor_ref mref;
};
// What a supervisor imposes on its child's process: the next process the calling process
// spawns takes these over its own spawn_options (zero / empty: keep the child's own).
struct spawn_overrides {
  std::size_t stack_size = 0;
  std::size_t mailbox_capacity = 0;
  std::optional<overflow_policy> overflow;
  std::string label;  // used when the child gives none
  std::string path;   // the child's path in its tree ("app/sup/id"): a nested supervisor's own
};
// Sets (or with nullopt clears) the overrides for the calling process's next spawn.
void set_next_spawn(std::optional<spawn_overrides> o);
// Takes the path of the overrides set for the calling process's next spawn ("" if none).
std::string take_next_spawn_path();
spawn_result spawn_body(node* on, unique_function body, const spawn_options& opts, spawn_link_mode mode);
spawn_result spawn_handler(node* on, std::unique_ptr<process_handler> h, const spawn_options& opts,
                           spawn_link_mode mode);
send_result deliver(const pid& to, std::unique_ptr<envelope> env);
using match_fn = bool (*)(const envelope&, void* ctx);
// Waits for the first message of the current process's mailbox that `match` accepts, takes it
// out and returns it; returns nullptr when `timeout` (negative: none) passes first.
envelope* receive_match(match_fn match, void* ctx, std::int64_t timeout_ns);
timer_ref send_after_impl(std::int64_t delay_ns, const pid& to, std::unique_ptr<envelope> env);
// Aliases (OTP 24's process aliases, for call replies): a reply envelope reaches a process's
// mailbox only while its alias is active there; later ones are dropped before entering it.
void alias_activate(std::uint64_t alias);
void alias_deactivate(std::uint64_t alias);
// A monitor whose ref is also an active alias, and its removal (alias off, demonitor with
// flush) — what a call needs, in one lock round trip each.
monitor_ref monitor_with_alias(const pid& p);
void demonitor_with_alias(const monitor_ref& r);
send_result deliver_reply(const pid& to, std::uint64_t alias, std::unique_ptr<envelope> env);
std::uint64_t make_ref();
// A cheap monotonic timestamp (TSC ticks where available; never 0) and its conversion to
// nanoseconds.
#if defined(__x86_64__) || defined(__i386__)
inline std::int64_t timestamp() noexcept {
  const auto t = static_cast<std::int64_t>(__builtin_ia32_rdtsc());
  return t == 0 ? 1 : t;
}
#else
std::int64_t timestamp() noexcept;
#endif
std::int64_t timestamp_to_ns(std::int64_t ticks) noexcept;
// When the calling process's turn began (a timestamp), or 0 outside a process.
std::int64_t turn_started() noexcept;
// The exit reason an exception in flight stands for (call inside a catch block).
exit_reason reason_of_current_exception() noexcept;

template <class T, class P, class F>
struct guarded {
  P pred;
  F fn;
};
template <class H>
struct handler_arg {
  using type = typename callable_traits<H>::arg;
};
template <class T, class P, class F>
struct handler_arg<guarded<T, P, F>> {
  using type = T;
};
template <class H>
struct handler_result {
  using type = typename callable_traits<H>::result;
};
template <class T, class P, class F>
struct handler_result<guarded<T, P, F>> {
  using type = std::invoke_result_t<F, T&&>;
};

template <class H>
bool handler_accepts(H& h, const envelope& e) {
  using arg = typename handler_arg<std::remove_cvref_t<H>>::type;
  if (!e.is_message()) return false;  // replies belong to the call waiting for them
  if constexpr (std::is_same_v<arg, message>) {
    (void)h;
    return true;
  } else {
    if (!same_type(e.type, typeid(arg))) return false;
    if constexpr (requires { h.pred; }) {
      return static_cast<bool>(h.pred(static_cast<const message_envelope<arg>&>(e).value));
    } else {
      return true;
    }
  }
}

template <class H>
decltype(auto) handler_invoke(H& h, std::unique_ptr<envelope> e) {
  using arg = typename handler_arg<std::remove_cvref_t<H>>::type;
  if constexpr (std::is_same_v<arg, message>) {
    message m(std::move(e));
    if constexpr (std::is_invocable_v<H&, message&>) {
      return h(m);
    } else {
      return h(std::move(m));
    }
  } else {
    auto& v = static_cast<message_envelope<arg>&>(*e).value;
    if constexpr (requires { h.pred; }) {
      return h.fn(std::move(v));
    } else {
      return h(std::move(v));
    }
  }
}

template <class R, std::size_t I, class Tuple>
R invoke_matching(Tuple& hs, std::unique_ptr<envelope> e) {
  auto& h = std::get<I>(hs);
  if constexpr (I + 1 == std::tuple_size_v<Tuple>) {
    return handler_invoke(h, std::move(e));
  } else {
    if (handler_accepts(h, *e)) return handler_invoke(h, std::move(e));
    return invoke_matching<R, I + 1>(hs, std::move(e));
  }
}

template <class Tuple>
bool any_accepts(const envelope& e, void* ctx) {
  auto& hs = *static_cast<Tuple*>(ctx);
  return std::apply([&](auto&... h) { return (handler_accepts(h, e) || ...); }, hs);
}

template <class... H>
using receive_result_t = typename handler_result<std::remove_cvref_t<std::tuple_element_t<0, std::tuple<H...>>>>::type;

template <class... H>
auto receive_impl(std::int64_t timeout_ns, H&... handlers) {
  using R = receive_result_t<H...>;
  static_assert((std::is_same_v<R, typename handler_result<std::remove_cvref_t<H>>::type> && ...),
                "every receive handler must return the same type");
  using tuple_t = std::tuple<H&...>;
  tuple_t hs(handlers...);
  std::unique_ptr<envelope> e(receive_match(&any_accepts<tuple_t>, &hs, timeout_ns));
  if constexpr (std::is_void_v<R>) {
    if (!e) return false;
    invoke_matching<R, 0>(hs, std::move(e));
    return true;
  } else {
    if (!e) return std::optional<R>{};
    return std::optional<R>(invoke_matching<R, 0>(hs, std::move(e)));
  }
}

inline std::int64_t to_ns(duration d) { return d.count() < 0 ? 0 : d.count(); }
}  // namespace detail

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
