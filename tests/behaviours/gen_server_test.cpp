#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <grove/behaviours/gen_server.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>

#include "../runtime/support.hpp"

using namespace grove_test;
using grove::exit_reason;

namespace {
struct put {
  std::string key;
  int value;
};
struct get {
  std::string key;
};
// A trace shows a request it can print (issue 12 item 5); get has no operator<<.
std::ostream& operator<<(std::ostream& os, const put& p) { return os << p.key << '=' << p.value; }
struct size_q {};
struct crash {};
struct slow {
  grove::duration d;
};
struct later {};  // answered later by another process
struct release {
  int value;
};
struct quit {
  exit_reason reason;
};
struct noted {
  std::string what;
};

// A key-value server reporting its lifecycle to an observer.
class kv final : public grove::gen_server<kv> {
 public:
  using handles = grove::types<put, get, size_q, crash, slow, later, release, quit, std::string, grove::idle_timeout>;

  explicit kv(grove::pid observer, bool trap = false) : observer_(observer), trap_(trap) {}

  grove::init_result init() {
    if (trap_) grove::trap_exit(true);
    grove::send(observer_, noted{"init"});
    return grove::init_result::ok();
  }
  void handle_cast(const put& p) { data_[p.key] = p.value; }
  int handle_call(const get& g, const grove::from&) {
    auto it = data_.find(g.key);
    return it == data_.end() ? -1 : it->second;
  }
  std::size_t handle_call(const size_q&, const grove::from&) { return data_.size(); }
  void handle_call(const crash&, const grove::from&) { throw std::runtime_error("kv crashed"); }
  void handle_call(const slow& s, const grove::from&) { grove::sleep(s.d); }
  grove::deferred_t handle_call(const later&, const grove::from& f) {
    waiting_ = f;
    grove::send(observer_, noted{"deferred"});
    return grove::deferred;
  }
  void handle_cast(const release& r) { grove::reply(waiting_, r.value); }
  std::string handle_call(const quit& q, const grove::from&) {
    stop_after(q.reason);
    return "bye";
  }
  void handle_info(const std::string& s) { grove::send(observer_, noted{"info " + s}); }
  void handle_info(const grove::idle_timeout&) { grove::send(observer_, noted{"idle"}); }
  void terminate(const exit_reason& r) { grove::send(observer_, noted{"terminate " + r.str()}); }
  std::string format_status() const { return "kv with " + std::to_string(data_.size()) + " keys"; }

  void idle_after(grove::duration d) { set_idle_timeout(d); }

 private:
  grove::pid observer_;
  bool trap_;
  std::map<std::string, int> data_;
  grove::from waiting_;
};

std::string next_note() {
  auto n = grove::receive_for(10s, [](noted n) { return n.what; });
  return n.value_or("<no note>");
}
}  // namespace

TEST_CASE("start is synchronous: it returns after init, and the server answers calls and casts", "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto r = grove::start(std::make_unique<kv>(grove::self()));
    REQUIRE(r);
    CHECK(grove::receive_for(0s, [](noted n) { return n.what; }) == "init");  // already there
    grove::cast(r.pid(), put{"a", 1});
    grove::cast(r.pid(), put{"b", 2});
    CHECK(grove::call<int>(r.pid(), get{"b"}) == 2);
    CHECK(grove::call<std::size_t>(r.pid(), size_q{}) == 2);
    CHECK(grove::call<int>(r.pid(), get{"zzz"}) == -1);
    auto i = grove::info(r.pid());
    CHECK(i->handler_form);
    CHECK(i->stack_size == 0);  // an idle server holds no stack
    grove::stop(r.pid());
  });
}

TEST_CASE("a server started with a name is called by name; a taken name gives already_started with the holder",
          "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto first = grove::start(std::make_unique<kv>(grove::self()), {.name = "store"});
    REQUIRE(first);
    CHECK(grove::whereis("store") == first.pid());
    grove::cast("store", put{"x", 7});
    CHECK(grove::call<int>("store", get{"x"}) == 7);
    auto second = grove::start(std::make_unique<kv>(grove::self()), {.name = "store"});
    CHECK(second.what() == grove::start_result::kind::already_started);
    CHECK(second.pid() == first.pid());
    grove::stop("store");
  });
}

