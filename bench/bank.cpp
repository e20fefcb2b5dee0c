// The bank service, version 1 (one GenServer owns the balances) against version 2 (balances in
// a table read directly): balance reads per second and transfers per second with 1, 2 and 4
// client processes on 2 schedulers. Each transfer is durable in both versions (version 1
// commits it to the vault before answering; version 2 writes it to a table whose heir is the
// vault). See docs/guides/genserver-or-table.md.
#include <bank.hpp>
#include <grove/app/service.hpp>
#include <grove/grove.hpp>
#include <thread>

#include "bench_common.hpp"

int main(int argc, char** argv) {
  auto a = bench::parse_args(argc, argv);
  const int transfers = a.small ? 500 : static_cast<int>(a.n ? a.n : 20000);
  const int reads = transfers * 50;
  for (const char* storage : {"process", "table"}) {
    for (int clients : {1, 2, 4}) {
      grove::kind_registry kinds;
      grove::add_builtin_kinds(kinds);
      bank::add_kinds(kinds);
      grove::service_options so;
      so.handle_signals = false;
      so.log_stream = nullptr;
      grove::service svc(std::move(kinds), so);
      const std::string yaml = std::string(R"(
node: { schedulers: 2, logging: { level: error } }
applications:
  - name: bank
    supervisor:
      children:
        - { id: vault, kind: bank_vault, name: bank.vault }
        - { id: ledger, kind: bank_ledger, name: bank.ledger, args: { storage: )") +
                               storage +
                               R"(, accounts: 64, opening: 1000000 } }
)";
      if (!svc.load_string(yaml, "bench.yaml")) {
        std::fprintf(stderr, "%s", svc.errors().to_string().c_str());
        return 1;
      }
      std::thread runner([&] { svc.run(); });
      if (!svc.wait_started(std::chrono::seconds(10))) return 1;
      auto rep = svc.running_node()->run([&] {
        bank::load_options o;
        o.clients = clients;
        o.transfers_per_client = transfers / clients;
        o.reads_per_client = reads / clients;
        o.accounts = 64;
        return bank::run_load(o);
      });
      svc.stop();
      runner.join();
      if (!rep.ok()) {
        std::fprintf(stderr, "invariant broken: %s\n", rep.failure.c_str());
        return 1;
      }
      std::printf(
          "{\"bench\":\"bank\",\"storage\":\"%s\",\"clients\":%d,\"schedulers\":2,\"transfers\":%llu,"
          "\"transfers_per_s\":%.0f,\"reads\":%llu,\"reads_per_s\":%.0f}\n",
          storage, clients, static_cast<unsigned long long>(rep.transfers_acked),
          static_cast<double>(rep.transfers_acked) / rep.seconds, static_cast<unsigned long long>(rep.reads),
          static_cast<double>(rep.reads) / rep.read_seconds);
      std::fflush(stdout);
    }
  }
}
