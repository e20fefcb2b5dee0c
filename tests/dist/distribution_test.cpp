// A Grove node in an Erlang cluster (grove/dist/distribution.hpp), against Debian's real erl
// and epmd: handshakes both ways, cookies, ping, gen_server calls and casts from Erlang,
// monitors, ticks, a vanished peer, bad frames.
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <optional>
#include <string>

#include <catch2/catch.hpp>
#include <grove/dist/distribution.hpp>
#include <grove/grove.hpp>

#include "erl_support.hpp"

namespace d = grove::dist;
using d::term;
using namespace std::chrono_literals;

namespace {

// Answers every call with the term it was given.
class echo : public grove::gen_server<echo> {
 public:
  using handles = grove::types<term>;
  term handle_call(const term& t, const grove::from&) { return t; }
};

// Keeps what was cast to it; a call of `last_cast` returns that, `crash` crashes it, `pid`
// returns its own pid as Erlang sees it; `hold` is answered (with `late`) only when a call of
// `release` comes, which answers `released` after that.
class recorder : public grove::gen_server<recorder> {
 public:
  explicit recorder(const d::distribution& dist) : dist_(dist) {}
  using handles = grove::types<term>;
  grove::maybe_reply<term> handle_call(const term& t, const grove::from& f) {
    if (t == term::make_atom("crash")) throw std::runtime_error("asked to crash");
    if (t == term::make_atom("pid")) return term(dist_.to_erl(grove::self()));
    if (t == term::make_atom("hold")) {
      held_ = f;
      return grove::deferred;
    }
    if (t == term::make_atom("release")) {
      if (held_) grove::reply(*held_, term::make_atom("late"));
      held_.reset();
      return term::make_atom("released");
    }
    return last_;
  }
  void handle_cast(const term& t) { last_ = t; }

