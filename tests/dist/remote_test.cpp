// Grove processes reaching processes of other nodes (grove/dist/distribution.hpp): Grove calling
// a real Erlang gen_server by {Name, Node} and by pid, monitors and links both ways with exact
// reasons, unlink, noconnection when the peer is killed, 100,000 messages in order; two Grove
// nodes calling, monitoring and linking to each other, and a supervisor restarting a child that
// a remote exit signal ended; simultaneous connects; bad frames.
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <grove/dist/distribution.hpp>
#include <grove/dist/epmd.hpp>
#include <grove/grove.hpp>

#include "erl_support.hpp"

namespace d = grove::dist;
using d::term;
using namespace std::chrono_literals;

namespace {

std::string unique(const std::string& prefix) { return prefix + std::to_string(::getpid()); }
std::string host_of(const d::distribution& dist) { return dist.name().substr(dist.name().find('@')); }
term atom(const std::string& s) { return term::make_atom(s); }
// The text of the next event of `kind` on `sub`, or "" after 10 s.
std::string next_event_text(grove::subscription& sub, grove::event_kind kind) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    for (auto& e : sub.take())
      if (e.kind == kind) return e.text;
    sub.wait(500ms);
  }
  return "";
}
term tuple(std::vector<term> e) { return term::make_tuple(std::move(e)); }
term map_of(term k, term v) {
  d::map m;
  m.entries.emplace_back(std::move(k), std::move(v));
  return term(std::move(m));
}

// A Grove process the test thread drives: it runs commands in itself (run), keeps the terms
// sent to it (inbox, from commands), traps exits and notes each exit signal, down and term it
// receives ("EXIT reason", "DOWN reason", "MSG term"), reasons written as Erlang terms.
class driver {
 public:
  driver(grove::node& n, const std::string& name) {
    std::promise<void> ready;
    pid_ = n.spawn([this, name, &ready] {
      grove::trap_exit(true);
      grove::register_name(name, grove::self());
      ready.set_value();
      bool done = false;
      while (!done) {
        grove::receive([&](command c) { c.result->set_value(c.fn()); },
                       [&](const grove::exit_signal& e) { note("EXIT " + d::reason_term(e.reason).str()); },
                       [&](const grove::down& dn) { note("DOWN " + d::reason_term(dn.reason).str()); },
                       [&](const d::nodedown& nd) { note("NODEDOWN " + nd.node); },
                       [&](const term& t) {
                         inbox.push_back(t);
                         note("MSG " + t.str());
                       },
                       [&](quit) { done = true; });
      }
    });
    ready.get_future().wait();
  }
  ~driver() { grove::send(pid_, quit{}); }
  grove::pid pid() const { return pid_; }

  // Runs fn in the driver's process and returns what it returns.
  std::string run(std::function<std::string()> fn) {
    auto result = std::make_shared<std::promise<std::string>>();
    auto answer = result->get_future();
    grove::send(pid_, command{std::move(fn), result});
    REQUIRE(answer.wait_for(30s) == std::future_status::ready);
    return answer.get();
  }
  // The next note, or "" after `limit`.
  std::string next_note(std::chrono::seconds limit = 20s) {
    std::unique_lock lk(m_);
    if (!cv_.wait_for(lk, limit, [&] { return !notes_.empty(); })) return "";
    std::string s = notes_.front();
    notes_.pop_front();
    return s;
  }
  std::vector<term> inbox;  // the driver's process only

 private:
  struct command {
    std::function<std::string()> fn;
    std::shared_ptr<std::promise<std::string>> result;
  };
  struct quit {};
  void note(std::string s) {
    std::lock_guard lk(m_);
    notes_.push_back(std::move(s));
    cv_.notify_all();
  }
  grove::pid pid_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::string> notes_;
};

// An erl expression: true once the Erlang process bound to `var` has (or, with false, has no)
// links, checked every 10 ms for up to 5 s; else false.
std::string linked(const std::string& var, bool yes = true) {
  return "(fun W(0) -> false; W(K) -> case process_info(" + var + ", links) of {links, " + (yes ? "[_|_]" : "[]") +
         "} -> true; _ -> receive after 10 -> W(K - 1) end end end)(500).";
}

// Loads tests/dist/erl/grove_probe.erl into the erl and starts it (registered as `probe`).
void start_probe(erl_repl& erl) {
  REQUIRE(erl.eval(R"({ok, M, Bin} = compile:file(")" GROVE_SOURCE_DIR
                   R"(/tests/dist/erl/grove_probe.erl", [binary]), code:load_binary(M, "grove_probe.erl", Bin).)") ==
          "{module,grove_probe}");
  REQUIRE(erl.eval("element(1, grove_probe:start()).") == "ok");
}

}  // namespace

