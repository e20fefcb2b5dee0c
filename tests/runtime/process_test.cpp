#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>

#include "support.hpp"

using namespace grove_test;

namespace {
struct a_msg {
  int v;
};
struct b_msg {
  std::string s;
};
struct c_msg {};
}  // namespace

TEST_CASE("spawn gives a live process with its own pid; self() names it", "[runtime][process]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    grove::spawn([me] { grove::send(me, ready{grove::self()}); });
    auto child = grove::receive([](const ready& r) { return r.who; });
    CHECK(child != me);
    CHECK(child.node() == me.node());
  });
}

TEST_CASE("messages from one sender arrive in the order sent", "[runtime][process]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    const grove::pid me = grove::self();
    constexpr int count = 20000;
    auto receiver = grove::spawn([me] {
      int expected = 0;
      bool ordered = true;
      for (int i = 0; i < count; ++i) {
        grove::receive([&](int v) {
          if (v != expected) ordered = false;
          ++expected;
        });
      }
      grove::send(me, ordered);
    });
    for (int i = 0; i < count; ++i) grove::send(receiver, i);
    CHECK(grove::receive([](bool ordered) { return ordered; }));
  });
}

TEST_CASE("order holds per sender when four senders interleave", "[runtime][process]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    const grove::pid me = grove::self();
    constexpr int per_sender = 5000;
    auto receiver = grove::spawn([me] {
      std::vector<int> next(4, 0);
      bool ordered = true;
      for (int i = 0; i < 4 * per_sender; ++i) {
        grove::receive([&](std::pair<int, int> m) {
          if (m.second != next[m.first]) ordered = false;
          next[m.first] = m.second + 1;
        });
      }
      grove::send(me, ordered);
    });
    for (int s = 0; s < 4; ++s) {
      grove::spawn([receiver, s] {
        for (int i = 0; i < per_sender; ++i) grove::send(receiver, std::pair<int, int>(s, i));
      });
    }
    CHECK(grove::receive([](bool ordered) { return ordered; }));
  });
}

TEST_CASE("a receiver woken from both threads never misses a wake-up and its count stays exact", "[runtime][mailbox]") {
  // Four senders on two schedulers each send a burst, then wait for the receiver's ack, so the
  // receiver keeps going from waiting to woken while pushes race its waits. A lost wake-up
  // shows as a receive_for that times out; a miscount as a length or counter that is off.
  grove::node n({.schedulers = 2});
  n.run([] {
    const grove::pid me = grove::self();
    constexpr int senders = 4, rounds = 2000, burst = 3;
    auto receiver = grove::spawn([me] {
      std::vector<int> next(senders, 0);
      bool ok = true;
      for (int i = 0; i < senders * rounds * burst && ok; ++i) {
        const bool got = grove::receive_for(10s, [&](std::pair<grove::pid, int> m) {
          const int s = m.second / (rounds * burst);
          if (m.second % (rounds * burst) != next[s]++) ok = false;
          if (next[s] % burst == 0) grove::send(m.first, c_msg{});
        });
        if (!got) ok = false;
      }
      auto info = grove::info(grove::self());
      grove::send(me, std::tuple<bool, std::size_t, std::uint64_t>(ok, info->mailbox_length, info->messages_in));
    });
    for (int s = 0; s < senders; ++s) {
      grove::spawn([receiver, s] {
        for (int r = 0; r < rounds; ++r) {
          for (int b = 0; b < burst; ++b) {
            grove::send(receiver, std::pair<grove::pid, int>(grove::self(), s * rounds * burst + r * burst + b));
          }
          if (!grove::receive_for(10s, [](c_msg) {})) return;
        }
      });
    }
    auto [ok, length, in] = grove::receive([](std::tuple<bool, std::size_t, std::uint64_t> r) { return r; });
    CHECK(ok);
    CHECK(length == 0);
    CHECK(in == std::uint64_t{senders} * rounds * burst);
  });
}

