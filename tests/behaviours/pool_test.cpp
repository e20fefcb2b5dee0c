// Pools (poolboy's semantics), tasks (Elixir's Task) and partition supervisors.
#include <set>
#include <string>

#include <catch2/catch.hpp>
#include <grove/behaviours/partition_supervisor.hpp>
#include <grove/behaviours/pool.hpp>
#include <grove/behaviours/task.hpp>
#include <grove/grove.hpp>

#include "../runtime/support.hpp"

using namespace grove_test;
using grove::exit_reason;

namespace {

struct work {
  int x = 0;
};
struct boom {};

class pooled final : public grove::gen_server<pooled> {
 public:
  using handles = grove::types<work, boom>;
  int handle_call(const work& w, const grove::from&) { return w.x * 2; }
  void handle_cast(const boom&) { throw std::runtime_error("worker crashed"); }
};

grove::pool_options opts(std::size_t size, std::size_t overflow, grove::pool_strategy s = grove::pool_strategy::lifo) {
  grove::pool_options o;
  o.size = size;
  o.max_overflow = overflow;
  o.strategy = s;
  o.worker = [] { return grove::start_link(std::make_unique<pooled>()); };
  return o;
}

std::size_t mailbox() { return grove::info(grove::self())->mailbox_length; }

}  // namespace

TEST_CASE("pool: checkout and checkin, lifo and fifo", "[pool]") {
  grove::node n({.schedulers = 1});
  n.run([] {
    auto lifo = grove::start_pool(opts(3, 0), {.name = "lifo"}).value();
    auto a = *grove::checkout("lifo");
    CHECK(grove::call<int>(a, work{21}) == 42);
    grove::checkin("lifo", a);
    CHECK(*grove::checkout("lifo") == a);  // the last one in is the first out
    auto fifo = grove::start_pool(opts(3, 0, grove::pool_strategy::fifo), {.name = "fifo"}).value();
    auto b = *grove::checkout("fifo");
    grove::checkin("fifo", b);
    CHECK(*grove::checkout("fifo") != b);  // it went to the back of the line
    auto st = grove::pool_status_of("fifo");
    CHECK(st.busy == 1);
    CHECK(st.idle == 2);
    CHECK(st.state == "ready");
    grove::stop(lifo);
    grove::stop(fifo);
  });
}

TEST_CASE("pool: overflow workers are started on demand and stopped when checked in; full refuses", "[pool]") {
  grove::node n({.schedulers = 1});
  n.run([] {
    auto p = grove::start_pool(opts(1, 1), {.name = "p"}).value();
    auto a = *grove::checkout("p");
    auto b = *grove::checkout("p");  // overflow
    CHECK(a != b);
    CHECK(grove::pool_status_of("p").state == "full");
    CHECK(grove::pool_status_of("p").overflow == 1);
    CHECK_FALSE(grove::checkout("p", false));  // non-blocking: full
    auto m = grove::monitor(b);
    grove::checkin("p", b);
    CHECK(await_down(m).reason == exit_reason::shutdown());  // an overflow worker is dismissed
    auto st = grove::pool_status_of("p");
    CHECK(st.overflow == 0);
    CHECK(st.busy == 1);
    grove::checkin("p", a);
    CHECK(grove::pool_status_of("p").idle == 1);
    grove::stop(p);
  });
}

TEST_CASE("pool: a blocking checkout waits for a checkin, or times out leaving nothing behind", "[pool]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    auto p = grove::start_pool(opts(1, 0), {.name = "p"}).value();
    const grove::pid me = grove::self();
    auto holder = grove::spawn([me] {
      auto w = *grove::checkout("p");
      grove::send(me, ready{w});
      grove::receive([](go) {});
      grove::checkin("p", w);
      grove::receive([](go) {});
    });
    auto held = grove::receive_for(10s, [](ready r) { return r.who; });
    REQUIRE(held);
    CHECK_THROWS_AS(grove::checkout("p", true, 50ms), grove::call_error);
    auto st = grove::pool_status_of("p");
    CHECK(st.waiting == 0);
    CHECK(st.busy == 1);
    // Now a blocking checkout that is answered by the holder's checkin.
    auto waiter = grove::spawn([me] { grove::send(me, ready{*grove::checkout("p", true, 10s)}); });
    REQUIRE(spin_until([] { return grove::pool_status_of("p").waiting == 1; }));
    grove::send(holder, go{});
    auto got = grove::receive_for(10s, [](ready r) { return r.who; });
    REQUIRE(got);
    CHECK(*got == *held);
    CHECK(mailbox() == 0);  // the timed-out checkout left no late reply here
    grove::send(holder, go{});
    (void)waiter;
    grove::stop(p);
  });
}

