// Tables: ETS (../shared/reference/otp-semantics.md §6) — types, access, owner and heir,
// atomicity and iteration under concurrent writes.
#include <algorithm>
#include <any>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <grove/behaviours/name_registry.hpp>
#include <grove/behaviours/table.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>

#include "../runtime/support.hpp"

using namespace grove_test;
using grove::table_access;
using grove::table_concurrency;
using grove::table_error;
using grove::table_type;
using accounts = grove::table<std::string, std::int64_t>;
using ints = grove::table<int, int>;

namespace {

struct job {
  std::function<void()> fn;
};
struct done {};
struct crash {};

// Runs fn in process p (which must be serving jobs) and waits until it has run.
void run_in(const grove::pid& p, std::function<void()> fn) {
  grove::send(p, job{std::move(fn)});
  if (!grove::receive_for(10s, [](done) {})) throw std::runtime_error("the job did not finish in time");
}

// A process that creates a table with `opts`, sends it to the caller, then runs jobs until
// told `go` (ends normally) or `crash` (throws).
template <class T>
std::pair<grove::pid, grove::monitor_ref> spawn_owner(grove::table_options opts) {
  const grove::pid me = grove::self();
  auto [p, r] = grove::spawn_monitor([me, opts]() mutable {
    grove::send(me, T::create(std::move(opts)));
    for (;;) {
      bool more = grove::receive([](go) { return false; }, [](crash) -> bool { throw std::runtime_error("boom"); },
                                 [&](job j) {
                                   j.fn();
                                   grove::send(me, done{});
                                   return true;
                                 });
      if (!more) return;
    }
  });
  return {p, r};
}

template <class T>
T receive_table() {
  auto t = grove::receive_for(10s, [](T t) { return t; });
  if (!t) throw std::runtime_error("no table within the deadline");
  return *t;
}

table_error::kind error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const table_error& e) {
    return e.what_kind();
  }
  throw std::runtime_error("expected a table_error");
}

struct account {
  std::string holder;
  std::int64_t balance = 0;
  int ops = 0;
  bool operator==(const account&) const = default;
};

// A key with operator< but no std::hash.
struct point {
  int x = 0, y = 0;
  auto operator<=>(const point&) const = default;
};
// A value without operator==.
struct opaque {
  int v = 0;
};

const auto all_concurrency = {table_concurrency::standard, table_concurrency::read_heavy,
                              table_concurrency::write_heavy, table_concurrency::read_write_heavy};

}  // namespace

TEST_CASE("a set keeps one object per key: insert replaces, insert_new refuses, lookup, member, erase, take",
          "[table]") {
  auto c = GENERATE(values(all_concurrency));
  grove::testing::deterministic_node n;
  n.run([c] {
    auto t = accounts::create({.concurrency = c});
    CHECK(t.type() == table_type::set);
    CHECK(t.access() == table_access::protected_);
    CHECK(t.owner() == grove::self());
    CHECK(t.size() == 0);
    t.insert("alice", 10);
    t.insert("bob", 20);
    t.insert("alice", 11);  // replaces
    CHECK(t.lookup("alice") == 11);
    CHECK(t.lookup_all("alice") == std::vector<std::int64_t>{11});
    CHECK_FALSE(t.lookup("carol"));
    CHECK(t.lookup_all("carol").empty());
    CHECK(t.member("bob"));
    CHECK_FALSE(t.member("carol"));
    CHECK(t.size() == 2);
    CHECK_FALSE(t.insert_new("bob", 99));
    CHECK(t.lookup("bob") == 20);
    CHECK(t.insert_new("carol", 30));
    CHECK(t.take("carol") == 30);
    CHECK_FALSE(t.take("carol"));
    CHECK(t.take_all("bob") == std::vector<std::int64_t>{20});
    CHECK(t.erase("alice") == 1);
    CHECK(t.erase("alice") == 0);
    CHECK(t.size() == 0);
    t.insert("dave", 5);
    CHECK(t.erase_object("dave", 6) == 0);
    CHECK(t.erase_object("dave", 5) == 1);
    CHECK(t.size() == 0);
  });
}

