// The bank service: accounts with deposit, withdraw, balance and transfer — atomic, never
// losing or creating money — behind one client API and two ledgers, chosen in YAML:
//   storage: process  (version 1) one GenServer owns every balance; serialization makes each
//                     operation atomic. Reads are calls too.
//   storage: table    (version 2) the balances live in a table (read_heavy) that any process
//                     reads directly and concurrently; changes still go through the ledger, which
//                     writes each one as one atomic batch.
// Either way the ledger's crash loses no acknowledged change: version 1 commits every change to
// the vault (a separate process) before it answers and reloads from it at restart; version 2's
// table has the vault as heir, so it survives the ledger and is given back to the new one.
// Transfers carry an id: a retry after a lost answer is applied once. See
// docs/guides/genserver-or-table.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <grove/app/kinds.hpp>

namespace bank {

using account = std::string;
using money = std::int64_t;

// balance_overflow: the change would take a balance past the largest `money` (nothing changes).
enum class result : unsigned char {
  ok,
  insufficient_funds,
  no_such_account,
  invalid_amount,
  account_exists,
  balance_overflow
};
const char* to_string(result r) noexcept;

// The registered names.
inline constexpr const char* ledger_name = "bank.ledger";
inline constexpr const char* vault_name = "bank.vault";
inline constexpr const char* table_name = "bank.accounts";

// ---- the client API (from a process); the same for both ledgers ----
result open(const account& a, money initial);
result deposit(const account& a, money amount);
result withdraw(const account& a, money amount);
// Version 1: a call to the ledger. Version 2: a read of the table, no call.
std::optional<money> balance(const account& a);
// `id` makes the transfer idempotent: the same id is applied at most once.
result transfer(std::uint64_t id, const account& from, const account& to, money amount);
// Every balance and their sum, consistent with one another.
std::map<account, money> balances();

// Registers the kinds `bank_ledger` (args: storage: process|table, accounts: N, opening: M)
// and `bank_vault`.
void add_kinds(grove::kind_registry& kinds);

// ---- load generation and the invariants ----
struct load_options {
  int clients = 4;  // concurrent client processes
  int transfers_per_client = 1000;
  int reads_per_transfer = 0;               // balance reads between transfers
  int reads_per_client = 0;                 // balance reads after the transfers (a read-only phase)
  int accounts = 16;                        // named acct-0 .. acct-(n-1), opened before
  std::chrono::milliseconds kill_every{0};  // > 0: a crasher kills the ledger this often
  std::uint64_t seed = 1;
};

struct load_report {
  std::uint64_t transfers_acked = 0;  // ok or refused, each with an answer
  std::uint64_t transfers_applied = 0;
  std::uint64_t retries = 0;  // calls that failed (ledger down) and were sent again
  std::uint64_t reads = 0;
  std::uint64_t ledger_kills = 0;
  double seconds = 0;       // the transfer phase (with its reads)
  double read_seconds = 0;  // the read-only phase
  money total_before = 0, total_after = 0;
  bool no_negative = true;
  bool exactly_once = true;  // final balances == opening + every acknowledged transfer, once
  std::string failure;       // what broke, if anything
  bool ok() const { return failure.empty(); }
};

// Runs from a process on a node where the bank runs: opens the accounts if needed, runs the
// clients, kills the ledger if asked, then checks the invariants.
load_report run_load(const load_options& o);

}  // namespace bank
