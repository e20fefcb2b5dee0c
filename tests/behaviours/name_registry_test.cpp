#include <algorithm>
#include <atomic>
#include <latch>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

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

TEST_CASE("names that differ in a single byte, of every length up to 40, are told apart", "[names]") {
  grove::testing::deterministic_node n;
  n.run([] {
    std::vector<std::pair<std::string, grove::pid>> named;
    for (std::size_t len = 1; len <= 40; ++len) {
      for (std::size_t k = 0; k <= len; ++k) {
        std::string name(len, 'a');
        if (k < len) name[k] = 'b';  // k == len: all 'a'
        auto p = grove::spawn([] { grove::receive([](go) {}); });
        grove::register_name(name, p);
        named.emplace_back(name, p);
      }
    }
    for (auto& [name, p] : named) {
      CHECK(grove::whereis(name) == p);
      CHECK(grove::names().name_of(p) == name);
    }
    CHECK_FALSE(grove::whereis(std::string(41, 'a')));
    CHECK_FALSE(grove::whereis(""));
    for (auto& [name, p] : named) grove::send(p, go{});
  });
}

TEST_CASE("of 5,000 names with every other one released, lookups and registered() see exactly the rest", "[names]") {
  grove::testing::deterministic_node n;
  n.run([] {
    constexpr int count = 5000;
    std::vector<grove::pid> procs;
    for (int i = 0; i < count; ++i) {
      procs.push_back(grove::spawn([] { grove::receive([](go) {}); }));
      grove::register_name("p" + std::to_string(i), procs.back());
    }
    for (int i = 0; i < count; i += 2) CHECK(grove::unregister_name("p" + std::to_string(i)));
    // Released slots are reused, and swept by rebuilds: a quarter of the names come back.
    for (int i = 0; i < count; i += 4) grove::register_name("p" + std::to_string(i), procs[i]);
    std::set<std::string> expected;
    for (int i = 0; i < count; ++i) {
      const std::string name = "p" + std::to_string(i);
      if (i % 2 == 1 || i % 4 == 0) {
        expected.insert(name);
        CHECK(grove::whereis(name) == procs[i]);
        CHECK(grove::names().name_of(procs[i]) == name);
      } else {
        CHECK_FALSE(grove::whereis(name));
        CHECK_FALSE(grove::names().name_of(procs[i]));
      }
    }
    auto all = grove::registered();
    CHECK(all.size() == expected.size());
    CHECK(std::set<std::string>(all.begin(), all.end()) == expected);
    for (auto& p : procs) grove::send(p, go{});
  });
}

TEST_CASE("a registry that changed 10,000 times holds at most a reclaim batch of released entries and views",
          "[names]") {
  constexpr std::size_t batch = grove::detail::name_reclaim_batch;
  const std::size_t views = grove::detail::live_name_views();
  const std::size_t entries = grove::detail::live_name_entries();
  {
    grove::testing::deterministic_node n;
    n.run([&] {
      auto p = grove::spawn([] { grove::receive([](go) {}); });
      for (int i = 0; i < 10000; ++i) {
        grove::register_name("name" + std::to_string(i), p);
        CHECK(grove::unregister_name("name" + std::to_string(i)));
      }
      grove::register_name("kept", p);
      // The current view and fewer than a batch replaced; "kept" and fewer than a batch released.
      CHECK(grove::detail::live_name_views() <= views + batch);
      CHECK(grove::detail::live_name_entries() <= entries + batch);
      CHECK(grove::whereis("kept") == p);
      auto r = grove::monitor(p);
      grove::send(p, go{});
      await_down(r);  // its exit hook released "kept" before the down
      CHECK_FALSE(grove::whereis("kept"));
      CHECK(grove::registered().empty());
    });
  }
  CHECK(grove::detail::live_name_views() == views);
  CHECK(grove::detail::live_name_entries() == entries);
}