TEST_CASE("selective receive takes the first match and leaves the rest in order", "[runtime][receive]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    grove::send(me, a_msg{1});
    grove::send(me, b_msg{"x"});
    grove::send(me, a_msg{2});
    grove::send(me, c_msg{});
    grove::receive([](c_msg) {});
    CHECK(grove::receive([](b_msg m) { return m.s; }) == "x");
    CHECK(grove::receive([](a_msg m) { return m.v; }) == 1);
    CHECK(grove::receive([](a_msg m) { return m.v; }) == 2);
    CHECK_FALSE(grove::receive_for(0s, [](grove::message&) {}));
  });
}

TEST_CASE("receive by predicate skips messages the predicate rejects", "[runtime][receive]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    for (int i = 1; i <= 5; ++i) grove::send(me, i);
    auto even = grove::when<int>([](int v) { return v % 2 == 0; }, [](int v) { return v; });
    CHECK(grove::receive(even) == 2);
    CHECK(grove::receive(even) == 4);
    CHECK(grove::receive([](int v) { return v; }) == 1);
    CHECK(grove::receive([](int v) { return v; }) == 3);
    CHECK(grove::receive([](int v) { return v; }) == 5);
  });
}

TEST_CASE("the handler list is tried in order and a message& handler takes anything", "[runtime][receive]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    grove::send(me, std::string("text"));
    std::string seen =
        grove::receive([](int) { return std::string("int"); },
                       [](grove::message& m) { return std::string(m.is<std::string>() ? "any:string" : "any"); });
    CHECK(seen == "any:string");
  });
}

TEST_CASE("receive_for gives up after the timeout on the node's clock", "[runtime][receive][timer]") {
  grove::testing::deterministic_node n;
  n.run([&] {
    const grove::pid me = grove::self();
    auto waiter = grove::spawn([me] {
      grove::send(me, ready{grove::self()});
      auto r = grove::receive_for(5s, [](int v) { return v; });
      grove::send(me, r.has_value());
    });
    grove::receive([](ready) {});
    n.advance(4999ms);
    CHECK_FALSE(grove::receive_for(0s, [](bool) {}));  // nothing yet: the timeout has not passed
    n.advance(1ms);
    CHECK_FALSE(grove::receive([](bool got) { return got; }));
    (void)waiter;
  });
}

TEST_CASE("a message that arrives before the timeout is received and the timeout never fires",
          "[runtime][receive][timer]") {
  grove::testing::deterministic_node n;
  n.run([&] {
    const grove::pid me = grove::self();
    auto waiter = grove::spawn([me] {
      auto r = grove::receive_for(5s, [](int v) { return v; });
      grove::send(me, r.value_or(-1));
      // A second receive must not see a stale timeout of the first.
      auto r2 = grove::receive_for(10s, [](int v) { return v; });
      grove::send(me, r2.value_or(-1));
    });
    grove::send(waiter, 7);
    CHECK(grove::receive([](int v) { return v; }) == 7);
    n.advance(6s);  // past the first receive's deadline, before the second's
    grove::send(waiter, 8);
    CHECK(grove::receive([](int v) { return v; }) == 8);
  });
}

TEST_CASE("a timeout past the clock's range never fires instead of firing at once", "[runtime][receive][timer]") {
  // Deadlines saturate: now + duration::max() once wrapped to a deadline in the past.
  for (grove::duration huge : {grove::duration::max() - 1ns, grove::duration(std::chrono::hours(2562047))}) {
    grove::testing::deterministic_node n;
    n.run([&] {
      const grove::pid me = grove::self();
      auto waiter = grove::spawn([me, huge] {
        grove::send(me, ready{grove::self()});
        auto r = grove::receive_for(huge, [](int v) { return v; });
        grove::send(me, r.value_or(-1));
      });
      grove::receive([](ready) {});
      n.advance(std::chrono::hours(24 * 365 * 100));
      CHECK_FALSE(grove::receive_for(0s, [](int) {}));  // still waiting after a century
      grove::send(waiter, 7);
      CHECK(grove::receive([](int v) { return v; }) == 7);
    });
  }
}

