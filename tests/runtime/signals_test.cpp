// Links, monitors and exit signals: OTP's rules (../shared/reference/otp-semantics.md §1).
#include <atomic>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>

#include "support.hpp"

using namespace grove_test;
using grove::exit_reason;

namespace {
struct outcome {
  bool survived;
  std::vector<std::string> messages;  // what a trapping neighbour received, as text
};

// A neighbour linked to a process that dies with `reason`. The neighbour also monitors the
// dying process: the link's exit signal is sent before the down, so when the down arrives the
// exit signal has been acted on. Returns whether the neighbour survived, what it received, and
// (through `neighbour_reason`) why it ended if it did not.
outcome linked_neighbour(bool trapping, std::function<void(grove::pid dying)> kill_it, exit_reason* neighbour_reason) {
  grove::testing::deterministic_node n;
  return n.run([&] {
    const grove::pid me = grove::self();
    auto dying = grove::spawn([] { grove::receive([](go) {}); });
    auto [neighbour, nref] = grove::spawn_monitor([me, dying, trapping] {
      grove::trap_exit(trapping);
      grove::link(dying);
      auto m = grove::monitor(dying);
      grove::send(me, ready{grove::self()});
      outcome o{true, {}};
      grove::receive(grove::when<grove::down>([m](const grove::down& d) { return d.ref == m; }, [](grove::down) {}));
      while (grove::receive_for(0s, [&](const grove::exit_signal& e) {
        o.messages.push_back("EXIT " + e.reason.str() + (e.from == dying ? " from dying" : ""));
      })) {
      }
      grove::send(me, o);
      grove::receive([](go) {});
    });
    grove::receive([](ready) {});
    kill_it(dying);
    auto got = grove::receive_for(
        10s, [](outcome o) { return o; },
        [&](grove::down d) {
          *neighbour_reason = d.reason;
          return outcome{false, {}};
        });
    REQUIRE(got);
    if (got->survived) grove::exit(neighbour, exit_reason::kill());
    return *got;
  });
}

// Kills `dying` by sending it a `go` after which its body ends with `how`.
void end_with(grove::pid dying, exit_reason how) {
  grove::exit(dying, how);  // dying does not trap: it ends with this reason (kill becomes killed)
}
}  // namespace

TEST_CASE("signal table: a linked process's reaction to each exit reason", "[runtime][signals]") {
  struct row {
    const char* name;
    exit_reason sent;       // what the dying process is sent
    exit_reason dies_with;  // the reason it then dies with, and its non-trapping neighbour too
    bool neighbour_dies;
  };
  std::vector<row> rows = {
      {"shutdown", exit_reason::shutdown(), exit_reason::shutdown(), true},
      {"{shutdown,detail}", exit_reason::shutdown("detail"), exit_reason::shutdown("detail"), true},
      {"killed", exit_reason::kill(), exit_reason::killed(), true},
      {"a crash", exit_reason::error("std::runtime_error: boom"), exit_reason::error("std::runtime_error: boom"), true},
      {"a named reason", exit_reason::other("bad_state"), exit_reason::other("bad_state"), true},
  };
  for (auto& r : rows) {
    SECTION(std::string("non-trapping neighbour, ") + r.name) {
      exit_reason why;
      auto o = linked_neighbour(
          false, [&](grove::pid d) { end_with(d, r.sent); }, &why);
      CHECK_FALSE(o.survived);
      CHECK(why == r.dies_with);
    }
    SECTION(std::string("trapping neighbour, ") + r.name) {
      exit_reason why;
      auto o = linked_neighbour(
          true, [&](grove::pid d) { end_with(d, r.sent); }, &why);
      REQUIRE(o.survived);
      CHECK(o.messages == std::vector<std::string>{"EXIT " + r.dies_with.str() + " from dying"});
    }
  }
}

