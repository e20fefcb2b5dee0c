// gen_server's implementation (templates), included at the end of grove/behaviours/gen_server.hpp,
// whose declarations it defines: via names, the messages a call, a cast and the sys functions
// travel in, the reply check, and gen_server<Derived>'s dispatch. Not a public API.
#pragma once

#include <grove/behaviours/gen_server.hpp>

namespace grove {

template <class Registry, class Key>
std::shared_ptr<const via_name> via(Registry& registry, Key key) {
  struct impl final : via_name {
    Registry& r;
    Key k;
    impl(Registry& reg, Key key_) : r(reg), k(std::move(key_)) {}
    std::optional<pid> whereis() const override {
      auto e = r.find(k);
      if (!e) return std::nullopt;
      return e->who;
    }
    std::optional<pid> register_self() const override {
      auto res = r.register_self(k);
      if (res) return std::nullopt;
      if (res.holder) return res.holder;
      throw process_error(exit_reason::other(res.str()), "register via name");
    }
    std::string str() const override {
      if constexpr (requires(std::ostream & os, const Key& x) { os << x; }) {
        std::ostringstream os;
        os << "{via," << k << "}";
        return os.str();
      } else {
        return "{via,...}";
      }
    }
  };
  return std::make_shared<impl>(registry, std::move(key));
}

namespace detail {
template <class Req>
struct call_msg {
  using request_type = Req;  // what the test kit's log names (envelope::request_type)
  Req request;
  from f;
  // Lets a server that does not handle Req still answer the caller (envelope::reply_to).
  const reply_address& reply_to() const noexcept { return f.to_; }
  // A trace shows the request (when it can be printed), not the wrapper.
  friend std::ostream& operator<<(std::ostream& os, const call_msg& c) requires printable<Req> {
    return os << c.request;
  }
};
// The answer to a call the server does not handle: the call fails with `reason` ({bad_call,T}).
struct call_refused {
  exit_reason reason;
};
template <class Msg>
struct cast_msg {
  using request_type = Msg;
  Msg msg;
  friend std::ostream& operator<<(std::ostream& os, const cast_msg& c) requires printable<Msg> { return os << c.msg; }
};
struct sys_request {
  enum class op : unsigned char { get_state, replace_state, suspend, resume, statistics, trace_on, trace_off, events };
  op what;
  std::function<void(gen_server_base&)> replace;
};
// replace_state's answer: empty if the function ran, else why it failed (state unchanged).
struct replace_outcome {
  std::optional<exit_reason> failed;
};
struct stop_request {
  exit_reason reason;
};
struct idle_tick {
  std::uint64_t token;
};

template <class R>
R take_reply(std::unique_ptr<envelope> e, const server_ref& target) {
  if constexpr (std::is_void_v<R>) {
    (void)e;
    (void)target;
  } else {
    if (!same_type(e->type, typeid(R))) {
      throw call_error(exit_reason::other("bad_reply_type: expected " + demangle(typeid(R).name()) + ", got " +
                                          demangle(e->type->name())),
                       target.str());
    }
    return std::move(static_cast<message_envelope<R>&>(*e).value);
  }
}
}  // namespace detail

// ---- gen_server<Derived>'s dispatch -----------------------------------------------------------

template <class Derived>
template <class... T>
auto gen_server<Derived>::dispatch_list(message& m, types<T...>) -> handled_as {
  handled_as h = handled_as::none;
  // (void): with one type the fold is a single comparison, which g++ flags as unused.
  (void)(((h = dispatch_one<T>(m)) != handled_as::none) || ...);
  return h;
}
template <class Derived>
template <class... T>
bool gen_server<Derived>::continue_list(message& m, types<T...>) {
  return (continue_one<T>(m) || ...);
}

template <class Derived>
template <class T>
auto gen_server<Derived>::dispatch_one(message& m) -> handled_as {
  if (auto* c = m.get<detail::call_msg<T>>()) {
    if constexpr (requires(Derived & d, const T& t, const from& f) { d.handle_call(t, f); }) {
      using R = decltype(derived().handle_call(c->request, c->f));
      if constexpr (std::is_same_v<R, deferred_t>) {
        derived().handle_call(c->request, c->f);
      } else if constexpr (is_maybe_reply<R>::value) {
        R r = derived().handle_call(c->request, c->f);
        if (!r.deferred()) reply_or_hold(c->f, std::move(r.value()));
      } else if constexpr (std::is_void_v<R>) {
        derived().handle_call(c->request, c->f);
        reply_or_hold(c->f, ok_t{});
      } else {
        reply_or_hold(c->f, derived().handle_call(c->request, c->f));
      }
      return handled_as::call;
    }
    return handled_as::none;
  }
  if (auto* c = m.get<detail::cast_msg<T>>()) {
    if constexpr (requires(Derived & d, const T& t) { d.handle_cast(t); }) {
      derived().handle_cast(c->msg);
      return handled_as::cast;
    }
    return handled_as::none;
  }
  if (auto* v = m.get<T>()) {
    if constexpr (requires(Derived & d, const T& t) { d.handle_info(t); }) {
      derived().handle_info(*v);
      return handled_as::info;
    }
    return handled_as::none;
  }
  return handled_as::none;
}

template <class Derived>
template <class T>
bool gen_server<Derived>::continue_one(message& m) {
  if (auto* v = m.get<T>()) {
    if constexpr (requires(Derived & d, const T& t) { d.handle_continue(t); }) {
      derived().handle_continue(*v);
      return true;
    }
  }
  return false;
}

template <class Derived>
template <class R>
void gen_server<Derived>::reply_or_hold(const from& f, R&& r) {
  if (tracing_) {
    using V = std::remove_cvref_t<R>;
    if constexpr (detail::printable<V>) {
      record_reply(typeid(V), &r, [](std::ostream& os, const void* v) { os << *static_cast<const V*>(v); });
    } else {
      record_reply(typeid(V), nullptr, nullptr);
    }
  }
  if (stop_) {  // OTP's {stop, Reason, Reply, State}: terminate first, then the reply
    pending_reply_ = [f, v = std::forward<R>(r)]() mutable { grove::reply(f, std::move(v)); };
  } else {
    grove::reply(f, std::forward<R>(r));
  }
}

namespace sys {
template <class S>
void replace_state(const server_ref& target, std::function<void(S&)> fn, duration timeout) {
  detail::sys_request r{detail::sys_request::op::replace_state,
                        [fn = std::move(fn)](gen_server_base& b) { fn(dynamic_cast<S&>(b)); }};
  auto outcome = call<detail::replace_outcome>(target, std::move(r), timeout);
  if (outcome.failed) {
    throw call_error(exit_reason::other("{callback_failed," + outcome.failed->str() + "}"), target.str());
  }
}
}  // namespace sys

}  // namespace grove
