// Ring: M body processes (default 10,000) in a ring pass one token around until it has made
// H hops (default 10,000,000). Reports ns per hop with 1 and 2 scheduler threads. With 2
// schedulers the runtime places new body processes round-robin, so consecutive ring members
// sit on different threads and every hop is a cross-thread wake-up (the worst case).
// Extra flag: --members M (ring size; default 10,000, 1,000 with --small).
#include <grove/grove.hpp>

#include "bench_common.hpp"

namespace {
struct next_is {
  grove::pid next;
};
struct token {
  std::int64_t left;
};
struct stop {};
struct done {};

struct result {
  double ns_per_hop;
  double setup_ns;
  long long timed;  // hops actually timed (fewer than requested if over budget)
};

result one_run(grove::node& node, int members, long long hops, std::size_t stack, double budget_s) {
  return node.run([=] {
    const grove::pid driver = grove::self();
    auto t_setup = bench::clock::now();
    std::vector<grove::pid> ring;
    ring.reserve(members);
    for (int i = 0; i < members; ++i) {
      ring.push_back(grove::spawn(
          [driver] {
            grove::pid next;
            grove::receive([&](next_is n) { next = n.next; });
            bool running = true;
            while (running) {
              grove::receive(
                  [&](token t) {
                    if (t.left == 0) {
                      grove::send(driver, done{});
                    } else {
                      grove::send(next, token{t.left - 1});
                    }
                  },
                  [&](stop) { running = false; });
            }
          },
          {.stack_size = stack}));
    }
    for (int i = 0; i < members; ++i) grove::send(ring[i], next_is{ring[(i + 1) % members]});
    double setup_ns = bench::ns_since(t_setup);
    // Warm-up: two laps, so every member has run and waits in receive; the second lap is the
    // estimate that keeps the timed run within its budget.
    grove::send(ring[0], token{members});
    grove::receive([](done) {});
    auto tw = bench::clock::now();
    grove::send(ring[0], token{members});
    grove::receive([](done) {});
    const long long n = bench::fit_budget(hops, bench::ns_since(tw) / static_cast<double>(members), budget_s, members);
    auto t0 = bench::clock::now();
    grove::send(ring[0], token{n});
    grove::receive([](done) {});
    double ns = bench::ns_since(t0);
    for (auto& p : ring) grove::send(p, stop{});
    bench::await_others_gone("ring");
    return result{ns / static_cast<double>(n), setup_ns, n};
  });
}
}  // namespace

int main(int argc, char** argv) {
  auto a = bench::parse_args(argc, argv);
  const long long hops = a.n ? a.n : (a.small ? 200000 : 10000000);
  const int members = std::max(2, std::atoi(a.opt("--members", a.small ? "1000" : "10000").c_str()));
  const int repeat = a.repeat ? a.repeat : (a.small ? 1 : 3);
  bench::watchdog dog("ring", a.timeout_s ? a.timeout_s : (a.small ? 60 : 400));
  for (unsigned scheds : bench::scheduler_set(a)) {
    dog.stage("schedulers=" + std::to_string(scheds));
    std::vector<double> runs, setups;
    long long timed = hops;
    for (int r = 0; r < repeat; ++r) {
      grove::node node({.schedulers = scheds});
      auto res = one_run(node, members, hops, a.stack, bench::budget_seconds(a));
      runs.push_back(res.ns_per_hop);
      setups.push_back(res.setup_ns / members);
      timed = std::min(timed, res.timed);
    }
    bench::json()
        .str("bench", "ring")
        .num("schedulers", scheds)
        .num("processes", members)
        .num("hops", timed)
        .num("requested", hops)
        .num("stack_size", bench::effective_stack(a.stack))
        .num("repeat", repeat)
        .num("ns_per_hop", bench::median(runs))
        .nums("runs", runs)
        .num("setup_ns_per_process", bench::median(setups))
        .print();
  }
}