namespace {
class counter final : public grove::process_handler {
 public:
  counter(grove::pid owner, std::atomic<int>* destroyed) : owner_(owner), destroyed_(destroyed) {}
  ~counter() override { ++*destroyed_; }
  void on_start() override { grove::send(owner_, std::string("started")); }
  void on_message(grove::message& m) override {
    grove::dispatch(
        m, [&](int add) { total_ += add; }, [&](const ping& p) { grove::send(p.from, pong{total_}); },
        [&](const std::string& s) {
          if (s == "crash") throw std::runtime_error("counter crashed");
        });
  }

 private:
  grove::pid owner_;
  std::atomic<int>* destroyed_;
  int total_ = 0;
};
}  // namespace

TEST_CASE("a handler process runs on_start, then handles each message in order", "[runtime][handler]") {
  std::atomic<int> destroyed{0};
  grove::node n({.schedulers = 2});
  n.run([&] {
    const grove::pid me = grove::self();
    auto c = grove::spawn_handler(std::make_unique<counter>(me, &destroyed), {.label = "counter"});
    CHECK(grove::receive([](const std::string& s) { return s; }) == "started");
    for (int i = 1; i <= 100; ++i) grove::send(c, i);
    grove::send(c, ping{me, 0});
    CHECK(grove::receive([](pong p) { return p.n; }) == 5050);
    auto info = grove::info(c);
    REQUIRE(info);
    CHECK(info->handler_form);
    CHECK(info->label == "counter");
    CHECK(info->stack_size == 0);
    CHECK(info->messages_in == 101);
    CHECK(info->messages_out == 2);  // "started" and the pong
  });
  n.stop();
  CHECK(destroyed == 1);  // stopped with the node; its state was destroyed
}

TEST_CASE("an exception in a handler ends the handler process with the exception as reason", "[runtime][handler]") {
  std::atomic<int> destroyed{0};
  grove::testing::deterministic_node n;
  n.run([&] {
    const grove::pid me = grove::self();
    auto [c, r] = grove::spawn_handler_monitor(std::make_unique<counter>(me, &destroyed));
    grove::receive([](const std::string&) {});
    grove::send(c, std::string("crash"));
    auto d = await_down(r);
    CHECK(d.reason == grove::exit_reason::error("std::runtime_error: counter crashed"));
    CHECK(destroyed == 1);
    CHECK_FALSE(grove::alive(c));
  });
}

namespace {
// Waits for `go` inside its handler (a nested receive keeps the fiber) and answers pings.
class nested_waiter final : public grove::process_handler {
 public:
  void on_message(grove::message& m) override {
    grove::dispatch(
        m,
        [&](const ready& r) {
          grove::receive([](go) {});
          grove::send(r.who, std::string("released"));
        },
        [&](const ping& p) { grove::send(p.from, pong{p.n}); });
  }
};
class echo final : public grove::process_handler {
 public:
  void on_message(grove::message& m) override {
    grove::dispatch(m, [](const ping& p) { grove::send(p.from, pong{p.n}); });
  }
};
}  // namespace

TEST_CASE("a handler suspended in a nested receive keeps its place while others run", "[runtime][handler]") {
  grove::testing::deterministic_node n;  // one scheduler thread: others can run only if the waiter suspends
  n.run([] {
    const grove::pid me = grove::self();
    auto w = grove::spawn_handler(std::make_unique<nested_waiter>());
    auto e = grove::spawn_handler(std::make_unique<echo>());
    grove::send(w, ready{me});
    grove::send(w, ping{me, 1});  // queued behind the nested receive
    for (int i = 0; i < 10; ++i) {
      grove::send(e, ping{me, 100 + i});
      CHECK(grove::receive(grove::when<pong>([i](pong p) { return p.n == 100 + i; }, [](pong p) { return p.n; })) ==
            100 + i);
    }
    CHECK(grove::receive_for(0s, [](const std::string&) {}) == false);
    grove::send(w, go{});
    CHECK(grove::receive([](const std::string& s) { return s; }) == "released");
    CHECK(grove::receive([](pong p) { return p.n; }) == 1);
  });
}