namespace {
class refuser final : public grove::gen_server<refuser> {
 public:
  explicit refuser(grove::init_result r) : r_(std::move(r)) {}
  grove::init_result init() {
    CHECK(grove::whereis("refuser") == grove::self());  // the name is registered before init
    return r_;
  }

 private:
  grove::init_result r_;
};
class thrower final : public grove::gen_server<thrower> {
 public:
  grove::init_result init() { throw std::runtime_error("no config"); }
};
}  // namespace

TEST_CASE("init can ignore, fail or stop; a failed start leaves no name and no stray exit signal", "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    grove::trap_exit(true);
    auto ignored = grove::start_link(std::make_unique<refuser>(grove::init_result::ignore()), {.name = "refuser"});
    CHECK(ignored.what() == grove::start_result::kind::ignored);
    auto failed = grove::start_link(
        std::make_unique<refuser>(grove::init_result::error(exit_reason::other("bad_config"))), {.name = "refuser"});
    CHECK(failed.what() == grove::start_result::kind::error);
    CHECK(failed.reason() == exit_reason::other("bad_config"));
    auto stopped = grove::start_link(std::make_unique<refuser>(grove::init_result::stop(exit_reason::other("halt"))),
                                     {.name = "refuser"});
    CHECK(stopped.reason() == exit_reason::other("halt"));
    auto threw = grove::start_link(std::make_unique<thrower>());
    CHECK(threw.reason() == exit_reason::error("std::runtime_error: no config"));
    CHECK_THROWS_AS(threw.value(), grove::process_error);
    CHECK_FALSE(grove::whereis("refuser"));
    CHECK_FALSE(grove::receive_for(0s, [](grove::message&) {}));  // no EXIT, no DOWN, no ack left over
    grove::trap_exit(false);
  });
}

TEST_CASE("call failures carry OTP's reasons: noproc, timeout, calling_self, and the server's exit reason",
          "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([&] {
    auto reason_of = [](auto fn) {
      try {
        fn();
      } catch (const grove::call_error& e) {
        return e.reason();
      }
      return exit_reason::normal();
    };
    CHECK(reason_of([] { grove::call<int>("no_such_server", get{"a"}); }) == exit_reason::noproc());
    auto [dead, r] = grove::spawn_monitor([] {});
    await_down(r);
    CHECK(reason_of([&] { grove::call<int>(dead, get{"a"}); }) == exit_reason::noproc());

    auto s = grove::start(std::make_unique<kv>(grove::self())).value();
    grove::receive([](noted) {});
    CHECK(reason_of([&] { grove::call<void>(s, crash{}); }) == exit_reason::error("std::runtime_error: kv crashed"));
    CHECK(next_note() == "terminate {error,std::runtime_error: kv crashed}");

    auto me_as_server = grove::self();
    CHECK(reason_of([&] { grove::call<int>(me_as_server, get{"a"}); }) == exit_reason::other("calling_self"));
  });
}

TEST_CASE("a call that gets no reply in time fails with timeout", "[gen_server]") {
  // On the manual clock: no real time passes, the test moves the clock.
  grove::testing::deterministic_node n;
  n.run([&] {
    auto t = grove::start(std::make_unique<kv>(grove::self())).value();
    grove::receive([](noted) {});
    grove::spawn([&n] { n.advance(20ms); });  // runs while the call waits: its timeout is due
    auto res = grove::try_call<void>(t, slow{300ms}, 20ms);
    CHECK_FALSE(res);
    CHECK(res.error == exit_reason::timeout());
    n.advance(300ms);  // the server's sleep ends
    grove::stop(t);
  });
}

TEST_CASE("a reply that comes after the caller's timeout never reaches its mailbox", "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([&] {
    auto s = grove::start(std::make_unique<kv>(grove::self())).value();
    grove::receive([](noted) {});
    const grove::pid me = grove::self();
    // The caller times out at 1 s; the server answers at 5 s (it sleeps on the manual clock).
    auto caller = grove::spawn([s, me] {
      grove::send(me, noted{"calling"});
      auto r = grove::try_call<void>(s, slow{5s}, 1s);
      grove::send(me, r.error);
      grove::receive([](go) {});
      std::size_t left = grove::info(grove::self())->mailbox_length;
      grove::send(me, left);
    });
    CHECK(next_note() == "calling");  // the caller now waits, with its 1 s timeout set
    n.advance(1s);
    CHECK(grove::receive([](exit_reason r) { return r; }) == exit_reason::timeout());
    n.advance(10s);                                     // the server wakes and replies now, to a caller that gave up
    CHECK(grove::call<std::size_t>(s, size_q{}) == 0);  // the server is past its reply
    grove::send(caller, go{});
    CHECK(grove::receive([](std::size_t v) { return v; }) == 0);
    grove::stop(s);
  });
}