TEST_CASE("signal table: a normal exit leaves a non-trapping neighbour alone and reaches a trapping one as a message",
          "[runtime][signals]") {
  auto normal_end = [](grove::pid d) {
    grove::send(d, go{});  // its body returns: reason normal
  };
  exit_reason why;
  auto quiet = linked_neighbour(false, normal_end, &why);
  CHECK(quiet.survived);
  CHECK(quiet.messages.empty());
  auto trapped = linked_neighbour(true, normal_end, &why);
  CHECK(trapped.survived);
  CHECK(trapped.messages == std::vector<std::string>{"EXIT normal from dying"});
}

TEST_CASE("a process that exits with reason kill propagates kill (not killed) through its links, and it is trappable",
          "[runtime][signals]") {
  auto self_kill = [](grove::pid d) {
    // A direct kill would be untrappable; a process *exiting* with reason kill is not.
    grove::send(d, go{});
    (void)d;
  };
  grove::testing::deterministic_node n;
  n.run([&] {
    const grove::pid me = grove::self();
    auto dying = grove::spawn([] {
      grove::receive([](go) {});
      grove::exit(exit_reason::kill());
    });
    auto [plain, pref] = grove::spawn_monitor([me, dying] {
      grove::link(dying);
      grove::send(me, ready{});
      grove::receive([](go) {});
    });
    grove::receive([](ready) {});
    auto trapper = grove::spawn([me, dying] {
      grove::trap_exit(true);
      grove::link(dying);
      grove::send(me, ready{});
      grove::receive([&](const grove::exit_signal& e) { grove::send(me, e.reason); });
    });
    grove::receive([](ready) {});
    self_kill(dying);
    CHECK(await_down(pref).reason == exit_reason::kill());
    CHECK(grove::receive([](exit_reason r) { return r; }) == exit_reason::kill());
    (void)trapper;
  });
}

TEST_CASE("exit(pid, kill) cannot be trapped and ends the target with killed", "[runtime][signals]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto [p, r] = grove::spawn_monitor([] {
      grove::trap_exit(true);
      for (;;) grove::receive([](grove::message&) {});
    });
    grove::exit(p, exit_reason::kill());
    CHECK(await_down(r).reason == exit_reason::killed());
  });
}

TEST_CASE("exit(pid, reason) kills a non-trapping target and is a message to a trapping one", "[runtime][signals]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    auto [plain, r1] = grove::spawn_monitor([] { grove::receive([](go) {}); });
    grove::exit(plain, exit_reason::other("stop_now"));
    CHECK(await_down(r1).reason == exit_reason::other("stop_now"));

    auto trapper = grove::spawn([me] {
      grove::trap_exit(true);
      grove::send(me, ready{});
      grove::receive([&](const grove::exit_signal& e) { grove::send(me, std::make_pair(e.from, e.reason)); });
    });
    grove::receive([](ready) {});
    grove::exit(trapper, exit_reason::shutdown());
    auto [from, reason] = grove::receive([](std::pair<grove::pid, exit_reason> p) { return p; });
    CHECK(from == me);
    CHECK(reason == exit_reason::shutdown());
  });
}

TEST_CASE("exit(pid, normal) is ignored by a non-trapping process but ends the caller when sent to itself",
          "[runtime][signals]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    auto [other, r] = grove::spawn_monitor([me] {
      grove::receive([](go) {});
      grove::send(me, std::string("still alive"));
      grove::exit(grove::self(), exit_reason::normal());
      grove::receive([](go) {});  // the signal takes effect here
      grove::send(me, std::string("not reached"));
    });
    grove::exit(other, exit_reason::normal());
    grove::send(other, go{});
    CHECK(grove::receive([](const std::string& s) { return s; }) == "still alive");
    CHECK(await_down(r).reason == exit_reason::normal());
    CHECK_FALSE(grove::receive_for(0s, [](const std::string&) {}));
  });
}