TEST_CASE("values are copied in and out: changing a looked-up value does not change the table", "[table]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto t = grove::table<int, std::vector<int>>::create();
    std::vector<int> v{1, 2, 3};
    t.insert(1, v);
    v.push_back(4);
    auto got = t.lookup(1);
    REQUIRE(got);
    got->push_back(5);
    CHECK(t.lookup(1) == std::vector<int>{1, 2, 3});
  });
}

TEST_CASE("an ordered_set keeps its keys in order: first, next, last, prev, select", "[table]") {
  auto c = GENERATE(values(all_concurrency));
  grove::testing::deterministic_node n;
  n.run([c] {
    auto t = ints::create({.type = table_type::ordered_set, .concurrency = c});
    for (int k : {50, 10, 40, 20, 30}) t.insert(k, k * 10);
    CHECK(t.first() == 10);
    CHECK(t.last() == 50);
    CHECK(t.next(10) == 20);
    CHECK(t.next(25) == 30);  // any key, present or not
    CHECK_FALSE(t.next(50));
    CHECK(t.prev(30) == 20);
    CHECK(t.prev(31) == 30);
    CHECK_FALSE(t.prev(10));
    std::vector<int> walked;
    for (auto k = t.first(); k; k = t.next(*k)) walked.push_back(*k);
    CHECK(walked == std::vector<int>{10, 20, 30, 40, 50});
    auto big = t.select([](int k, int) { return k >= 30; });
    CHECK(big == std::vector<std::pair<int, int>>{{30, 300}, {40, 400}, {50, 500}});
    t.erase(30);
    CHECK(t.next(20) == 40);
    CHECK(t.next(30) == 40);  // the key was erased: the traversal goes on
  });
}

TEST_CASE("a bag refuses identical objects, a duplicate_bag keeps them; erase_object, lookup_all, take_all",
          "[table]") {
  auto c = GENERATE(values(all_concurrency));
  grove::testing::deterministic_node n;
  n.run([c] {
    auto bag = accounts::create({.type = table_type::bag, .concurrency = c});
    bag.insert("k", 1);
    bag.insert("k", 2);
    bag.insert("k", 1);  // identical: refused
    CHECK(bag.lookup_all("k") == std::vector<std::int64_t>{1, 2});
    CHECK(bag.size() == 2);
    CHECK(bag.member("k"));
    CHECK(error_of([&] { (void)bag.lookup("k"); }) == table_error::kind::unsupported);
    CHECK(error_of([&] { (void)bag.take("k"); }) == table_error::kind::unsupported);
    CHECK(error_of([&] { bag.update_counter("k", 1); }) == table_error::kind::unsupported);
    CHECK(bag.erase_object("k", 1) == 1);
    CHECK(bag.lookup_all("k") == std::vector<std::int64_t>{2});
    CHECK(bag.insert_new("k", 9) == false);  // insert_new looks at the key, as in ETS
    CHECK(bag.insert_new("j", 9));

    auto dup = accounts::create({.type = table_type::duplicate_bag, .concurrency = c});
    dup.insert("k", 1);
    dup.insert("k", 1);
    dup.insert("k", 2);
    CHECK(dup.lookup_all("k") == std::vector<std::int64_t>{1, 1, 2});
    CHECK(dup.size() == 3);
    CHECK(dup.to_vector().size() == 3);
    CHECK(dup.erase_object("k", 1) == 2);  // every identical object
    CHECK(dup.size() == 1);
    dup.insert("k", 3);
    CHECK(dup.take_all("k") == std::vector<std::int64_t>{2, 3});
    CHECK_FALSE(dup.member("k"));
    dup.insert("a", 1);
    dup.insert("a", 2);
    CHECK(dup.erase("a") == 2);
    CHECK(dup.size() == 0);
  });
}