TEST_CASE("a deferred reply is sent later, from another process", "[gen_server]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    auto s = grove::start(std::make_unique<kv>(grove::self())).value();
    grove::receive([](noted) {});
    const grove::pid me = grove::self();
    grove::spawn([s, me] { grove::send(me, grove::call<int>(s, later{})); });
    CHECK(next_note() == "deferred");
    grove::cast(s, release{99});
    CHECK(grove::receive([](int v) { return v; }) == 99);
    grove::stop(s);
  });
}

namespace {
// maybe_reply: an even number is answered at once, an odd one when the next `flush` cast comes;
// held_q: how many wait.
struct flush {};
struct held_q {};
class evens : public grove::gen_server<evens> {
 public:
  using handles = grove::types<int, flush, held_q>;
  std::size_t handle_call(held_q, const grove::from&) { return held_.size(); }
  grove::maybe_reply<int> handle_call(int n, const grove::from& f) {
    if (n % 2 == 0) return n;
    held_.push_back(f);
    return grove::deferred;
  }
  void handle_cast(flush) {
    for (auto& f : held_) grove::reply(f, -1);
    held_.clear();
  }

 private:
  std::vector<grove::from> held_;
};
}  // namespace

TEST_CASE("maybe_reply: a reply now or later, decided when the call is handled", "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    grove::typed_ref<evens> s{grove::start(std::make_unique<evens>()).value()};
    CHECK(s.call(4) == 4);  // typed_ref takes maybe_reply<int> as a reply of int
    const grove::pid me = grove::self();
    grove::spawn([s, me] { grove::send(me, s.call(7)); });
    CHECK(s.call(6) == 6);
    while (s.call(held_q{}) == 0) {  // until the server holds 7's call
    }
    CHECK(s.call(8) == 8);  // the server goes on while 7 waits
    CHECK(grove::receive_for(std::chrono::milliseconds(0), [](int v) { return v; }) == std::nullopt);
    s.cast(flush{});
    CHECK(grove::receive([](int v) { return v; }) == -1);
  });
}

TEST_CASE("stop runs terminate and returns once the server has ended with that reason", "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto s = grove::start(std::make_unique<kv>(grove::self())).value();
    grove::receive([](noted) {});
    grove::stop(s, exit_reason::shutdown("maintenance"));
    CHECK(next_note() == "terminate {shutdown,maintenance}");
    CHECK_FALSE(grove::alive(s));
    try {
      grove::stop(s);
      FAIL("stopping a dead server must fail");
    } catch (const grove::call_error& e) {
      CHECK(e.reason() == exit_reason::noproc());
    }
  });
}

TEST_CASE("stop_after in a call: terminate runs first, then the reply is sent, then the server ends", "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto s = grove::start(std::make_unique<kv>(grove::self())).value();
    grove::receive([](noted) {});
    auto m = grove::monitor(s);
    CHECK(grove::call<std::string>(s, quit{exit_reason::normal()}) == "bye");
    // terminate's note was sent before the reply: it is already in the mailbox.
    CHECK(grove::receive_for(0s, [](noted n) { return n.what; }) == "terminate normal");
    CHECK(await_down(m).reason == exit_reason::normal());
  });
}

TEST_CASE("terminate runs on the parent's shutdown when trapping exits, and not on kill", "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    // The parent of a server is the process that started it.
    auto parent = grove::spawn([me] {
      auto s = grove::start_link(std::make_unique<kv>(me, true)).value();
      grove::send(me, s);
      grove::receive([](go) {});
      grove::exit(exit_reason::shutdown());
    });
    CHECK(next_note() == "init");
    auto s = grove::receive([](grove::pid p) { return p; });
    auto m = grove::monitor(s);
    grove::send(parent, go{});
    CHECK(next_note() == "terminate shutdown");
    CHECK(await_down(m).reason == exit_reason::shutdown());

    auto k = grove::start(std::make_unique<kv>(me, true)).value();
    CHECK(next_note() == "init");
    auto km = grove::monitor(k);
    grove::exit(k, exit_reason::kill());
    CHECK(await_down(km).reason == exit_reason::killed());
    CHECK_FALSE(grove::receive_for(0s, [](noted) {}));  // no terminate on kill
  });
}

