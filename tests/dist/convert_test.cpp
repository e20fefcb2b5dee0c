// Typed messages across nodes (grove/dist/convert.hpp): term_traits, a GenServer serving its
// typed handlers to Erlang and to another Grove node, typed calls with their reply checked.
#include <unistd.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <grove/dist/convert.hpp>
#include <grove/dist/distribution.hpp>
#include <grove/grove.hpp>

#include "erl_support.hpp"

namespace d = grove::dist;
using d::term;
using namespace std::chrono_literals;

namespace {

// {put, Key, Value} -> ok; {get, Key} -> Value (0 if none).
struct put {
  std::string key;
  std::int64_t value = 0;
};
struct get {
  std::string key;
};
// {later, Key} -> the key's next value, once it is put (a deferred reply); {pending} -> how many
// such calls wait.
struct later {
  std::string key;
};
struct pending {};

}  // namespace

template <>
struct grove::dist::term_traits<put> {
  static term to_term(const put& p) {
    return term::make_tuple({term::make_atom("put"), term::make_binary(p.key), term(p.value)});
  }
  static std::optional<put> from_term(const term& t) {
    auto* e = tagged(t, "put", 3);
    if (!e || !(*e)[1].is<binary>() || !(*e)[2].is<std::int64_t>()) return std::nullopt;
    return put{(*e)[1].as<binary>().bytes, (*e)[2].as<std::int64_t>()};
  }
};
template <>
struct grove::dist::term_traits<get> {
  static term to_term(const get& g) { return term::make_tuple({term::make_atom("get"), term::make_binary(g.key)}); }
  static std::optional<get> from_term(const term& t) {
    auto* e = tagged(t, "get", 2);
    if (!e || !(*e)[1].is<binary>()) return std::nullopt;
    return get{(*e)[1].as<binary>().bytes};
  }
};

template <>
struct grove::dist::term_traits<later> {
  static term to_term(const later& l) { return term::make_tuple({term::make_atom("later"), term::make_binary(l.key)}); }
  static std::optional<later> from_term(const term& t) {
    auto* e = tagged(t, "later", 2);
    if (!e || !(*e)[1].is<binary>()) return std::nullopt;
    return later{(*e)[1].as<binary>().bytes};
  }
};

template <>
struct grove::dist::term_traits<pending> {
  static term to_term(const pending&) { return term::make_tuple({term::make_atom("pending")}); }
  static std::optional<pending> from_term(const term& t) {
    if (!tagged(t, "pending", 1)) return std::nullopt;
    return pending{};
  }
};

namespace {

class kv : public grove::gen_server<kv>, public d::term_handlers<kv, put, get, later, pending> {
 public:
  using handles = grove::types<put, get, later, pending, term>;
  using term_handlers::handle_call;
  using term_handlers::handle_cast;
  void handle_call(const put& p, const grove::from&) { store(p); }
  std::int64_t handle_call(const get& g, const grove::from&) {
    auto it = data_.find(g.key);
    return it == data_.end() ? 0 : it->second;
  }
  grove::deferred_t handle_call(const later& l, const grove::from& f) {
    waiting_.emplace(l.key, f);
    return grove::deferred;
  }
  std::int64_t handle_call(const pending&, const grove::from&) { return static_cast<std::int64_t>(waiting_.size()); }
  void handle_cast(const put& p) { store(p); }

 private:
  void store(const put& p) {
    data_[p.key] = p.value;
    auto [lo, hi] = waiting_.equal_range(p.key);
    for (auto it = lo; it != hi; ++it) d::reply(it->second, p.value);
    waiting_.erase(lo, hi);
  }
  std::map<std::string, std::int64_t> data_;
  std::multimap<std::string, grove::from> waiting_;
};

std::string unique(const std::string& prefix) { return prefix + std::to_string(::getpid()); }

}  // namespace

