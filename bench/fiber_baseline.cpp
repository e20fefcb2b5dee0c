// The floor: the same work on plain Boost.Fiber 1.74 with no Grove around it, on ONE thread
// (the default round_robin algorithm), fibers + buffered_channel, pooled 16 KiB stacks — the
// "plain Boost.Fiber" column of targets.md, re-measured here so that Grove can be compared
// with it in the same run on the same (noisy) machine. Not a Grove benchmark: it does not use
// the Grove API at all.
//   ping_pong   two fibers, a channel each way; ns per round trip
//   ring        M fibers (default 10,000), a channel each; one token, H hops; ns per hop
//   fan_in      4 sender fibers, 1 receiver, one channel (capacity 4096); messages per second
//   call        C client fibers (default 1) call one server fiber: a request carrying the
//               client's reply channel on a shared channel, the answer on the reply channel;
//               ns per call (all clients together), the floor of a GenServer call
//   spawn       N fibers (default 1,000,000) each blocked in pop() on a channel of its own;
//               ns per fiber until all wait, bytes per fiber from VmRSS; then all released
#include <boost/context/pooled_fixedsize_stack.hpp>
#include <boost/fiber/all.hpp>

#include <memory>

#include "bench_common.hpp"

namespace {
namespace bf = boost::fibers;
using chan = bf::buffered_channel<std::int64_t>;
constexpr std::size_t stack_size = 16 * 1024;

double ping_pong(long long n) {
  boost::context::pooled_fixedsize_stack salloc(stack_size);
  chan there(2), back(2);
  double ns = 0;
  bf::fiber partner(std::allocator_arg, salloc, [&] {
    std::int64_t v = 0;
    while (there.pop(v) == bf::channel_op_status::success) back.push(v);
  });
  bf::fiber driver(std::allocator_arg, salloc, [&] {
    std::int64_t v = 0;
    for (long long i = 0; i < 10000; ++i) {
      there.push(i);
      back.pop(v);
    }
    auto t0 = bench::clock::now();
    for (long long i = 0; i < n; ++i) {
      there.push(i);
      back.pop(v);
    }
    ns = bench::ns_since(t0) / static_cast<double>(n);
    there.close();
  });
  driver.join();
  partner.join();
  return ns;
}

double ring(int members, long long hops) {
  boost::context::pooled_fixedsize_stack salloc(stack_size);
  std::vector<std::unique_ptr<chan>> ch;
  for (int i = 0; i < members; ++i) ch.push_back(std::make_unique<chan>(2));
  chan done(2);
  std::vector<bf::fiber> fs;
  for (int i = 0; i < members; ++i) {
    fs.emplace_back(std::allocator_arg, salloc, [&, i] {
      chan& in = *ch[i];
      chan& next = *ch[(i + 1) % members];
      std::int64_t v = 0;
      while (in.pop(v) == bf::channel_op_status::success) {
        if (v == 0) {
          done.push(0);
        } else {
          next.push(v - 1);
        }
      }
    });
  }
  double ns = 0;
  bf::fiber driver(std::allocator_arg, salloc, [&] {
    std::int64_t v = 0;
    ch[0]->push(members);  // warm-up lap
    done.pop(v);
    auto t0 = bench::clock::now();
    ch[0]->push(hops);
    done.pop(v);
    ns = bench::ns_since(t0) / static_cast<double>(hops);
    for (auto& c : ch) c->close();
  });
  driver.join();
  for (auto& f : fs) f.join();
  return ns;
}

double fan_in(long long total) {
  boost::context::pooled_fixedsize_stack salloc(stack_size);
  constexpr int senders = 4;
  const long long per = total / senders;
  chan c(4096);
  std::int64_t sum = 0;
  auto t0 = bench::clock::now();
  double ns = 0;
  bf::fiber receiver(std::allocator_arg, salloc, [&] {
    std::int64_t v = 0;
    for (long long i = 0; i < per * senders; ++i) {
      c.pop(v);
      sum += v;
    }
    ns = bench::ns_since(t0);
  });
  std::vector<bf::fiber> tx;
  for (int s = 0; s < senders; ++s) {
    tx.emplace_back(std::allocator_arg, salloc, [&] {
      for (long long i = 0; i < per; ++i) c.push(1);
    });
  }
  receiver.join();
  for (auto& f : tx) f.join();
  if (sum != per * senders) bench::fail("fiber_baseline", "fan_in lost messages");
  return static_cast<double>(per * senders) / (ns / 1e9);
}

struct spawn_result {
  double ns_per_fiber, bytes_per_fiber, release_ns;
};
spawn_result spawn_waiting(long long n) {
  boost::context::pooled_fixedsize_stack salloc(stack_size);
  std::vector<std::unique_ptr<chan>> ch(static_cast<std::size_t>(n));
  std::vector<bf::fiber> fs;
  fs.reserve(static_cast<std::size_t>(n));
  long long started = 0;
  const std::size_t rss0 = bench::rss_bytes();
  auto t0 = bench::clock::now();
  for (long long i = 0; i < n; ++i) {
    ch[i] = std::make_unique<chan>(2);
    fs.emplace_back(std::allocator_arg, salloc, [&started, c = ch[i].get()] {
      ++started;
      std::int64_t v = 0;
      c->pop(v);
    });
  }
  while (started < n) boost::this_fiber::yield();
  spawn_result r;
  r.ns_per_fiber = bench::ns_since(t0) / static_cast<double>(n);
  r.bytes_per_fiber = static_cast<double>(bench::rss_bytes() - rss0) / static_cast<double>(n);
  auto t1 = bench::clock::now();
  for (auto& c : ch) c->push(1);
  for (auto& f : fs) f.join();
  r.release_ns = bench::ns_since(t1) / static_cast<double>(n);
  return r;
}
double call(int clients, long long total) {
  boost::context::pooled_fixedsize_stack salloc(stack_size);
  struct request {
    chan* reply;
    std::int64_t v;
  };
  bf::buffered_channel<request> requests(64);
  const long long per = total / clients;
  bf::fiber server(std::allocator_arg, salloc, [&] {
    request r{};
    while (requests.pop(r) == bf::channel_op_status::success) r.reply->push(r.v + 1);
  });
  auto t0 = bench::clock::now();
  std::vector<bf::fiber> cs;
  for (int c = 0; c < clients; ++c) {
    cs.emplace_back(std::allocator_arg, salloc, [&] {
      chan reply(2);
      std::int64_t v = 0;
      for (long long i = 0; i < per; ++i) {
        requests.push(request{&reply, i});
        reply.pop(v);
      }
    });
  }
  for (auto& f : cs) f.join();
  const double ns = bench::ns_since(t0) / static_cast<double>(per * clients);
  requests.close();
  server.join();
  return ns;
}
}  // namespace