TEST_CASE("exit(self(), reason) takes effect inside the call, as erlang:exit/2 on self", "[runtime][signals]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    struct after {
      bool trapping;
      std::string reason;
    };
    auto run = [me](bool trapping, exit_reason reason) {
      return grove::spawn_monitor([me, trapping, reason] {
        grove::trap_exit(trapping);
        grove::exit(grove::self(), reason);
        grove::send(me, after{trapping, reason.str()});  // returned from exit
        auto e = grove::receive_for(0s, [](grove::exit_signal e) { return e; });
        grove::send(me, e.has_value() && e->from == grove::self() && e->reason == reason);
      });
    };
    // Not trapping: never returns, for any reason, normal included.
    for (auto reason : {exit_reason::normal(), exit_reason::error("boom"), exit_reason::shutdown()}) {
      auto [p, r] = run(false, reason);
      CHECK(await_down(r).reason == reason);
    }
    // kill: never returns, even when trapping; the reason is killed.
    auto [pk, rk] = run(true, exit_reason::kill());
    CHECK(await_down(rk).reason == exit_reason::killed());
    CHECK_FALSE(grove::receive_for(0s, [](const after&) {}));
    // Trapping: returns, and the signal is already a message in its own mailbox.
    auto [pt, rt] = run(true, exit_reason::error("boom"));
    CHECK(grove::receive([](const after& a) { return a.trapping; }));
    CHECK(grove::receive([](bool got_it) { return got_it; }));
    CHECK(await_down(rt).reason == exit_reason::normal());
  });
}

TEST_CASE("spawn_link links atomically: a crashing child takes a non-trapping parent with it", "[runtime][signals]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto [parent, r] = grove::spawn_monitor([] {
      grove::spawn_link([] { throw std::logic_error("child failed"); });
      grove::receive([](go) {});
    });
    CHECK(await_down(r).reason == exit_reason::error("std::logic_error: child failed"));
  });
}

TEST_CASE("link to a dead pid raises noproc, or delivers an exit message when trapping", "[runtime][signals]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto [dead, r] = grove::spawn_monitor([] {});
    await_down(r);
    try {
      grove::link(dead);
      FAIL("link to a dead pid must throw");
    } catch (const grove::process_error& e) {
      CHECK(e.reason() == exit_reason::noproc());
    }
    grove::trap_exit(true);
    grove::link(dead);
    auto e = grove::receive([](grove::exit_signal e) { return e; });
    CHECK(e.from == dead);
    CHECK(e.reason == exit_reason::noproc());
    grove::trap_exit(false);
  });
}

TEST_CASE("an uncaught noproc from link ends the process with reason noproc", "[runtime][signals]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto [dead, r] = grove::spawn_monitor([] {});
    await_down(r);
    auto [p, pr] = grove::spawn_monitor([dead] { grove::link(dead); });
    CHECK(await_down(pr).reason == exit_reason::noproc());
  });
}

TEST_CASE("a monitor of a dead pid fires at once with noproc", "[runtime][monitor]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto [dead, r] = grove::spawn_monitor([] {});
    await_down(r);
    auto m = grove::monitor(dead);
    auto d = await_down(m);
    CHECK(d.who == dead);
    CHECK(d.reason == exit_reason::noproc());
  });
}

TEST_CASE("each monitor fires once, independently, and monitors never kill anyone", "[runtime][monitor]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto p = grove::spawn([] {
      grove::receive([](go) {});
      throw std::runtime_error("bye");
    });
    auto m1 = grove::monitor(p);
    auto m2 = grove::monitor(p);
    CHECK(m1 != m2);
    grove::send(p, go{});
    CHECK(await_down(m2).reason == exit_reason::error("std::runtime_error: bye"));
    CHECK(await_down(m1).who == p);
    CHECK_FALSE(grove::receive_for(0s, [](grove::down) {}));
  });
}

TEST_CASE("demonitor stops a down in flight; with flush it also removes one already queued", "[runtime][monitor]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    // In flight: the target dies while we do not look at our mailbox.
    auto p = grove::spawn([] { grove::receive([](go) {}); });
    auto m = grove::monitor(p);
    grove::send(p, go{});
    REQUIRE(spin_until([&] { return !grove::alive(p); }));
    CHECK(grove::demonitor(m));
    CHECK_FALSE(grove::receive_for(0s, [](grove::down) {}));

    // Already queued: the second monitor's down is received, so the first one's is queued.
    auto q = grove::spawn([] { grove::receive([](go) {}); });
    auto m1 = grove::monitor(q);
    auto m2 = grove::monitor(q);
    grove::send(q, go{});
    await_down(m2);
    CHECK_FALSE(grove::demonitor(m1, true));  // no longer active: its down is already here
    CHECK_FALSE(grove::receive_for(0s, [](grove::down) {}));

    // Without flush a queued down stays.
    auto s = grove::spawn([] { grove::receive([](go) {}); });
    auto s1 = grove::monitor(s);
    auto s2 = grove::monitor(s);
    grove::send(s, go{});
    await_down(s2);
    grove::demonitor(s1);
    CHECK(await_down(s1, 0s).who == s);
  });
}