TEST_CASE("Grove calls and casts to an Erlang gen_server by {Name, Node} and by pid", "[dist][erl][remote]") {
  grove::node n;
  const std::string cookie = unique("cookie_");
  d::distribution dist(n, {.name = unique("grove_r1_"), .cookie = cookie});
  erl_repl erl({"-sname", unique("erl_r1_"), "-setcookie", cookie});
  start_probe(erl);
  const std::string peer = unique("erl_r1_") + host_of(dist);
  n.run([&] {
    const grove::server_ref probe("probe", peer);
    const term big = tuple({atom("hello"), term::make_improper_list({1, 2}, 3),
                            map_of(tuple({atom("a"), atom("b")}), term::make_binary("x")), atom("ünï")});
    CHECK(grove::call<term>(probe, tuple({atom("echo"), big})) == big);
    // By pid: rex (every node's rpc server, a gen_server) tells where `probe` is.
    const term where = grove::call<term>(
        grove::server_ref("rex", peer),
        tuple({atom("call"), atom("erlang"), atom("whereis"), term::make_list({atom("probe")}), atom("user")}));
    REQUIRE(where.is<d::erl_pid>());
    const auto probe_pid = dist.from_erl(where.as<d::erl_pid>());
    REQUIRE(probe_pid);
    CHECK(probe_pid->node() != n.id());
    CHECK(dist.to_erl(*probe_pid) == where.as<d::erl_pid>());
    CHECK(grove::call<term>(*probe_pid, tuple({atom("echo"), 7})) == term(7));
    // A cast, then a call: in order.
    grove::cast(probe, tuple({atom("note"), 42}));
    CHECK(grove::call<term>(probe, atom("last_cast")) == tuple({atom("note"), 42}));
    // An unknown name: noproc.
    auto none = grove::try_call<term>(grove::server_ref("nobody", peer), atom("x"));
    CHECK(none.error == grove::exit_reason::noproc());
    // A timeout; the late reply never reaches the mailbox (the next reply comes after it).
    auto late = grove::try_call<term>(probe, tuple({atom("sleep"), 300, atom("late")}), 50ms);
    CHECK(late.error == grove::exit_reason::timeout());
    CHECK(grove::call<term>(probe, tuple({atom("echo"), atom("after")})) == atom("after"));
    CHECK_FALSE(grove::receive_for(0ms, [](const term& t) { return t; }));
    // The server's exit reason, as the term it was.
    auto stopped =
        grove::try_call<term>(probe, tuple({atom("stop"), tuple({atom("custom"), term::make_list({1, 2})})}));
    CHECK(d::reason_term(stopped.error) == tuple({atom("custom"), term::make_list({1, 2})}));
    CHECK(stopped.error.is_crash());
  });
}

