#include "bank.hpp"

#include <grove/behaviours/gen_server.hpp>
#include <grove/behaviours/name_registry.hpp>
#include <grove/behaviours/table.hpp>

namespace bank {

const char* to_string(result r) noexcept {
  switch (r) {
    case result::ok:
      return "ok";
    case result::insufficient_funds:
      return "insufficient_funds";
    case result::no_such_account:
      return "no_such_account";
    case result::invalid_amount:
      return "invalid_amount";
    case result::account_exists:
      return "account_exists";
    case result::balance_overflow:
      return "balance_overflow";
  }
  return "?";
}

namespace {

using grove::from;
using grove::init_result;
using accounts_table = grove::table<std::string, money>;

// ---- requests ----
struct open_q {
  account a;
  money initial = 0;
};
struct deposit_q {
  account a;
  money amount = 0;  // negative: a withdrawal
};
struct balance_q {
  account a;
};
struct transfer_q {
  std::uint64_t id = 0;
  account from, to;
  money amount = 0;
};
struct balances_q {};

// ---- the vault: where version 1 commits, and version 2's table goes when the ledger dies ----
struct commit_q {
  std::vector<std::pair<account, money>> changes;
  std::uint64_t id = 0;  // a transfer's id, or 0
  result outcome = result::ok;
};
struct snapshot {
  std::map<account, money> balances;
  std::map<std::uint64_t, result> applied;
};
struct snapshot_q {};
struct give_back_q {
  grove::pid to;
};

class vault final : public grove::gen_server<vault> {
 public:
  using handles = grove::types<commit_q, snapshot_q, give_back_q, grove::table_transfer>;
  void handle_call(const commit_q& c, const from&) {
    for (auto& [a, m] : c.changes) state_.balances[a] = m;
    if (c.id) state_.applied[c.id] = c.outcome;
  }
  snapshot handle_call(const snapshot_q&, const from&) { return state_; }
  // Version 2: the table came here when the ledger died; the new ledger asks for it.
  bool handle_call(const give_back_q& g, const from&) {
    auto t = accounts_table::whereis(table_name);
    if (!t || t->owner() != grove::self()) return false;
    t->give_away(g.to);
    return true;
  }
  void handle_info(const grove::table_transfer&) {}  // the table is found by name when needed
  std::string format_status() const {
    return "vault: " + std::to_string(state_.balances.size()) + " accounts, " + std::to_string(state_.applied.size()) +
           " transfers committed";
  }

 private:
  snapshot state_;
};

// Opening balances from the YAML: accounts acct-0..acct-(n-1), `opening` each.
std::vector<std::pair<account, money>> opening(int accounts, money each) {
  std::vector<std::pair<account, money>> out;
  for (int i = 0; i < accounts; ++i) out.emplace_back("acct-" + std::to_string(i), each);
  return out;
}

// What both ledgers decide: the outcome of a transfer, given the two balances. Checked: money
// that does not fit is refused, never wrapped into a negative balance.
result check_transfer(const transfer_q& t, const std::optional<money>& from, const std::optional<money>& to) {
  if (t.amount <= 0 || t.from == t.to) return result::invalid_amount;
  if (!from || !to) return result::no_such_account;
  if (*from < t.amount) return result::insufficient_funds;
  money sum;
  if (__builtin_add_overflow(*to, t.amount, &sum)) return result::balance_overflow;
  return result::ok;
}

// A deposit (amount > 0) or a withdrawal (amount < 0) on `balance`: the new balance, or why not.
result check_change(money balance, money amount, money& out) {
  if (amount == 0) return result::invalid_amount;
  if (__builtin_add_overflow(balance, amount, &out)) return result::balance_overflow;
  if (out < 0) return result::insufficient_funds;
  return result::ok;
}

// ---- version 1: one GenServer holds every balance ----
class ledger_v1 final : public grove::gen_server<ledger_v1> {
 public:
  using handles = grove::types<open_q, deposit_q, balance_q, transfer_q, balances_q>;
  ledger_v1(int accounts, money each) : opening_(opening(accounts, each)) {}

  init_result init() {
    state_ = grove::call<snapshot>(vault_name, snapshot_q{});  // what was acknowledged before a crash
    if (state_.balances.empty() && !opening_.empty()) {
      commit(opening_, 0, result::ok);
      for (auto& [a, m] : opening_) state_.balances[a] = m;
    }
    return init_result::ok();
  }