TEST_CASE("without trapping exits, a linked parent's exit ends the server without terminate", "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    auto parent = grove::spawn([me] {
      auto s = grove::start_link(std::make_unique<kv>(me, false)).value();
      grove::send(me, s);
      grove::receive([](go) {});
      grove::exit(exit_reason::shutdown());
    });
    CHECK(next_note() == "init");
    auto s = grove::receive([](grove::pid p) { return p; });
    auto m = grove::monitor(s);
    grove::send(parent, go{});
    CHECK(await_down(m).reason == exit_reason::shutdown());
    CHECK_FALSE(grove::receive_for(0s, [](noted) {}));
  });
}

TEST_CASE("an idle timeout sends handle_info(idle_timeout) when no message comes in time", "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([&] {
    auto s = grove::start(std::make_unique<kv>(grove::self())).value();
    grove::receive([](noted) {});
    grove::sys::replace_state<kv>(s, [](kv& k) { k.idle_after(10s); });
    n.advance(9s);
    grove::send(s, std::string("ping"));  // a message restarts the wait
    CHECK(next_note() == "info ping");
    n.advance(9s);
    CHECK_FALSE(grove::receive_for(0s, [](noted) {}));
    n.advance(1s);
    CHECK(next_note() == "idle");
    grove::stop(s);
  });
}

namespace {
struct step {
  int n;
};
class continuer final : public grove::gen_server<continuer> {
 public:
  using handles = grove::types<step, std::string>;
  explicit continuer(grove::pid o) : observer_(o) {}
  grove::init_result init() {
    continue_with(step{1});
    return grove::init_result::ok();
  }
  void handle_continue(const step& s) {
    grove::send(observer_, noted{"continue " + std::to_string(s.n)});
    if (s.n < 3) continue_with(step{s.n + 1});
  }
  void handle_info(const std::string& s) { grove::send(observer_, noted{"info " + s}); }

 private:
  grove::pid observer_;
};
}  // namespace

TEST_CASE("handle_continue runs before any queued message", "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto s = grove::start(std::make_unique<continuer>(grove::self())).value();
    grove::send(s, std::string("queued"));
    CHECK(next_note() == "continue 1");
    CHECK(next_note() == "continue 2");
    CHECK(next_note() == "continue 3");
    CHECK(next_note() == "info queued");
    grove::stop(s);
  });
}

TEST_CASE("an unexpected message is dropped and an unknown call fails; the server carries on", "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto s = grove::start(std::make_unique<kv>(grove::self())).value();
    grove::receive([](noted) {});
    grove::send(s, 12345);  // no handle_info(int)
    grove::send(s, 12345);
    CHECK(grove::call<std::size_t>(s, size_q{}) == 0);
    auto r = grove::try_call<int>(s, 3.14);  // no handle_call(double)
    CHECK(r.error.what() == exit_reason::kind::other);
    CHECK(r.error.detail() == "{bad_call,double}");
    CHECK(grove::call<std::size_t>(s, size_q{}) == 0);  // the same server, still running
    grove::stop(s);
  });
}

TEST_CASE("a cast no handle_cast takes crashes the server with bad_cast", "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto s = grove::start(std::make_unique<kv>(grove::self())).value();
    grove::receive([](noted) {});
    const auto m = grove::monitor(s);
    grove::cast(s, 3.14);  // no handle_cast(double): nobody to answer, so the server crashes
    auto d = grove::testing::await_down(m);
    CHECK(d.reason.detail() == "{bad_cast,double}");
  });
}

