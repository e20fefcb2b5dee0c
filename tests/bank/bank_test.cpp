// The bank service, both versions behind one client API: operations, idempotent transfers,
// and the invariants under concurrent load — also while the ledger is killed again and again.
#ifdef GROVE_HAVE_BANK

#include <limits>
#include <string>

#include <bank.hpp>
#include <catch2/catch.hpp>
#include <grove/behaviours/table.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>

#include "../app/service_support.hpp"

using namespace std::chrono_literals;

namespace {

std::string bank_yaml(const std::string& storage) {
  return R"(
node: { schedulers: 2 }
applications:
  - name: bank
    start: permanent
    supervisor:
      intensity: 100000
      period: 1s
      children:
        - { id: vault, kind: bank_vault, name: bank.vault }
        - { id: ledger, kind: bank_ledger, name: bank.ledger, args: { storage: )" +
         storage + R"(, accounts: 4, opening: 100 } }
)";
}

grove::kind_registry bank_kinds() {
  auto k = builtins();
  bank::add_kinds(k);
  return k;
}

}  // namespace

TEST_CASE("bank: the operations, the same through both ledgers", "[bank]") {
  const std::string storage = GENERATE(std::string("process"), std::string("table"));
  INFO(storage);
  running_service s(bank_kinds());
  REQUIRE(s.load(bank_yaml(storage)));
  s.start();
  REQUIRE(s.svc.wait_started(10s));
  s.svc.running_node()->run([&] {
    using bank::result;
    CHECK(bank::balance("acct-0") == 100);
    CHECK(bank::open("alice", 50) == result::ok);
    CHECK(bank::open("alice", 50) == result::account_exists);
    CHECK(bank::deposit("alice", 25) == result::ok);
    CHECK(bank::withdraw("alice", 100) == result::insufficient_funds);
    CHECK(bank::withdraw("alice", 70) == result::ok);
    CHECK(bank::balance("alice") == 5);
    CHECK_FALSE(bank::balance("bob"));
    CHECK(bank::transfer(1, "acct-0", "alice", 30) == result::ok);
    CHECK(bank::transfer(1, "acct-0", "alice", 30) == result::ok);  // the same id: applied once
    CHECK(bank::balance("acct-0") == 70);
    CHECK(bank::balance("alice") == 35);
    CHECK(bank::transfer(2, "acct-0", "alice", 1000) == result::insufficient_funds);
    CHECK(bank::transfer(3, "acct-0", "nobody", 1) == result::no_such_account);
    CHECK(bank::transfer(4, "acct-0", "acct-0", 1) == result::invalid_amount);
    auto all = bank::balances();
    bank::money total = 0;
    for (auto& [a, m] : all) total += m;
    CHECK(total == 4 * 100 + 5 + 30 - 30);
    CHECK(all.count("alice"));
    // Checked arithmetic: a balance that would pass the largest amount is refused, unchanged.
    constexpr bank::money most = std::numeric_limits<bank::money>::max();
    CHECK(bank::open("rich", most) == result::ok);
    CHECK(bank::transfer(5, "acct-0", "rich", 50) == result::balance_overflow);
    CHECK(bank::transfer(5, "acct-0", "rich", 50) == result::balance_overflow);  // a retry: the same answer
    CHECK(bank::deposit("rich", 1) == result::balance_overflow);
    CHECK(bank::balance("rich") == most);
    CHECK(bank::balance("acct-0") == 70);
    CHECK(bank::withdraw("rich", most) == result::ok);
    CHECK(bank::balance("rich") == 0);
  });
  s.svc.stop();
  CHECK(s.join() == 0);
}

TEST_CASE("bank: the ledger's crash loses no acknowledged change", "[bank]") {
  const std::string storage = GENERATE(std::string("process"), std::string("table"));
  INFO(storage);
  running_service s(bank_kinds());
  REQUIRE(s.load(bank_yaml(storage)));
  s.start();
  REQUIRE(s.svc.wait_started(10s));
  s.svc.running_node()->run([&] {
    REQUIRE(bank::transfer(10, "acct-1", "acct-2", 40) == bank::result::ok);
    auto before = bank::balances();
    auto ledger = *grove::whereis(bank::ledger_name);
    auto m = grove::monitor(ledger);
    grove::exit(ledger, grove::exit_reason::kill());
    grove::receive_for(10s, [](const grove::down&) {});
    if (storage == "table") {
      // The table outlived its owner: it went to the vault (its heir) before the DOWN came.
      auto t = grove::table<std::string, std::int64_t>::whereis(bank::table_name);
      REQUIRE(t);
      CHECK(t->exists());
    }
    // The restarted ledger has every acknowledged change, and remembers transfer 10.
    grove::testing::eventually(
        [&] {
          auto now = grove::whereis(bank::ledger_name);
          return now && *now != ledger;
        },
        "the ledger restarted under its name");
    CHECK(bank::transfer(10, "acct-1", "acct-2", 40) == bank::result::ok);
    CHECK(bank::balances() == before);
    (void)m;
  });
  s.svc.stop();
  CHECK(s.join() == 0);
}

TEST_CASE("bank: concurrent transfers keep the invariants, also while the ledger is killed repeatedly", "[bank]") {
  const std::string storage = GENERATE(std::string("process"), std::string("table"));
  const bool chaos = GENERATE(false, true);
  INFO(storage << (chaos ? " with the ledger killed every 2 ms" : ""));
  running_service s(bank_kinds());
  REQUIRE(s.load(bank_yaml(storage)));
  s.start();
  REQUIRE(s.svc.wait_started(10s));
  auto rep = s.svc.running_node()->run([&] {
    bank::load_options o;
    o.clients = 4;
    o.transfers_per_client = 400;
    o.reads_per_transfer = 1;
    o.accounts = 8;
    o.kill_every = chaos ? 2ms : 0ms;
    return bank::run_load(o);
  });
  INFO(rep.failure);
  CHECK(rep.ok());
  CHECK(rep.transfers_acked == 4 * 400);
  CHECK(rep.total_before == rep.total_after);
  CHECK(rep.no_negative);
  CHECK(rep.exactly_once);
  if (chaos) CHECK(rep.ledger_kills > 0);
  s.svc.stop();
  CHECK(s.join() == 0);
}

#endif
