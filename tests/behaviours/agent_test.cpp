#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <grove/behaviours/agent.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>

#include "../runtime/support.hpp"

using namespace grove_test;

TEST_CASE("an agent runs get, update and get_and_update inside its process", "[agent]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    auto counter = grove::agent<int>::start(10).value();
    counter.update([](int& v) { v += 5; });
    CHECK(counter.get([](const int& v) { return v * 2; }) == 30);
    CHECK(counter.get_and_update([](int& v) { return std::exchange(v, 0); }) == 15);
    CHECK(counter.get([](const int& v) { return v; }) == 0);
    counter.stop();
  });
}

TEST_CASE("concurrent updates to an agent are serialized: none is lost", "[agent]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    auto list = grove::agent<std::vector<int>>::start({}, {.name = "list"}).value();
    const grove::pid me = grove::self();
    for (int w = 0; w < 4; ++w) {
      grove::spawn([me, w] {
        grove::agent<std::vector<int>> a("list");
        for (int i = 0; i < 250; ++i) a.cast_update([w, i](std::vector<int>& v) { v.push_back(w * 1000 + i); });
        a.update([](std::vector<int>&) {});  // a call after the casts: they have all been applied
        grove::send(me, go{});
      });
    }
    for (int w = 0; w < 4; ++w) grove::receive([](go) {});
    CHECK(list.get([](const std::vector<int>& v) { return v.size(); }) == 1000);
    list.stop();
  });
}