TEST_CASE("many handler processes on one thread all get their turn", "[runtime][handler]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    std::vector<grove::pid> echoes;
    for (int i = 0; i < 1000; ++i) echoes.push_back(grove::spawn_handler(std::make_unique<echo>()));
    for (int round = 0; round < 3; ++round) {
      for (int i = 0; i < 1000; ++i) grove::send(echoes[i], ping{me, i});
      long sum = 0;
      for (int i = 0; i < 1000; ++i) sum += grove::receive([](pong p) { return p.n; });
      CHECK(sum == 999L * 1000 / 2);
    }
  });
}

namespace {
// Parks in a sleep (a timeout is a signal, it takes no mailbox room), then reports what it has.
std::vector<int> fill_and_collect(grove::testing::deterministic_node& n, grove::overflow_policy policy,
                                  std::vector<grove::send_result>* results, bool* threw) {
  return n.run([&] {
    const grove::pid me = grove::self();
    auto p = grove::spawn(
        [me] {
          grove::send(me, ready{grove::self()});
          grove::sleep(1s);
          std::vector<int> got;
          while (grove::receive_for(0s, [&](int v) { got.push_back(v); })) {
          }
          grove::send(me, got);
        },
        {.mailbox_capacity = 2, .overflow = policy});
    grove::receive([](ready) {});
    for (int i = 1; i <= 3; ++i) {
      try {
        results->push_back(grove::send(p, i));
      } catch (const grove::mailbox_full&) {
        *threw = true;
      }
    }
    auto info = grove::info(p);
    CHECK(info->mailbox_length == 2);
    n.advance(1s);
    return grove::receive([](std::vector<int> v) { return v; });
  });
}
}  // namespace

TEST_CASE("a full mailbox with drop_newest drops the message being sent", "[runtime][mailbox]") {
  grove::testing::deterministic_node n;
  std::vector<grove::send_result> results;
  bool threw = false;
  CHECK(fill_and_collect(n, grove::overflow_policy::drop_newest, &results, &threw) == std::vector<int>{1, 2});
  CHECK(results ==
        std::vector<grove::send_result>{grove::send_result::ok, grove::send_result::ok, grove::send_result::dropped});
  CHECK_FALSE(threw);
}

TEST_CASE("a full mailbox with drop_oldest drops the oldest unreceived message", "[runtime][mailbox]") {
  grove::testing::deterministic_node n;
  std::vector<grove::send_result> results;
  bool threw = false;
  CHECK(fill_and_collect(n, grove::overflow_policy::drop_oldest, &results, &threw) == std::vector<int>{2, 3});
  CHECK_FALSE(threw);
}

TEST_CASE("a full mailbox with fail makes send throw mailbox_full", "[runtime][mailbox]") {
  grove::testing::deterministic_node n;
  std::vector<grove::send_result> results;
  bool threw = false;
  CHECK(fill_and_collect(n, grove::overflow_policy::fail, &results, &threw) == std::vector<int>{1, 2});
  CHECK(results.size() == 2);
  CHECK(threw);
}

TEST_CASE("drop_oldest also drops from messages already drained into the queue", "[runtime][mailbox]") {
  grove::testing::deterministic_node n;
  n.run([&] {
    const grove::pid me = grove::self();
    auto p = grove::spawn(
        [me] {
          grove::send(me, ready{grove::self()});
          // Drains 1 and 2 into its queue while waiting for a string that never comes in time.
          grove::receive_for(1s, [](const std::string&) {});
          grove::send(me, ready{grove::self()});
          grove::receive([](go) {});  // `go` itself makes room by dropping the oldest
          std::vector<int> got;
          while (grove::receive_for(0s, [&](int v) { got.push_back(v); })) {
          }
          grove::send(me, got);
        },
        {.mailbox_capacity = 2, .overflow = grove::overflow_policy::drop_oldest});
    grove::receive([](ready) {});
    grove::send(p, 1);
    grove::send(p, 2);
    n.advance(1s);
    grove::receive([](ready) {});
    grove::send(p, 3);     // drops 1
    grove::send(p, go{});  // drops 2
    CHECK(grove::receive([](std::vector<int> v) { return v; }) == std::vector<int>{3});
  });
}

