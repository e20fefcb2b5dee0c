// Spawn a million waiting processes, in both forms:
//   body     grove::spawn of a body that waits for one message (a fiber + stack each)
//   handler  grove::spawn_handler of a process_handler subclass (no stack while idle)
// For each form, two rounds in the same node:
//   cold  the first round in a fresh node (and a fresh OS process: every page is first-touched)
//   warm  a second round after the first million ended (stacks, slots, control blocks reused)
// Per round it reports:
//   spawn_call_ns_per_process  the spawn loop alone (the calls return before the child runs)
//   ns_per_process             spawn loop + every child has started and waits in receive
//                              (each child bumps a shared atomic counter as it starts; the
//                              driver polls it with grove::yield)
//   bytes_per_process          (VmRSS after all N wait - VmRSS before) / N; also VmHWM delta
//   exit_ns_per_process        the driver sends each one message; each sends `done` back and
//                              returns; time until all N `done`s are in and the node's
//                              process_count() is back to 1 (the driver), divided by N
// Flags: --form body|handler (default: both, each in a forked child so both start cold),
//        --stack BYTES (body stack size; default: the node default, 64 KiB),
//        --schedulers K (default 1), --rounds R (default 2: cold + warm; more adds warm rounds,
//        e.g. for profiling the warm path).
#include <sys/wait.h>
#include <unistd.h>

#include <grove/grove.hpp>

#include "bench_common.hpp"

namespace {
struct wake {};
struct done {};

std::atomic<long long> g_started{0};

class waiter final : public grove::process_handler {
 public:
  explicit waiter(grove::pid collector) : collector_(collector) {}
  void on_start() override { g_started.fetch_add(1, std::memory_order_relaxed); }
  void on_message(grove::message&) override {
    grove::send(collector_, done{});
    grove::exit(grove::exit_reason::normal());
  }