TEST_CASE("update_counter adds atomically, inserts a default, wraps at a threshold and refuses a missing key",
          "[table]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto t = accounts::create();
    CHECK(error_of([&] { t.update_counter("hits", 1); }) == table_error::kind::no_key);
    CHECK(t.update_counter("hits", 1, 100) == 101);  // default 100, then +1
    CHECK(t.update_counter("hits", 5) == 106);
    CHECK(t.update_counter("hits", -6) == 100);
    // {Pos, Incr, Threshold, SetValue}: above 102 wraps to 0; below -1 wraps to 9.
    CHECK(t.update_counter("hits", {.incr = 2, .threshold = 102, .set_value = 0}) == 102);
    CHECK(t.update_counter("hits", {.incr = 1, .threshold = 102, .set_value = 0}) == 0);
    CHECK(t.update_counter("hits", {.incr = -1, .threshold = -1, .set_value = 9}) == -1);
    CHECK(t.update_counter("hits", {.incr = -1, .threshold = -1, .set_value = 9}) == 9);
    CHECK(t.update_counter("new", {.incr = 3}, 7) == 10);
    // Overflow is an error without a threshold, and passes the threshold with one.
    t.insert("max", INT64_MAX);
    CHECK(error_of([&] { t.update_counter("max", 1); }) == table_error::kind::overflow);
    CHECK(t.lookup("max") == INT64_MAX);
    CHECK(t.update_counter("max", {.incr = 1, .threshold = INT64_MAX, .set_value = 0}) == 0);

    // A counter field of a struct value (ETS's Pos).
    auto books = grove::table<std::string, account>::create({.type = table_type::ordered_set});
    CHECK(error_of([&] { books.update_counter("alice", &account::balance, {.incr = 5}); }) ==
          table_error::kind::no_key);
    CHECK(books.update_counter("alice", &account::balance, {.incr = 5}, account{"Alice", 10, 0}) == 15);
    CHECK(books.update_counter("alice", &account::ops, {.incr = 1}) == 1);
    CHECK(books.lookup("alice") == account{"Alice", 15, 1});
  });
}

TEST_CASE("update applies a function atomically; update_element sets a field; a throwing function changes nothing",
          "[table]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto t = grove::table<std::string, account>::create();
    CHECK_FALSE(t.update("bob", [](account& a) { a.balance = 1; }));
    t.insert("alice", {"Alice", 10, 0});
    CHECK(t.update("alice", [](account& a) {
      a.balance *= 3;
      ++a.ops;
    }));
    CHECK(t.lookup("alice") == account{"Alice", 30, 1});
    CHECK(t.update_element("alice", &account::holder, "Alice B."));
    CHECK(t.lookup("alice") == account{"Alice B.", 30, 1});
    CHECK_FALSE(t.update_element("nobody", &account::ops, 3));
    CHECK_THROWS_AS(t.update("alice",
                             [](account& a) {
                               a.balance = -1;
                               throw std::runtime_error("refused");
                             }),
                    std::runtime_error);
    CHECK(t.lookup("alice") == account{"Alice B.", 30, 1});
  });
}

TEST_CASE("select, count_if, erase_if, fold, to_vector, size and clear", "[table]") {
  auto c = GENERATE(values(all_concurrency));
  grove::testing::deterministic_node n;
  n.run([c] {
    auto t = ints::create({.concurrency = c});
    t.insert({{1, 10}, {2, 20}, {3, 30}, {4, 40}, {5, 50}});
    CHECK(t.size() == 5);
    auto even = t.select([](int k, int) { return k % 2 == 0; });
    std::sort(even.begin(), even.end());
    CHECK(even == std::vector<std::pair<int, int>>{{2, 20}, {4, 40}});
    CHECK(t.count_if([](int, int v) { return v > 25; }) == 3);
    CHECK(t.fold(0, [](int acc, int, int v) { return acc + v; }) == 150);
    // fold runs outside the lock: it may use the table.
    CHECK(t.fold(0, [&](int acc, int k, int) { return acc + (t.member(k) ? 1 : 0); }) == 5);
    CHECK(t.erase_if([](int k, int) { return k > 3; }) == 2);
    CHECK(t.size() == 3);
    auto all = t.to_vector();
    std::sort(all.begin(), all.end());
    CHECK(all == std::vector<std::pair<int, int>>{{1, 10}, {2, 20}, {3, 30}});
    t.clear();
    CHECK(t.size() == 0);
    CHECK(t.to_vector().empty());
    CHECK_FALSE(t.first());
  });
}

TEST_CASE("a table type the key or value type cannot support is refused at creation", "[table]") {
  grove::testing::deterministic_node n;
  n.run([] {
    CHECK(error_of([] { grove::table<point, int>::create({.type = table_type::set}); }) ==
          table_error::kind::unsupported);
    auto ordered = grove::table<point, int>::create({.type = table_type::ordered_set});
    ordered.insert({2, 1}, 1);
    ordered.insert({1, 5}, 2);
    CHECK(ordered.first() == point{1, 5});
    CHECK(error_of([] { grove::table<int, opaque>::create({.type = table_type::bag}); }) ==
          table_error::kind::unsupported);
    auto dup = grove::table<int, opaque>::create({.type = table_type::duplicate_bag});
    dup.insert(1, {7});
    dup.insert(1, {7});
    CHECK(dup.size() == 2);
    CHECK_THROWS_AS((grove::table<int, int>{}.size()), table_error);  // an empty handle
  });
}

