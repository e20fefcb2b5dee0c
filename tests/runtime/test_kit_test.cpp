// The test kit (grove/runtime/test_kit.hpp): expectations on the next message, and waits that
// fail on a real-time budget instead of hanging on a manual clock.
#include <string>

#include <catch2/catch.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>

#include "support.hpp"

using namespace grove_test;
namespace kit = grove::testing;

namespace {
struct tick {
  int n = 0;
};
struct tock {};

// What an expectation_failed said, or "" if fn did not throw one.
template <class F>
std::string failure_of(F&& fn) {
  try {
    fn();
  } catch (const kit::expectation_failed& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("test kit: expect takes the next message if it is of the type, else fails naming both", "[test_kit]") {
  kit::deterministic_node n;
  n.run([] {
    grove::send(grove::self(), tick{1});
    grove::send(grove::self(), tock{});
    CHECK(kit::expect<tick>().n == 1);
    const std::string why = failure_of([] { kit::expect<tick>(); });
    CHECK(why == "expected a (anonymous namespace)::tick, the next message is a (anonymous namespace)::tock");
    grove::send(grove::self(), tick{7});
    CHECK(kit::expect<tick>([](const tick& t) { return t.n == 7; }).n == 7);
    grove::send(grove::self(), tick{8});
    CHECK(failure_of([] {
            kit::expect<tick>([](const tick& t) { return t.n == 7; });
          }).find("did not satisfy the condition") != std::string::npos);
  });
}

TEST_CASE("test kit: allow takes only a next message of its type; disallow takes nothing", "[test_kit]") {
  kit::deterministic_node n;
  n.run([] {
    CHECK_FALSE(kit::allow<tick>());  // nothing there, and no wait
    kit::disallow<tick>();
    grove::send(grove::self(), tock{});
    grove::send(grove::self(), tick{2});
    CHECK_FALSE(kit::allow<tick>());  // a tock is first: left in place
    kit::disallow<tick>();
    CHECK(failure_of([] { kit::disallow<tock>(); }).find("was not allowed") != std::string::npos);
    CHECK(kit::allow<tock>());
    CHECK(kit::allow<tick>());
    CHECK_FALSE(grove::receive_for(grove::duration::zero(), [](grove::message&) {}));  // both taken
  });
}

TEST_CASE("test kit: a wait on the manual clock fails once its real-time budget is spent", "[test_kit]") {
  // A receive_for on a manual clock never times out by itself: a missing message used to hang
  // the test until CTest killed it.
  kit::deterministic_node n;
  n.run([] {
    const std::string why = failure_of([] { kit::receive_within(std::chrono::milliseconds(50), [](tick) {}); });
    CHECK(why == "nothing expected came within 50 ms of real time");
    auto quiet = grove::spawn([] { grove::receive([](tock) {}); });
    const auto m = grove::monitor(quiet);
    CHECK(failure_of([&] { kit::await_down(m, std::chrono::milliseconds(50)); }).find("50 ms") != std::string::npos);
    grove::send(quiet, tock{});
    CHECK(kit::await_down(m).reason.is_normal());
    // A message that came in time is taken, and the budget leaves nothing behind.
    grove::send(grove::self(), tick{3});
    CHECK(kit::receive_within(std::chrono::milliseconds(50), [](tick t) { return t.n; }) == 3);
    kit::disallow<kit::detail::budget_spent>();
  });
}

TEST_CASE("test kit: eventually fails with what it waited for", "[test_kit]") {
  grove::node n({.schedulers = 1});
  n.run([] {
    int checks = 0;
    kit::eventually([&] { return ++checks == 3; }, "three checks");
    CHECK(checks == 3);
    CHECK(failure_of([] { kit::eventually([] { return false; }, "never", std::chrono::milliseconds(20)); }) ==
          "never: not so within 20 ms of real time");
  });
}

namespace {
struct order {
  int n;
};
struct receipt {
  int n;
};
struct adder final : grove::gen_server<adder> {
  using handles = grove::types<order>;
  int handle_call(const order& o, const grove::from&) { return o.n + 1; }
  void handle_cast(const order&) {}
};
}  // namespace

TEST_CASE("test kit: expect<T>(from, to) checks messages between two other processes, in order", "[test_kit]") {
  kit::deterministic_node n;
  n.run([] {
    // A shop answers each order with a receipt to whoever the order names.
    const grove::pid shop = grove::spawn([] {
      for (;;) {
        grove::receive([](const std::pair<grove::pid, order>& o) { grove::send(o.first, receipt{o.second.n}); });
      }
    });
    const grove::pid buyer = grove::spawn([shop] {
      grove::send(shop, std::pair<grove::pid, order>{grove::self(), order{1}});
      grove::receive([](receipt) {});
    });
    kit::expect<std::pair<grove::pid, order>>(buyer, shop);
    kit::expect<receipt>(shop, buyer);
    // Nothing else was sent to the buyer; the failure names the sender and receiver it wanted.
    const std::string none = failure_of([&] { kit::expect<receipt>(shop, buyer, std::chrono::milliseconds(20)); });
    CHECK(none.find("expected a (anonymous namespace)::receipt from " + shop.str() + " to " + buyer.str() +
                    ": nothing was sent to it within 20 ms of real time") == 0);
    // The wrong type, or the wrong sender, is named.
    grove::send(shop, std::pair<grove::pid, order>{grove::self(), order{2}});
    const std::string wrong = failure_of([&] { kit::expect<receipt>(buyer, shop); });
    CHECK(wrong.find("the next message to it is a std::pair<grove::pid, (anonymous namespace)::order> from " +
                     grove::self().str()) != std::string::npos);
    kit::expect<receipt>(shop, grove::self());
    grove::exit(shop, grove::exit_reason::kill());
  });
}

TEST_CASE("test kit: a call or cast counts as its request type in expect<T>(from, to)", "[test_kit]") {
  kit::deterministic_node n;
  n.run([] {
    const grove::pid s = grove::start(std::make_unique<adder>()).value();
    CHECK(grove::call<int>(s, order{41}) == 42);
    kit::expect<order>(grove::self(), s);  // the call's request
    grove::cast(s, order{1});
    kit::expect<order>(grove::self(), s);  // the cast's
    grove::stop(s);
  });
}