TEST_CASE("term_traits: the built-in conversions and their refusals", "[dist][convert]") {
  CHECK(d::from_term<std::vector<int>>(d::to_term(std::vector<int>{1, -2, 3})) == std::vector<int>{1, -2, 3});
  CHECK(d::from_term<std::string>(d::to_term(std::string("héllo"))) == "héllo");
  CHECK(d::from_term<bool>(d::to_term(true)) == true);
  CHECK(d::from_term<double>(term(2)) == 2.0);
  CHECK_FALSE(d::from_term<std::int8_t>(term(300)));                                // out of range
  CHECK_FALSE(d::from_term<std::string>(term::make_list({term(104), term(105)})));  // a charlist is no binary
  CHECK_FALSE(d::from_term<std::vector<int>>(term::make_improper_list({term(1)}, term(2))));
  CHECK_FALSE(d::from_term<bool>(term::make_atom("maybe")));
  CHECK_FALSE(d::from_term<put>(term::make_tuple({term::make_atom("put"), term(1), term(2)})));
  CHECK(d::from_term<get>(d::to_term(get{"k"}))->key == "k");
}

TEST_CASE("a GenServer serves its typed handlers to Erlang and to another Grove node", "[dist][convert][erl]") {
  grove::node a, b;
  const std::string cookie = unique("cookie_");
  d::distribution da(a, {.name = unique("grove_cv_a_"), .cookie = cookie});
  d::distribution db(b, {.name = unique("grove_cv_b_"), .cookie = cookie});
  a.run([] { grove::start(std::make_unique<kv>(), {.name = "kv"}).value(); });
  // Local callers use the types themselves.
  a.run([] { CHECK(grove::call<std::int64_t>("kv", get{"none"}) == 0); });
  erl_shell erl("N = '" + da.name() + R"(',
    io:format("~p~n", [gen_server:call({kv, N}, {put, <<"a">>, 41})]),
    gen_server:cast({kv, N}, {put, <<"b">>, 2}),
    io:format("~p~n", [gen_server:call({kv, N}, {get, <<"a">>}) + gen_server:call({kv, N}, {get, <<"b">>})]),
    Self = self(),
    spawn(fun() -> Self ! {later, gen_server:call({kv, N}, {later, <<"z">>})} end),
    Held = fun H(0) -> false; H(K) -> gen_server:call({kv, N}, {pending}) =:= 1 orelse H(K - 1) end,
    true = Held(100000),
    gen_server:cast({kv, N}, {put, <<"z">>, 5}),
    receive {later, Z} -> io:format("later ~p~n", [Z]) after 5000 -> io:format("no reply~n") end,
    M = monitor(process, {kv, N}),
    {'EXIT', {Why, _}} = (catch gen_server:call({kv, N}, {frobnicate})),
    io:format("~p~n", [Why]),
    receive {'DOWN', M, _, _, _} -> io:format("down~n") after 5000 -> io:format("no down~n") end,
    halt().)",
                {"-sname", unique("erl_cv_"), "-setcookie", cookie});
  CHECK(erl.read_line() == "ok");
  CHECK(erl.read_line() == "43");
  CHECK(erl.read_line() == "later 5");  // a deferred reply
  // A term no request type takes crashes the server, as a missing clause does in Erlang.
  CHECK(erl.read_line() == "{error,<<\"std::invalid_argument: no call of this server takes {frobnicate}\">>}");
  CHECK(erl.read_line() == "down");
  a.run([] { grove::start(std::make_unique<kv>(), {.name = "kv"}).value(); });
  b.run([&] {
    const grove::server_ref remote("kv", da.name());
    d::call<grove::ok_t>(remote, put{"x", 7});
    CHECK(d::call<std::int64_t>(remote, get{"x"}) == 7);
    d::cast(remote, put{"y", 8});
    CHECK(d::call<std::int64_t>(remote, get{"y"}) == 8);
    // A deferred reply: the call waits until another process puts the key.
    const grove::pid me = grove::self();
    grove::spawn([remote, me] { grove::send(me, d::call<std::int64_t>(remote, later{"w"})); });
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (d::call<std::int64_t>(remote, pending{}) != 1 && std::chrono::steady_clock::now() < deadline) {
    }
    CHECK(grove::receive_for(0s, [](std::int64_t v) { return v; }) == std::nullopt);  // not answered yet
    d::call<grove::ok_t>(remote, put{"w", 9});
    CHECK(grove::receive_for(10s, [](std::int64_t v) { return v; }) == std::optional<std::int64_t>(9));
    // A reply of another type than asked: bad_reply, with the term.
    try {
      d::call<std::string>(remote, get{"x"});
      FAIL("no bad_reply");
    } catch (const grove::call_error& e) {
      CHECK(e.reason() == grove::exit_reason::other("{bad_reply,7}"));
    }
  });
}