TEST_CASE("monitors and links between Grove and Erlang processes carry exact reasons", "[dist][erl][remote]") {
  grove::node n;
  const std::string cookie = unique("cookie_");
  d::distribution dist(n, {.name = unique("grove_r2_"), .cookie = cookie, .tick_time = 1s});
  erl_repl erl({"-sname", unique("erl_r2_"), "-setcookie", cookie, "-kernel", "net_ticktime", "1"});
  const std::string g = "{gdriver, '" + dist.name() + "'}";
  driver drv(n, "gdriver");
  // An Erlang process that waits to be told how to end.
  const std::string doomed = "spawn(fun() -> receive {die, R} -> exit(R) end end)";
  auto remote_pid = [&] { return *dist.from_erl(drv.inbox.back().as<d::erl_pid>()); };
  // A call to the Erlang node's rex after a monitor or link: its reply comes once the node has
  // handled what went before it on the connection.
  const std::string erl_node = unique("erl_r2_") + host_of(dist);
  auto settled = [&] {
    grove::call<term>(grove::server_ref("rex", erl_node),
                      tuple({atom("call"), atom("erlang"), atom("node"), term::make_list({}), atom("user")}));
    return std::string();
  };

  // Grove monitors an Erlang process: DOWN with its exact reason.
  REQUIRE(erl.eval("E1 = " + doomed + ", " + g + " ! E1, ok.") == "ok");
  REQUIRE(drv.next_note().rfind("MSG ", 0) == 0);
  drv.run([&] {
    grove::monitor(remote_pid());
    return settled();
  });
  REQUIRE(erl.eval("E1 ! {die, {shutdown, [1, <<\"two\">>]}}, ok.") == "ok");
  CHECK(drv.next_note() == "DOWN {shutdown,[1,<<\"two\">>]}");

  // A monitor of an Erlang process that is gone already: noproc.
  drv.run([&] {
    grove::monitor(remote_pid());
    return settled();
  });
  CHECK(drv.next_note() == "DOWN noproc");

  // A monitor by name: ends when the name's holder does.
  start_probe(erl);
  drv.run([&] {
    grove::monitor(*dist.address("probe", erl_node));
    return settled();
  });
  REQUIRE(erl.eval("gen_server:stop(probe, {shutdown, bye}, 5000).") == "ok");
  CHECK(drv.next_note() == "DOWN {shutdown,bye}");

  // Grove links to an Erlang process and traps exits: its reason arrives as an exit signal.
  REQUIRE(erl.eval("E2 = " + doomed + ", " + g + " ! E2, ok.") == "ok");
  REQUIRE(drv.next_note().rfind("MSG ", 0) == 0);
  drv.run([&] {
    grove::link(remote_pid());
    return settled();
  });
  // The link is in place on the Erlang side once Erlang has it in its links.
  CHECK(erl.eval(linked("E2")) == "true");
  REQUIRE(erl.eval("E2 ! {die, oops}, ok.") == "ok");
  CHECK(drv.next_note() == "EXIT oops");

  // Unlinked again, its end is not signalled (the message sent after it arrives alone).
  REQUIRE(erl.eval("E3 = " + doomed + ", " + g + " ! E3, ok.") == "ok");
  REQUIRE(drv.next_note().rfind("MSG ", 0) == 0);
  drv.run([&] {
    grove::link(remote_pid());
    return settled();
  });
  CHECK(erl.eval(linked("E3")) == "true");
  drv.run([&] {
    grove::unlink(remote_pid());
    return settled();
  });
  CHECK(erl.eval(linked("E3", false)) == "true");
  REQUIRE(erl.eval("M3 = monitor(process, E3), E3 ! {die, quietly}, receive {'DOWN', M3, _, _, _} -> ok end, " + g +
                   " ! after_e3, ok.") == "ok");
  CHECK(drv.next_note() == "MSG after_e3");

  // Erlang links to a Grove process (trapping exits): the Grove process's end reaches it; and a
  // Grove process linked from Erlang gets Erlang's exit signal.
  const grove::pid victim = n.spawn([] { grove::receive([](const term&) {}); });
  const std::string victim_erl = "'" + dist.name() + "'";
  // The victim's pid goes to the Erlang shell (registered for the test as `shell`).
  REQUIRE(erl.eval("register(shell, self()).") == "true");
  drv.run([&] {
    grove::send(*dist.address("shell", unique("erl_r2_") + host_of(dist)), term(dist.to_erl(victim)));
    return "";
  });
  REQUIRE(erl.eval("V = receive Pv when is_pid(Pv) -> Pv after 5000 -> none end, node(V) =:= " + victim_erl + ".") ==
          "true");
  // A ping after the link: its answer comes once the node has handled the link (in order).
  REQUIRE(erl.eval("process_flag(trap_exit, true), link(V), net_adm:ping(" + victim_erl + ").") == "pong");
  drv.run([&] {
    grove::exit(victim, grove::exit_reason::shutdown("done"));
    return "";
  });
  CHECK(erl.eval("receive {'EXIT', V, Rv} -> Rv after 5000 -> none end.") == "{shutdown,<<\"done\">>}");
  CHECK(erl.eval("link(V), receive {'EXIT', V, Rv2} -> Rv2 after 5000 -> none end.") == "noproc");

  // With a sequential trace token set, an ending linked Erlang process sends its exit signal as
  // EXIT_TT: it arrives all the same (the token is not kept). (exit/2 with a token set went as a
  // plain EXIT2 from this erl; EXIT2_TT takes the same path as EXIT_TT.)
  drv.run([&] {
    grove::send(*dist.address("shell", erl_node), term(dist.to_erl(drv.pid())));
    return "";
  });
  REQUIRE(erl.eval("D = receive Pd when is_pid(Pd) -> Pd after 5000 -> none end, seq_trace:set_token(label, 7), "
                   "exit(D, traced), seq_trace:set_token([]), ok.") == "ok");
  CHECK(drv.next_note() == "EXIT traced");
  REQUIRE(erl.eval("T = spawn(fun() -> link(D), receive go -> seq_trace:set_token(label, 8), exit(traced_link) end "
                   "end), T ! go, ok.") == "ok");
  CHECK(drv.next_note() == "EXIT traced_link");

  // kill -9 of the Erlang node: noconnection to the Grove processes linked to or monitoring its
  // processes, and nodedown to its node monitors, within one tick time. The driver monitors the
  // node twice and takes one monitor back (one nodedown, as erl), and watches every node.
  REQUIRE(erl.eval("E4 = " + doomed + ", E5 = " + doomed + ", " + g + " ! E4, " + g + " ! E5, ok.") == "ok");
  REQUIRE(drv.next_note().rfind("MSG ", 0) == 0);
  REQUIRE(drv.next_note().rfind("MSG ", 0) == 0);
  drv.run([&] {
    grove::link(*dist.from_erl(drv.inbox[drv.inbox.size() - 2].as<d::erl_pid>()));
    grove::monitor(remote_pid());
    d::monitor_node(erl_node);
    d::monitor_node(erl_node);
    d::monitor_node(erl_node, false);
    d::monitor_nodes(true);
    return settled();
  });
  CHECK(erl.eval(linked("E4")) == "true");
  auto sub = grove::events(n).subscribe();
  const auto killed = std::chrono::steady_clock::now();
  erl.kill_now();
  // The nodedown event comes after every message the loss stands for; a command sent after it
  // is handled after them.
  bool down = false;
  while (!down && std::chrono::steady_clock::now() - killed < 5s) {
    for (auto& e : sub->take()) down = down || (e.kind == grove::event_kind::nodedown && e.label == erl_node);
    if (!down) sub->wait(100ms);
  }
  REQUIRE(down);
  CHECK(std::chrono::steady_clock::now() - killed < 2s);  // one tick time (1 s) and a margin
  drv.run([] { return std::string(); });
  std::vector<std::string> notes;
  for (std::string s = drv.next_note(0s); !s.empty(); s = drv.next_note(0s)) notes.push_back(s);
  std::sort(notes.begin(), notes.end());
  CHECK(notes == std::vector<std::string>{"DOWN noconnection", "EXIT noconnection", "NODEDOWN " + erl_node,
                                          "NODEDOWN " + erl_node});
}