TEST_CASE("access is enforced for the calling process: private, protected, public, and code outside processes",
          "[table]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto [owner, r] = spawn_owner<ints>({.access = table_access::private_});
    auto priv = receive_table<ints>();
    run_in(owner, [priv] { priv.insert(1, 1); });
    CHECK(error_of([&] { (void)priv.lookup(1); }) == table_error::kind::access_denied);
    CHECK(error_of([&] { (void)priv.size(); }) == table_error::kind::access_denied);
    CHECK(error_of([&] { priv.insert(2, 2); }) == table_error::kind::access_denied);
    CHECK(error_of([&] { priv.destroy(); }) == table_error::kind::access_denied);
    try {
      (void)priv.lookup(1);
    } catch (const table_error& e) {
      CHECK(std::string(e.what()).find("private") != std::string::npos);
    }

    std::optional<ints> prot;
    run_in(owner, [&prot] {
      prot = ints::create();
      prot->insert(1, 10);
    });
    CHECK(prot->lookup(1) == 10);  // others read
    CHECK(prot->member(1));
    CHECK(prot->to_vector().size() == 1);
    CHECK(error_of([&] { prot->insert(2, 2); }) == table_error::kind::access_denied);
    CHECK(error_of([&] { prot->update_counter(1, 1); }) == table_error::kind::access_denied);
    CHECK(error_of([&] { prot->clear(); }) == table_error::kind::access_denied);
    CHECK(error_of([&] { prot->give_away(grove::self()); }) == table_error::kind::not_owner);
    CHECK(error_of([&] { prot->set_heir(grove::self()); }) == table_error::kind::not_owner);

    std::optional<ints> pub;
    run_in(owner, [&pub] { pub = ints::create({.access = table_access::public_}); });
    pub->insert(5, 5);  // anyone writes
    CHECK(pub->update_counter(5, 1) == 6);
    CHECK(pub->lookup(5) == 6);

    // Outside any process: not the owner.
    table_error::kind outside_private{}, outside_protected_write{};
    bool outside_protected_read = false, outside_public = false;
    std::thread th([&] {
      outside_private = error_of([&] { (void)priv.lookup(1); });
      outside_protected_read = prot->lookup(1) == 10;
      outside_protected_write = error_of([&] { prot->insert(3, 3); });
      pub->insert(6, 6);
      outside_public = pub->lookup(6) == 6;
    });
    th.join();
    CHECK(outside_private == table_error::kind::access_denied);
    CHECK(outside_protected_read);
    CHECK(outside_protected_write == table_error::kind::access_denied);
    CHECK(outside_public);

    grove::send(owner, go{});
    await_down(r);
  });
}

TEST_CASE("the owner's death deletes its tables and releases their names before its down goes out", "[table]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto [owner, r] = spawn_owner<accounts>({.access = table_access::public_, .name = "ledger"});
    auto t = receive_table<accounts>();
    t.insert("alice", 1);
    CHECK(accounts::whereis("ledger") == t);
    grove::send(owner, crash{});
    await_down(r);
    // Nothing else was waited on: the down alone proves the table was gone first.
    CHECK_FALSE(t.exists());
    CHECK_FALSE(accounts::whereis("ledger"));
    CHECK(error_of([&] { (void)t.lookup("alice"); }) == table_error::kind::no_table);
    CHECK(error_of([&] { t.insert("bob", 1); }) == table_error::kind::no_table);
    CHECK(error_of([&] { t.destroy(); }) == table_error::kind::no_table);
    // A successor creates the same name at once (the classic restart race of ETS).
    auto again = accounts::create({.name = "ledger"});
    CHECK(accounts::whereis("ledger") == again);
  });
}