TEST_CASE("a drop_oldest mailbox flooded from two threads never shows more than its capacity", "[runtime][mailbox]") {
  // Issue 16 item 11: a capacity of 1,000 once held up to 1,997 messages.
  grove::node n({.schedulers = 2});
  n.run([] {
    constexpr std::size_t capacity = 1000;
    constexpr int per_sender = 20000;
    const grove::pid me = grove::self();
    auto receiver = grove::spawn(
        [me] {
          grove::receive([](go) {});
          std::size_t most = 0;
          std::vector<int> last(2, -1);
          bool ordered = true;
          int done = 0;
          while (done < 2) {
            grove::receive([&](std::pair<int, int> m) {
              if (m.second == -1) {
                ++done;
                return;
              }
              ordered = ordered && m.second > last[m.first];
              last[m.first] = m.second;
            });
            most = std::max(most, grove::info(grove::self())->mailbox_length);
          }
          grove::send(me, std::make_pair(most, ordered));
        },
        {.mailbox_capacity = capacity, .overflow = grove::overflow_policy::drop_oldest});
    std::vector<grove::pid> senders;
    for (int s = 0; s < 2; ++s) {
      senders.push_back(grove::spawn([receiver, s] {
        for (int i = 0; i < per_sender; ++i) grove::send(receiver, std::make_pair(s, i));
        grove::send(receiver, go{});  // only the first go is taken: the rest may be dropped
      }));
    }
    // A looker beside the flood: what info shows never passes the capacity.
    std::size_t seen_most = 0;
    while (std::any_of(senders.begin(), senders.end(), [](const grove::pid& p) { return grove::alive(p); })) {
      if (auto i = grove::info(receiver)) seen_most = std::max(seen_most, i->mailbox_length);
      grove::yield();
    }
    CHECK(seen_most <= capacity);
    for (int s = 0; s < 2; ++s) grove::send(receiver, std::make_pair(s, -1));
    auto [most, ordered] = grove::receive([](std::pair<std::size_t, bool> r) { return r; });
    CHECK(most <= capacity);
    CHECK(ordered);  // what is kept stays in each sender's order
  });
}

TEST_CASE("a process with a long backlog yields its thread to the others on it", "[runtime][receive][turn]") {
  // Issue 16 item 7: receive did not suspend while mail was queued, so a backlog kept the
  // thread until it was empty. Now a turn ends after at most 1,024 receives or 1 ms.
  grove::node n({.schedulers = 1});
  n.run([] {
    constexpr int backlog = 100000;
    const grove::pid me = grove::self();
    std::atomic<bool> other_ran{false};
    auto worker = grove::spawn([&, me] {
      grove::receive([](go) {});  // the backlog is queued behind it
      grove::send(me, ready{grove::self()});
      int seen_at = -1;
      for (int i = 0; i < backlog; ++i) {
        grove::receive([](int) {});
        if (seen_at < 0 && other_ran.load()) seen_at = i;
      }
      grove::send(me, seen_at);
    });
    // Sent from outside the node, where a send never waits for room (a process sending them
    // would wait for the worker at every 1,024: back-pressure), so the backlog is whole.
    std::thread([worker] {
      grove::send(worker, go{});
      for (int i = 0; i < backlog; ++i) grove::send(worker, i);
    }).join();
    grove::receive([](ready) {});  // only runs once the worker's turn ends
    grove::spawn([&] { other_ran = true; });
    const int seen_at = grove::receive([](int v) { return v; });
    CHECK(seen_at >= 0);
    CHECK(seen_at < 4 * 1024);
  });
}