  result handle_call(const open_q& q, const from&) {
    if (q.initial < 0) return result::invalid_amount;
    if (state_.balances.count(q.a)) return result::account_exists;
    commit({{q.a, q.initial}}, 0, result::ok);
    state_.balances[q.a] = q.initial;
    return result::ok;
  }
  result handle_call(const deposit_q& q, const from&) {
    auto it = state_.balances.find(q.a);
    if (it == state_.balances.end()) return result::no_such_account;
    money next;
    if (auto r = check_change(it->second, q.amount, next); r != result::ok) return r;
    commit({{q.a, next}}, 0, result::ok);
    it->second = next;
    return result::ok;
  }
  std::optional<money> handle_call(const balance_q& q, const from&) {
    auto it = state_.balances.find(q.a);
    if (it == state_.balances.end()) return std::nullopt;
    return it->second;
  }
  result handle_call(const transfer_q& t, const from&) {
    if (auto done = state_.applied.find(t.id); done != state_.applied.end()) return done->second;  // a retry
    auto f = state_.balances.find(t.from);
    auto to = state_.balances.find(t.to);
    const result r = check_transfer(t, f == state_.balances.end() ? std::nullopt : std::optional<money>(f->second),
                                    to == state_.balances.end() ? std::nullopt : std::optional<money>(to->second));
    if (r != result::ok) {
      commit({}, t.id, r);
      state_.applied[t.id] = r;
      return r;
    }
    // Committed to the vault before it is applied here and acknowledged.
    commit({{t.from, f->second - t.amount}, {t.to, to->second + t.amount}}, t.id, r);
    f->second -= t.amount;
    to->second += t.amount;
    state_.applied[t.id] = r;
    return r;
  }
  std::map<account, money> handle_call(const balances_q&, const from&) { return state_.balances; }
  std::string format_status() const {
    return "ledger (process): " + std::to_string(state_.balances.size()) + " accounts, " +
           std::to_string(state_.applied.size()) + " transfers";
  }

 private:
  static void commit(std::vector<std::pair<account, money>> changes, std::uint64_t id, result r) {
    grove::call<void>(vault_name, commit_q{std::move(changes), id, r});
  }
  std::vector<std::pair<account, money>> opening_;
  snapshot state_;
};

// ---- version 2: balances in a table, read by anyone; changes through the ledger ----
// Applied transfer ids live in the same table, under "#<id>", so that a transfer's two
// balances and its id are written in one atomic batch.
std::string applied_key(std::uint64_t id) { return "#" + std::to_string(id); }

class ledger_v2 final : public grove::gen_server<ledger_v2> {
 public:
  using handles = grove::types<open_q, deposit_q, balance_q, transfer_q, balances_q, grove::table_transfer>;
  ledger_v2(int accounts, money each) : opening_(opening(accounts, each)) {}

  init_result init() {
    if (auto t = accounts_table::whereis(table_name)) {
      // The previous ledger died: its table went to the vault (its heir), which gives it back.
      if (t->owner() != grove::self() && !grove::call<bool>(vault_name, give_back_q{grove::self()})) {
        return init_result::stop(grove::exit_reason::other("bank_table_not_in_vault"));
      }
      table_ = *t;
      // Inheriting cleared the heir (as in ETS): make the vault the heir again.
      table_.set_heir(*grove::whereis(vault_name));
      return init_result::ok();
    }
    grove::table_options o;
    o.name = table_name;
    o.access = grove::table_access::protected_;
    o.concurrency = grove::table_concurrency::read_heavy;
    o.heir = *grove::whereis(vault_name);
    table_ = accounts_table::create(std::move(o));
    for (auto& [a, m] : opening_) table_.insert(a, m);
    return init_result::ok();
  }