TEST_CASE("the heir owns the table before the owner's down goes out, and gets table_transfer first", "[table]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    struct heard {
      bool transfer_first = false;
      grove::pid from;
      std::string data;
      std::int64_t alice = 0;
    };
    // The heir monitors the owner: the transfer must reach it before the down.
    auto heir = grove::spawn([me] {
      auto owner = grove::receive([](grove::pid p) { return p; });
      auto mref = grove::monitor(owner);
      grove::send(me, go{});
      heard h;
      grove::receive(
          [&](grove::table_transfer t) {
            h.transfer_first = true;
            h.from = t.from;
            h.data = std::any_cast<std::string>(t.data);
            auto tab = t.as<std::string, std::int64_t>();
            tab.insert("alice", tab.lookup("alice").value_or(0) + 1);  // it may write now
            h.alice = *tab.lookup("alice");
          },
          [&](grove::down) { h.transfer_first = false; });
      await_down(mref);
      grove::send(me, h);
      grove::receive([](go) {});  // it owns the table until then
    });
    auto [owner, r] = spawn_owner<accounts>({.name = "ledger", .heir = heir, .heir_data = std::string("gift")});
    auto t = receive_table<accounts>();
    CHECK(t.heir() == heir);
    run_in(owner, [t] { t.insert("alice", 41); });
    grove::send(heir, owner);
    grove::receive([](go) {});
    grove::send(owner, crash{});
    await_down(r);
    CHECK(t.owner() == heir);  // already, when the down arrives
    CHECK(t.exists());
    CHECK(t.heir() == grove::pid{});
    CHECK(accounts::whereis("ledger") == t);
    auto h = grove::receive_for(10s, [](heard h) { return h; });
    REQUIRE(h);
    CHECK(h->transfer_first);
    CHECK(h->from == owner);
    CHECK(h->data == "gift");
    CHECK(h->alice == 42);
    auto hr = grove::monitor(heir);
    grove::send(heir, go{});
    await_down(hr);
    CHECK_FALSE(t.exists());  // the heir had no heir of its own
  });
}

TEST_CASE("a table whose heir is dead, or is the owner itself, dies with its owner", "[table]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto [dead, dr] = grove::spawn_monitor([] {});
    await_down(dr);
    auto [owner, r] = spawn_owner<ints>({.name = "t", .heir = dead});
    auto t = receive_table<ints>();
    std::optional<ints> self_heir;
    run_in(owner, [&self_heir] {
      self_heir = ints::create();
      self_heir->set_heir(grove::self());
    });
    grove::send(owner, go{});
    await_down(r);
    CHECK_FALSE(t.exists());
    CHECK_FALSE(self_heir->exists());
    CHECK_FALSE(ints::whereis("t"));
  });
}

TEST_CASE("give_away hands the table over with table_transfer; the owner may be its own heir to reclaim it",
          "[table]") {
  grove::testing::deterministic_node n;
  n.run([] {
    const grove::pid me = grove::self();
    auto t = accounts::create({.name = "box"});
    t.insert("n", 1);
    t.set_heir(me, std::string("back"));  // ETS: an owner may name itself heir, then give the table away
    CHECK(error_of([&] { t.give_away(me); }) == table_error::kind::bad_target);
    auto [dead, dr] = grove::spawn_monitor([] {});
    await_down(dr);
    CHECK(error_of([&] { t.give_away(dead); }) == table_error::kind::bad_target);

    auto [taker, r] = grove::spawn_monitor([me] {
      auto tr = grove::receive([](grove::table_transfer t) { return t; });
      auto tab = tr.as<std::string, std::int64_t>();
      tab.insert("n", 2);  // the new owner writes
      grove::send(me, std::any_cast<int>(tr.data));
      grove::send(me, tr.from);
      grove::receive([](go) {});
    });
    t.give_away(taker, 7);
    CHECK(t.owner() == taker);
    CHECK(t.heir() == me);  // unchanged by give_away
    CHECK(error_of([&] { t.insert("n", 3); }) == table_error::kind::access_denied);
    CHECK(grove::receive([](int gift) { return gift; }) == 7);
    CHECK(grove::receive([](grove::pid from) { return from; }) == me);
    CHECK(t.lookup("n") == 2);
    // The taker dies: its heir (the first owner) gets the table back.
    grove::send(taker, go{});
    await_down(r);
    CHECK(t.owner() == me);
    auto back = grove::receive_for(10s, [](grove::table_transfer tr) { return tr; });
    REQUIRE(back);
    CHECK(back->from == taker);
    CHECK(back->name == "box");
    CHECK(back->id == t.id());
    CHECK(std::any_cast<std::string>(back->data) == "back");
    t.insert("n", 3);
    CHECK(t.lookup("n") == 3);
  });
}