TEST_CASE("a process flooding another waits for it: the backlog stays near the mark", "[runtime][send][turn]") {
  // Fan-in: a sender never suspended by a send could queue without bound on one thread (its
  // receiver runs only when it stops). As Erlang charges a sender for a long receiver queue, a
  // send that joins a backlog of 1,024 waits until the receiver has had its turn.
  grove::node n({.schedulers = 1});
  n.run([] {
    constexpr int total = 200000;
    const grove::pid me = grove::self();
    auto receiver = grove::spawn([me] {
      std::size_t most = 0;
      for (int i = 0; i < total; ++i) {
        grove::receive([](int) {});
        most = std::max(most, grove::info(grove::self())->mailbox_length);
      }
      grove::send(me, most);
    });
    for (int s = 0; s < 4; ++s) {
      grove::spawn([receiver] {
        for (int i = 0; i < total / 4; ++i) grove::send(receiver, i);
      });
    }
    const auto most = grove::receive([](std::size_t m) { return m; });
    CHECK(most >= 1024);     // the mark was reached
    CHECK(most < 8 * 1024);  // each sender stops at it: without back-pressure, 50,000 and more
  });
}

TEST_CASE("a sender flooding a receiver that waits for something else is not held up", "[runtime][send][receive]") {
  // The receiver waits in a selective receive while the flood piles up unmatched behind it: it
  // has had its turn, so the flooder goes on and its last message, the one awaited, arrives. A
  // sender that asked for room just before the receiver waited used to wait for a turn that
  // would not come (the room request is now in the mailbox's head word, seen before a wait).
  for (unsigned schedulers : {1u, 2u}) {
    grove::node n({.schedulers = schedulers});
    n.run([] {
      constexpr int flood = 20000;
      const grove::pid me = grove::self();
      auto receiver = grove::spawn([me] {
        grove::receive([](go) {});
        grove::send(me, grove::info(grove::self())->mailbox_length);
      });
      auto flooder = grove::spawn([receiver] {
        for (int i = 0; i < flood; ++i) grove::send(receiver, i);
        grove::send(receiver, go{});
      });
      const auto m = grove::monitor(receiver);
      const auto left = grove::receive_for(10s, [](std::size_t l) { return l; });
      REQUIRE(left.has_value());
      CHECK(*left == std::size_t{flood});  // every message of the flood, still there
      CHECK(grove_test::await_down(m).reason.is_normal());
      grove::exit(flooder, grove::exit_reason::kill());
    });
  }
}

TEST_CASE("a mailbox capacity above what a mailbox counts is refused at spawn", "[runtime][mailbox]") {
  grove::node n({.schedulers = 1});
  n.run([] {
    auto body = [] { grove::receive([](go) {}); };
    CHECK_THROWS_AS(grove::spawn(body, {.mailbox_capacity = grove::max_mailbox_capacity + 1}), std::invalid_argument);
    auto p = grove::spawn(body, {.mailbox_capacity = grove::max_mailbox_capacity});
    CHECK(grove::send(p, go{}) == grove::send_result::ok);
  });
}

TEST_CASE("a sender waiting for room still dies of an exit signal at once", "[runtime][send][signals]") {
  grove::node n({.schedulers = 1});
  n.run([] {
    // A receiver that never receives: its backlog never shrinks.
    auto sink = grove::spawn([] { grove::receive([](go) {}); });
    auto flooder = grove::spawn([sink] {
      for (;;) grove::send(sink, 1);
    });
    const auto m = grove::monitor(flooder);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (grove::info(sink)->mailbox_length < 2048 && std::chrono::steady_clock::now() < deadline) grove::yield();
    REQUIRE(grove::info(sink)->mailbox_length >= 2048);  // the flooder lets others run
    grove::exit(flooder, grove::exit_reason::other("stop"));
    const auto d = grove::receive([](const grove::down& d) { return d; });
    CHECK(d.ref == m);
    CHECK(d.reason == grove::exit_reason::other("stop"));
    grove::send(sink, go{});
  });
}