 private:
  const d::distribution& dist_;
  term last_ = term::make_atom("none");
  std::optional<grove::from> held_;
};

std::string unique(const std::string& prefix) { return prefix + std::to_string(::getpid()); }

// The next event of one of the distribution kinds, waiting up to `limit`.
std::optional<grove::event> next_dist_event(grove::subscription& s, std::chrono::seconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    for (auto& e : s.take()) {
      if (e.kind == grove::event_kind::nodeup || e.kind == grove::event_kind::nodedown ||
          e.kind == grove::event_kind::connection_failed)
        return e;
    }
    s.wait(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("an Erlang node pings a Grove node and calls and casts to its gen_servers by name", "[dist][erl]") {
  grove::node n;
  const std::string cookie = unique("cookie_");
  d::distribution dist(n, {.name = unique("grove_a_"), .cookie = cookie});
  n.run([&] {
    grove::start(std::make_unique<echo>(), {.name = "echo"}).value();
    grove::start(std::make_unique<recorder>(dist), {.name = "recorder"}).value();
  });
  const std::string peer = "'" + dist.name() + "'";
  erl_shell erl(R"(
    N = )" + peer + R"(,
    io:format("~p~n", [net_adm:ping(N)]),
    io:format("~p~n", [lists:member(N, nodes())]),
    T = {hello, [1, 2 | 3], #{{a, b} => <<"x">>, [k] => #{}}, 123456789012345678901234567890, -1.5, 'ünï',
         <<1:3>>, self(), make_ref(), list_to_tuple(lists:seq(1, 300))},
    io:format("~p~n", [gen_server:call({echo, N}, T) =:= T]),
    T0 = erlang:monotonic_time(microsecond),
    R = (catch gen_server:call({nobody, N}, x)),
    T1 = erlang:monotonic_time(microsecond),
    io:format("~p ~p~n", [element(1, element(2, R)), (T1 - T0) < 10000]),
    gen_server:cast({recorder, N}, {note, 42}),
    io:format("~p~n", [gen_server:call({recorder, N}, last_cast)]),
    P = gen_server:call({recorder, N}, pid),
    io:format("~p~n", [node(P) =:= N]),
    {'EXIT', {timeout, _}} = (catch gen_server:call(P, hold, 50)),
    released = gen_server:call(P, release),
    io:format("~p~n", [process_info(self(), messages)]),
    M = erlang:monitor(process, P),
    {'EXIT', {Why, _}} = (catch gen_server:call(P, crash)),
    io:format("~p~n", [Why]),
    receive {'DOWN', M, process, P, Down} -> io:format("~p~n", [Down =:= Why]) after 5000 -> io:format("no down~n") end,
    M2 = erlang:monitor(process, {nobody, N}),
    receive {'DOWN', M2, process, _, R2} -> io:format("~p~n", [R2]) after 5000 -> io:format("no down~n") end,
    io:format("~p~n", [catch gen_server:call({echo, N}, slow, 100) =:= slow]),
    halt().)",
                {"-sname", unique("erl_a_"), "-setcookie", cookie});
  CHECK(erl.read_line() == "pong");
  CHECK(erl.read_line() == "true");         // a visible node
  CHECK(erl.read_line() == "true");         // every kind of term, there and back
  CHECK(erl.read_line() == "noproc true");  // an unknown name: noproc, in under 10 ms
  CHECK(erl.read_line() == "{note,42}");    // the cast arrived before the call
  CHECK(erl.read_line() == "true");         // a Grove pid is a pid of the Grove node
  // A call by pid that timed out: the reply Grove sends later (before `released`) is dropped.
  CHECK(erl.read_line() == "{messages,[]}");
  CHECK(erl.read_line() == "{error,<<\"std::runtime_error: asked to crash\">>}");  // the crash reason
  CHECK(erl.read_line() == "true");                                                // and the monitor's, the same
  CHECK(erl.read_line() == "noproc");                                              // a monitor of an unknown name
  CHECK(erl.read_line() == "true");                                                // and the connection still serves
}

TEST_CASE("a hidden Grove node is in an erl's nodes(hidden), not in its nodes()", "[dist][erl]") {
  grove::node n;
  const std::string cookie = unique("cookie_");
  d::distribution dist(n, {.name = unique("grove_h_"), .cookie = cookie, .hidden = true});
  erl_shell erl("N = '" + dist.name() + R"(',
    io:format("~p~n", [net_adm:ping(N)]),
    io:format("~p ~p~n", [lists:member(N, nodes()), lists:member(N, nodes(hidden))]),
    halt().)",
                {"-sname", unique("erl_h_"), "-setcookie", cookie});
  CHECK(erl.read_line() == "pong");
  CHECK(erl.read_line() == "false true");
}

TEST_CASE("a wrong cookie is refused both ways, and the refusal is an event", "[dist][erl]") {
  grove::node n;
  auto sub = grove::events(n).subscribe();
  d::distribution dist(n, {.name = unique("grove_b_"), .cookie = "right"});
  {
    erl_shell erl("io:format(\"~p~n\", [net_adm:ping('" + dist.name() + "')]), halt().",
                  {"-sname", unique("erl_b_"), "-setcookie", "wrong"});
    CHECK(erl.read_line() == "pang");
    auto e = next_dist_event(*sub);
    REQUIRE(e);
    CHECK(e->kind == grove::event_kind::connection_failed);
    CHECK_THAT(e->text, Catch::Contains("cookie"));
  }
  erl_shell erl("io:format(\"up~n\"), receive after infinity -> ok end.",
                {"-sname", unique("erl_c_"), "-setcookie", "wrong"});
  REQUIRE(erl.read_line() == "up");
  const std::string host = dist.name().substr(dist.name().find('@'));
  std::string why;
  CHECK_FALSE(dist.connect(unique("erl_c_") + host, &why));
  CHECK_THAT(why, Catch::Contains("cookie"));
  CHECK(dist.peers().empty());
}

TEST_CASE("Grove connects to an Erlang node, which sees it in nodes(); a killed peer is a nodedown", "[dist][erl]") {
  grove::node n;
  auto sub = grove::events(n).subscribe();
  const std::string cookie = unique("cookie_");
  d::distribution dist(n, {.name = unique("grove_d_"), .cookie = cookie, .tick_time = 1s});
  // A node has one distribution: a second is refused, naming the first.
  CHECK_THROWS_WITH((d::distribution(n, {.name = unique("grove_d2_"), .cookie = cookie})),
                    Catch::Contains("already part of a distribution, as " + dist.name()));
  CHECK(d::find_distribution(n) == &dist);
  erl_shell erl(R"(
    io:format("up~n"),
    Nodes = fun() -> io:format("~s~n", [string:join([atom_to_list(X) || X <- nodes()], ",")]) end,
    io:get_line(""),
    Nodes(),
    io:get_line(""),
    Nodes(),
    receive after infinity -> ok end.)",
                {"-sname", unique("erl_d_"), "-setcookie", cookie, "-kernel", "net_ticktime", "1"});
  REQUIRE(erl.read_line() == "up");
  const std::string host = dist.name().substr(dist.name().find('@'));
  const std::string peer = unique("erl_d_") + host;
  std::string why;
  REQUIRE(dist.connect(peer, &why));
  auto up = next_dist_event(*sub);
  REQUIRE(up);
  CHECK(up->kind == grove::event_kind::nodeup);
  CHECK(up->label == peer);
  erl.write_line("");
  CHECK(erl.read_line() == dist.name());
  // An idle connection lives on ticks: three tick times, and it is still up (the node counts
  // nothing in between; the erl side would drop us, and we it, after one without ticks).
  const auto idle_until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < idle_until) {
    auto e = next_dist_event(*sub, 1s);
    CHECK_FALSE(e);
  }
  erl.write_line("");
  CHECK(erl.read_line() == dist.name());
  REQUIRE(dist.peers().size() == 1);
  CHECK(dist.peers()[0].name == peer);
  CHECK_FALSE(dist.peers()[0].hidden);
  CHECK(dist.peers()[0].initiated);
  const auto killed = std::chrono::steady_clock::now();
  erl.kill_now();
  auto down = next_dist_event(*sub, 5s);
  REQUIRE(down);
  CHECK(down->kind == grove::event_kind::nodedown);
  CHECK(down->label == peer);
  CHECK(std::chrono::steady_clock::now() - killed < 1s);  // within one tick time
  CHECK(dist.peers().empty());
}
