// Spawn + exit rate: the driver keeps a window of W (default 1,000) short-lived processes in
// flight; each returns at once, and every death it learns of lets it spawn the next, until
// N (default 1,000,000) have been spawned and have ended. Reports processes per second with
// 1 and 2 scheduler threads, for three forms:
//   body_monitor    grove::spawn_monitor of a body that returns at once; the driver waits
//                   for the `down` (the process has fully ended: slot freed, stack returned)
//   body_done       grove::spawn of a body that sends `done` to the driver and returns
//                   (the driver learns of the end just before the process is torn down)
//   handler_monitor grove::spawn_handler_monitor of a process_handler whose on_start ends
//                   the process (grove::exit_after_handler(normal): no unwinding); the
//                   driver waits for the `down`
#include <grove/grove.hpp>

#include "bench_common.hpp"

namespace {
struct done {};

class exits_at_once final : public grove::process_handler {
 public:
  void on_start() override { grove::exit_after_handler(grove::exit_reason::normal()); }
  void on_message(grove::message&) override {}
};

enum class form { body_monitor, body_done, handler_monitor };
const char* name(form f) {
  switch (f) {
    case form::body_monitor:
      return "body_monitor";
    case form::body_done:
      return "body_done";
    case form::handler_monitor:
      return "handler_monitor";
  }
  return "?";
}

double one_run(grove::node& node, form f, long long n, long long window) {
  return node.run([f, n, window] {
    const grove::pid driver = grove::self();
    long long spawned = 0, ended = 0;
    auto spawn_one = [&] {
      switch (f) {
        case form::body_monitor:
          grove::spawn_monitor([] {});
          break;
        case form::body_done:
          grove::spawn([driver] { grove::send(driver, done{}); });
          break;
        case form::handler_monitor:
          grove::spawn_handler_monitor(std::make_unique<exits_at_once>());
          break;
      }
      ++spawned;
    };
    auto t0 = bench::clock::now();
    while (spawned < n && spawned < window) spawn_one();
    while (ended < n) {
      grove::receive(
          [&](const grove::down& d) {
            if (!d.reason.is_normal()) bench::fail("spawn_exit", "child ended with " + d.reason.str());
          },
          [](done) {});
      ++ended;
      if (spawned < n) spawn_one();
    }
    double ns = bench::ns_since(t0);
    bench::await_others_gone("spawn_exit");
    return static_cast<double>(n) / (ns / 1e9);
  });
}
}  // namespace

int main(int argc, char** argv) {
  auto a = bench::parse_args(argc, argv);
  const long long n = a.n ? a.n : (a.small ? 20000 : 1000000);
  const long long window = 1000;
  const int repeat = a.repeat ? a.repeat : (a.small ? 1 : 3);
  bench::watchdog dog("spawn_exit", a.timeout_s ? a.timeout_s : (a.small ? 60 : 300));
  for (form f : {form::body_monitor, form::body_done, form::handler_monitor}) {
    for (unsigned scheds : bench::scheduler_set(a)) {
      dog.stage(std::string(name(f)) + " schedulers=" + std::to_string(scheds));
      std::vector<double> runs;
      for (int r = 0; r < repeat; ++r) {
        grove::node node({.schedulers = scheds});
        runs.push_back(one_run(node, f, n, window));
      }
      std::vector<double> ns_each;
      for (double v : runs) ns_each.push_back(1e9 / v);
      bench::json()
          .str("bench", "spawn_exit")
          .str("form", name(f))
          .num("schedulers", scheds)
          .num("processes", n)
          .num("window", window)
          .num("repeat", repeat)
          .num("procs_per_sec", bench::median(runs))
          .num("ns_per_process", bench::median(ns_each))
          .nums("runs_ns_per_process", ns_each)
          .print();
    }
  }
}