TEST_CASE("100,000 messages from an Erlang process arrive in order", "[dist][erl][remote]") {
  grove::node n;
  const std::string cookie = unique("cookie_");
  d::distribution dist(n, {.name = unique("grove_r3_"), .cookie = cookie});
  erl_repl erl({"-sname", unique("erl_r3_"), "-setcookie", cookie});
  std::promise<std::string> verdict;
  std::promise<void> ready;
  n.spawn([&] {
    grove::register_name("gcount", grove::self());
    ready.set_value();
    for (std::int64_t i = 1; i <= 100000; ++i) {
      auto t = grove::receive_for(20s, [](const term& x) { return x; });
      if (!t || !(*t == term(i))) {
        verdict.set_value("message " + std::to_string(i) + " was " + (t ? t->str() : "missing"));
        return;
      }
    }
    verdict.set_value("in order");
  });
  ready.get_future().wait();
  REQUIRE(erl.eval("G = {gcount, '" + dist.name() + "'}, lists:foreach(fun(I) -> G ! I end, lists:seq(1, 100000)).") ==
          "ok");
  auto v = verdict.get_future();
  REQUIRE(v.wait_for(60s) == std::future_status::ready);
  CHECK(v.get() == "in order");
}

namespace {
// Answers a call of `pid` with its own pid as other nodes see it; anything else with itself.
class remote_echo : public grove::gen_server<remote_echo> {
 public:
  explicit remote_echo(d::distribution& dist) : dist_(dist) {}
  using handles = grove::types<term>;
  term handle_call(const term& t, const grove::from&) {
    if (t == atom("pid")) return term(dist_.to_erl(grove::self()));
    return t;
  }

 private:
  d::distribution& dist_;
};
}  // namespace

TEST_CASE("two Grove nodes call, monitor and link to each other; a remote exit restarts a child", "[dist][remote]") {
  grove::node a, b;
  const std::string cookie = unique("cookie_");
  d::distribution da(a, {.name = unique("grove_ta_"), .cookie = cookie, .tick_time = 1s});
  d::distribution db(b, {.name = unique("grove_tb_"), .cookie = cookie, .tick_time = 1s});
  auto sup = a.run([&] {
    grove::child_spec worker;
    worker.id = "worker";
    worker.start = [&] { return grove::start_link(std::make_unique<remote_echo>(da), {.name = "worker"}); };
    return grove::start_supervisor({.intensity = 5}, {worker}).value();
  });
  (void)sup;
  b.run([&] {
    const grove::server_ref worker("worker", da.name());
    // A call across, by name, then by pid.
    CHECK(grove::call<term>(worker, tuple({atom("hi"), 1})) == tuple({atom("hi"), 1}));
    const auto first = db.from_erl(grove::call<term>(worker, atom("pid")).as<d::erl_pid>());
    REQUIRE(first);
    CHECK(grove::call<term>(*first, atom("again")) == atom("again"));
    // Monitor and link across, then end it with a remote exit signal: the monitor and the
    // link report the exact reason, and A's supervisor restarts the worker.
    grove::trap_exit(true);
    const auto m = grove::monitor(*first);
    grove::link(*first);
    grove::exit(*first, grove::exit_reason::other("remote_kill"));
    auto dn = grove::receive_for(10s, [&](const grove::down& x) { return x; });
    REQUIRE(dn);
    CHECK(dn->ref == m);
    CHECK(dn->reason == grove::exit_reason::other("remote_kill"));
    auto ex = grove::receive_for(10s, [&](const grove::exit_signal& x) { return x; });
    REQUIRE(ex);
    CHECK(ex->from == *first);
    CHECK(ex->reason == grove::exit_reason::other("remote_kill"));
    // The restarted worker answers under its name, with a new pid (noproc until it is back).
    std::optional<grove::pid> second;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!second && std::chrono::steady_clock::now() < deadline) {
      auto r = grove::try_call<term>(worker, atom("pid"));
      if (r) second = db.from_erl(r.value->as<d::erl_pid>());
    }
    REQUIRE(second);
    CHECK(*second != *first);
    // A crash on A reaches a linked process on B as the crash's reason.
    grove::link(*second);
    grove::exit(*second, grove::exit_reason::error("std::runtime_error: far away"));
    auto ex2 = grove::receive_for(10s, [&](const grove::exit_signal& x) { return x; });
    REQUIRE(ex2);
    CHECK(ex2->reason == grove::exit_reason::error("std::runtime_error: far away"));
  });
  REQUIRE(db.peers().size() == 1);
  CHECK(db.peers()[0].name == da.name());
  // Connection loss: B's processes linked to A's get noconnection.
  b.run([&] {
    const auto w = db.from_erl(grove::call<term>(grove::server_ref("worker", da.name()), atom("pid")).as<d::erl_pid>());
    REQUIRE(w);
    grove::trap_exit(true);
    grove::link(*w);
    db.disconnect(da.name());
    auto ex = grove::receive_for(10s, [&](const grove::exit_signal& x) { return x; });
    REQUIRE(ex);
    CHECK(ex->reason == grove::exit_reason::noconnection());
  });
}

