// Typed messages across nodes (docs/concepts/distribution.md): how a C++ type travels as a term.
// Only dist::term crosses a node boundary; declare how a type converts by specializing
// term_traits<T>:
//
//   struct put { std::string key; std::int64_t value; };
//   template <> struct grove::dist::term_traits<put> {
//     static term to_term(const put& p) {
//       return term::make_tuple({term::make_atom("put"), term::make_binary(p.key), term(p.value)});
//     }
//     static std::optional<put> from_term(const term& t) {          // nullopt: not a put
//       auto* e = tagged(t, "put", 3);
//       if (!e || !(*e)[1].is<binary>() || !(*e)[2].is<std::int64_t>()) return std::nullopt;
//       return put{(*e)[1].as<binary>().bytes, (*e)[2].as<std::int64_t>()};
//     }
//   };
//
// Then a GenServer serves remote callers with its typed handlers (term_handlers below), and a
// Grove caller calls any node's server with typed requests and replies (dist::call). Integers,
// double, bool, std::string (a binary), std::vector<T> (a list), ok_t (ok) and term itself
// convert already.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <grove/behaviours/gen_server.hpp>
#include <grove/dist/term.hpp>

namespace grove::dist {

template <class T>
struct term_traits;  // specialize: static term to_term(const T&); static std::optional<T> from_term(const term&)

template <class T>
concept term_convertible = requires(const T& v, const term& t) {
  { term_traits<T>::to_term(v) } -> std::same_as<term>;
  { term_traits<T>::from_term(t) } -> std::same_as<std::optional<T>>;
};

template <term_convertible T>
term to_term(const T& v) {
  return term_traits<T>::to_term(v);
}
template <term_convertible T>
std::optional<T> from_term(const term& t) {
  return term_traits<T>::from_term(t);
}

// The elements of `t` if it is a tuple of `arity` elements whose first is the atom `tag`
// ({tag, ...}), else null.
inline const std::vector<term>* tagged(const term& t, std::string_view tag, std::size_t arity) {
  const auto* tu = t.get_if<tuple>();
  if (!tu || tu->elements.size() != arity || arity == 0) return nullptr;
  const auto* a = tu->elements[0].get_if<atom>();
  return a && a->name == tag ? &tu->elements : nullptr;
}

template <>
struct term_traits<term> {
  static term to_term(const term& t) { return t; }
  static std::optional<term> from_term(const term& t) { return t; }
};
template <>
struct term_traits<ok_t> {  // what a handler that returns void replies: the atom ok
  static term to_term(ok_t) { return term::make_atom("ok"); }
  static std::optional<ok_t> from_term(const term& t) {
    const auto* a = t.get_if<atom>();
    return a && a->name == "ok" ? std::optional<ok_t>(ok_t{}) : std::nullopt;
  }
};
template <>
struct term_traits<bool> {
  static term to_term(bool b) { return term::make_atom(b ? "true" : "false"); }
  static std::optional<bool> from_term(const term& t) {
    const auto* a = t.get_if<atom>();
    if (!a || (a->name != "true" && a->name != "false")) return std::nullopt;
    return a->name == "true";
  }
};
template <std::integral I>
requires(!std::same_as<I, bool>) struct term_traits<I> {
  static term to_term(I v) { return term(static_cast<std::int64_t>(v)); }
  static std::optional<I> from_term(const term& t) {
    const auto* i = t.get_if<std::int64_t>();
    if (!i || !std::in_range<I>(*i)) return std::nullopt;
    return static_cast<I>(*i);
  }
};
template <>
struct term_traits<double> {
  static term to_term(double d) { return term(d); }
  static std::optional<double> from_term(const term& t) {
    if (const auto* d = t.get_if<double>()) return *d;
    if (const auto* i = t.get_if<std::int64_t>()) return static_cast<double>(*i);
    return std::nullopt;
  }
};
template <>
struct term_traits<std::string> {  // a binary (Elixir's strings); a charlist is refused
  static term to_term(const std::string& s) { return term::make_binary(s); }
  static std::optional<std::string> from_term(const term& t) {
    const auto* b = t.get_if<binary>();
    return b ? std::optional<std::string>(b->bytes) : std::nullopt;
  }
};
template <term_convertible T>
struct term_traits<std::vector<T>> {
  static term to_term(const std::vector<T>& v) {
    std::vector<term> e;
    e.reserve(v.size());
    for (const auto& x : v) e.push_back(dist::to_term(x));
    return term::make_list(std::move(e));
  }
  static std::optional<std::vector<T>> from_term(const term& t) {
    const auto* l = t.get_if<list>();
    if (!l || l->tail) return std::nullopt;
    std::vector<T> out;
    out.reserve(l->elements.size());
    for (const auto& x : l->elements) {
      auto v = dist::from_term<T>(x);
      if (!v) return std::nullopt;
      out.push_back(std::move(*v));
    }
    return out;
  }
};

// A call with a typed request and reply, to a server of any node (a Grove server with
// term_handlers, an Erlang or Elixir gen_server). Throws call_error as grove::call does, and
// call_error with {bad_reply, Term} when the reply is not an R.
template <term_convertible R, term_convertible Req>
R call(const server_ref& target, const Req& req, duration timeout = std::chrono::seconds(5)) {
  term reply = grove::call<term>(target, to_term(req), timeout);
  auto v = from_term<R>(reply);
  if (!v) throw call_error(exit_reason::other("{bad_reply," + reply.str() + "}"), target.str());
  return std::move(*v);
}
template <term_convertible Req>
void cast(const server_ref& target, const Req& req) {
  grove::cast(target, to_term(req));
}

// A reply to a call from another node (or any term call), later: the value as a term.
template <term_convertible T>
void reply(const from& f, const T& value) {
  grove::reply(f, to_term(value));
}

// A GenServer's typed handlers, served to callers that send terms (other nodes): derive from
// term_handlers<Self, Reqs...>, list `term` in `handles` beside the Reqs, and bring its
// handle_call/handle_cast in with `using`. A term call is converted to the first of Reqs that
// takes it and handled by Self's handle_call(const Req&, const from&) (its reply converted
// back; void replies `ok`; a handler that returns grove::deferred replies later with
// dist::reply(from, value)); a term cast likewise by handle_cast(const Req&). A term that none
// of them takes crashes the server (std::invalid_argument), as a gen_server without a matching
// clause does (function_clause).
template <class Self, class... Reqs>
class term_handlers {
  static_assert((!std::is_convertible_v<const Reqs&, term> && ...),
                "term_handlers' requests are types of your own (a struct per request), not terms or numbers");