TEST_CASE("unlink drops an exit signal already under way", "[runtime][signals]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    const grove::pid me = grove::self();
    for (bool trapping : {false, true}) {
      auto victim = grove::spawn([] {
        grove::receive([](go) {});
        throw std::runtime_error("crash");
      });
      auto [p, r] = grove::spawn_monitor([me, victim, trapping] {
        grove::trap_exit(trapping);
        grove::link(victim);
        grove::send(victim, go{});
        // Do not suspend until the victim is gone: its exit signal is now in our mailbox.
        bool gone = spin_until([&] { return !grove::alive(victim); });
        grove::unlink(victim);
        bool got_exit = grove::receive_for(0s, [](grove::exit_signal) {});
        grove::send(me, std::make_pair(gone, got_exit));
      });
      auto [gone, got_exit] = grove::receive([](std::pair<bool, bool> v) { return v; });
      CHECK(gone);
      CHECK_FALSE(got_exit);
      CHECK(await_down(r).reason == exit_reason::normal());  // it survived to return normally
    }
  });
}

TEST_CASE("a message sent before a death arrives before the exit signal and the down it causes", "[runtime][signals]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    grove::trap_exit(true);
    const grove::pid me = grove::self();
    constexpr int count = 5000;
    auto p = grove::spawn_link([me] {
      for (int i = 0; i < count; ++i) grove::send(me, i);
      throw std::runtime_error("done sending");
    });
    auto m = grove::monitor(p);
    int ints = 0;
    bool exit_seen = false, down_seen = false, in_order = true;
    while (!(exit_seen && down_seen)) {
      grove::receive([&](int v) { in_order = in_order && v == ints && !exit_seen && !down_seen, ++ints; },
                     [&](const grove::exit_signal& e) { exit_seen = e.from == p; },
                     [&](const grove::down& d) { down_seen = d.ref == m; });
    }
    CHECK(in_order);
    CHECK(ints == count);
    grove::trap_exit(false);
  });
}

TEST_CASE("a killed process unwinds its stack: destructors run before the down goes out", "[runtime][termination]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    struct guard {
      grove::pid to;
      ~guard() { grove::send(to, std::string("destructor ran")); }
    };
    auto [p, r] = grove::spawn_monitor([me] {
      guard g{me};
      grove::send(me, ready{});
      try {
        grove::receive([](go) {});
      } catch (const std::exception&) {
        grove::send(me, std::string("std::exception handler caught the exit"));
      }
    });
    grove::receive([](ready) {});
    grove::exit(p, exit_reason::kill());
    CHECK(grove::receive([](const std::string& s) { return s; }) == "destructor ran");
    CHECK(await_down(r).reason == exit_reason::killed());
  });
}

TEST_CASE("an exit signal takes effect only at the next suspension point", "[runtime][termination]") {
  grove::node n({.schedulers = 2});
  std::atomic<bool> signalled{false};
  n.run([&] {
    const grove::pid me = grove::self();
    auto [p, r] = grove::spawn_monitor([me, &signalled] {
      grove::send(me, ready{});
      while (!signalled.load()) {
      }  // computing, never suspending
      grove::send(me, std::string("kept running until it suspended"));
      grove::yield();  // a suspension point: the kill takes effect here
      grove::send(me, std::string("not reached"));
    });
    grove::receive([](ready) {});
    grove::exit(p, exit_reason::kill());
    signalled = true;
    CHECK(grove::receive([](const std::string& s) { return s; }) == "kept running until it suspended");
    CHECK(await_down(r).reason == exit_reason::killed());
    CHECK_FALSE(grove::receive_for(0s, [](const std::string&) {}));
  });
}