TEST_CASE("node monitors: monitor_node and monitor_nodes deliver nodeup and nodedown as Erlang's do",
          "[dist][remote]") {
  grove::node a, b, c;
  const std::string cookie = unique("cookie_");
  d::distribution da(a, {.name = unique("grove_na_"), .cookie = cookie});
  d::distribution db(b, {.name = unique("grove_nb_"), .cookie = cookie});
  d::distribution dc(c, {.name = unique("grove_nc_"), .cookie = cookie, .hidden = true});
  auto down_from = [](auto limit) {
    auto r = grove::receive_for(limit, [](const d::nodedown& x) { return x.node; });
    return r ? *r : std::string();
  };
  auto up_from = [](auto limit) {
    auto r = grove::receive_for(limit, [](const d::nodeup& x) { return x.node; });
    return r ? *r : std::string();
  };
  a.run([&] {
    // A node that cannot be reached: nodedown at once; this node itself: nothing.
    const std::string nobody = "nobody_" + std::to_string(::getpid()) + host_of(da);
    d::monitor_node(nobody);
    CHECK(down_from(10s) == nobody);
    d::monitor_node(da.name());
    // Watching every node: nodeup once a peer is connected (the message is sent before connect
    // returns), nodedown when it goes, for every monitor_node too (each is one message).
    d::monitor_nodes(true);
    REQUIRE(da.connect(db.name()));
    CHECK(up_from(0s) == db.name());
    d::monitor_node(db.name());
    d::monitor_node(db.name());
    db.disconnect(da.name());  // from the other side
    for (int i = 0; i < 3; ++i) CHECK(down_from(10s) == db.name());
    // A hidden peer is not reported unless asked for.
    REQUIRE(da.connect(dc.name()));
    CHECK(up_from(0s).empty());
    da.disconnect(dc.name());
    d::monitor_nodes(true, true);
    REQUIRE(da.connect(dc.name()));
    CHECK(up_from(0s) == dc.name());
    // Watching no more; a monitor ended with its nodedown, and monitor_node(false) takes one back.
    d::monitor_nodes(false);
    d::monitor_node(dc.name());
    d::monitor_node(dc.name());
    d::monitor_node(dc.name(), false);
    da.disconnect(dc.name());
    CHECK(down_from(10s) == dc.name());
    REQUIRE(da.connect(db.name()));
    CHECK(up_from(0s).empty());
    d::monitor_node(db.name());
    da.disconnect(db.name());
    CHECK(down_from(10s) == db.name());
    // The one left from dc is gone with its nodedown: monitoring dc again, a fresh one.
    REQUIRE(da.connect(dc.name()));
    d::monitor_node(dc.name());
    dc.disconnect(da.name());
    CHECK(down_from(10s) == dc.name());
    CHECK(down_from(0s).empty());
  });
  // Without a distribution, monitor_node is a nodedown at once.
  grove::node lone;
  lone.run([&] {
    d::monitor_node(db.name());
    CHECK(down_from(10s) == db.name());
  });
}