  result handle_call(const open_q& q, const from&) {
    if (q.initial < 0) return result::invalid_amount;
    return table_.insert_new(q.a, q.initial) ? result::ok : result::account_exists;
  }
  result handle_call(const deposit_q& q, const from&) {
    auto b = table_.lookup(q.a);
    if (!b) return result::no_such_account;
    money next;
    if (auto r = check_change(*b, q.amount, next); r != result::ok) return r;
    table_.insert(q.a, next);  // only the ledger writes: read-modify-write is safe
    return result::ok;
  }
  std::optional<money> handle_call(const balance_q& q, const from&) { return table_.lookup(q.a); }
  result handle_call(const transfer_q& t, const from&) {
    if (auto done = table_.lookup(applied_key(t.id))) return static_cast<result>(*done);  // a retry
    const auto f = table_.lookup(t.from);
    const auto to = table_.lookup(t.to);
    const result r = check_transfer(t, f, to);
    if (r != result::ok) {
      table_.insert(applied_key(t.id), static_cast<money>(r));
      return r;
    }
    table_.insert({{t.from, *f - t.amount}, {t.to, *to + t.amount}, {applied_key(t.id), static_cast<money>(r)}});
    return r;
  }
  std::map<account, money> handle_call(const balances_q&, const from&) { return read_balances(table_); }
  void handle_info(const grove::table_transfer&) {}  // the give_back: already ours
  std::string format_status() const {
    return "ledger (table): " + std::to_string(table_.size()) + " rows (accounts and transfer ids)";
  }

  static std::map<account, money> read_balances(const accounts_table& t) {
    return t.fold(std::map<account, money>{}, [](std::map<account, money> acc, const account& a, const money& m) {
      if (a.empty() || a[0] != '#') acc.emplace(a, m);
      return acc;
    });
  }

 private:
  std::vector<std::pair<account, money>> opening_;
  accounts_table table_;
};

// The table, for version 2 reads (cached per thread: a handle stays valid while the table lives).
std::optional<accounts_table> table_for_reads() {
  thread_local std::optional<accounts_table> cached;
  if (cached && cached->exists()) return cached;
  cached = accounts_table::whereis(table_name);
  return cached;
}

}  // namespace

result open(const account& a, money initial) { return grove::call<result>(ledger_name, open_q{a, initial}); }
result deposit(const account& a, money amount) {
  if (amount <= 0) return result::invalid_amount;
  return grove::call<result>(ledger_name, deposit_q{a, amount});
}
result withdraw(const account& a, money amount) {
  if (amount <= 0) return result::invalid_amount;
  return grove::call<result>(ledger_name, deposit_q{a, -amount});
}
std::optional<money> balance(const account& a) {
  if (auto t = table_for_reads()) return t->lookup(a);
  return grove::call<std::optional<money>>(ledger_name, balance_q{a});
}
result transfer(std::uint64_t id, const account& from, const account& to, money amount) {
  return grove::call<result>(ledger_name, transfer_q{id, from, to, amount});
}
std::map<account, money> balances() {
  if (auto t = table_for_reads()) return ledger_v2::read_balances(*t);
  return grove::call<std::map<account, money>>(ledger_name, balances_q{});
}

void add_kinds(grove::kind_registry& kinds) {
  kinds.add(
      "bank_vault", "the bank's vault: version 1's commits, version 2's table heir", [](const grove::kind_context& k) {
        k.args().only({});
        if (!k.name() || *k.name() != vault_name) {
          k.args().sink()->add(k.args().pos(), k.args().path(), std::string("the vault must be named ") + vault_name);
        }
        return k.gen_server<vault>();
      });
  kinds.add("bank_ledger", "the bank's ledger (args: storage: process|table, accounts, opening)",
            [](const grove::kind_context& k) -> grove::child_start {
              const auto& a = k.args();
              a.only({"storage", "accounts", "opening"});
              const auto storage = a.get<std::string>("storage", "process");
              const int accounts = a.get<int>("accounts", 0);
              const money each = a.get<std::int64_t>("opening", 0);
              if (accounts < 0 || each < 0)
                a.sink()->add(a.pos(), a.path(), "accounts and opening must not be negative");
              if (!k.name() || *k.name() != ledger_name) {
                a.sink()->add(a.pos(), a.path(), std::string("the ledger must be named ") + ledger_name);
              }
              if (storage == "process") return k.gen_server<ledger_v1>(accounts, each);
              if (storage == "table") return k.gen_server<ledger_v2>(accounts, each);
              a.sink()->add(a.pos(), a.path() + ".storage", "got '" + storage + "'", "one of: process, table");
              return nullptr;
            });
}

}  // namespace bank
