// The machinery under process.hpp's templates (not a public API): spawning, delivering, the
// receive loop that matches handlers against envelopes, aliases and refs for calls, the
// process clock.
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
#include <grove/runtime/process_options.hpp>

namespace grove {

class node;

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
// Call statistics (node::totals): call_started counts a call the running process makes and
// returns a timestamp when this one is to be timed (else 0); call_answered(that) times it.
std::int64_t call_started() noexcept;
void call_answered(std::int64_t started) noexcept;
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

}  // namespace grove
