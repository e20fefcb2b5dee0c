#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include <catch2/catch.hpp>
#include <grove/behaviours/gen_server.hpp>
#include <grove/behaviours/keyed_registry.hpp>
#include <grove/behaviours/typed_ref.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>

using grove::exit_reason;

// Outside the anonymous namespace, so that its name in a reason is exactly typed_ref_test::thing.
namespace typed_ref_test {
struct thing {};  // a request the ledger does not handle
}  // namespace typed_ref_test

namespace {
struct balance {};
struct deposit {
  std::int64_t cents;
};
struct reset {};
struct promise {};  // answered later, once the observer sends fulfil
struct fulfil {
  std::string text;
};
struct deposited {
  std::int64_t cents;
};
struct promised {
  grove::pid ledger;
};

// A ledger that tells an observer about each deposit and each promise it makes.
class ledger final : public grove::gen_server<ledger> {
 public:
  using handles = grove::types<balance, deposit, reset, promise, fulfil>;
  explicit ledger(grove::pid observer, bool strict = false) : observer_(observer) {
    if (strict) crash_on_bad_call();
  }
  std::int64_t handle_call(const balance&, const grove::from&) { return cents_; }
  void handle_call(const reset&, const grove::from&) { cents_ = 0; }
  grove::deferred_t handle_call(const promise&, const grove::from& f) {
    waiting_ = f;
    grove::send(observer_, promised{grove::self()});
    return grove::deferred;
  }
  void handle_cast(const deposit& d) {
    cents_ += d.cents;
    grove::send(observer_, deposited{d.cents});
  }
  void handle_cast(const fulfil& f) { grove::reply(waiting_, f.text); }

 private:
  grove::pid observer_;
  std::int64_t cents_ = 0;
  grove::from waiting_;
};

grove::typed_ref<ledger> start_ledger(grove::pid observer, bool strict = false) {
  return grove::typed_ref<ledger>{grove::start(std::make_unique<ledger>(observer, strict)).value()};
}
}  // namespace

TEST_CASE("a typed call returns the handler's own reply type", "[typed_ref][gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto l = start_ledger(grove::self());
    l.cast(deposit{250});
    grove::testing::expect<deposited>();
    static_assert(std::is_same_v<decltype(l.call(balance{})), std::int64_t>);
    std::int64_t cents = l.call(balance{});
    CHECK(cents == 250);
    auto r = l.try_call(balance{});
    static_assert(std::is_same_v<decltype(r), grove::call_result<std::int64_t>>);
    REQUIRE(r);
    CHECK(*r.value == 250);
    grove::stop(l.ref());
  });
}

TEST_CASE("a typed ref is made from a pid, a registered name or a via name", "[typed_ref][gen_server]") {
  grove::testing::deterministic_node n;
  grove::keyed_registry<std::string> reg(n, {.keys = grove::keys::unique});
  n.run([&] {
    auto p = grove::start(std::make_unique<ledger>(grove::self()), {.name = "ledger"}).value();
    grove::typed_ref<ledger> by_pid{p};
    grove::typed_ref<ledger> by_name{"ledger"};
    by_pid.cast(deposit{3});
    grove::testing::expect<deposited>();
    CHECK(by_name.call(balance{}) == 3);
    auto v = grove::start(std::make_unique<ledger>(grove::self()), {.via = grove::via(reg, std::string("b"))}).value();
    grove::typed_ref<ledger> by_via{grove::via(reg, std::string("b"))};
    CHECK(by_via.call(balance{}) == 0);
    grove::stop(p);
    grove::stop(v);
  });
}

TEST_CASE("a typed call to a void handler returns once the handler ran", "[typed_ref][gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto l = start_ledger(grove::self());
    l.cast(deposit{7});
    grove::testing::expect<deposited>();
    static_assert(std::is_same_v<decltype(l.call(reset{})), void>);
    l.call(reset{});
    CHECK(l.call(balance{}) == 0);
    auto r = l.try_call(reset{});
    static_assert(std::is_same_v<decltype(r), grove::call_result<void>>);
    CHECK(r);
    grove::stop(l.ref());
  });
}

TEST_CASE("a typed call to a deferred handler returns the reply type it names", "[typed_ref][gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    // The observer fulfils the promise once the ledger has made it, while the caller waits.
    auto observer = grove::spawn([] {
      auto p = grove::testing::expect<promised>();
      grove::typed_ref<ledger>{p.ledger}.cast(fulfil{"kept"});
    });
    auto l = start_ledger(observer);
    static_assert(std::is_same_v<decltype(l.call<std::string>(promise{})), std::string>);
    CHECK(l.call<std::string>(promise{}) == "kept");
    grove::stop(l.ref());
  });
}

TEST_CASE("a typed call to a name nobody holds fails with noproc at once", "[typed_ref][gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    grove::typed_ref<ledger> nobody{"no_such_ledger"};
    auto r = nobody.try_call(balance{});
    CHECK_FALSE(r);
    CHECK(r.error == exit_reason::noproc());
    auto l = start_ledger(grove::self());
    grove::stop(l.ref());
    try {
      l.call(balance{});
      FAIL("a call to a stopped server returned");
    } catch (const grove::call_error& e) {
      CHECK(e.reason() == exit_reason::noproc());
    }
    nobody.cast(deposit{1});  // a cast to nobody is dropped, as grove::cast's is
  });
}

TEST_CASE("an unhandled call fails with bad_call and the server keeps running", "[typed_ref][gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto l = start_ledger(grove::self());
    const grove::pid p = *l.ref().resolve();
    const auto m = grove::monitor(p);
    l.cast(deposit{5});
    grove::testing::expect<deposited>();
    try {
      grove::call<std::int64_t>(p, typed_ref_test::thing{});
      FAIL("an unhandled call returned");
    } catch (const grove::call_error& e) {
      CHECK(e.reason().what() == exit_reason::kind::other);
      CHECK(e.reason().detail() == "{bad_call,typed_ref_test::thing}");
    }
    // Also for a call that expects no reply, and through try_call.
    CHECK_THROWS_AS(grove::call<void>(p, typed_ref_test::thing{}), grove::call_error);
    auto r = grove::try_call<int>(p, typed_ref_test::thing{});
    CHECK(r.error.detail() == "{bad_call,typed_ref_test::thing}");
    // The same process, state intact, answers the next call; it never went down.
    CHECK(l.call(balance{}) == 5);
    CHECK(grove::alive(p));
    CHECK(*l.ref().resolve() == p);
    grove::testing::disallow<grove::down>();
    // Its record still says what happened.
    auto events = grove::sys::last_events(p);
    REQUIRE(events.size() >= 3);
    CHECK(events[events.size() - 2].find("unhandled typed_ref_test::thing") != std::string::npos);
    grove::demonitor(m, true);
    grove::stop(p);
  });
}

TEST_CASE("a server that opts into crash_on_bad_call crashes on an unhandled call", "[typed_ref][gen_server]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto l = start_ledger(grove::self(), true);
    const grove::pid p = *l.ref().resolve();
    const auto m = grove::monitor(p);
    auto r = grove::try_call<int>(p, typed_ref_test::thing{});
    CHECK(r.error.detail() == "{bad_call,typed_ref_test::thing}");
    auto d = grove::testing::await_down(m);
    CHECK(d.reason.detail() == "{bad_call,typed_ref_test::thing}");
    CHECK_FALSE(grove::alive(p));
  });
}