TEST_CASE("no exception from a process takes the node down", "[runtime][termination]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto [a, ra] = grove::spawn_monitor([] { throw 42; });
    CHECK(await_down(ra).reason == exit_reason::error("unknown exception"));
    auto [b, rb] = grove::spawn_monitor([] { throw std::out_of_range("index 9"); });
    CHECK(await_down(rb).reason == exit_reason::error("std::out_of_range: index 9"));
    struct bad_start final : grove::process_handler {
      void on_start() override { throw std::runtime_error("cannot start"); }
      void on_message(grove::message&) override {}
    };
    auto [c, rc] = grove::spawn_handler_monitor(std::make_unique<bad_start>());
    CHECK(await_down(rc).reason == exit_reason::error("std::runtime_error: cannot start"));
    (void)a, (void)b, (void)c;
  });
  CHECK(n.process_count() == 0);
}

TEST_CASE("killing an idle handler process ends it without running any handler", "[runtime][handler][termination]") {
  grove::testing::deterministic_node n;
  std::atomic<int> handled{0}, destroyed{0};
  struct idle final : grove::process_handler {
    std::atomic<int>& h;
    std::atomic<int>& d;
    idle(std::atomic<int>& h_, std::atomic<int>& d_) : h(h_), d(d_) {}
    ~idle() override { ++d; }
    void on_message(grove::message&) override { ++h; }
  };
  n.run([&] {
    auto [p, r] = grove::spawn_handler_monitor(std::make_unique<idle>(handled, destroyed));
    grove::exit(p, exit_reason::kill());
    CHECK(await_down(r).reason == exit_reason::killed());
  });
  CHECK(handled == 0);
  CHECK(destroyed == 1);
}

TEST_CASE("exit_after_handler ends a handler process when its callback returns, with no unwinding",
          "[runtime][handler][termination]") {
  grove::testing::deterministic_node n;
  std::atomic<int> handled{0}, destroyed{0};
  struct ender final : grove::process_handler {
    std::atomic<int>& h;
    std::atomic<int>& d;
    grove::pid observer;
    ender(std::atomic<int>& h_, std::atomic<int>& d_, grove::pid o) : h(h_), d(d_), observer(o) {}
    ~ender() override { ++d; }
    void on_message(grove::message&) override {
      ++h;
      grove::exit_after_handler(exit_reason::error("done"));
      grove::send(observer, std::string("the callback went on"));  // it returns normally
    }
  };
  n.run([&] {
    auto [p, r] = grove::spawn_handler_monitor(std::make_unique<ender>(handled, destroyed, grove::self()));
    grove::send(p, 1);
    grove::send(p, 2);  // already queued: never handled, the process ends after the first
    CHECK(grove::receive([](const std::string& s) { return s; }) == "the callback went on");
    CHECK(await_down(r).reason == exit_reason::error("done"));
    auto body = grove::spawn_monitor([] { grove::exit_after_handler(exit_reason::normal()); });
    CHECK(await_down(body.second).reason.str().find("exit_after_handler") != std::string::npos);
  });
  CHECK(handled == 1);
  CHECK(destroyed == 1);
}

TEST_CASE("a trapping handler process gets exit signals as messages", "[runtime][handler][signals]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    struct trapper final : grove::process_handler {
      grove::pid owner;
      explicit trapper(grove::pid o) : owner(o) {}
      void on_start() override {
        grove::trap_exit(true);
        grove::send(owner, ready{});
      }
      void on_message(grove::message& m) override {
        if (auto* e = m.get<grove::exit_signal>()) grove::send(owner, e->reason);
      }
    };
    auto t = grove::spawn_handler(std::make_unique<trapper>(me));
    grove::receive([](ready) {});
    grove::exit(t, exit_reason::shutdown("x"));
    CHECK(grove::receive([](exit_reason r) { return r; }) == exit_reason::shutdown("x"));
  });
}
