// gen_server: the default way to own state. Every request to a server is handled one at a
// time, in its own process, so the state needs no lock. Grove owns the loop; you write typed
// callbacks:
//
//   class ledger : public grove::gen_server<ledger> {
//    public:
//     using handles = grove::types<balance, deposit>;   // the message types it takes
//     std::int64_t handle_call(const balance& q, const grove::from&) { return accounts_[q.account]; }
//     void handle_cast(const deposit& d) { accounts_[d.account] += d.amount; }
//    private:
//     std::map<std::string, std::int64_t> accounts_;
//   };
//   auto started = grove::start(std::make_unique<ledger>(), {.name = "ledger"});
//   std::int64_t cents = grove::call<std::int64_t>("ledger", balance{"alice"});
//
// For each type T in `handles`, the server may define handle_call(const T&, const from&),
// handle_cast(const T&) and/or handle_info(const T&). Optional: init() returning init_result,
// handle_continue(const T&) for types passed to continue_with, terminate(const exit_reason&),
// and format_status() returning the text sys::get_state shows. A call of a type the server does
// not handle fails the call with {bad_call,T} and the server goes on (crash_on_bad_call() for
// OTP's crash); typed_ref<S> (typed_ref.hpp) rejects it at compile time.
//
// A server is a handler process: while idle it holds no stack. terminate runs when a callback
// asks to stop, when a callback throws, and when the parent's exit signal arrives while the
// server traps exits. It does NOT run when the server is killed, nor on any exit signal when it
// does not trap exits (see docs/concepts/gen_server.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <grove/behaviours/name_registry.hpp>
#include <grove/runtime/errors.hpp>
#include <grove/runtime/message.hpp>
#include <grove/runtime/process.hpp>

namespace grove {

template <class... T>
struct types {};

namespace detail {
template <class Req>
struct call_msg;
}  // namespace detail

// Who to reply to: the caller and the call's tag. Keep it to reply later (deferred reply).
class from {
 public:
  from() = default;
  from(pid caller, std::uint64_t tag) : to_{caller, tag} {}
  const pid& caller() const noexcept { return to_.caller; }
  std::uint64_t tag() const noexcept { return to_.alias; }
  explicit operator bool() const noexcept { return to_.alias != 0; }

 private:
  template <class Req>
  friend struct detail::call_msg;
  detail::reply_address to_;
};

// Replies to a call, from any process, now or later. A reply after the caller gave up is dropped.
template <class T>
void reply(const from& f, T&& value) {
  detail::deliver_reply(f.caller(), f.tag(),
                        std::make_unique<detail::message_envelope<std::remove_cvref_t<T>>>(std::forward<T>(value)));
}

// handle_call returns `deferred` to reply later with reply(from, value).
struct deferred_t {};
inline constexpr deferred_t deferred{};

// Or maybe_reply<T>, when whether it replies now is known only at run time: a T is the reply,
// `deferred` means reply(from, value) later (OTP's {reply, ...} or {noreply, ...} from one clause).
template <class T>
class maybe_reply {
 public:
  maybe_reply(T value) : value_(std::move(value)) {}
  maybe_reply(deferred_t) {}
  bool deferred() const noexcept { return !value_.has_value(); }
  T& value() { return *value_; }

 private:
  std::optional<T> value_;
};
template <class T>
struct is_maybe_reply : std::false_type {};
template <class T>
struct is_maybe_reply<maybe_reply<T>> : std::true_type {};

// What handle_call's reply is when handle_call returns void.
struct ok_t {
  friend bool operator==(ok_t, ok_t) noexcept { return true; }
};

// handle_info receives this when no message came within the idle timeout (set_idle_timeout).
struct idle_timeout {};

class init_result {
 public:
  enum class kind : unsigned char { ok, ignore, stop, error };
  static init_result ok() { return init_result(kind::ok, {}); }
  // The start returns `ignored`; the process ends normally.
  static init_result ignore() { return init_result(kind::ignore, {}); }
  // The start fails with reason; the process ends with reason (a linked starter that does not
  // trap exits ends too, as in OTP).
  static init_result stop(exit_reason r) { return init_result(kind::stop, std::move(r)); }
  // The start fails with reason; the process ends normally.
  static init_result error(exit_reason r) { return init_result(kind::error, std::move(r)); }
  kind what() const noexcept { return kind_; }
  const exit_reason& reason() const noexcept { return reason_; }

