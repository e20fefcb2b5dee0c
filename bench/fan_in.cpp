// Fan-in: 4 sender processes send M messages each (default 4,000,000 in total) to one
// receiver process as fast as they can. Reports messages per second (total / time from the
// "go" to the receiver having taken the last one) with 1 and 2 scheduler threads.
// All are body processes; the receiver takes each message with grove::receive.
#include <grove/grove.hpp>

#include "bench_common.hpp"

namespace {
struct item {
  std::int64_t v;
};
struct go {};
struct done {
  std::int64_t sum;
};

constexpr int senders = 4;

double one_run(grove::node& node, long long total) {
  return node.run([total] {
    const grove::pid driver = grove::self();
    const long long per_sender = total / senders;
    const long long expected = per_sender * senders;
    const grove::pid receiver = grove::spawn([driver, expected] {
      std::int64_t sum = 0;
      for (long long i = 0; i < expected; ++i) grove::receive([&](item m) { sum += m.v; });
      grove::send(driver, done{sum});
    });
    std::vector<grove::pid> tx;
    for (int s = 0; s < senders; ++s) {
      tx.push_back(grove::spawn([receiver, per_sender] {
        grove::receive([](go) {});
        for (long long i = 0; i < per_sender; ++i) grove::send(receiver, item{1});
      }));
    }
    grove::sleep(std::chrono::milliseconds(20));  // let everyone reach its first receive
    auto t0 = bench::clock::now();
    for (auto& p : tx) grove::send(p, go{});
    std::int64_t sum = grove::receive([](done d) { return d.sum; });
    double ns = bench::ns_since(t0);
    if (sum != expected) bench::fail("fan_in", "receiver counted " + std::to_string(sum));
    bench::await_others_gone("fan_in");
    return static_cast<double>(expected) / (ns / 1e9);
  });
}
}  // namespace

int main(int argc, char** argv) {
  auto a = bench::parse_args(argc, argv);
  const long long total = a.n ? a.n : (a.small ? 200000 : 4000000);
  const int repeat = a.repeat ? a.repeat : (a.small ? 1 : 3);
  bench::watchdog dog("fan_in", a.timeout_s ? a.timeout_s : (a.small ? 60 : 300));
  for (unsigned scheds : bench::scheduler_set(a)) {
    dog.stage("schedulers=" + std::to_string(scheds));
    std::vector<double> runs;
    for (int r = 0; r < repeat; ++r) {
      grove::node node({.schedulers = scheds});
      runs.push_back(one_run(node, total));
    }
    std::vector<double> mps;
    for (double v : runs) mps.push_back(v / 1e6);
    bench::json()
        .str("bench", "fan_in")
        .num("schedulers", scheds)
        .num("senders", senders)
        .num("messages", total / senders * senders)
        .num("repeat", repeat)
        .num("msgs_per_sec", bench::median(runs))
        .num("million_msgs_per_sec", bench::median(mps))
        .nums("runs_million_per_sec", mps)
        .print();
  }
}
