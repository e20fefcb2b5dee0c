// The bank's load generator and invariant check.
#include <random>

#include <grove/behaviours/gen_server.hpp>
#include <grove/behaviours/name_registry.hpp>

#include "bank.hpp"

namespace bank {

namespace {

struct done_transfer {
  std::uint64_t id;
  account from, to;
  money amount;
  result outcome;
};
struct client_done {
  std::vector<done_transfer> transfers;
  std::uint64_t retries = 0, reads = 0;
};
struct read_phase {};
struct reads_done {
  std::uint64_t reads = 0, retries = 0;
};
struct stop_crasher {};
struct crasher_done {
  std::uint64_t kills = 0;
};

// Calls fn until the ledger answers: while it restarts, calls fail (noproc, killed) and are
// sent again — with the same transfer id, so a transfer whose answer was lost is not applied twice.
template <class F>
auto until_answered(F&& fn, std::uint64_t& retries) {
  for (;;) {
    try {
      return fn();
    } catch (const grove::call_error&) {
      ++retries;
      grove::receive_for(std::chrono::milliseconds(1), [](stop_crasher) {});  // let the supervisor restart it
    }
  }
}

}  // namespace

load_report run_load(const load_options& o) {
  load_report rep;
  std::vector<account> names;
  for (int i = 0; i < std::max(o.accounts, 2); ++i) names.push_back("acct-" + std::to_string(i));
  std::uint64_t setup_retries = 0;
  for (auto& a : names) {
    until_answered([&] { return open(a, 1000); }, setup_retries);
  }
  const std::map<account, money> before = until_answered([] { return balances(); }, setup_retries);
  for (auto& [a, m] : before) rep.total_before += m;

  const grove::pid me = grove::self();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<grove::pid> clients;
  grove::pid last_spawned;
  for (int c = 0; c < o.clients; ++c) {
    last_spawned = grove::spawn([me, c, o, names] {
      std::mt19937_64 rng(o.seed * 7919 + static_cast<std::uint64_t>(c));
      std::uniform_int_distribution<std::size_t> pick(0, names.size() - 1);
      std::uniform_int_distribution<money> amount(1, 100);
      client_done done;
      for (int t = 0; t < o.transfers_per_client; ++t) {
        const std::uint64_t id = (static_cast<std::uint64_t>(c + 1) << 32) | static_cast<std::uint64_t>(t + 1);
        const std::size_t f = pick(rng);
        const std::size_t shift = 1 + pick(rng) % (names.size() - 1);  // never the same account
        const account& from = names[f];
        const account& to = names[(f + shift) % names.size()];
        const money m = amount(rng);
        const result r = until_answered([&] { return transfer(id, from, to, m); }, done.retries);
        done.transfers.push_back({id, from, to, m, r});
        for (int k = 0; k < o.reads_per_transfer; ++k) {
          until_answered([&] { return balance(names[pick(rng)]); }, done.retries);
          ++done.reads;
        }
      }
      grove::send(me, std::move(done));
      if (o.reads_per_client > 0) {
        grove::receive([](read_phase) {});
        reads_done r;
        for (int k = 0; k < o.reads_per_client; ++k) {
          until_answered([&] { return balance(names[pick(rng)]); }, r.retries);
          ++r.reads;
        }
        grove::send(me, r);
      }
    });
    clients.push_back(last_spawned);
  }
  grove::pid crasher;
  if (o.kill_every.count() > 0) {
    crasher = grove::spawn([me, every = o.kill_every] {
      crasher_done d;
      do {  // a first kill at once, then one every `every`
        if (auto l = grove::whereis(ledger_name)) {
          grove::exit(*l, grove::exit_reason::kill());
          ++d.kills;
        }
      } while (!grove::receive_for(every, [](stop_crasher) {}));
      grove::send(me, d);
    });
  }
  std::vector<done_transfer> all;
  for (int c = 0; c < o.clients; ++c) {
    grove::receive([&](client_done d) {
      rep.retries += d.retries;
      rep.reads += d.reads;
      for (auto& t : d.transfers) all.push_back(std::move(t));
    });
  }
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (crasher) {
    grove::send(crasher, stop_crasher{});
    grove::receive([&](crasher_done d) { rep.ledger_kills = d.kills; });
  }
  if (o.reads_per_client > 0) {
    const auto r0 = std::chrono::steady_clock::now();
    for (auto& c : clients) grove::send(c, read_phase{});
    for (int c = 0; c < o.clients; ++c) {
      grove::receive([&](reads_done d) {
        rep.reads += d.reads;
        rep.retries += d.retries;
      });
    }
    rep.read_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - r0).count();
  }

  // The invariants, against the balances the ledger holds now.
  std::uint64_t after_retries = 0;
  const std::map<account, money> after = until_answered([] { return balances(); }, after_retries);
  std::map<account, money> expected = before;
  for (auto& t : all) {
    ++rep.transfers_acked;
    if (t.outcome != result::ok) continue;
    ++rep.transfers_applied;
    expected[t.from] -= t.amount;
    expected[t.to] += t.amount;
  }
  for (auto& [a, m] : after) {
    rep.total_after += m;
    if (m < 0) rep.no_negative = false;
  }
  rep.exactly_once = after == expected;
  if (rep.total_after != rep.total_before) {
    rep.failure = "money was created or lost: " + std::to_string(rep.total_before) + " before, " +
                  std::to_string(rep.total_after) + " after";
  } else if (!rep.no_negative) {
    rep.failure = "a balance went negative";
  } else if (!rep.exactly_once) {
    rep.failure = "the balances differ from the acknowledged transfers applied once each";
  }
  return rep;
}

}  // namespace bank