 private:
  init_result(kind k, exit_reason r) : kind_(k), reason_(std::move(r)) {}
  kind kind_;
  exit_reason reason_;
};

// A name held somewhere other than the local names: a key in a keyed registry with unique keys
// (Elixir's {:via, Registry, {registry, key}}). Make one with grove::via(registry, key).
class via_name {
 public:
  virtual ~via_name() = default;
  virtual std::optional<pid> whereis() const = 0;
  // Registers the calling process under the name; returns the holder if it is taken.
  virtual std::optional<pid> register_self() const = 0;
  virtual std::string str() const = 0;
};

// Any registry with register_self(key) (returning an ok-convertible result with a `holder`) and
// find(key) (returning an optional entry with `who`), such as keyed_registry with unique keys.
template <class Registry, class Key>
std::shared_ptr<const via_name> via(Registry& registry, Key key);

// A server to talk to: a pid, a registered name, or a via name.
class server_ref {
 public:
  server_ref(const pid& p) : pid_(p) {}  // NOLINT: implicit by design
  server_ref(std::string name) : name_(std::move(name)) {}
  server_ref(const char* name) : name_(name) {}
  server_ref(std::string_view name) : name_(name) {}
  server_ref(std::shared_ptr<const via_name> v) : via_(std::move(v)) {}
  // A name registered on another node, {Name, Node} in Erlang (NODE is NAME@HOST); reached
  // through this node's distribution (grove/dist/distribution.hpp), connecting if need be.
  server_ref(std::string name, std::string node) : name_(std::move(name)), node_(std::move(node)) {}
  // The pid now: for a name, its current holder, if any; for a name on another node, an address
  // standing for it (nullopt without a distribution).
  std::optional<pid> resolve() const;
  std::string str() const {
    if (via_) return via_->str();
    if (!node_.empty()) return "{" + name_ + "," + node_ + "}";
    return name_.empty() ? pid_.str() : name_;
  }

 private:
  pid pid_;
  std::string name_, node_;
  std::shared_ptr<const via_name> via_;
};

// A failed call: reason is noproc, timeout, calling_self, or the server's exit reason.
class call_error : public process_error {
 public:
  call_error(exit_reason r, const std::string& target) : process_error(std::move(r), "call to " + target) {}
};

struct start_options {
  std::string name;                     // a local name, registered before init; empty = none
  std::shared_ptr<const via_name> via;  // or a via name (see via()), registered before init
  duration timeout = duration::max();   // for init; on expiry the server is killed
  spawn_options spawn;
};

class start_result {
 public:
  enum class kind : unsigned char { ok, ignored, error, already_started };
  static start_result started(pid p) { return start_result(kind::ok, p, {}); }
  static start_result ignored() { return start_result(kind::ignored, {}, {}); }
  static start_result failed(exit_reason r) { return start_result(kind::error, {}, std::move(r)); }
  static start_result already_started(pid holder) {
    return start_result(kind::already_started, holder, exit_reason::other("already_started"));
  }
  explicit operator bool() const noexcept { return kind_ == kind::ok; }
  kind what() const noexcept { return kind_; }
  // The server's pid (ok), or the holder of the name (already_started).
  const grove::pid& pid() const noexcept { return pid_; }
  const exit_reason& reason() const noexcept { return reason_; }
  // The pid, or throws process_error with the reason.
  grove::pid value() const;

 private:
  start_result(kind k, grove::pid p, exit_reason r) : kind_(k), pid_(p), reason_(std::move(r)) {}
  kind kind_;
  grove::pid pid_;
  exit_reason reason_;
};

class gen_server_base;

namespace detail {
// The messages a call, a cast and the sys functions travel in (detail/gen_server-inl.hpp).
template <class Msg>
struct cast_msg;
struct call_refused;
struct sys_request;
struct replace_outcome;
struct stop_request;
struct idle_tick;

start_result start_server(std::unique_ptr<gen_server_base> server, const start_options& opts, bool link);
using make_call_envelope = std::unique_ptr<envelope> (*)(void* ctx, const from& f);
std::unique_ptr<envelope> call_impl(const server_ref& target, make_call_envelope make, void* ctx, duration timeout);
// The reply of a call as an R, or call_error(bad_reply_type).
template <class R>
R take_reply(std::unique_ptr<envelope> e, const server_ref& target);
}  // namespace detail

// ---- statistics and events (sys) ------------------------------------------------------------

struct server_statistics {
  std::chrono::steady_clock::time_point started;  // the node's clock
  std::uint64_t calls = 0, casts = 0, infos = 0;
  duration in_callbacks{0};  // time spent in the server's callbacks
  std::uint64_t messages_in = 0, messages_out = 0;
};

// ---- the server base ------------------------------------------------------------------------

class gen_server_base : public process_handler {
 public:
  ~gen_server_base() override = default;

