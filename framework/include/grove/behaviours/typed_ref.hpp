// typed_ref<S>: a reference to a gen_server of type S that lets the compiler check what is sent
// to it. A request S does not list in `handles`, or has no handler for, does not compile (a
// static_assert says what to add), and the reply type is the handler's return type:
//
//   grove::typed_ref<ledger> l{"ledger"};            // a pid, a name or a via name
//   std::int64_t cents = l.call(balance{"alice"});  // deduced from ledger::handle_call
//   l.cast(deposit{"alice", 100});
//   l.call(audit{});                                 // error: ledger does not handle audit
//
// The type is a claim made where the typed_ref is built, and not checked at run time: if the
// server there is not an S, the calls fail as untyped ones would ({bad_call,T}, bad_reply_type).
// A handler that returns grove::deferred_t replies later with a type the compiler cannot see:
// such a call names its reply type, l.call<R>(req). The calls are grove::call, try_call and
// cast underneath, at the same cost; use those for a pid whose server type is unknown.
#pragma once

#include <chrono>
#include <concepts>
#include <string>
#include <type_traits>
#include <utility>

#include <grove/behaviours/gen_server.hpp>

namespace grove {

namespace detail {
// typed_ref's default reply type: take the handler's.
struct reply_deduced {};

template <class T, class List>
inline constexpr bool listed_in = false;
template <class T, class... U>
inline constexpr bool listed_in<T, types<U...>> = (std::is_same_v<T, U> || ...);

template <class S, class T>
concept lists = requires {
  typename S::handles;
}
&&listed_in<T, typename S::handles>;

// The handlers as gen_server's dispatch finds them (its reply type is that of the call on the
// non-const request it holds, below).
template <class S, class T>
concept has_handle_call = requires(S& s, const T& req, const from& f) {
  s.handle_call(req, f);
};
template <class S, class T>
concept has_handle_cast = requires(S& s, const T& msg) {
  s.handle_cast(msg);
};

template <class S, class T, bool Handled = has_handle_call<S, T>>
struct call_handler_result {
  using type = void;
};
template <class R>
struct unwrap_maybe_reply {
  using type = R;
};
template <class R>
struct unwrap_maybe_reply<maybe_reply<R>> {  // a reply now or later: an R either way
  using type = R;
};
template <class S, class T>
struct call_handler_result<S, T, true> {
  using type = typename unwrap_maybe_reply<
      std::remove_cvref_t<decltype(std::declval<S&>().handle_call(std::declval<T&>(), std::declval<from&>()))>>::type;
};

// Checks a typed call of request T with requested reply R and names its reply type. Each
// static_assert fires only when the ones before it hold, so a mistake gives one message.
template <class S, class T, class R>
struct typed_call {
  static constexpr bool server = std::is_base_of_v<gen_server_base, S>;
  static constexpr bool listed = lists<S, T>;
  static constexpr bool handled = has_handle_call<S, T>;
  using result = typename call_handler_result<S, T>::type;
  static constexpr bool deferred = std::is_same_v<result, deferred_t>;
  static constexpr bool deduce = std::is_same_v<R, reply_deduced>;

  static_assert(server, "typed_ref<S>: S must be a grove::gen_server");
  static_assert(!server || listed,
                "typed_ref<S>::call: S does not handle this request: add it to S::handles and define "
                "handle_call(const Req&, const grove::from&)");
  static_assert(!listed || handled,
                "typed_ref<S>::call: S lists this request in S::handles but defines no "
                "handle_call(const Req&, const grove::from&)");
  static_assert(!listed || !handled || !deferred || !deduce,
                "typed_ref<S>::call: S's handle_call for this request returns grove::deferred_t, so the reply "
                "type cannot be deduced: name it, call<R>(req)");
  static_assert(!listed || !handled || deferred || deduce || std::is_same_v<R, result>,
                "typed_ref<S>::call<R>: S's handle_call for this request does not return R: leave R out to "
                "take the handler's return type");

  using reply = std::conditional_t<deduce, std::conditional_t<deferred, void, result>, R>;
};
}  // namespace detail

template <class S>
class typed_ref {
 public:
  // From anything a server_ref is made from: a pid, a registered name, a via name.
  template <class Target>
  requires std::constructible_from<server_ref, Target&&>
  explicit typed_ref(Target&& target) : ref_(std::forward<Target>(target)) {}

  // grove::call with the request checked against S and the reply type S's handler returns
  // (void for a void handler). Throws call_error as grove::call does.
  template <class R = detail::reply_deduced, class Req>
  typename detail::typed_call<S, std::remove_cvref_t<Req>, R>::reply call(
      Req&& req, duration timeout = std::chrono::seconds(5)) const {
    using reply_t = typename detail::typed_call<S, std::remove_cvref_t<Req>, R>::reply;
    return grove::call<reply_t>(ref_, std::forward<Req>(req), timeout);
  }

  // Like call, returning the failure in .error instead of throwing it.
  template <class R = detail::reply_deduced, class Req>
  call_result<typename detail::typed_call<S, std::remove_cvref_t<Req>, R>::reply> try_call(
      Req&& req, duration timeout = std::chrono::seconds(5)) const {
    using reply_t = typename detail::typed_call<S, std::remove_cvref_t<Req>, R>::reply;
    return grove::try_call<reply_t>(ref_, std::forward<Req>(req), timeout);
  }

  // grove::cast with the message checked against S's handle_cast.
  template <class Msg>
  void cast(Msg&& msg) const {
    using T = std::remove_cvref_t<Msg>;
    static_assert(detail::lists<S, T>,
                  "typed_ref<S>::cast: S does not handle this message: add it to S::handles and define "
                  "handle_cast(const Msg&)");
    static_assert(!detail::lists<S, T> || detail::has_handle_cast<S, T>,
                  "typed_ref<S>::cast: S lists this message in S::handles but defines no handle_cast(const Msg&)");
    grove::cast(ref_, std::forward<Msg>(msg));
  }

  // The untyped reference, for stop, sys and the rest of the server API.
  const server_ref& ref() const noexcept { return ref_; }

 private:
  server_ref ref_;
};

}  // namespace grove
