// GenServer and local names: memory per idle server (1,000,000 started), call round trip with
// 1, 2 and 4 client processes, cast throughput, and whereis lookups per second from 1 and 2
// scheduler threads.
#include <atomic>
#include <grove/behaviours/gen_server.hpp>
#include <grove/grove.hpp>

#include "bench_common.hpp"

namespace {
struct get {};
struct add {
  std::int64_t n;
};
struct done_q {
  grove::pid to;
  std::int64_t expect;
};

class counter final : public grove::gen_server<counter> {
 public:
  using handles = grove::types<get, add, done_q>;
  std::int64_t handle_call(const get&, const grove::from&) { return total_; }
  void handle_cast(const add& a) {
    total_ += a.n;
    if (waiting_.to && total_ >= waiting_.expect) {
      grove::send(waiting_.to, total_);
      waiting_ = {};
    }
  }
  void handle_cast(const done_q& d) {
    if (total_ >= d.expect) {
      grove::send(d.to, total_);
    } else {
      waiting_ = d;
    }
  }

 private:
  std::int64_t total_ = 0;
  done_q waiting_{};
};

void idle_memory(const bench::args& a) {
  const long long n = a.n ? a.n : (a.small ? 20000 : 1000000);
  grove::node node({.schedulers = 1});
  node.run([&] {
    const std::size_t before = bench::rss_bytes();
    auto t0 = bench::clock::now();
    std::vector<grove::pid> servers;
    servers.reserve(static_cast<std::size_t>(n));
    for (long long i = 0; i < n; ++i) servers.push_back(grove::start(std::make_unique<counter>()).value());
    const double ns = bench::ns_since(t0);
    const std::size_t after = bench::rss_bytes();
    const std::size_t vector_bytes = servers.capacity() * sizeof(grove::pid);
    bench::json()
        .str("bench", "gen_server_idle_memory")
        .num("servers", n)
        .num("ns_per_start", ns / static_cast<double>(n))
        .num("bytes_per_server", static_cast<double>(after - before - vector_bytes) / static_cast<double>(n))
        .print();
    for (auto& s : servers) grove::exit(s, grove::exit_reason::kill());
    bench::await_others_gone("gen_server_idle_memory");
  });
}

void call_round_trip(const bench::args& a, unsigned scheds, int clients) {
  const long long total = a.n ? a.n : (a.small ? 20000 : 2000000);
  const long long per_client = total / clients;
  grove::node node({.schedulers = scheds});
  double ns = node.run([&] {
    auto server = grove::start(std::make_unique<counter>()).value();
    const grove::pid me = grove::self();
    for (int i = 0; i < 200; ++i) grove::call<std::int64_t>(server, get{});  // warm
    auto t0 = bench::clock::now();
    for (int c = 0; c < clients; ++c) {
      grove::spawn([server, me, per_client] {
        for (long long i = 0; i < per_client; ++i) grove::call<std::int64_t>(server, get{});
        grove::send(me, true);
      });
    }
    for (int c = 0; c < clients; ++c) grove::receive([](bool) {});
    double elapsed = bench::ns_since(t0);
    grove::stop(server);
    bench::await_others_gone("gen_server_call");
    return elapsed;
  });
  bench::json()
      .str("bench", "gen_server_call")
      .num("schedulers", scheds)
      .num("clients", clients)
      .num("calls", per_client * clients)
      .num("ns_per_call", ns / static_cast<double>(per_client * clients))
      .num("ns_round_trip_per_client", ns / static_cast<double>(per_client))
      .print();
}

void cast_throughput(const bench::args& a, unsigned scheds) {
  const long long n = a.n ? a.n : (a.small ? 50000 : 4000000);
  grove::node node({.schedulers = scheds});
  double ns = node.run([&] {
    auto server = grove::start(std::make_unique<counter>()).value();
    auto t0 = bench::clock::now();
    for (long long i = 0; i < n; ++i) grove::cast(server, add{1});
    grove::cast(server, done_q{grove::self(), n});
    grove::receive([](std::int64_t) {});
    double elapsed = bench::ns_since(t0);
    grove::stop(server);
    return elapsed;
  });
  bench::json()
      .str("bench", "gen_server_cast")
      .num("schedulers", scheds)
      .num("casts", n)
      .num("million_casts_per_sec", static_cast<double>(n) / ns * 1e3)
      .print();
}

void whereis_rate(const bench::args& a, unsigned lookers) {
  const long long per = a.n ? a.n : (a.small ? 200000 : 20000000);
  grove::node node({.schedulers = lookers});
  double ns = node.run([&] {
    for (int i = 0; i < 1000; ++i)
      grove::register_name("svc" + std::to_string(i), grove::spawn([] { grove::receive([](bool) {}); }));
    const grove::pid me = grove::self();
    std::atomic<long long> found{0};
    auto t0 = bench::clock::now();
    for (unsigned l = 0; l < lookers; ++l) {
      grove::spawn([&, me, l] {
        std::string names[4] = {"svc1", "svc500", "svc999", "svc42"};
        long long hits = 0;
        for (long long i = 0; i < per; ++i) hits += grove::whereis(names[(i + l) & 3]).has_value();
        found += hits;
        grove::send(me, 0);
      });
    }
    for (unsigned l = 0; l < lookers; ++l) grove::receive([](int) {});
    double elapsed = bench::ns_since(t0);
    if (found != per * lookers) bench::fail("whereis", "lookups missed");
    for (auto& name : grove::registered()) grove::send(*grove::whereis(name), true);
    bench::await_others_gone("whereis");
    return elapsed;
  });
  bench::json()
      .str("bench", "whereis")
      .num("lookers", lookers)
      .num("lookups", per * lookers)
      .num("million_lookups_per_sec", static_cast<double>(per * lookers) / ns * 1e3)
      .print();
}
}  // namespace

int main(int argc, char** argv) {
  auto a = bench::parse_args(argc, argv);
  bench::watchdog dog("gen_server", a.timeout_s ? a.timeout_s : (a.small ? 60 : 600));
  // --part idle|call|cast|whereis runs one part only (for profiling); --clients C one client count,
  // --lookers L one whereis configuration.
  const std::string part = a.opt("--part");
  auto want = [&](const char* p) { return part.empty() || part == p; };
  if (want("idle")) {
    dog.stage("idle memory");
    idle_memory(a);
  }
  for (unsigned s : bench::scheduler_set(a)) {
    for (int c : {1, 2, 4}) {
      if (!want("call")) break;
      if (!a.opt("--clients").empty() && std::stoi(a.opt("--clients")) != c) continue;
      dog.stage("call");
      call_round_trip(a, s, c);
    }
    if (want("cast")) {
      dog.stage("cast");
      cast_throughput(a, s);
    }
  }
  for (unsigned l : {1u, 2u}) {
    if (!want("whereis")) break;
    if (!a.opt("--lookers").empty() && std::stoul(a.opt("--lookers")) != l) continue;
    dog.stage("whereis");
    whereis_rate(a, l);
  }
}
