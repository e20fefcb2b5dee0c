#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <grove/behaviours/dynamic_supervisor.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>

#include "../runtime/support.hpp"

using namespace grove_test;
using grove::exit_reason;

namespace {
struct up {
  int n;
  grove::pid who;
};
struct crash_now {};

// A body-process child that reports each start and crashes on request.
grove::child_spec numbered(int n, grove::pid observer, grove::restart_type r = grove::restart_type::permanent) {
  grove::child_spec s;
  s.id = "worker";
  s.restart = r;
  s.start = [n, observer] {
    return grove::start_result::started(grove::spawn_link([n, observer] {
      grove::send(observer, up{n, grove::self()});
      grove::receive([](crash_now) { throw std::runtime_error("asked to crash"); });
    }));
  };
  return s;
}

up next_up() {
  auto u = grove::receive_for(10s, [](up u) { return u; });
  REQUIRE(u);
  return *u;
}
}  // namespace

TEST_CASE("a dynamic supervisor starts children on demand, up to max_children", "[dynamic_supervisor]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    auto sup = grove::start_dynamic_supervisor({.max_children = 2}).value();
    auto a = grove::start_dynamic_child(sup, numbered(1, me));
    auto b = grove::start_dynamic_child(sup, numbered(2, me));
    REQUIRE(a);
    REQUIRE(b);
    CHECK(grove::start_dynamic_child(sup, numbered(3, me)).error == grove::child_error::max_children);
    CHECK(next_up().who == a.who);
    CHECK(next_up().who == b.who);
    CHECK(grove::which_dynamic_children(sup).size() == 2);
    CHECK(grove::count_dynamic_children(sup).active == 2);
    CHECK(grove::terminate_dynamic_child(sup, a.who));
    CHECK_FALSE(grove::alive(a.who));
    CHECK(grove::terminate_dynamic_child(sup, a.who).error == grove::child_error::not_found);
    CHECK(grove::which_dynamic_children(sup).size() == 1);
    grove::stop(sup, exit_reason::shutdown());
    CHECK_FALSE(grove::alive(b.who));
  });
}

TEST_CASE("a dynamic supervisor restarts permanent children and forgets temporary ones", "[dynamic_supervisor]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    auto sup = grove::start_dynamic_supervisor({.intensity = 5}).value();
    auto p = grove::start_dynamic_child(sup, numbered(1, me));
    auto t = grove::start_dynamic_child(sup, numbered(2, me, grove::restart_type::temporary));
    next_up(), next_up();
    auto tm = grove::monitor(t.who);
    grove::send(p.who, crash_now{});
    auto again = next_up();
    CHECK(again.n == 1);
    CHECK(again.who != p.who);
    grove::send(t.who, crash_now{});
    await_down(tm);
    auto kids = grove::which_dynamic_children(sup);
    REQUIRE(kids.size() == 1);
    CHECK(kids[0].who == again.who);
    CHECK_FALSE(grove::receive_for(0s, [](up) {}));
    grove::stop(sup, exit_reason::shutdown());
  });
}

TEST_CASE("a dynamic supervisor stops its children in parallel, each within its shutdown time",
          "[dynamic_supervisor][shutdown]") {
  grove::testing::deterministic_node n;
  n.run([&] {
    const grove::pid me = grove::self();
    auto sup = grove::start_dynamic_supervisor().value();
    std::vector<grove::monitor_ref> refs;
    for (int i = 0; i < 5; ++i) {
      grove::child_spec s;
      s.id = "stubborn";
      s.shutdown = grove::shutdown_spec::after(2s);
      s.start = [me] {
        return grove::start_result::started(grove::spawn_link([me] {
          grove::trap_exit(true);
          grove::send(me, up{0, grove::self()});
          for (;;) grove::receive([&](const grove::exit_signal&) { grove::send(me, std::string("ignored")); });
        }));
      };
      REQUIRE(grove::start_dynamic_child(sup, s));
      refs.push_back(grove::monitor(next_up().who));
    }
    grove::spawn([me, sup] {
      grove::stop(sup, exit_reason::shutdown());
      grove::send(me, std::string("stopped"));
    });
    // All five got their shutdown signal before any timeout ran out: they are stopped at once.
    for (int i = 0; i < 5; ++i) CHECK(grove::receive([](const std::string& s) { return s; }) == "ignored");
    n.advance(2s);  // one shutdown time for all of them, not five
    for (auto& r : refs) CHECK(await_down(r).reason == exit_reason::killed());
    CHECK(grove::receive([](const std::string& s) { return s; }) == "stopped");
  });
}

TEST_CASE("a dynamic child whose restart fails is retried, each retry counted against the intensity",
          "[dynamic_supervisor]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    // Starts fine the first time, fails the next two attempts, then starts again.
    auto attempts = std::make_shared<int>(0);
    grove::child_spec flaky = numbered(1, me);
    auto ok_start = flaky.start;
    flaky.start = [attempts, ok_start] {
      int a = (*attempts)++;
      if (a == 1 || a == 2) return grove::start_result::failed(exit_reason::other("not_yet"));
      return ok_start();
    };
    auto sup = grove::start_dynamic_supervisor({.intensity = 10}).value();
    auto first = grove::start_dynamic_child(sup, flaky);
    REQUIRE(first);
    next_up();
    grove::send(first.who, crash_now{});
    auto again = next_up();  // after two failed attempts
    CHECK(again.who != first.who);
    CHECK(*attempts == 4);
    auto kids = grove::which_dynamic_children(sup);
    REQUIRE(kids.size() == 1);
    CHECK_FALSE(kids[0].restarting);
    grove::stop(sup, exit_reason::shutdown());

    // With room for fewer retries than it needs, the supervisor gives up.
    *attempts = 0;
    auto small = grove::start_dynamic_supervisor({.intensity = 2}).value();
    auto c = grove::start_dynamic_child(small, flaky);
    next_up();
    auto m = grove::monitor(small);
    grove::send(c.who, crash_now{});  // restart 1 fails, retry 2 fails, retry 3 is one too many
    CHECK(await_down(m).reason == exit_reason::shutdown());
  });
}