TEST_CASE("two processes waking each other do not starve a timer wake-up on their thread", "[runtime][turn]") {
  // Found by bench/soak: the ready queue's turn always went to Boost's dispatcher, whose own
  // pick took the run-next slot again, so a sleeping process never ran again.
  grove::node n({.schedulers = 1});
  std::atomic<bool> stop{false};
  n.run([&] {
    grove::pid echo = grove::spawn([&] {
      while (!stop.load()) grove::receive([](grove::pid from) { grove::send(from, 1); });
    });
    auto pinger = grove::spawn([&, echo] {
      while (!stop.load()) {
        grove::send(echo, grove::self());
        grove::receive([](int) {});
      }
      grove::send(echo, grove::self());  // lets echo see `stop`
    });
    grove::sleep(20ms);  // returns only if the pair lets this process run
    stop = true;
    await_down(grove::monitor(pinger));
  });
}

TEST_CASE("sending to a dead pid is a silent no-op and a stale pid stays dead", "[runtime][pid]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto [p, r] = grove::spawn_monitor([] {});
    await_down(r);
    CHECK_FALSE(grove::alive(p));
    CHECK(grove::send(p, 1) == grove::send_result::dead);
    // Reuse slots many times over; the stale pid must never come back to life.
    for (int round = 0; round < 3; ++round) {
      std::vector<grove::monitor_ref> refs;
      std::vector<grove::pid> pids;
      for (int i = 0; i < 1500; ++i) {
        auto [q, qr] = grove::spawn_monitor([] { grove::receive([](go) {}); });
        pids.push_back(q);
        refs.push_back(qr);
      }
      for (auto& q : pids) CHECK(q != p);
      CHECK_FALSE(grove::alive(p));
      for (auto& q : pids) grove::send(q, go{});
      for (auto& rr : refs) await_down(rr);
    }
    CHECK(grove::send(p, 1) == grove::send_result::dead);
  });
}

TEST_CASE("process info reports status, mailbox, counters, links, monitors and labels", "[runtime][info]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    auto p = grove::spawn(
        [me] {
          grove::trap_exit(true);
          grove::send(me, ready{grove::self()});
          grove::receive([](go) {});
        },
        {.stack_size = 32 * 1024, .label = "probe"});
    grove::receive([](ready) {});
    grove::link(p);
    auto m = grove::monitor(p);
    grove::send(p, 1);
    grove::send(p, 2);
    auto i = grove::info(p);
    REQUIRE(i);
    CHECK(i->pid == p);
    CHECK(i->label == "probe");
    CHECK(i->status == grove::process_status::waiting);
    CHECK_FALSE(i->handler_form);
    CHECK(i->mailbox_length == 2);
    CHECK(i->messages_in == 2);
    CHECK(i->messages_out == 1);
    CHECK(i->trap_exit);
    CHECK(i->stack_size == 32 * 1024);
    CHECK(i->links == std::vector<grove::pid>{me});
    CHECK(i->monitored_by == std::vector<grove::pid>{me});
    auto mine = grove::info(me);
    CHECK(mine->status == grove::process_status::running);
    CHECK(mine->monitors == std::vector<grove::pid>{p});
    grove::unlink(p);
    grove::send(p, go{});
    await_down(m);
    CHECK_FALSE(grove::info(p));
  });
}

TEST_CASE("a process that computes without suspending shows how long it has been running", "[runtime][info]") {
  grove::node n({.schedulers = 2});
  std::atomic<bool> release{false};
  n.run([&] {
    // The driver runs on scheduler 0; the hog is placed on scheduler 1.
    auto hog = grove::spawn(
        [&] {
          while (!release.load()) {
          }
        },
        {.label = "hog"});
    bool seen = spin_until([&] {
      auto i = grove::info(hog);
      return i && i->status == grove::process_status::running && i->running_for >= 20ms;
    });
    release = true;
    CHECK(seen);
  });
}

