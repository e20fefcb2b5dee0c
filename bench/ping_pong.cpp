// Ping-pong: the driver process and one partner (both body processes) bounce a message back
// and forth. Reports ns per round trip (two sends, two receives, two context switches) with
// 1 and with 2 scheduler threads. With 2 schedulers the runtime places new body processes
// round-robin, so the driver and its partner run on different threads: every message is a
// cross-thread wake-up.
#include <grove/grove.hpp>

#include "bench_common.hpp"

namespace {
struct ball {
  std::int64_t n;
};
struct stop {};

struct result {
  double ns_per_round_trip;
  long long timed;  // round trips actually timed (fewer than requested if over budget)
};

result one_run(grove::node& node, long long round_trips, std::size_t stack, double budget_s) {
  return node.run([=] {
    const grove::pid me = grove::self();
    const grove::pid partner = grove::spawn(
        [me] {
          bool running = true;
          while (running) {
            grove::receive([&](ball b) { grove::send(me, b); }, [&](stop) { running = false; });
          }
        },
        {.stack_size = stack});
    // Warm-up (not timed) doubles as the estimate that keeps the run within its budget.
    const long long warm = std::min<long long>(10000, round_trips / 10 + 1);
    auto tw = bench::clock::now();
    for (long long i = 0; i < warm; ++i) {
      grove::send(partner, ball{i});
      grove::receive([](ball) {});
    }
    const long long n = bench::fit_budget(round_trips, bench::ns_since(tw) / static_cast<double>(warm), budget_s, warm);
    auto t0 = bench::clock::now();
    for (long long i = 0; i < n; ++i) {
      grove::send(partner, ball{i});
      grove::receive([](ball) {});
    }
    double ns = bench::ns_since(t0);
    grove::send(partner, stop{});
    bench::await_others_gone("ping_pong");
    return result{ns / static_cast<double>(n), n};
  });
}
}  // namespace

int main(int argc, char** argv) {
  auto a = bench::parse_args(argc, argv);
  const long long n = a.n ? a.n : (a.small ? 20000 : 1000000);
  const int repeat = a.repeat ? a.repeat : (a.small ? 1 : 3);
  bench::watchdog dog("ping_pong", a.timeout_s ? a.timeout_s : (a.small ? 60 : 300));
  for (unsigned scheds : bench::scheduler_set(a)) {
    dog.stage("schedulers=" + std::to_string(scheds));
    std::vector<double> runs;
    long long timed = n;
    for (int r = 0; r < repeat; ++r) {
      grove::node node({.schedulers = scheds});
      auto res = one_run(node, n, a.stack, bench::budget_seconds(a));
      runs.push_back(res.ns_per_round_trip);
      timed = std::min(timed, res.timed);
    }
    bench::json()
        .str("bench", "ping_pong")
        .num("schedulers", scheds)
        .num("round_trips", timed)
        .num("requested", n)
        .num("stack_size", bench::effective_stack(a.stack))
        .num("repeat", repeat)
        .num("ns_per_round_trip", bench::median(runs))
        .nums("runs", runs)
        .print();
  }
}