TEST_CASE("named tables: whereis checks the types, a second table of the name is refused, destroy unregisters",
          "[table]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto t = accounts::create({.name = "accounts"});
    CHECK(t.name() == "accounts");
    CHECK(accounts::whereis("accounts") == t);
    CHECK(accounts::whereis(grove::this_node(), "accounts") == t);
    CHECK_FALSE(accounts::whereis("nothing"));
    try {
      (void)ints::whereis("accounts");
      FAIL("a table of other types must be refused");
    } catch (const table_error& e) {
      CHECK(e.what_kind() == table_error::kind::wrong_type);
      CHECK(std::string(e.what()).find("accounts") != std::string::npos);
    }
    CHECK(error_of([] { accounts::create({.name = "accounts"}); }) == table_error::kind::name_taken);
    t.insert("a", 1);
    t.destroy();
    CHECK_FALSE(t.exists());
    CHECK_FALSE(accounts::whereis("accounts"));
    CHECK(error_of([&] { (void)t.size(); }) == table_error::kind::no_table);
    auto again = accounts::create({.name = "accounts"});
    CHECK(again.size() == 0);
    CHECK(again.id() != t.id());
  });
}

TEST_CASE("update_counter from several processes on two schedulers keeps the count exact", "[table]") {
  auto c = GENERATE(values(all_concurrency));
  grove::node n({.schedulers = 2});
  n.run([c] {
    constexpr int writers = 4, per_writer = 20000, keys = 8;
    auto t = grove::table<int, std::int64_t>::create({.access = table_access::public_, .concurrency = c});
    const grove::pid me = grove::self();
    std::atomic<int> ready{0};
    for (int w = 0; w < writers; ++w) {
      grove::spawn([t, me, w, &ready] {
        ready.fetch_add(1);
        while (ready.load() < writers) grove::yield();  // all start together
        for (int i = 0; i < per_writer; ++i) t.update_counter((i + w) % keys, 1, 0);
        grove::send(me, done{});
      });
    }
    for (int w = 0; w < writers; ++w) REQUIRE(grove::receive_for(60s, [](done) {}));
    std::int64_t total = 0;
    for (int k = 0; k < keys; ++k) {
      auto v = t.lookup(k);
      REQUIRE(v);
      CHECK(*v == writers * per_writer / keys);
      total += *v;
    }
    CHECK(total == writers * per_writer);
    CHECK(t.size() == keys);
  });
}

TEST_CASE("a batch insert is atomic: a concurrent reader never sees half of one", "[table]") {
  auto c = GENERATE(values(all_concurrency));
  grove::node n({.schedulers = 2});
  n.run([c] {
    constexpr int batch = 256, min_rounds = 500, min_snapshots = 300;
    auto t = ints::create({.access = table_access::public_, .concurrency = c});
    const grove::pid me = grove::self();
    std::atomic<int> snapshots{0};
    std::atomic<bool> writing{true};
    // The writer goes on until the reader has taken enough snapshots (or a deadline passes), so
    // the two overlap even on a loaded machine.
    grove::spawn([t, me, &writing, &snapshots] {
      const auto deadline = std::chrono::steady_clock::now() + 20s;
      std::vector<std::pair<int, int>> objs(batch);
      int g = 1;
      for (; g <= min_rounds || (snapshots.load() < min_snapshots && std::chrono::steady_clock::now() < deadline);
           ++g) {
        for (int k = 0; k < batch; ++k) objs[static_cast<std::size_t>(k)] = {k, g};
        t.insert(objs);
        if (g % 100 == 0) grove::yield();
      }
      writing = false;
      grove::send(me, g - 1);
    });
    grove::spawn([t, me, &writing, &snapshots] {
      int torn = 0;
      while (writing) {
        auto snap = t.to_vector();
        auto sel = t.select([](int, int v) { return v > 0; });
        const int folded = t.fold(0, [](int acc, int, int) { return acc + 1; });
        for (auto* v : {&snap, &sel}) {
          if (v->empty()) continue;
          const int g = v->front().second;
          if (v->size() != batch || std::any_of(v->begin(), v->end(), [g](auto& o) { return o.second != g; })) ++torn;
        }
        if (folded != 0 && folded != batch) ++torn;
        if (++snapshots % 50 == 0) grove::yield();
      }
      grove::send(me, std::string("torn ") + std::to_string(torn));
    });
    auto rounds = grove::receive_for(60s, [](int g) { return g; });
    REQUIRE(rounds);
    auto torn = grove::receive_for(60s, [](std::string s) { return s; });
    REQUIRE(torn);
    CHECK(*torn == "torn 0");
    CHECK(snapshots.load() >= min_snapshots);
    CHECK(t.lookup(0) == *rounds);
  });
}