TEST_CASE("a pid of a node not connected: a call, a monitor, an exit and a link connect first, as Erlang's",
          "[dist][remote]") {
  grove::node a, b;
  const std::string cookie = unique("cookie_");
  d::distribution da(a, {.name = unique("grove_aa_"), .cookie = cookie});
  d::distribution db(b, {.name = unique("grove_ab_"), .cookie = cookie});
  b.run([&] { grove::start(std::make_unique<remote_echo>(db), {.name = "e"}).value(); });
  // On B, a process that reports how the server ends.
  std::promise<grove::exit_reason> ended;
  auto reason = ended.get_future();
  b.spawn([&ended] {
    grove::monitor(*grove::whereis("e"));
    grove::receive([&](const grove::down& x) { ended.set_value(x.reason); });
  });
  const auto e = a.run(
      [&] { return *da.from_erl(grove::call<term>(grove::server_ref("e", db.name()), atom("pid")).as<d::erl_pid>()); });
  // Each operation on the pid, with the connection closed first, connects again.
  a.run([&] {
    da.disconnect(db.name());
    REQUIRE(da.peers().empty());
    CHECK(grove::call<term>(e, atom("by_pid")) == atom("by_pid"));
    CHECK(da.peers().size() == 1);
    da.disconnect(db.name());
    const auto m = grove::monitor(e);
    CHECK(da.peers().size() == 1);
    da.disconnect(db.name());
    auto dn = grove::receive_for(10s, [](const grove::down& x) { return x; });
    REQUIRE(dn);
    CHECK(dn->ref == m);
    CHECK(dn->reason == grove::exit_reason::noconnection());
    grove::exit(e, grove::exit_reason::other("bye"));  // connects, and the server ends
    CHECK(da.peers().size() == 1);
  });
  REQUIRE(reason.wait_for(10s) == std::future_status::ready);
  CHECK(reason.get() == grove::exit_reason::other("bye"));
  a.run([&] {
    // A link to the dead server, after connecting again: B answers noproc (not connected, it
    // would be noconnection).
    da.disconnect(db.name());
    grove::trap_exit(true);
    grove::link(e);
    auto ex = grove::receive_for(10s, [](const grove::exit_signal& x) { return x.reason; });
    CHECK((ex && *ex == grove::exit_reason::noproc()));
    // A node that cannot be reached: the message is dropped, a monitor ends with noconnection.
    d::erl_pid far = da.to_erl(grove::self());
    far.node = "nobody_" + std::to_string(::getpid()) + host_of(da);
    far.creation = 1;
    const auto nowhere = da.from_erl(far);
    REQUIRE(nowhere);
    grove::send(*nowhere, atom("lost"));
    const auto m4 = grove::monitor(*nowhere);
    auto dn4 = grove::receive_for(10s, [](const grove::down& x) { return x; });
    REQUIRE(dn4);
    CHECK(dn4->ref == m4);
    CHECK(dn4->reason == grove::exit_reason::noconnection());
  });
}

TEST_CASE("two Grove nodes connecting to each other at once end with one connection", "[dist][remote]") {
  for (int round = 0; round < 5; ++round) {
    grove::node a, b;
    const std::string cookie = unique("cookie_");
    d::distribution da(a, {.name = unique("grove_sa_") + "_" + std::to_string(round), .cookie = cookie});
    d::distribution db(b, {.name = unique("grove_sb_") + "_" + std::to_string(round), .cookie = cookie});
    std::string why_a, why_b;
    auto ta = std::async(std::launch::async, [&] { return da.connect(db.name(), &why_a); });
    auto tb = std::async(std::launch::async, [&] { return db.connect(da.name(), &why_b); });
    CHECK(ta.get());
    CHECK(tb.get());
    INFO(why_a << " / " << why_b);
    CHECK(da.peers().size() == 1);
    CHECK(db.peers().size() == 1);
    // And it carries calls both ways.
    b.run([&] { grove::start(std::make_unique<remote_echo>(db), {.name = "e"}).value(); });
    a.run([&] { CHECK(grove::call<term>(grove::server_ref("e", db.name()), atom("x")) == atom("x")); });
  }
}

TEST_CASE("while the only scheduler thread is held by a long turn, what a peer sends is still read", "[dist][remote]") {
  // Scheduler threads read the sockets themselves; when none has looked for a while, the I/O
  // thread reads. Here A's one thread is held by a process that does not suspend until the
  // message for another of A's processes is in its mailbox: only the I/O thread can put it there.
  grove::node a({.schedulers = 1}), b;
  const std::string cookie = unique("cookie_");
  d::distribution da(a, {.name = unique("grove_ha_"), .cookie = cookie});
  d::distribution db(b, {.name = unique("grove_hb_"), .cookie = cookie});
  REQUIRE(db.connect(da.name()));
  const grove::pid sink = a.spawn([] { grove::receive([](const term&) {}); });
  const auto sink_there = db.from_erl(da.to_erl(sink));
  REQUIRE(sink_there);
  std::mutex mu;
  std::condition_variable cv;
  bool holding = false;
  std::atomic<bool> seen{false};
  const grove::pid hog = a.spawn([&] {
    {
      std::lock_guard lk(mu);
      holding = true;
    }
    cv.notify_all();
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < until) {
      auto i = grove::info(sink);
      if (i && i->mailbox_length > 0) {
        seen = true;
        return;
      }
    }
  });
  {
    std::unique_lock lk(mu);
    REQUIRE(cv.wait_for(lk, 10s, [&] { return holding; }));
  }
  b.run([&] { grove::send(*sink_there, atom("hello")); });
  a.run([&] {
    const auto m = grove::monitor(hog);
    auto dn = grove::receive_for(30s, [&](const grove::down& x) { return x.ref == m; });
    CHECK(dn);
  });
  CHECK(seen);
}