 protected:
  // Asks the server to stop with `reason` once the current callback returns: terminate runs,
  // then (for a call that returned a reply) the reply is sent, then the process ends.
  void stop_after(exit_reason reason) { stop_ = std::move(reason); }
  // handle_info(idle_timeout) if no message arrives within d (re-armed after every callback;
  // duration::zero() turns it off).
  void set_idle_timeout(duration d) { idle_ = d; }
  // handle_continue(value) runs right after the current callback, before any queued message.
  template <class C>
  void continue_with(C value) {
    continue_ = message(std::make_unique<detail::message_envelope<C>>(std::move(value)));
  }
  // The process that started this server (its parent).
  const pid& parent() const noexcept { return parent_; }
  // A call of a type this server does not handle crashes it with {bad_call,T}, as in OTP,
  // instead of failing only the call. Call it from the constructor or init; for servers where
  // an unknown call means the server's own state is wrong, not the caller's request.
  void crash_on_bad_call() noexcept { bad_call_crashes_ = true; }

  // What took a message.
  enum class handled_as : unsigned char { none, call, cast, info };

  // Filled by gen_server<Derived>.
  virtual init_result do_init() = 0;
  virtual handled_as do_dispatch(message& m) = 0;
  virtual bool do_continue(message& m) = 0;
  virtual void do_terminate(const exit_reason& r) = 0;
  virtual std::string do_format_status() = 0;
  virtual const char* server_type() const noexcept = 0;

 private:
  friend start_result detail::start_server(std::unique_ptr<gen_server_base>, const start_options&, bool);
  template <class D>
  friend class gen_server;
  void on_start() final;
  void on_message(message& m) final;
  void handle(message& m);
  bool handle_system(message& m);
  void after_callback();
  void end_after_return(exit_reason reason);
  exit_reason terminate_for(exit_reason reason);  // terminate, a pending reply; the final reason
  [[noreturn]] void shut_down(exit_reason reason);
  void arm_idle_timer();
  void record(const char* what, const message& m);
  // `show` writes the reply for the trace (null: it cannot be printed).
  void record_reply(const std::type_info& type, const void* value, void (*show)(std::ostream&, const void*));
  void publish_trace(std::string text);  // a `trace` event on the node's bus
  void unexpected(const message& m);

  pid parent_;
  pid starter_;
  std::uint64_t start_tag_ = 0;
  std::string name_;
  std::shared_ptr<const via_name> via_;
  std::optional<exit_reason> stop_;
  std::optional<std::function<void()>> pending_reply_;
  message continue_;
  duration idle_{0};
  std::uint64_t idle_token_ = 0;
  bool suspended_ = false;
  bool tracing_ = false;
  bool bad_call_crashes_ = false;
  // Ordinary messages that came while suspended; allocated only then (an empty std::deque
  // allocates ~600 bytes, more than the rest of an idle server).
  std::unique_ptr<std::deque<message>> held_;
  // Unexpected message types already logged; allocated at the first.
  std::unique_ptr<std::vector<const std::type_info*>> warned_;
  server_statistics stats_;
  std::int64_t callback_ticks_ = 0;
  std::int64_t last_callback_end_ = 0;  // detail::timestamp()
  struct event {
    std::int64_t at;  // detail::timestamp()
    const char* what;
    const std::type_info* type;
  };
  std::unique_ptr<std::vector<event>> events_;  // ring of the last few, allocated on first use
  std::size_t next_event_ = 0;

 public:
  static constexpr std::size_t events_kept = 16;
  // sys access (used through the sys functions, from the server's own process)
  server_statistics statistics() const { return stats_; }
  std::vector<std::string> last_events() const;
  std::string format_status() { return do_format_status(); }
};

template <class Derived>
class gen_server : public gen_server_base {
 protected:
  init_result do_init() override {
    if constexpr (requires(Derived & d) { d.init(); }) {
      return derived().init();
    } else {
      return init_result::ok();
    }
  }

  handled_as do_dispatch(message& m) override {
    if constexpr (requires { typename Derived::handles; }) {
      return dispatch_list(m, typename Derived::handles{});
    } else {
      (void)m;
      return handled_as::none;
    }
  }

  bool do_continue(message& m) override {
    if constexpr (requires { typename Derived::handles; }) {
      return continue_list(m, typename Derived::handles{});
    } else {
      (void)m;
      return false;
    }
  }

  void do_terminate(const exit_reason& r) override {
    if constexpr (requires(Derived & d) { d.terminate(r); }) derived().terminate(r);
  }

  std::string do_format_status() override {
    if constexpr (requires(Derived & d) { d.format_status(); }) {
      return derived().format_status();
    } else {
      return "<" + detail::demangle(typeid(Derived).name()) + ">";
    }
  }

  const char* server_type() const noexcept override { return typeid(Derived).name(); }

 private:
  Derived& derived() { return static_cast<Derived&>(*this); }