TEST_CASE("pool: a borrower that dies holding a worker gets it killed and replaced", "[pool]") {
  grove::node n({.schedulers = 1});
  n.run([] {
    auto p = grove::start_pool(opts(2, 0), {.name = "p"}).value();
    const grove::pid me = grove::self();
    auto [borrower, bm] = grove::spawn_monitor([me] {
      grove::transaction("p", [me](grove::pid w) {
        grove::send(me, ready{w});
        grove::receive([](go) {});  // killed in the middle of its transaction
        return 0;
      });
    });
    auto w = grove::receive_for(10s, [](ready r) { return r.who; });
    REQUIRE(w);
    auto wm = grove::monitor(*w);
    grove::exit(borrower, exit_reason::kill());
    await_down(bm);
    CHECK(await_down(wm).reason == exit_reason::killed());
    REQUIRE(spin_until([] { return grove::pool_status_of("p").idle == 2; }));
    auto st = grove::pool_status_of("p");
    CHECK(st.busy == 0);
    std::set<grove::pid> now{*grove::checkout("p"), *grove::checkout("p")};
    CHECK_FALSE(now.count(*w));
    grove::stop(p);
  });
}

TEST_CASE("pool: transaction checks in after a result and after an exception; a crashed worker is replaced", "[pool]") {
  grove::node n({.schedulers = 1});
  n.run([] {
    auto p = grove::start_pool(opts(1, 0), {.name = "p"}).value();
    CHECK(grove::transaction("p", [](grove::pid w) { return grove::call<int>(w, work{5}); }) == 10);
    CHECK(grove::pool_status_of("p").idle == 1);
    CHECK_THROWS_AS(grove::transaction("p", [](grove::pid) -> int { throw std::runtime_error("no"); }),
                    std::runtime_error);
    CHECK(grove::pool_status_of("p").idle == 1);
    auto w = *grove::checkout("p");
    auto m = grove::monitor(w);
    grove::cast(w, boom{});
    await_down(m);
    REQUIRE(spin_until([] { return grove::pool_status_of("p").idle == 1; }));
    CHECK(grove::pool_status_of("p").busy == 0);
    grove::stop(p);
  });
}

TEST_CASE("tasks: async and await, with nothing left in the mailbox", "[task]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    auto t = grove::async([] { return 6 * 7; });
    CHECK(grove::await(t) == 42);
    auto v = grove::async([] {});
    grove::await(v);
    CHECK(mailbox() == 0);
    auto slow = grove::async([] {
      grove::receive([](go) {});
      return 1;
    });
    auto m = grove::monitor(slow.who());
    CHECK_THROWS_AS(grove::await(slow, 20ms), grove::call_error);
    CHECK(await_down(m).reason == exit_reason::killed());
    CHECK(mailbox() == 0);
  });
}

TEST_CASE("tasks under a task supervisor: async_nolink's crash fails only await", "[task]") {
  grove::node n({.schedulers = 2});
  n.run([] {
    auto sup = grove::start_task_supervisor({.name = "tasks"}).value();
    auto ok = grove::async("tasks", [] { return std::string("done"); });
    CHECK(grove::await(ok) == "done");
    auto bad = grove::async_nolink("tasks", []() -> int { throw std::runtime_error("task failed"); });
    try {
      grove::await(bad);
      FAIL("await should throw");
    } catch (const grove::process_error& e) {
      CHECK(e.reason().detail().find("task failed") != std::string::npos);
    }
    CHECK(mailbox() == 0);
    CHECK(grove::which_dynamic_children("tasks").empty());  // temporary: gone when done
    grove::stop(sup);
  });
}

TEST_CASE("partition supervisor: N copies, one key always reaches the same partition", "[partition]") {
  grove::node n({.schedulers = 1});
  n.run([] {
    auto sup = grove::start_partition_supervisor("part", 4, [](std::size_t, const std::string& name) {
                 grove::child_spec s;
                 s.start = [name] { return grove::start_link(std::make_unique<pooled>(), {.name = name}); };
                 return s;
               }).value();
    CHECK(grove::partition_count("part") == 4);
    CHECK(grove::which_children(sup).size() == 4);
    std::set<grove::pid> seen;
    for (int k = 0; k < 64; ++k) {
      auto a = grove::partition_whereis("part", k);
      REQUIRE(a);
      CHECK(grove::partition_whereis("part", k) == a);
      seen.insert(*a);
    }
    CHECK(seen.size() == 4);
    CHECK(grove::call<int>(*grove::partition_whereis("part", std::string("acct-1")), work{2}) == 4);
    CHECK_FALSE(grove::partition_whereis("nope", 1));
    grove::stop(sup);
  });
}