TEST_CASE("lookups beside writers find no process or one that was registered under the name", "[names][stress]") {
  const std::size_t views = grove::detail::live_name_views();
  const std::size_t entries = grove::detail::live_name_entries();
  {
    grove::node n({.schedulers = 2});
    auto& names = n.service<grove::name_registry>();
    // Name k is only ever given to a process of group k.
    constexpr int groups = 4, per_group = 3, rounds = 5000, deaths = 500, lookers = 2;
    const std::vector<std::string> name = {"n0", "n1", "n2", "n3"};
    std::vector<std::vector<grove::pid>> group(groups);
    for (int k = 0; k < groups; ++k) {
      for (int j = 0; j < per_group; ++j) group[k].push_back(n.spawn([] { grove::receive([](go) {}); }));
      names.add(name[k], group[k][0]);
    }
    auto in_group = [&](int k, const grove::pid& p) {
      return std::find(group[k].begin(), group[k].end(), p) != group[k].end();
    };
    // Processes that register "dyn" themselves and die holding it: the exit hook releases it.
    std::mutex dyn_mutex;
    std::set<std::uint64_t> dyn_holders;
    auto key = [](const grove::pid& p) { return std::uint64_t{p.slot()} << 32 | p.generation(); };

    std::atomic<int> writers_left{2};
    std::atomic<long> wrong{0}, found{0}, lookups{0};
    std::latch looking(lookers);
    auto look = [&] {
      long i = 0, hits = 0;
      do {
        const int k = static_cast<int>(i % groups);
        if (auto p = names.whereis(name[k])) {
          ++hits;
          if (!in_group(k, *p)) ++wrong;
        }
        if (i == 0) looking.count_down();  // every name was registered at this first lookup
        const grove::pid& w = group[k][i % per_group];
        if (auto held = names.name_of(w); held && *held != name[k]) ++wrong;
        if (auto p = names.whereis("dyn")) {
          std::lock_guard lk(dyn_mutex);
          if (!dyn_holders.count(key(*p))) ++wrong;
        }
        if (i % 64 == 0) {
          for (auto& r : names.registered())
            if (r != "dyn" && std::find(name.begin(), name.end(), r) == name.end()) ++wrong;
        }
        ++i;
      } while (writers_left.load() > 0);
      lookups += i;
      found += hits;
    };
    std::vector<std::thread> threads;
    for (int l = 0; l < lookers; ++l) threads.emplace_back(look);
    looking.wait();
    // Moves each name to the next process of its group: released, then registered again.
    threads.emplace_back([&] {
      for (int round = 0; round < rounds; ++round) {
        const int k = round % groups;
        if (!names.remove(name[k])) ++wrong;
        try {
          names.add(name[k], group[k][(round / groups + 1) % per_group]);
        } catch (const grove::registry_error&) {
          ++wrong;
        }
      }
      --writers_left;
    });
    threads.emplace_back([&] {
      n.run([&] {
        for (int d = 0; d < deaths; ++d) {
          auto [p, r] = grove::spawn_monitor([&] {
            {
              std::lock_guard lk(dyn_mutex);
              dyn_holders.insert(key(grove::self()));
            }
            try {
              grove::register_name("dyn", grove::self());
            } catch (const grove::registry_error&) {
              ++wrong;  // the previous holder's name must be free once its down is out
            }
          });
          await_down(r);
          if (grove::whereis("dyn")) ++wrong;  // released before the down went out
        }
      });
      --writers_left;
    });
    for (auto& t : threads) t.join();
    CHECK(wrong == 0);
    CHECK(found >= lookers);
    CHECK(lookups >= lookers);
    // Every name is registered again, to its group's process of the last round.
    for (int k = 0; k < groups; ++k) CHECK(names.whereis(name[k]) == group[k][(rounds / groups) % per_group]);
    // With no lookup left, a batch of writes frees every replaced view and every entry
    // released before it.
    for (std::size_t i = 0; i < grove::detail::name_reclaim_batch; ++i) {
      CHECK(names.remove(name[0]));
      names.add(name[0], group[0][0]);
    }
    CHECK(grove::detail::live_name_views() <= views + grove::detail::name_reclaim_batch);
    CHECK(grove::detail::live_name_entries() <= entries + groups + grove::detail::name_reclaim_batch);
    n.run([&] {
      for (auto& g : group)
        for (auto& p : g) grove::send(p, go{});
    });
  }
  CHECK(grove::detail::live_name_views() == views);
  CHECK(grove::detail::live_name_entries() == entries);
}