  // The dispatch, in detail/gen_server-inl.hpp.
  template <class... T>
  handled_as dispatch_list(message& m, types<T...>);
  template <class... T>
  bool continue_list(message& m, types<T...>);
  template <class T>
  handled_as dispatch_one(message& m);
  template <class T>
  bool continue_one(message& m);
  template <class R>
  void reply_or_hold(const from& f, R&& r);
};

// ---- starting -------------------------------------------------------------------------------

// Starts a server and returns once its init has returned (or failed). Call from a process.
// A failed start leaves no registered name and no exit signal behind.
template <class S>
start_result start(std::unique_ptr<S> server, const start_options& opts = {}) {
  static_assert(std::is_base_of_v<gen_server_base, S>, "start takes a gen_server");
  return detail::start_server(std::move(server), opts, false);
}
// Like start, and links the server to the caller (what a supervisor does).
template <class S>
start_result start_link(std::unique_ptr<S> server, const start_options& opts = {}) {
  static_assert(std::is_base_of_v<gen_server_base, S>, "start_link takes a gen_server");
  return detail::start_server(std::move(server), opts, true);
}

// ---- talking to a server --------------------------------------------------------------------

// Sends req and waits for the reply (of type R) up to `timeout`. Throws call_error with noproc
// (no such process or name), timeout, calling_self, {bad_call,Req} if the server does not
// handle Req (it goes on), or the server's exit reason if it dies first. A reply that comes
// after the timeout never reaches the caller's mailbox. For a server of a known type,
// typed_ref<S> (typed_ref.hpp) checks Req and R at compile time.
template <class R = void, class Req>
R call(const server_ref& target, Req&& req, duration timeout = std::chrono::seconds(5)) {
  using msg_t = detail::call_msg<std::remove_cvref_t<Req>>;
  auto make = [](void* ctx, const from& f) -> std::unique_ptr<detail::envelope> {
    return std::make_unique<detail::message_envelope<msg_t>>(
        msg_t{std::forward<Req>(*static_cast<std::remove_reference_t<Req>*>(ctx)), f});
  };
  auto e = detail::call_impl(target, make, const_cast<void*>(static_cast<const void*>(&req)), timeout);
  return detail::take_reply<R>(std::move(e), target);
}

// A call that returns the failure instead of throwing it.
template <class R>
struct call_result {
  std::optional<std::conditional_t<std::is_void_v<R>, ok_t, R>> value;
  exit_reason error;
  explicit operator bool() const noexcept { return value.has_value(); }
};
template <class R = void, class Req>
call_result<R> try_call(const server_ref& target, Req&& req, duration timeout = std::chrono::seconds(5)) {
  call_result<R> out;
  try {
    if constexpr (std::is_void_v<R>) {
      call<void>(target, std::forward<Req>(req), timeout);
      out.value.emplace();
    } else {
      out.value.emplace(call<R>(target, std::forward<Req>(req), timeout));
    }
  } catch (const call_error& e) {
    out.error = e.reason();
  }
  return out;
}

// Fire and forget: never fails, even if there is no such server.
template <class T>
void cast(const server_ref& target, T&& msg) {
  if (auto p = target.resolve()) send(*p, detail::cast_msg<std::remove_cvref_t<T>>{std::forward<T>(msg)});
}

// Stops the server with `reason`: its terminate runs; returns once it has ended. Throws
// call_error(noproc) if there is no such server, call_error(timeout) if it does not end in
// time, and call_error(actual reason) if it ended with another reason.
void stop(const server_ref& target, exit_reason reason = exit_reason::normal(), duration timeout = duration::max());

// ---- sys: introspection and debugging, handled by the server loop, never by user code -------
namespace sys {
// The server's state as its format_status() shows it ("format_status crashed: <reason>" if it
// throws: the server goes on).
std::string get_state(const server_ref& target, duration timeout = std::chrono::seconds(5));
// Runs fn on the server's state, inside the server. fn gets the server object. If fn throws,
// the server goes on (as OTP's sys:replace_state) and this throws call_error with reason
// {callback_failed,Reason}; whatever fn changed before it threw stays changed.
template <class S>
void replace_state(const server_ref& target, std::function<void(S&)> fn, duration timeout = std::chrono::seconds(5));
// While suspended a server handles only system messages; others wait, in order.
void suspend(const server_ref& target, duration timeout = std::chrono::seconds(5));
void resume(const server_ref& target, duration timeout = std::chrono::seconds(5));
server_statistics statistics(const server_ref& target, duration timeout = std::chrono::seconds(5));
// Publishes each call, cast, info and reply of the server as a `trace` event on the node's
// event bus (docs/events.md): the console streams them, a logger at level debug writes them.
void trace(const server_ref& target, bool on, duration timeout = std::chrono::seconds(5));
// The server's last events (oldest first), as text.
std::vector<std::string> last_events(const server_ref& target, duration timeout = std::chrono::seconds(5));
}  // namespace sys

}  // namespace grove

#include <grove/behaviours/detail/gen_server-inl.hpp>