TEST_CASE("sys: state through format_status, replace_state, statistics and the last events", "[gen_server][sys]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto s = grove::start(std::make_unique<kv>(grove::self())).value();
    grove::receive([](noted) {});
    grove::cast(s, put{"a", 1});
    CHECK(grove::sys::get_state(s) == "kv with 1 keys");
    grove::sys::replace_state<kv>(s, [](kv& k) { k.handle_cast(put{"b", 2}); });
    CHECK(grove::call<int>(s, get{"b"}) == 2);
    auto st = grove::sys::statistics(s);
    CHECK(st.casts == 1);
    CHECK(st.calls == 1);
    CHECK(st.messages_in >= 2);
    auto ev = grove::sys::last_events(s);
    REQUIRE(ev.size() >= 2);
    // The request's type, not Grove's wrapper around it (issue 12 item 5).
    CHECK(ev.back().find("us ago call (anonymous namespace)::get") != std::string::npos);
    auto sub = grove::events().subscribe(64);
    grove::sys::trace(s, true);
    grove::call<int>(s, get{"a"});
    grove::cast(s, put{"c", 3});
    grove::sys::trace(s, false);
    grove::call<int>(s, get{"a"});
    std::string out;
    for (auto& e : sub->take()) {
      if (e.kind != grove::event_kind::trace) continue;
      CHECK(e.old_pid == s);
      out += grove::to_text(e) + "\n";
    }
    INFO(out);
    CHECK(out.find(" call (anonymous namespace)::get\n") != std::string::npos);  // no operator<<: the type
    CHECK(out.find("call_msg") == std::string::npos);
    CHECK(out.find(" reply int: 1\n") != std::string::npos);  // values that print, printed
    CHECK(out.find(" cast (anonymous namespace)::put: c=3\n") != std::string::npos);
    CHECK(std::count(out.begin(), out.end(), '\n') == 3);  // call, reply, cast; nothing after off
    grove::stop(s);
  });
}

namespace {
// format_status throws: introspection must not kill it.
class opaque final : public grove::gen_server<opaque> {
 public:
  using handles = grove::types<get>;
  explicit opaque(grove::pid observer) : observer_(observer) {}
  int handle_call(const get&, const grove::from&) { return value_; }
  void terminate(const exit_reason& r) { grove::send(observer_, noted{"terminate " + r.str()}); }
  std::string format_status() const { throw std::runtime_error("secret state"); }
  int value_ = 1;

 private:
  grove::pid observer_;
};
}  // namespace

TEST_CASE("sys: a throwing format_status or replace_state function is answered, and the server goes on",
          "[gen_server][sys]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto s = grove::start(std::make_unique<opaque>(grove::self())).value();
    const std::string state = grove::sys::get_state(s);
    CHECK(state.find("format_status crashed") != std::string::npos);
    CHECK(state.find("secret state") != std::string::npos);
    try {
      grove::sys::replace_state<opaque>(s, [](opaque& o) {
        o.value_ = 2;
        throw std::runtime_error("half done");
      });
      FAIL("replace_state must report the failed function");
    } catch (const grove::call_error& e) {
      CHECK(e.reason().str().find("callback_failed") != std::string::npos);
      CHECK(e.reason().str().find("half done") != std::string::npos);
    }
    CHECK(grove::alive(s));
    // C++ state is changed in place: what the function did before it threw stays (OTP's immutable
    // state would be unchanged; replace_state's comment says so).
    CHECK(grove::call<int>(s, get{"x"}) == 2);
    grove::stop(s);
    CHECK(next_note() == "terminate normal");  // terminate still runs at the orderly end
  });
}

TEST_CASE("sys: a suspended server answers only system messages; the rest wait, in order", "[gen_server][sys]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    auto s = grove::start(std::make_unique<kv>(grove::self())).value();
    grove::receive([](noted) {});
    grove::sys::suspend(s);
    grove::cast(s, put{"k", 1});
    grove::cast(s, put{"k", 2});
    CHECK_FALSE(grove::try_call<int>(s, get{"k"}, 50ms));  // held while suspended
    CHECK(grove::sys::get_state(s) == "kv with 0 keys");   // system messages still work
    grove::sys::resume(s);
    CHECK(grove::call<int>(s, get{"k"}) == 2);
    grove::stop(s);
  });
}

namespace {
// A typed client facade: callers see a plain C++ API; the server behind it can change.
class kv_client {
 public:
  explicit kv_client(grove::server_ref server) : server_(std::move(server)) {}
  void put(std::string key, int value) { grove::cast(server_, ::put{std::move(key), value}); }
  int get(std::string key) { return grove::call<int>(server_, ::get{std::move(key)}); }

 private:
  grove::server_ref server_;
};
}  // namespace

TEST_CASE("a typed client facade hides calls and casts behind a plain API", "[gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    grove::start(std::make_unique<kv>(grove::self()), {.name = "kv"}).value();
    kv_client kv("kv");
    kv.put("answer", 42);
    CHECK(kv.get("answer") == 42);
    grove::stop("kv");
  });
}