TEST_CASE("insert_new of a batch inserts all of it or nothing", "[table]") {
  grove::testing::deterministic_node n;
  n.run([] {
    auto t = ints::create({.concurrency = table_concurrency::write_heavy});
    CHECK(t.insert_new({{1, 1}, {2, 2}, {3, 3}}));
    CHECK_FALSE(t.insert_new({{4, 4}, {5, 5}, {2, 20}}));
    CHECK(t.size() == 3);
    CHECK_FALSE(t.member(4));
    CHECK(t.lookup(2) == 2);
    std::vector<std::pair<int, int>> more{{4, 4}, {5, 5}};
    CHECK(t.insert_new(more));
    CHECK(t.size() == 5);
    t.insert({{9, 1}, {9, 2}});  // one key twice in a set: the later one stays
    CHECK(t.lookup(9) == 2);
  });
}

TEST_CASE("traversal: a hash table is visited once per key when nobody writes; next of an erased key throws",
          "[table]") {
  auto c = GENERATE(values(all_concurrency));
  grove::testing::deterministic_node n;
  n.run([c] {
    auto t = ints::create({.concurrency = c});
    for (int k = 0; k < 500; ++k) t.insert(k, k);
    std::multiset<int> walked;
    for (auto k = t.first(); k; k = t.next(*k)) walked.insert(*k);
    CHECK(walked.size() == 500);
    CHECK(std::set<int>(walked.begin(), walked.end()).size() == 500);
    CHECK(t.last() == t.first());  // as in ETS, for non-ordered tables
    auto k = *t.first();
    t.erase(k);
    CHECK(error_of([&] { (void)t.next(k); }) == table_error::kind::no_key);
  });
}

TEST_CASE(
    "traversal: on an ordered_set under concurrent writes, every key present throughout is visited once, in "
    "order",
    "[table]") {
  auto c = GENERATE(values(all_concurrency));
  grove::node n({.schedulers = 2});
  n.run([c] {
    constexpr int stable = 2000;  // even keys 0..2*stable stay; odd keys come and go
    auto t = ints::create({.type = table_type::ordered_set, .access = table_access::public_, .concurrency = c});
    for (int k = 0; k < stable; ++k) t.insert(2 * k, k);
    const grove::pid me = grove::self();
    std::atomic<bool> walking{true};
    std::atomic<long> changes{0};
    grove::spawn([t, me, &walking, &changes] {
      int i = 0;
      while (walking) {
        const int odd = 2 * (i % stable) + 1;
        if (i % 2 == 0) {
          t.insert(odd, i);
        } else {
          t.erase(odd - 2 > 0 ? odd - 2 : odd);
        }
        changes.fetch_add(1, std::memory_order_relaxed);
        if (++i % 64 == 0) grove::yield();
      }
      grove::send(me, done{});
    });
    // Traverses until the writer has made many changes meanwhile (bounded by a deadline).
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    bool ordered = true;
    bool all_evens = true;
    int passes = 0;
    while (passes < 5 || (changes.load() < 20000 && std::chrono::steady_clock::now() < deadline)) {
      std::optional<int> prev;
      int evens = 0;
      for (auto k = t.first(); k; k = t.next(*k)) {
        if (prev && *k <= *prev) ordered = false;
        if (*k % 2 == 0) ++evens;
        prev = k;
      }
      if (evens != stable) all_evens = false;
      ++passes;
      grove::yield();
    }
    walking = false;
    REQUIRE(grove::receive_for(60s, [](done) {}));
    CHECK(changes.load() >= 20000);
    CHECK(ordered);
    CHECK(all_evens);
  });
}