TEST_CASE("two connected nodes left idle take almost no CPU: their idle threads do not wake each other",
          "[dist][remote]") {
  // Each node's idle scheduler threads share the input (one spins on it, then waits on it, the
  // other parks). A hand-over rule that let them take the role from each other in turn kept an
  // idle 2-scheduler node at a quarter of a core; idle, these two nodes take ~1% of one.
  grove::node a, b;  // default options: 2 schedulers each
  const std::string cookie = unique("cookie_");
  d::distribution da(a, {.name = unique("grove_ia_"), .cookie = cookie});
  d::distribution db(b, {.name = unique("grove_ib_"), .cookie = cookie});
  REQUIRE(db.connect(da.name()));
  // A round trip first: both nodes have read from the connection and gone idle after work.
  const grove::pid sink = a.spawn([] { grove::receive([](const term&) {}); });
  const auto sink_there = db.from_erl(da.to_erl(sink));
  REQUIRE(sink_there);
  b.run([&] { grove::send(*sink_there, atom("hello")); });
  a.run([&] {  // the sink ends once the message came (noproc if already gone)
    const auto m = grove::monitor(sink);
    CHECK(grove::receive_for(10s, [&](const grove::down& x) { return x.ref == m; }));
  });
  auto cpu = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return std::chrono::seconds(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           std::chrono::microseconds(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  };
  const auto cpu0 = cpu();
  const auto wall0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(1s);  // the window measured (nothing waits on it)
  const auto used = cpu() - cpu0;
  const auto wall = std::chrono::steady_clock::now() - wall0;
  INFO("CPU " << std::chrono::duration_cast<std::chrono::microseconds>(used).count() << " us in "
              << std::chrono::duration_cast<std::chrono::microseconds>(wall).count() << " us of wall time");
  CHECK(used * 10 < wall);  // under 10% of one core for both nodes
}

namespace {
// A peer speaking the handshake by hand, to send what no real node would.
class raw_peer {
 public:
  raw_peer(int port, const std::string& name, const std::string& cookie) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    const std::uint64_t flags = 0x1 | 0x4 | 0x8 | 0x10 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x20000 |
                                0x40000 | 0x1000000 | (1ULL << 34);
    std::string p(1, 'N');
    put(p, flags, 8);
    put(p, 7, 4);  // creation
    put(p, name.size(), 2);
    send16(p + name);
    REQUIRE(read16() == "sok");
    const std::string ch = read16();
    REQUIRE(ch.size() > 19);
    std::uint32_t challenge = 0;
    for (int i = 9; i < 13; ++i)
      challenge = (challenge << 8) | static_cast<unsigned char>(ch[static_cast<std::size_t>(i)]);
    std::string r(1, 'r');
    put(r, 12345, 4);
    send16(r + d::handshake_digest(challenge, cookie));
    REQUIRE(read16().size() == 17);  // the ack
  }
  ~raw_peer() { close(fd_); }
  void send_raw(const std::string& bytes) { REQUIRE(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) > 0); }
  // True once the node closed the connection (reads to the end, ticks included).
  bool closed_by_node(std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    timeval tv{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char b[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      const ssize_t n = recv(fd_, b, sizeof b, 0);
      if (n == 0) return true;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return true;
    }
    return false;
  }
  static void put(std::string& s, std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  }

 private:
  void send16(const std::string& body) {
    std::string s;
    put(s, body.size(), 2);
    send_raw(s + body);
  }
  std::string read16() {
    unsigned char h[2];
    if (recv(fd_, h, 2, MSG_WAITALL) != 2) return "";
    std::string body((std::size_t{h[0]} << 8) | h[1], '\0');
    if (!body.empty() && recv(fd_, body.data(), body.size(), MSG_WAITALL) != static_cast<ssize_t>(body.size()))
      return "";
    return body;
  }
  int fd_ = -1;
};
}  // namespace

TEST_CASE("a malformed or oversized frame closes only its own connection, with the reason", "[dist][remote]") {
  grove::node n;
  auto sub = grove::events(n).subscribe();
  const std::string cookie = unique("cookie_");
  d::distribution dist(n, {.name = unique("grove_bad_"), .cookie = cookie, .max_frame = 1 << 20});
  n.run([&] { grove::start(std::make_unique<remote_echo>(dist), {.name = "e"}).value(); });
  // A Grove peer that stays connected throughout.
  grove::node other;
  d::distribution good(other, {.name = unique("grove_good_"), .cookie = cookie});
  REQUIRE(good.connect(dist.name()));
  auto nodedown_text = [&] { return next_event_text(*sub, grove::event_kind::nodedown); };
  const std::string host = host_of(dist);
  {
    raw_peer bad(dist.port(), "bad1" + host, cookie);
    std::string frame;
    raw_peer::put(frame, 5, 4);
    bad.send_raw(frame + "p\x83\x68\xff\x01");  // a tuple of 255 elements, with one byte
    CHECK(bad.closed_by_node(10s));
    CHECK_THAT(nodedown_text(), Catch::Contains("malformed"));
  }
  {
    raw_peer big(dist.port(), "bad2" + host, cookie);
    std::string frame;
    raw_peer::put(frame, 0xffffffff, 4);
    big.send_raw(frame);
    CHECK(big.closed_by_node(10s));
    CHECK_THAT(nodedown_text(), Catch::Contains("max_frame"));
  }
  // The node and its other connection carry on.
  other.run([&] { CHECK(grove::call<term>(grove::server_ref("e", dist.name()), atom("still")) == atom("still")); });
  REQUIRE(good.peers().size() == 1);
}