 private:
  grove::pid collector_;
};

struct round_result {
  double spawn_call_ns = 0, started_ns = 0, exit_ns = 0;
  long long rss_delta = 0, hwm_delta = 0;
  std::size_t rss_before = 0, rss_after = 0;
};

// Yields until cond() holds; fails the benchmark after `limit`.
template <class C>
void wait_until(C cond, std::chrono::seconds limit, const char* what) {
  auto deadline = bench::clock::now() + limit;
  while (!cond()) {
    if (bench::clock::now() > deadline)
      bench::fail("spawn_million", std::string("deadline passed waiting for ") + what);
    grove::yield();
  }
}

round_result one_round(grove::node& node, bool handler_form, long long n, std::size_t stack,
                       std::vector<grove::pid>& pids, std::chrono::seconds limit) {
  round_result r;
  const grove::pid driver = grove::self();
  g_started.store(0);
  grove::spawn_options opts;
  opts.stack_size = stack;
  r.rss_before = bench::rss_bytes();
  const std::size_t hwm_before = bench::hwm_bytes();
  auto t0 = bench::clock::now();
  if (handler_form) {
    for (long long i = 0; i < n; ++i) pids[i] = grove::spawn_handler(std::make_unique<waiter>(driver));
  } else {
    for (long long i = 0; i < n; ++i) {
      pids[i] = grove::spawn(
          [driver] {
            g_started.fetch_add(1, std::memory_order_relaxed);
            grove::receive([](wake) {});
            grove::send(driver, done{});
          },
          opts);
    }
  }
  r.spawn_call_ns = bench::ns_since(t0) / static_cast<double>(n);
  wait_until([n] { return g_started.load(std::memory_order_relaxed) >= n; }, limit, "all children to start");
  r.started_ns = bench::ns_since(t0) / static_cast<double>(n);
  r.rss_after = bench::rss_bytes();
  r.rss_delta = static_cast<long long>(r.rss_after) - static_cast<long long>(r.rss_before);
  r.hwm_delta = static_cast<long long>(bench::hwm_bytes()) - static_cast<long long>(hwm_before);
  if (node.process_count() != static_cast<std::size_t>(n) + 1)
    bench::fail("spawn_million",
                "process_count " + std::to_string(node.process_count()) + " after spawning " + std::to_string(n));

  auto t1 = bench::clock::now();
  for (long long i = 0; i < n; ++i) grove::send(pids[i], wake{});
  for (long long i = 0; i < n; ++i) grove::receive([](done) {});
  wait_until([&node] { return node.process_count() == 1; }, limit, "process_count() to reach 1");
  r.exit_ns = bench::ns_since(t1) / static_cast<double>(n);
  return r;
}

int run_form(bool handler_form, long long n, std::size_t stack, unsigned scheds, bool small, int timeout_s,
             int rounds) {
  const char* form = handler_form ? "handler" : "body";
  bench::watchdog dog("spawn_million", timeout_s);
  std::vector<grove::pid> pids(static_cast<std::size_t>(n));  // touched before the RSS baseline
  const std::chrono::seconds limit(small ? 30 : 180);
  grove::node node({.schedulers = scheds});
  const std::size_t stack_used = handler_form ? 0 : bench::effective_stack(stack);
  for (int ri = 0; ri < rounds; ++ri) {
    const std::string round = ri == 0 ? "cold" : ri == 1 ? "warm" : "warm" + std::to_string(ri);
    dog.stage(std::string(form) + " " + round);
    auto r = node.run([&] { return one_round(node, handler_form, n, stack, pids, limit); });
    bench::json()
        .str("bench", "spawn_million")
        .str("form", form)
        .str("round", round)
        .num("schedulers", scheds)
        .num("processes", n)
        .num("stack_size", stack_used)
        .num("spawn_call_ns_per_process", r.spawn_call_ns)
        .num("ns_per_process", r.started_ns)
        .num("bytes_per_process", static_cast<double>(r.rss_delta) / static_cast<double>(n))
        .num("hwm_bytes_per_process", static_cast<double>(r.hwm_delta) / static_cast<double>(n))
        .num("rss_before_mib", static_cast<double>(r.rss_before) / 1048576.0)
        .num("rss_after_mib", static_cast<double>(r.rss_after) / 1048576.0)
        .num("exit_ns_per_process", r.exit_ns)
        .print();
  }
  dog.stage(std::string(form) + " node stop");
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  auto a = bench::parse_args(argc, argv);
  const long long n = a.n ? a.n : (a.small ? 20000 : 1000000);
  const std::string form = a.opt("--form", "both");
  const std::size_t stack = a.stack;
  const unsigned scheds = a.schedulers ? a.schedulers : 1;
  const int rounds = std::max(1, std::atoi(a.opt("--rounds", "2").c_str()));
  const int timeout_s = a.timeout_s ? a.timeout_s : (a.small ? 60 : 400);
  if (form == "body") return run_form(false, n, stack, scheds, a.small, timeout_s, rounds);
  if (form == "handler") return run_form(true, n, stack, scheds, a.small, timeout_s, rounds);
  if (form != "both") {
    std::cerr << "spawn_million: --form must be body, handler or both\n";
    return 1;
  }
  // Each form in a child OS process of its own (forked before any thread exists), so that
  // both cold rounds really start from untouched memory.
  int status_all = 0;
  for (bool handler_form : {false, true}) {
    std::fflush(stdout);
    pid_t child = ::fork();
    if (child < 0) {
      std::perror("fork");
      return 1;
    }
    if (child == 0) std::_Exit(run_form(handler_form, n, stack, scheds, a.small, timeout_s, rounds));
    int st = 0;
    ::waitpid(child, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      bench::json()
          .str("bench", "spawn_million")
          .str("form", handler_form ? "handler" : "body")
          .str("error", WIFSIGNALED(st) ? "killed by signal " + std::to_string(WTERMSIG(st))
                                        : "exit status " + std::to_string(WEXITSTATUS(st)))
          .print();
      status_all = 1;
    }
  }
  return status_all;
}