 public:
  maybe_reply<term> handle_call(const term& t, const from& f) {
    std::optional<term> out;
    if (!(call_as<Reqs>(t, f, out) || ...)) throw std::invalid_argument("no call of this server takes " + t.str());
    if (!out) return deferred;
    return std::move(*out);
  }
  void handle_cast(const term& t) {
    if (!(cast_as<Reqs>(t) || ...)) throw std::invalid_argument("no cast of this server takes " + t.str());
  }

 private:
  template <class Req>
  bool call_as(const term& t, const from& f, std::optional<term>& out) {
    if constexpr (requires(Self & s, const Req& r, const from& g) { s.handle_call(r, g); }) {
      auto req = from_term<Req>(t);
      if (!req) return false;
      Self& self = static_cast<Self&>(*this);
      using R = decltype(self.handle_call(*req, f));
      if constexpr (std::is_same_v<R, deferred_t>) {
        self.handle_call(*req, f);  // replies later (dist::reply); `out` stays empty
      } else if constexpr (std::is_void_v<R>) {
        self.handle_call(*req, f);
        out = term::make_atom("ok");
      } else {
        out = dist::to_term(self.handle_call(*req, f));
      }
      return true;
    } else {
      return false;
    }
  }
  template <class Req>
  bool cast_as(const term& t) {
    if constexpr (requires(Self & s, const Req& r) { s.handle_cast(r); }) {
      auto req = from_term<Req>(t);
      if (!req) return false;
      static_cast<Self&>(*this).handle_cast(*req);
      return true;
    } else {
      return false;
    }
  }
};

}  // namespace grove::dist