TEST_CASE("a peer that stops reading: past max_queue bytes its connection is given up, and the node carries on",
          "[dist][remote]") {
  grove::node n;
  auto sub = grove::events(n).subscribe();
  const std::string cookie = unique("cookie_");
  d::distribution dist(n, {.name = unique("grove_q_"), .cookie = cookie, .max_queue = 1 << 20});
  n.run([&] { grove::start(std::make_unique<remote_echo>(dist), {.name = "e"}).value(); });
  const std::string slow_name = "slow" + host_of(dist);
  raw_peer slow(dist.port(), slow_name, cookie);  // connected, and never reads
  REQUIRE_FALSE(next_event_text(*sub, grove::event_kind::nodeup).empty());
  // 64 KiB messages to a name on the peer, until the connection is gone (the socket buffers
  // take a few MiB, then 1 MiB more waits in the queue).
  const term chunk = term::make_binary(std::string(64 * 1024, 'x'));
  int sent = 0;
  n.run([&] {
    const auto sink = dist.address("sink", slow_name);
    REQUIRE(sink);
    for (; sent < 4000 && !dist.peers().empty(); ++sent) grove::send(*sink, chunk);
  });
  CHECK(sent < 4000);
  CHECK_THAT(next_event_text(*sub, grove::event_kind::nodedown), Catch::Contains("max_queue"));
  CHECK(slow.closed_by_node(10s));
  // The node carries on: another node connects and calls.
  grove::node other;
  d::distribution good(other, {.name = unique("grove_q_good_"), .cookie = cookie});
  other.run([&] { CHECK(grove::call<term>(grove::server_ref("e", dist.name()), atom("still")) == atom("still")); });
}

TEST_CASE("pids of an earlier instance of a node reach nothing of its new instance, as Erlang's", "[dist][remote]") {
  grove::node a, b;
  const std::string cookie = unique("cookie_");
  const std::string b_name = unique("grove_cb_");
  d::distribution da(a, {.name = unique("grove_ca_"), .cookie = cookie});
  auto db = std::make_unique<d::distribution>(b, d::dist_options{.name = b_name, .cookie = cookie});
  // On B, a process that hands the test the first term it receives.
  std::promise<term> first;
  auto got = first.get_future();
  const grove::pid holder = b.spawn([&first] {
    auto t = grove::receive_for(30s, [](const term& x) { return x; });
    first.set_value(t ? *t : atom("nothing"));
  });
  const d::erl_pid old_erl = db->to_erl(holder);
  const auto old_pid = da.from_erl(old_erl);  // A's pid for the holder of B's first instance
  REQUIRE(old_pid);
  REQUIRE(da.connect(db->name()));
  // B leaves the cluster and joins it again under the same name: epmd gives another creation.
  da.disconnect(db->name());
  const std::uint32_t old_creation = db->creation();
  const std::string full_name = db->name();
  db.reset();
  db = std::make_unique<d::distribution>(b, d::dist_options{.name = b_name, .cookie = cookie});
  REQUIRE(db->name() == full_name);
  CHECK(db->creation() != old_creation);
  // To B, a pid of its earlier instance is none of its own.
  CHECK_FALSE(db->from_erl(old_erl));
  a.run([&] {
    // What goes to the old pid connects to B again, and A drops it (B now has another
    // creation): the holder's first message is the one sent after it to its new pid.
    grove::send(*old_pid, atom("stale"));
    CHECK(da.peers().size() == 1);
    grove::send(*da.from_erl(db->to_erl(holder)), atom("fresh"));
    // A monitor and a link of the old pid: noconnection.
    const auto m = grove::monitor(*old_pid);
    auto dn = grove::receive_for(10s, [](const grove::down& x) { return x; });
    REQUIRE(dn);
    CHECK(dn->ref == m);
    CHECK(dn->reason == grove::exit_reason::noconnection());
    grove::trap_exit(true);
    grove::link(*old_pid);
    auto ex = grove::receive_for(10s, [](const grove::exit_signal& x) { return x.reason; });
    CHECK((ex && *ex == grove::exit_reason::noconnection()));
  });
  REQUIRE(got.wait_for(30s) == std::future_status::ready);
  CHECK(got.get() == atom("fresh"));
}
