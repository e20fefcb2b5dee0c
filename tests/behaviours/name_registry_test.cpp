#include <catch2/catch.hpp>
#include <grove/behaviours/name_registry.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>

#include "../runtime/support.hpp"

using namespace grove_test;

TEST_CASE("register, whereis, registered and unregister a local name", "[names]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto p = grove::spawn([] { grove::receive([](go) {}); });
    grove::register_name("worker", p);
    CHECK(grove::whereis("worker") == p);
    CHECK(grove::registered() == std::vector<std::string>{"worker"});
    CHECK(grove::names().name_of(p) == "worker");
    CHECK(grove::unregister_name("worker"));
    CHECK_FALSE(grove::unregister_name("worker"));
    CHECK_FALSE(grove::whereis("worker"));
    grove::send(p, go{});
  });
}

TEST_CASE("one process per name and one name per process; a dead pid cannot be registered", "[names]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto a = grove::spawn([] { grove::receive([](go) {}); });
    auto b = grove::spawn([] { grove::receive([](go) {}); });
    grove::register_name("a", a);
    try {
      grove::register_name("a", b);
      FAIL("a taken name must be refused");
    } catch (const grove::registry_error& e) {
      CHECK(e.what_kind() == grove::registry_error::kind::name_taken);
      CHECK(e.holder() == a);
    }
    try {
      grove::register_name("other", a);
      FAIL("a second name for one process must be refused");
    } catch (const grove::registry_error& e) {
      CHECK(e.what_kind() == grove::registry_error::kind::already_named);
    }
    auto [dead, r] = grove::spawn_monitor([] {});
    await_down(r);
    CHECK_THROWS_AS(grove::register_name("ghost", dead), grove::registry_error);
    CHECK_FALSE(grove::whereis("ghost"));
    grove::send(a, go{});
    grove::send(b, go{});
  });
}

TEST_CASE("a name is released before the down of its process goes out, so a successor registers at once", "[names]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto [p, r] = grove::spawn_monitor([] {
      grove::register_name("svc", grove::self());
      grove::receive([](go) {});
      throw std::runtime_error("crash");
    });
    grove::send(p, go{});
    // Wait on the down only: by then the name must already be free.
    grove::receive(grove::when<grove::down>([r](const grove::down& d) { return d.ref == r; },
                                            [](const grove::down&) { CHECK_FALSE(grove::whereis("svc")); }));
    auto successor = grove::spawn([] { grove::receive([](go) {}); });
    grove::register_name("svc", successor);
    CHECK(grove::whereis("svc") == successor);
    grove::send(successor, go{});
  });
}

TEST_CASE("send by name reaches the holder; send to an unregistered name is an error", "[names]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    auto p = grove::spawn([me] { grove::receive([&](int v) { grove::send(me, v * 2); }); });
    grove::register_name("doubler", p);
    grove::send("doubler", 21);
    CHECK(grove::receive([](int v) { return v; }) == 42);
    try {
      grove::send("nobody", 1);
      FAIL("send to an unregistered name must throw");
    } catch (const grove::process_error& e) {
      CHECK(e.reason() == grove::exit_reason::noproc());
    }
  });
}