namespace {
// Two body processes that spin, without suspending, until both run at once: with two
// scheduler threads this holds only if one of them was stolen by the other thread. Each then
// reports (who, met, its scheduler) and answers `pid` requests with `where` it runs, until `go`.
// With `poke`, the first sends the second a request for the driver right after they met, from
// its own thread, before it suspends.
struct where {
  int who;
  int scheduler;
};
struct met {
  int who;
  bool both;
  int scheduler;
};
std::pair<grove::pid, grove::pid> spawn_rendezvous(grove::placement first, grove::placement second,
                                                   std::atomic<int>& arrived, std::vector<met>& report,
                                                   bool poke = false) {
  const grove::pid me = grove::self();
  auto second_pid = std::make_shared<grove::pid>();
  auto body = [me, &arrived, poke, second_pid](int who) {
    return [me, &arrived, who, poke, second_pid] {
      ++arrived;
      const bool both = spin_until([&] { return arrived.load() == 2; });
      grove::send(me, met{who, both, grove::info(grove::self())->scheduler});
      if (poke && who == 0) grove::send(*second_pid, me);
      bool running = true;
      while (running) {
        grove::receive(
            [&](grove::pid to) {
              grove::send(to, where{who, grove::info(grove::self())->scheduler});
            },
            [&](go) { running = false; });
      }
    };
  };
  // The second is spawned before the first can run: the driver does not suspend in between.
  auto a = grove::spawn(body(0), {.placement = first});
  auto b = grove::spawn(body(1), {.placement = second});
  *second_pid = b;
  report.resize(2);
  for (int i = 0; i < 2; ++i) {
    auto m = grove::receive([](met m) { return m; });
    CHECK(m.both);
    report[static_cast<std::size_t>(m.who)] = m;
  }
  return {a, b};
}
}  // namespace

TEST_CASE("an idle scheduler thread steals queued processes: two that spin run at once", "[runtime][placement]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    std::atomic<int> arrived{0};
    std::vector<met> report;
    auto [a, b] = spawn_rendezvous(grove::placement::spread, grove::placement::spread, arrived, report);
    CHECK(report[0].scheduler != report[1].scheduler);
    grove::send(a, go{});
    grove::send(b, go{});
  });
}

TEST_CASE("a body process woken by another runs next on the waker's thread", "[runtime][placement]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    std::atomic<int> arrived{0};
    std::vector<met> report;
    auto [a, b] = spawn_rendezvous(grove::placement::spread, grove::placement::spread, arrived, report);
    // a and b ran on different threads. Each request below wakes one of them from this
    // process, which then waits for the answer: the woken one runs on this process's thread.
    int together = 0;
    constexpr int rounds = 200;
    for (int i = 0; i < rounds; ++i) {
      grove::send(i % 2 ? a : b, grove::self());
      auto w = grove::receive([](where w) { return w; });
      if (w.scheduler == grove::info(grove::self())->scheduler) ++together;
    }
    // Another thread may steal the woken process only if this one stalls for tens of
    // microseconds between its send and its receive: nearly never.
    CHECK(together > rounds * 9 / 10);
    grove::send(a, go{});
    grove::send(b, go{});
  });
}

TEST_CASE("a pinned body process stays on its thread when woken from another", "[runtime][placement]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    std::atomic<int> arrived{0};
    std::vector<met> report;
    // The pinned one starts where it is spawned and spins there, so the other is stolen by the
    // other thread; from there it wakes the pinned one, which must answer from its own thread.
    auto [a, b] = spawn_rendezvous(grove::placement::spread, grove::placement::pinned, arrived, report, true);
    REQUIRE(report[0].scheduler != report[1].scheduler);
    auto w = grove::receive([](where w) { return w; });
    CHECK(w.who == 1);
    CHECK(w.scheduler == report[1].scheduler);
    for (int i = 0; i < 50; ++i) {
      grove::send(b, grove::self());
      CHECK(grove::receive([](where w) { return w.scheduler; }) == report[1].scheduler);
    }
    grove::send(a, go{});
    grove::send(b, go{});
  });
}