int main(int argc, char** argv) {
  auto a = bench::parse_args(argc, argv);
  const bool small = a.small;
  const int repeat = a.repeat ? a.repeat : (small ? 1 : 3);
  bench::watchdog dog("fiber_baseline", a.timeout_s ? a.timeout_s : (small ? 60 : 300));
  const std::string only = a.opt("--only");
  auto want = [&](const char* b) { return only.empty() || only == b; };
  if (want("spawn")) {  // first, while the process is fresh (cold)
    dog.stage("spawn");
    const long long n = small ? 20000 : 1000000;
    auto r = spawn_waiting(n);
    bench::json()
        .str("bench", "fiber_baseline")
        .str("what", "spawn")
        .num("threads", 1)
        .num("fibers", n)
        .num("stack_size", stack_size)
        .num("ns_per_fiber", r.ns_per_fiber)
        .num("bytes_per_fiber", r.bytes_per_fiber)
        .num("release_ns_per_fiber", r.release_ns)
        .print();
  }
  if (want("ping_pong")) {
    dog.stage("ping_pong");
    const long long n = small ? 20000 : 1000000;
    std::vector<double> runs;
    for (int i = 0; i < repeat; ++i) runs.push_back(ping_pong(n));
    bench::json()
        .str("bench", "fiber_baseline")
        .str("what", "ping_pong")
        .num("threads", 1)
        .num("round_trips", n)
        .num("ns_per_round_trip", bench::median(runs))
        .nums("runs", runs)
        .print();
  }
  if (want("ring")) {
    dog.stage("ring");
    const int members = std::max(2, std::atoi(a.opt("--members", small ? "1000" : "10000").c_str()));
    const long long hops = small ? 200000 : 10000000;
    std::vector<double> runs;
    for (int i = 0; i < repeat; ++i) runs.push_back(ring(members, hops));
    bench::json()
        .str("bench", "fiber_baseline")
        .str("what", "ring")
        .num("threads", 1)
        .num("processes", members)
        .num("hops", hops)
        .num("ns_per_hop", bench::median(runs))
        .nums("runs", runs)
        .print();
  }
  if (want("call")) {
    dog.stage("call");
    const long long total = small ? 20000 : 2000000;
    const int clients = std::max(1, std::atoi(a.opt("--clients", "1").c_str()));
    std::vector<double> runs;
    for (int i = 0; i < repeat; ++i) runs.push_back(call(clients, total));
    bench::json()
        .str("bench", "fiber_baseline")
        .str("what", "call")
        .num("threads", 1)
        .num("clients", clients)
        .num("calls", total / clients * clients)
        .num("ns_per_call", bench::median(runs))
        .nums("runs", runs)
        .print();
  }
  if (want("fan_in")) {
    dog.stage("fan_in");
    const long long total = small ? 200000 : 4000000;
    std::vector<double> runs;
    for (int i = 0; i < repeat; ++i) runs.push_back(fan_in(total) / 1e6);
    bench::json()
        .str("bench", "fiber_baseline")
        .str("what", "fan_in")
        .num("threads", 1)
        .num("messages", total)
        .num("million_msgs_per_sec", bench::median(runs))
        .nums("runs_million_per_sec", runs)
        .print();
  }
}
