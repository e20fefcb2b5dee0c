// OS processes (docs/concepts/os-processes.md): what a program costs as a child of the tree.
//   start_exit    os_process::start of `true`, then its os_exited, one after another: the
//                 cost of one restart of a command child's program (fork, exec, reap, the
//                 messages), with --idle K idle processes on the node (default 0 and 10,000:
//                 fork copies the node's page tables, so a bigger node forks slower)
//   raw           the floor: fork + execve(`true`) + waitpid on a plain thread, no Grove
//   lines         `seq 1 N` with stdout_to_owner: stdout lines a process takes per second
//   call          command_request round trips to `cat` under the line protocol (a program
//                 as a worker behind a GenServer API)
#include <sys/wait.h>
#include <unistd.h>

#include <grove/behaviours/command.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/os_process.hpp>

#include "bench_common.hpp"

extern char** environ;

namespace {

double start_exit_us(grove::node& node, long long n, long long idle) {
  return node.run([n, idle] {
    std::vector<grove::pid> sleepers;
    struct never {};
    for (long long i = 0; i < idle; ++i) sleepers.push_back(grove::spawn([] { grove::receive([](never) {}); }));
    grove::os_command c;
    c.argv = {"/bin/true"};
    c.log_key = "bench/true";
    const auto t0 = bench::clock::now();
    for (long long i = 0; i < n; ++i) {
      auto p = grove::os_process::start(c);
      auto x = grove::receive([](const grove::os_exited& e) { return e; });
      if (!x.reason.is_normal()) bench::fail("os_process", "true ended with " + x.reason.str());
    }
    const double us = bench::ns_since(t0) / 1e3 / static_cast<double>(n);
    for (auto& s : sleepers) grove::exit(s, grove::exit_reason::kill());
    return us;
  });
}

double raw_us(long long n) {
  char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
  const auto t0 = bench::clock::now();
  for (long long i = 0; i < n; ++i) {
    const pid_t p = ::fork();
    if (p == 0) {
      ::execve(argv[0], argv, environ);
      ::_exit(127);
    }
    int status = 0;
    ::waitpid(p, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) bench::fail("os_process", "raw true failed");
  }
  return bench::ns_since(t0) / 1e3 / static_cast<double>(n);
}

double lines_per_sec(grove::node& node, long long n) {
  return node.run([n] {
    grove::os_command c;
    c.argv = {"seq", "1", std::to_string(n)};
    c.stdout_to_owner = true;
    const auto t0 = bench::clock::now();
    auto p = grove::os_process::start(c);
    long long got = 0;
    bool exited = false;
    while (!exited) {
      grove::receive(
          [&](const grove::os_line&) {
            ++got;
            p.took_lines();
          },
          [&](const grove::os_exited&) { exited = true; });
    }
    const double s = bench::ns_since(t0) / 1e9;
    if (got != n) bench::fail("os_process", "lines: got " + std::to_string(got) + " of " + std::to_string(n));
    return static_cast<double>(n) / s;
  });
}

double call_us(grove::node& node, long long n) {
  return node.run([n] {
    grove::command_options o;
    o.command.argv = {"cat"};
    o.lines = true;
    auto r = grove::start_command(o, {.name = "cat"});
    if (!r) bench::fail("os_process", "cat did not start: " + r.reason().str());
    const auto t0 = bench::clock::now();
    for (long long i = 0; i < n; ++i) {
      const std::string line = std::to_string(i);
      if (grove::call<std::string>("cat", grove::command_request{line}) != line) bench::fail("os_process", "cat");
    }
    const double us = bench::ns_since(t0) / 1e3 / static_cast<double>(n);
    grove::stop("cat", grove::exit_reason::shutdown());
    return us;
  });
}

}  // namespace

int main(int argc, char** argv) {
  auto a = bench::parse_args(argc, argv);
  const long long starts = a.n ? a.n : (a.small ? 100 : 2000);
  const long long lines = a.small ? 100000 : 2000000;
  const long long calls = a.small ? 1000 : 20000;
  const int repeat = a.repeat ? a.repeat : (a.small ? 1 : 3);
  std::vector<long long> idles{0, a.small ? 1000 : 10000};
  if (!a.opt("--idle").empty()) idles = {std::atoll(a.opt("--idle").c_str())};
  bench::watchdog dog("os_process", a.timeout_s ? a.timeout_s : (a.small ? 120 : 600));

  dog.stage("raw");
  std::vector<double> raw;
  for (int r = 0; r < repeat; ++r) raw.push_back(raw_us(starts));
  bench::json()
      .str("bench", "os_process")
      .str("form", "raw")
      .num("starts", starts)
      .num("repeat", repeat)
      .num("us_per_start_exit", bench::median(raw))
      .nums("runs_us", raw)
      .print();

  for (unsigned scheds : bench::scheduler_set(a)) {
    for (long long idle : idles) {
      dog.stage("start_exit schedulers=" + std::to_string(scheds) + " idle=" + std::to_string(idle));
      std::vector<double> runs;
      for (int r = 0; r < repeat; ++r) {
        grove::node node({.schedulers = scheds});
        runs.push_back(start_exit_us(node, starts, idle));
      }
      bench::json()
          .str("bench", "os_process")
          .str("form", "start_exit")
          .num("schedulers", scheds)
          .num("idle_processes", idle)
          .num("starts", starts)
          .num("repeat", repeat)
          .num("us_per_start_exit", bench::median(runs))
          .num("ratio_to_raw", bench::median(runs) / bench::median(raw))
          .nums("runs_us", runs)
          .print();
    }
    dog.stage("lines schedulers=" + std::to_string(scheds));
    std::vector<double> lps, cus;
    for (int r = 0; r < repeat; ++r) {
      grove::node node({.schedulers = scheds});
      lps.push_back(lines_per_sec(node, lines));
    }
    bench::json()
        .str("bench", "os_process")
        .str("form", "lines")
        .num("schedulers", scheds)
        .num("lines", lines)
        .num("repeat", repeat)
        .num("lines_per_sec", bench::median(lps))
        .nums("runs", lps)
        .print();
    dog.stage("call schedulers=" + std::to_string(scheds));
    for (int r = 0; r < repeat; ++r) {
      grove::node node({.schedulers = scheds});
      cus.push_back(call_us(node, calls));
    }
    bench::json()
        .str("bench", "os_process")
        .str("form", "call")
        .num("schedulers", scheds)
        .num("calls", calls)
        .num("repeat", repeat)
        .num("us_per_call", bench::median(cus))
        .nums("runs_us", cus)
        .print();
  }
}
