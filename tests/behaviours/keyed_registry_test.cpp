// Keyed registry: Elixir's Registry (../shared/reference/otp-semantics.md §5), with removal of
// a dead process's entries before its exit and down signals go out instead of eventually.
#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <grove/behaviours/keyed_registry.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>

#include "../runtime/support.hpp"

using namespace grove_test;
using grove::exit_reason;
using registry = grove::keyed_registry<std::string, int>;

namespace {
struct registered {
  grove::pid who;
  grove::register_result result;
};
struct drop {
  int value;
};
struct dropped {
  std::size_t n;
};
struct crash {};
struct note {
  std::string text;
};

// A process that registers under each of `keys` with `value`, reports to the caller, then until
// told otherwise: `go` ends it normally, `crash` makes it throw, `drop{v}` unregisters its
// registrations valued v and replies `dropped`.
grove::pid registrant(registry& reg, std::vector<std::string> keys, int value,
                      grove::register_result* first = nullptr) {
  const grove::pid me = grove::self();
  grove::pid p = grove::spawn([&reg, me, keys, value] {
    grove::register_result r;
    for (auto& k : keys) {
      auto one = reg.register_self(k, value);
      if (!one && r) r = one;
    }
    grove::send(me, registered{grove::self(), r});
    for (;;) {
      bool more = grove::receive([](go) { return false; }, [](crash) -> bool { throw std::runtime_error("boom"); },
                                 [&](drop d) {
                                   std::size_t n = 0;
                                   for (auto& k : keys)
                                     n += reg.unregister_match(k, [&](int v) { return v == d.value; });
                                   grove::send(me, dropped{n});
                                   return true;
                                 });
      if (!more) return;
    }
  });
  auto r = grove::receive(
      grove::when<registered>([p](const registered& m) { return m.who == p; }, [](registered m) { return m.result; }));
  if (first) *first = r;
  return p;
}

grove::pid registrant(registry& reg, const std::string& key, int value, grove::register_result* first = nullptr) {
  return registrant(reg, std::vector<std::string>{key}, value, first);
}

std::vector<int> values_of(const std::vector<registry::entry>& es) {
  std::vector<int> v;
  for (auto& e : es) v.push_back(e.value);
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<grove::pid> pids_of(const std::vector<registry::entry>& es) {
  std::vector<grove::pid> v;
  for (auto& e : es) v.push_back(e.who);
  std::sort(v.begin(), v.end());
  return v;
}

// Out of line: GCC 12 warns falsely (-Warray-bounds) about "k" + std::to_string(i) inlined.
[[gnu::noinline]] std::string key(const char* prefix, long i) { return prefix + std::to_string(i); }

// Ends p with `go` and waits until it is gone (its down has arrived).
void end_and_wait(const grove::pid& p) {
  auto r = grove::monitor(p);
  grove::send(p, go{});
  await_down(r);
}
}  // namespace

TEST_CASE("unique keys refuse a second registrant and name the holder", "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  registry reg(n, {.keys = grove::keys::unique, .partitions = 4});
  n.run([&] {
    grove::register_result r1, r2;
    auto a = registrant(reg, "db", 1, &r1);
    auto b = registrant(reg, "db", 2, &r2);
    CHECK(r1);
    CHECK(r1.status == grove::register_status::ok);
    CHECK_FALSE(r2);
    CHECK(r2.status == grove::register_status::already_registered);
    CHECK(r2.holder == a);
    CHECK(r2.str() == "{already_registered, " + a.str() + "}");
    // The holder itself asking again is refused the same way, naming itself.
    auto again = reg.register_self("mine", 0);
    CHECK(again);
    auto twice = reg.register_self("mine", 1);
    CHECK(twice.status == grove::register_status::already_registered);
    CHECK(twice.holder == grove::self());

    auto found = reg.find("db");
    REQUIRE(found);
    CHECK(found->who == a);
    CHECK(found->value == 1);
    CHECK(pids_of(reg.lookup("db")) == std::vector<grove::pid>{a});
    CHECK(reg.count() == 2);
    end_and_wait(a);
    end_and_wait(b);
  });
}

TEST_CASE("duplicate keys take many registrants, and the same process several times", "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  registry reg(n, {.keys = grove::keys::duplicate, .partitions = 4});
  n.run([&] {
    grove::register_result r;
    auto a = registrant(reg, "topic", 1, &r);
    CHECK(r);
    auto b = registrant(reg, "topic", 2, &r);
    CHECK(r);
    auto c = registrant(reg, std::vector<std::string>{"topic", "topic"}, 3, &r);
    CHECK(r);
    CHECK(reg.register_self("topic", 4));
    CHECK(reg.register_self("topic", 5));

    CHECK(values_of(reg.lookup("topic")) == std::vector<int>{1, 2, 3, 3, 4, 5});
    CHECK(reg.count("topic") == 6);
    CHECK(reg.values("topic", c) == std::vector<int>{3, 3});
    auto mine = reg.values("topic", grove::self());
    std::sort(mine.begin(), mine.end());
    CHECK(mine == std::vector<int>{4, 5});
    CHECK(reg.lookup("other").empty());
    CHECK_THROWS_AS(reg.find("topic"), std::logic_error);
    for (auto p : {a, b, c}) end_and_wait(p);
  });
}

TEST_CASE("match and count_match select the registrants of a key by a predicate on their value",
          "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  registry reg(n, {.keys = grove::keys::duplicate});
  n.run([&] {
    std::vector<grove::pid> ps;
    for (int v = 1; v <= 10; ++v) ps.push_back(registrant(reg, "workers", v));
    auto even = [](int v) { return v % 2 == 0; };
    CHECK(values_of(reg.match("workers", even)) == std::vector<int>{2, 4, 6, 8, 10});
    CHECK(reg.count_match("workers", even) == 5);
    CHECK(reg.count_match("workers", [](int v) { return v > 8; }) == 2);
    CHECK(reg.match("nobody", even).empty());
    for (auto p : ps) end_and_wait(p);
  });
}

TEST_CASE("count is the number of registrations over every key and partition", "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  registry reg(n, {.keys = grove::keys::unique, .partitions = 8});
  CHECK(reg.partitions() == 8);
  n.run([&] {
    CHECK(reg.count() == 0);
    for (int i = 0; i < 100; ++i) CHECK(reg.register_self(key("k", i), i));
    auto p = registrant(reg, std::vector<std::string>{"x", "y", "z"}, 0);
    CHECK(reg.count() == 103);
    for (int i = 0; i < 40; ++i) CHECK(reg.unregister_self(key("k", i)) == 1);
    CHECK(reg.count() == 63);
    end_and_wait(p);
    CHECK(reg.count() == 60);
  });
}

TEST_CASE("keys lists the keys of a process, once per registration", "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  registry reg(n, {.keys = grove::keys::duplicate, .partitions = 3});
  n.run([&] {
    auto p = registrant(reg, std::vector<std::string>{"a", "b", "a", "c"}, 7);
    auto ks = reg.keys(p);
    std::sort(ks.begin(), ks.end());
    CHECK(ks == std::vector<std::string>{"a", "a", "b", "c"});
    CHECK(reg.keys(grove::self()).empty());
    end_and_wait(p);
    CHECK(reg.keys(p).empty());
  });
}

TEST_CASE("unregister removes only the calling process's registrations under the key", "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  registry reg(n, {.keys = grove::keys::duplicate, .partitions = 2});
  n.run([&] {
    auto other = registrant(reg, "room", 1);
    CHECK(reg.register_self("room", 10));
    CHECK(reg.register_self("room", 11));
    CHECK(reg.register_self("room", 12));
    CHECK(reg.register_self("hall", 13));
    // unregister_match takes away only the matching registrations.
    CHECK(reg.unregister_match("room", [](int v) { return v == 11; }) == 1);
    CHECK(values_of(reg.lookup("room")) == std::vector<int>{1, 10, 12});
    CHECK(reg.unregister_self("room") == 2);
    CHECK(values_of(reg.lookup("room")) == std::vector<int>{1});
    CHECK(reg.unregister_self("room") == 0);
    CHECK(reg.keys(grove::self()) == std::vector<std::string>{"hall"});
    // The other process unregisters its own entry only.
    grove::send(other, drop{1});
    CHECK(grove::receive([](dropped d) { return d.n; }) == 1);
    CHECK(reg.lookup("room").empty());
    CHECK(reg.count() == 1);
    end_and_wait(other);
  });
}

TEST_CASE("update_value changes the caller's own value, in a unique registry only", "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  registry reg(n, {.keys = grove::keys::unique});
  registry dup(n, {.keys = grove::keys::duplicate});
  n.run([&] {
    auto other = registrant(reg, "theirs", 1);
    CHECK(reg.register_self("counter", 1));
    CHECK(reg.update_value("counter", [](int& v) { v += 41; }));
    CHECK(reg.find("counter")->value == 42);
    CHECK_FALSE(reg.update_value("theirs", [](int& v) { v = 0; }));
    CHECK(reg.find("theirs")->value == 1);
    CHECK_FALSE(reg.update_value("nobody", [](int& v) { v = 0; }));
    CHECK_THROWS_AS(dup.update_value("counter", [](int&) {}), std::logic_error);
    end_and_wait(other);
  });
}

TEST_CASE("dispatch runs the function in the caller over the registrants of a key, and not at all for none",
          "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  registry reg(n, {.keys = grove::keys::duplicate});
  n.run([&] {
    std::vector<grove::pid> ps;
    for (int v = 1; v <= 5; ++v) ps.push_back(registrant(reg, "jobs", v));
    int calls = 0;
    int sum = 0;
    grove::pid ran_in;
    auto given = reg.dispatch("jobs", [&](std::span<const registry::entry> es) {
      ++calls;
      ran_in = grove::self();
      for (auto& e : es) sum += e.value;
      // Outside the registry's locks: the function may use the registry.
      CHECK(reg.count("jobs") == 5);
    });
    CHECK(given == 5);
    CHECK(calls == 1);
    CHECK(sum == 15);
    CHECK(ran_in == grove::self());
    CHECK(reg.dispatch("nothing", [&](std::span<const registry::entry>) { ++calls; }) == 0);
    CHECK(calls == 1);
    for (auto p : ps) end_and_wait(p);
  });
}

TEST_CASE("publish to 1,000 subscribers reaches all of them", "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  grove::keyed_registry<std::string> topics(n, {.keys = grove::keys::duplicate, .partitions = 4});
  n.run([&] {
    const grove::pid me = grove::self();
    constexpr int subscribers = 1000;
    std::vector<grove::pid> subs;
    for (int i = 0; i < subscribers; ++i) {
      subs.push_back(grove::spawn([&topics, me] {
        grove::send(me, registered{grove::self(), topics.register_self("news")});
        grove::receive([&](const note& m) { grove::send(me, note{m.text + " read by " + grove::self().str()}); });
      }));
    }
    for (int i = 0; i < subscribers; ++i) CHECK(grove::receive([](registered r) { return r.result; }));
    CHECK(topics.count("news") == subscribers);
    CHECK(topics.publish("news", note{"extra"}) == subscribers);
    std::vector<std::string> replies;
    for (int i = 0; i < subscribers; ++i) {
      auto r = grove::receive_for(10s, [](note m) { return m.text; });
      REQUIRE(r);
      replies.push_back(*r);
    }
    std::sort(replies.begin(), replies.end());
    CHECK(std::unique(replies.begin(), replies.end()) == replies.end());  // each subscriber once
    CHECK(replies.front().starts_with("extra read by "));
    // They have all ended now: nobody is left to publish to.
    for (auto& p : subs) {
      auto r = grove::monitor(p);
      await_down(r);
    }
    CHECK(topics.publish("news", note{"late"}) == 0);
    CHECK(topics.count() == 0);
  });
}

TEST_CASE("publish sends once per registration: a process registered twice under the key gets two copies",
          "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  grove::keyed_registry<std::string> topics(n, {.keys = grove::keys::duplicate});
  n.run([&] {
    CHECK(topics.register_self("t"));
    CHECK(topics.register_self("t"));
    CHECK(topics.publish("t", note{"hi"}) == 2);
    CHECK(grove::receive_for(0s, [](note) {}));
    CHECK(grove::receive_for(0s, [](note) {}));
    CHECK_FALSE(grove::receive_for(0s, [](note) {}));
    CHECK(topics.publish("nobody", note{"hi"}) == 0);
  });
}

TEST_CASE("registry metadata: put_meta, meta and delete_meta", "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  registry reg(n);
  CHECK_FALSE(reg.meta<int>("shards"));
  reg.put_meta("shards", 16);
  reg.put_meta("owner", std::string("chat"));
  CHECK(reg.meta<int>("shards") == 16);
  CHECK(reg.meta<std::string>("owner") == "chat");
  reg.put_meta("shards", 32);  // replaces
  CHECK(reg.meta<int>("shards") == 32);
  CHECK_THROWS_AS(reg.meta<std::string>("shards"), std::bad_any_cast);
  CHECK(reg.delete_meta("shards"));
  CHECK_FALSE(reg.delete_meta("shards"));
  CHECK_FALSE(reg.meta<int>("shards"));
  // Usable from a process as well.
  n.run([&] { CHECK(reg.meta<std::string>("owner") == "chat"); });
}

TEST_CASE("a lookup never returns a process that has died: its entries are gone before it counts as dead",
          "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  // A probe installed before the registries: exit hooks run in the order they were added. The
  // runtime runs them once while the dying process still counts as alive (the registries remove
  // its entries then) and again once it no longer does; the probe looks at that second moment.
  struct probe {
    registry* uniq = nullptr;
    registry* dup = nullptr;
    grove::pid victim;
    bool ran = false;
    std::size_t raw_count = 99;  // entries still held
    bool found = true;
    std::size_t uniq_lookup = 1, uniq_count = 1, dup_lookup = 0, dup_match = 0, dup_count = 0, keys = 1, values = 1;
    std::size_t dispatched = 0;
    bool dispatched_victim = false;
    static void hook(void* ctx, const grove::pid& who) {
      auto& p = *static_cast<probe*>(ctx);
      if (who != p.victim || grove::alive(who)) return;
      p.ran = true;
      p.raw_count = p.uniq->count() + p.dup->count();
      p.found = p.uniq->find("k").has_value();
      p.uniq_lookup = p.uniq->lookup("k").size();
      p.uniq_count = p.uniq->count("k");
      p.dup_lookup = p.dup->lookup("k").size();
      p.dup_match = p.dup->match("k", [](int) { return true; }).size();
      p.dup_count = p.dup->count("k");
      p.keys = p.uniq->keys(who).size() + p.dup->keys(who).size();
      p.values = p.dup->values("k", who).size();
      p.dispatched = p.dup->dispatch("k", [&](std::span<const registry::entry> es) {
        for (auto& e : es) p.dispatched_victim |= e.who == who;
      });
    }
  } pr;
  n.add_exit_hook(&probe::hook, &pr);
  registry uniq(n, {.keys = grove::keys::unique, .partitions = 2});
  registry dup(n, {.keys = grove::keys::duplicate, .partitions = 2});
  pr.uniq = &uniq;
  pr.dup = &dup;
  n.run([&] {
    auto survivor = registrant(dup, "k", 2);
    const grove::pid me = grove::self();
    auto [victim, ref] = grove::spawn_monitor([&, me] {
      grove::receive([](go) {});
      (void)uniq.register_self("k", 1);
      (void)dup.register_self("k", 1);
      grove::send(me, ready{grove::self()});
      grove::receive([](go) {});
    });
    pr.victim = victim;
    grove::send(victim, go{});
    grove::receive([](ready) {});
    CHECK(uniq.count("k") == 1);
    CHECK(dup.count("k") == 2);
    grove::exit(victim, exit_reason::kill());
    await_down(ref);
    REQUIRE(pr.ran);
    CHECK(pr.raw_count == 1);  // only the survivor's
    CHECK_FALSE(pr.found);
    CHECK(pr.uniq_lookup == 0);
    CHECK(pr.uniq_count == 0);
    CHECK(pr.dup_lookup == 1);
    CHECK(pr.dup_match == 1);
    CHECK(pr.dup_count == 1);
    CHECK(pr.keys == 0);
    CHECK(pr.values == 0);
    CHECK(pr.dispatched == 1);
    CHECK_FALSE(pr.dispatched_victim);
    // And afterwards, of course.
    CHECK(uniq.count() + dup.count() == 1);
    CHECK(pids_of(dup.lookup("k")) == std::vector<grove::pid>{survivor});
    end_and_wait(survivor);
    CHECK(dup.publish("k", note{"anyone?"}) == 0);
  });
  n.remove_exit_hook(&probe::hook, &pr);
}

TEST_CASE("a registered process that crashes is gone from the registry when its monitor's down handler runs",
          "[behaviours][keyed_registry]") {
  // The monitor is a handler process: its on_message sees the down and queries the registry.
  struct watch {
    grove::pid target;
  };
  struct seen {
    std::size_t lookups;
    std::size_t count_all;
    bool key_free;
    exit_reason reason;
  };
  class down_checker final : public grove::process_handler {
   public:
    down_checker(registry& r, grove::pid to) : reg_(r), to_(to) {}
    void on_message(grove::message& m) override {
      grove::dispatch(
          m,
          [&](const watch& w) {
            grove::monitor(w.target);
            grove::send(to_, ready{});
          },
          [&](const grove::down& d) {
            // Taking the key over must work at once: the dead holder is not in the way.
            const bool free = static_cast<bool>(reg_.register_self("db", 99));
            grove::send(to_, seen{reg_.lookup("db").size() - (free ? 1 : 0), reg_.count(), free, d.reason});
          });
    }

   private:
    registry& reg_;
    grove::pid to_;
  };

  auto run_with = [](const char* how, std::function<void(grove::pid)> end_it, exit_reason expected) {
    INFO(how);
    grove::testing::deterministic_node n;
    registry reg(n, {.keys = grove::keys::unique, .partitions = 4});
    n.run([&] {
      auto checker = grove::spawn_handler(std::make_unique<down_checker>(reg, grove::self()));
      auto victim = registrant(reg, std::vector<std::string>{"db", "cache", "queue"}, 1);
      CHECK(reg.count() == 3);
      grove::send(checker, watch{victim});
      grove::receive([](ready) {});
      end_it(victim);
      auto s = grove::receive([](seen x) { return x; });
      CHECK(s.lookups == 0);
      CHECK(s.count_all == 1);  // only the checker's own "db"
      CHECK(s.key_free);
      CHECK(s.reason == expected);
      grove::exit(checker, exit_reason::kill());
    });
  };
  run_with(
      "crash", [](grove::pid p) { grove::send(p, crash{}); }, exit_reason::error("std::runtime_error: boom"));
  run_with(
      "kill", [](grove::pid p) { grove::exit(p, exit_reason::kill()); }, exit_reason::killed());
  run_with(
      "normal exit", [](grove::pid p) { grove::send(p, go{}); }, exit_reason::normal());
}

TEST_CASE("a key is free for a new registrant as soon as its holder's down arrives, on two schedulers",
          "[behaviours][keyed_registry]") {
  grove::node n({.schedulers = 2});
  registry reg(n, {.keys = grove::keys::unique, .partitions = 4});
  n.run([&] {
    constexpr int holders = 300;
    std::vector<std::pair<grove::pid, grove::monitor_ref>> hs;
    for (int i = 0; i < holders; ++i) {
      grove::register_result r;
      auto p = registrant(reg, key("job", i), i, &r);
      REQUIRE(r);
      hs.emplace_back(p, grove::monitor(p));
    }
    for (auto& [p, m] : hs) grove::send(p, crash{});
    // Downs arrive in any order; each names its key by its value.
    int bad = 0;
    for (int i = 0; i < holders; ++i) {
      auto d = grove::receive([](grove::down d) { return d; });
      auto it = std::find_if(hs.begin(), hs.end(), [&](auto& h) { return h.first == d.who; });
      REQUIRE(it != hs.end());
      const std::string k = key("job", it - hs.begin());
      if (!reg.lookup(k).empty() || reg.count(k) != 0) ++bad;
      auto again = reg.register_self(k, -1);
      if (!again) ++bad;
    }
    CHECK(bad == 0);
    CHECK(reg.count() == holders);  // all of them ours now
  });
}

TEST_CASE("registering a process that is not alive fails with noproc", "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  registry reg(n, {.keys = grove::keys::duplicate});
  n.run([&] {
    auto [p, r] = grove::spawn_monitor([] {});
    await_down(r);
    auto res = reg.register_process(p, "k", 1);
    CHECK(res.status == grove::register_status::noproc);
    CHECK(res.str() == "noproc");
    CHECK(reg.register_process(grove::pid{}, "k", 1).status == grove::register_status::noproc);
    CHECK(reg.count() == 0);
    CHECK(reg.lookup("k").empty());
    // A live one is fine, and is cleaned up at its death like any other.
    auto live = grove::spawn([] { grove::receive([](go) {}); });
    CHECK(reg.register_process(live, "k", 2));
    CHECK(pids_of(reg.lookup("k")) == std::vector<grove::pid>{live});
    end_and_wait(live);
    CHECK(reg.count() == 0);
  });
}

namespace {
// A value slow to move: it widens the window between marking a process as an owner and
// inserting its entry, where the process may die and its exit hook run too early to see it.
struct slow_value {
  int v = 0;
  explicit slow_value(int x) : v(x) {}
  slow_value(const slow_value&) = default;
  slow_value(slow_value&& o) noexcept : v(o.v) {
    volatile int x = 0;
    for (int k = 0; k < (v % 16) * 100; ++k) x = x + k;
  }
  slow_value& operator=(const slow_value&) = default;
  slow_value& operator=(slow_value&&) noexcept = default;
};
}  // namespace

TEST_CASE("a process that dies while another registers it leaves no entry behind", "[behaviours][keyed_registry]") {
  grove::node n({.schedulers = 2});
  grove::keyed_registry<std::string, slow_value> dup(n, {.keys = grove::keys::duplicate, .partitions = 2});
  grove::keyed_registry<std::string, slow_value> uniq(n, {.keys = grove::keys::unique, .partitions = 2});
  n.run([&] {
    constexpr int rounds = 3000;
    std::vector<grove::monitor_ref> refs;
    int ok = 0, noproc = 0;
    std::atomic<int> started{-1};
    for (int i = 0; i < rounds; ++i) {
      // A child that ends a little later each round. When it runs on the other scheduler, wait
      // for it to start (a child on ours cannot start before we suspend): its death then sweeps
      // across the registration below.
      auto [p, r] = grove::spawn_monitor([&started, i] {
        started.store(i);
        volatile int x = 0;
        for (int k = 0; k < (i % 64) * 20; ++k) x = x + k;
      });
      refs.push_back(r);
      const auto until = std::chrono::steady_clock::now() + 100us;
      while (started.load() != i && std::chrono::steady_clock::now() < until) {
      }
      for (auto* reg : {&dup, &uniq}) {
        auto res = reg->register_process(p, reg == &uniq ? key("u", i) : key("k", i % 8), slow_value(i));
        if (res) {
          ++ok;
        } else {
          CHECK(res.status == grove::register_status::noproc);
          ++noproc;
        }
      }
    }
    for (auto& r : refs) await_down(r);
    CHECK(dup.count() == 0);
    CHECK(uniq.count() == 0);
    for (int k = 0; k < 8; ++k) CHECK(dup.lookup(key("k", k)).empty());
    CHECK(ok + noproc == 2 * rounds);
  });
}

TEST_CASE("lookups from other threads never return a process whose death has been reported",
          "[behaviours][keyed_registry]") {
  grove::node n({.schedulers = 2});
  registry reg(n, {.keys = grove::keys::duplicate, .partitions = 4});
  constexpr int workers = 2000;
  constexpr int topics = 10;
  // dead_at[i]: the sequence number under which worker i's down was received (0: not yet).
  std::vector<std::atomic<long>> dead_at(workers);
  std::atomic<long> sequence{0};
  std::atomic<bool> stop{false};
  std::atomic<long> violations{0}, lookups{0};
  std::thread looker([&] {
    while (!stop.load()) {
      for (int t = 0; t < topics; ++t) {
        const long before = sequence.load();
        for (auto& e : reg.lookup(key("t", t))) {
          const long d = dead_at[e.value].load();
          if (d != 0 && d <= before) ++violations;
        }
        ++lookups;
      }
    }
  });
  n.run([&] {
    const grove::pid me = grove::self();
    std::vector<grove::pid> ps;
    for (int i = 0; i < workers; ++i) {
      auto [p, r] = grove::spawn_monitor([&reg, me, i] {
        (void)reg.register_self(key("t", i % topics), i);
        grove::send(me, ready{grove::self()});
        grove::receive([](crash) { throw std::runtime_error("boom"); });
      });
      ps.push_back(p);
    }
    for (int i = 0; i < workers; ++i) grove::receive([](ready) {});
    CHECK(reg.count() == workers);
    for (auto& p : ps) grove::send(p, crash{});
    for (int i = 0; i < workers; ++i) {
      auto d = grove::receive([](grove::down d) { return d; });
      const auto idx = std::find(ps.begin(), ps.end(), d.who) - ps.begin();
      dead_at[idx].store(sequence.fetch_add(1) + 1);
    }
    CHECK(reg.count() == 0);
  });
  stop = true;
  looker.join();
  CHECK(violations == 0);
  CHECK(lookups > 0);
}

TEST_CASE("the registrants of a key leave it one by one in any order and the rest stay intact",
          "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  registry reg(n, {.keys = grove::keys::duplicate, .partitions = 1});
  n.run([&] {
    struct proc {
      grove::pid who;
      std::vector<int> values;
    };
    std::vector<proc> ps;
    const grove::pid me = grove::self();
    for (int i = 0; i < 60; ++i) {
      std::vector<int> vs;
      for (int j = 0; j <= i % 3; ++j) vs.push_back(i * 10 + j);
      auto p = grove::spawn([&reg, me, vs] {
        for (int v : vs) (void)reg.register_self("t", v);
        grove::send(me, ready{});
        for (;;) {
          bool more =
              grove::receive([](go) { return false; },
                             [&](drop d) {
                               grove::send(me, dropped{reg.unregister_match("t", [&](int v) { return v == d.value; })});
                               return true;
                             });
          if (!more) return;
        }
      });
      grove::receive([](ready) {});
      ps.push_back({p, vs});
    }
    std::mt19937 rng(42);
    std::shuffle(ps.begin(), ps.end(), rng);
    auto expected = [&] {
      std::vector<int> all;
      for (auto& p : ps) all.insert(all.end(), p.values.begin(), p.values.end());
      std::sort(all.begin(), all.end());
      return all;
    };
    while (!ps.empty()) {
      auto& p = ps.back();
      if (p.values.size() > 1 && rng() % 2) {
        // Drop one of its registrations, then keep it for later.
        grove::send(p.who, drop{p.values.front()});
        CHECK(grove::receive([](dropped d) { return d.n; }) == 1);
        p.values.erase(p.values.begin());
        std::shuffle(ps.begin(), ps.end(), rng);
      } else {
        end_and_wait(p.who);
        ps.pop_back();
      }
      REQUIRE(values_of(reg.lookup("t")) == expected());
      REQUIRE(reg.count() == expected().size());
    }
  });
}

TEST_CASE("a process's entries are removed from every key and partition when it dies", "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  registry reg(n, {.keys = grove::keys::duplicate, .partitions = 8});
  n.run([&] {
    std::vector<std::string> keys;
    for (int i = 0; i < 50; ++i) keys.push_back(key("key", i));
    auto stays = registrant(reg, keys, 1);
    auto leaves = registrant(reg, keys, 2);
    CHECK(reg.count() == 100);
    end_and_wait(leaves);
    CHECK(reg.count() == 50);
    for (auto& k : keys) CHECK(pids_of(reg.lookup(k)) == std::vector<grove::pid>{stays});
    end_and_wait(stays);
    CHECK(reg.count() == 0);
  });
}

TEST_CASE("registration needs a process of the registry's node; queries work from any thread",
          "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  grove::testing::deterministic_node elsewhere;
  registry reg(n);
  CHECK_THROWS_AS((void)reg.register_self("k", 1), grove::not_in_process);
  CHECK_THROWS_AS(reg.unregister_self("k"), grove::not_in_process);
  CHECK_THROWS_AS(elsewhere.run([&] { (void)reg.register_self("k", 1); }), std::invalid_argument);
  auto holder = n.spawn([&] {
    (void)reg.register_self("k", 5);  // checked below, from this thread
    grove::receive([](go) {});
  });
  // From this plain thread: wait (with a deadline) for the registration, then query.
  REQUIRE(spin_until([&] { return reg.count() == 1; }));
  auto found = reg.find("k");
  REQUIRE(found);
  CHECK(found->who == holder);
  CHECK(found->value == 5);
  CHECK(reg.keys(holder) == std::vector<std::string>{"k"});
  grove::send(holder, go{});
  REQUIRE(spin_until([&] { return !grove::alive(holder); }));
  CHECK_FALSE(reg.find("k"));
}

TEST_CASE("a registry destroyed before its registrants die is no longer called at their deaths",
          "[behaviours][keyed_registry]") {
  grove::testing::deterministic_node n;
  n.run([&] {
    std::vector<grove::pid> ps;
    {
      registry reg(n, {.keys = grove::keys::duplicate, .partitions = 2});
      for (int i = 0; i < 10; ++i) ps.push_back(registrant(reg, "k", i));
      CHECK(reg.count() == 10);
    }
    registry after(n);  // may reuse the same memory
    for (auto& p : ps) end_and_wait(p);
    CHECK(after.count() == 0);
  });
}
