// Tables: lookups per second and update_counter per second from 1, 2 and 4 processes on 2
// schedulers, for each table_concurrency option, against a GenServer that holds a
// std::unordered_map and answers calls (the baseline a table replaces).
//
// Flags besides bench_common's: --part lookup|update (one part only), --keys K (default 1000).
#include <atomic>
#include <cstdint>
#include <grove/behaviours/gen_server.hpp>
#include <grove/behaviours/table.hpp>
#include <grove/grove.hpp>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench_common.hpp"

namespace {

using counters = grove::table<std::int64_t, std::int64_t>;

struct get_q {
  std::int64_t key;
};
struct add_q {
  std::int64_t key;
  std::int64_t incr;
};

// The baseline: one process owns the map; every read and every update is a call.
class map_server final : public grove::gen_server<map_server> {
 public:
  using handles = grove::types<get_q, add_q>;
  explicit map_server(std::int64_t keys) {
    for (std::int64_t k = 0; k < keys; ++k) map_[k] = k;
  }
  std::int64_t handle_call(const get_q& q, const grove::from&) {
    auto it = map_.find(q.key);
    return it == map_.end() ? -1 : it->second;
  }
  std::int64_t handle_call(const add_q& q, const grove::from&) { return map_[q.key] += q.incr; }

 private:
  std::unordered_map<std::int64_t, std::int64_t> map_;
};

struct go {};
struct finished {
  std::int64_t checksum;
};

enum class op { lookup, update };

// Runs `procs` processes doing `per` operations each (started together); returns the elapsed
// nanoseconds and the sum of their checksums.
template <class Work>
std::pair<double, std::int64_t> run_workers(int procs, long long per, Work work) {
  const grove::pid me = grove::self();
  std::atomic<int> ready{0};
  std::vector<grove::pid> workers;
  for (int p = 0; p < procs; ++p) {
    workers.push_back(grove::spawn([&ready, me, per, p, work] {
      ready.fetch_add(1);
      grove::receive([](go) {});
      grove::send(me, finished{work(p, per)});
    }));
  }
  while (ready.load() < procs) grove::yield();
  auto t0 = bench::clock::now();
  for (auto& w : workers) grove::send(w, go{});
  std::int64_t sum = 0;
  for (int p = 0; p < procs; ++p) {
    auto f = grove::receive_for(std::chrono::seconds(300), [](finished f) { return f.checksum; });
    if (!f) bench::fail("table", "a worker did not finish");
    sum += *f;
  }
  return {bench::ns_since(t0), sum};
}

void report(op o, const std::string& impl, unsigned scheds, int procs, long long ops, double ns) {
  bench::json()
      .str("bench", o == op::lookup ? "table_lookup" : "table_update_counter")
      .str("impl", impl)
      .num("schedulers", scheds)
      .num("processes", procs)
      .num("ops", ops)
      .num("million_ops_per_sec", static_cast<double>(ops) / ns * 1e3)
      .num("ns_per_op_per_process", ns / static_cast<double>(ops) * procs)
      .print();
}

void table_case(const bench::args& a, op o, grove::table_concurrency c, unsigned scheds, int procs, long long keys) {
  const long long total = a.n ? a.n : (a.small ? 200000 : 4000000);
  const long long per = total / procs;
  const int repeat = a.repeat ? a.repeat : (a.small ? 1 : 3);
  std::vector<double> runs;
  for (int r = 0; r < repeat; ++r) {
    grove::node node({.schedulers = scheds});
    runs.push_back(node.run([&] {
      auto t = counters::create({.access = grove::table_access::public_, .concurrency = c});
      for (std::int64_t k = 0; k < keys; ++k) t.insert(k, o == op::lookup ? k : 0);
      auto [ns, sum] = run_workers(procs, per, [t, o, keys](int p, long long n) {
        std::int64_t acc = 0;
        std::int64_t k = (p * 7919) % keys;
        for (long long i = 0; i < n; ++i) {
          if (o == op::lookup) {
            acc += *t.lookup(k);
          } else {
            t.update_counter(k, 1, 0);
          }
          k = (k + 613) % keys;  // spread over every key
        }
        return acc;
      });
      if (o == op::update) {
        std::int64_t counted =
            t.fold(std::int64_t{0}, [](std::int64_t s, std::int64_t, std::int64_t v) { return s + v; });
        if (counted != per * procs) bench::fail("table", "update_counter lost updates");
      } else if (sum == 0 && keys > 1) {
        bench::fail("table", "lookups found nothing");
      }
      bench::await_others_gone("table");
      return ns;
    }));
  }
  report(o, std::string("table/") + grove::to_string(c), scheds, procs, per * procs, bench::median(runs));
}

void gen_server_case(const bench::args& a, op o, unsigned scheds, int procs, long long keys) {
  const long long total = a.n ? a.n / 10 : (a.small ? 20000 : 400000);
  const long long per = total / procs;
  const int repeat = a.repeat ? a.repeat : (a.small ? 1 : 3);
  std::vector<double> runs;
  for (int r = 0; r < repeat; ++r) {
    grove::node node({.schedulers = scheds});
    runs.push_back(node.run([&] {
      auto server = grove::start(std::make_unique<map_server>(keys)).value();
      if (o == op::update) grove::call<std::int64_t>(server, add_q{0, 0});
      auto [ns, sum] = run_workers(procs, per, [server, o, keys](int p, long long n) {
        std::int64_t acc = 0;
        std::int64_t k = (p * 7919) % keys;
        for (long long i = 0; i < n; ++i) {
          if (o == op::lookup) {
            acc += grove::call<std::int64_t>(server, get_q{k});
          } else {
            grove::call<std::int64_t>(server, add_q{k, 1});
          }
          k = (k + 613) % keys;
        }
        return acc;
      });
      (void)sum;
      grove::stop(server);
      bench::await_others_gone("table");
      return ns;
    }));
  }
  report(o, "gen_server_map", scheds, procs, per * procs, bench::median(runs));
}

}  // namespace

int main(int argc, char** argv) {
  auto a = bench::parse_args(argc, argv);
  bench::watchdog dog("table", a.timeout_s ? a.timeout_s : (a.small ? 120 : 900));
  const std::string part = a.opt("--part");
  const long long keys = std::atoll(a.opt("--keys", "1000").c_str());
  const std::vector<unsigned> scheds = a.schedulers ? std::vector<unsigned>{a.schedulers} : std::vector<unsigned>{2u};
  const grove::table_concurrency options[] = {grove::table_concurrency::standard, grove::table_concurrency::read_heavy,
                                              grove::table_concurrency::write_heavy,
                                              grove::table_concurrency::read_write_heavy};
  for (op o : {op::lookup, op::update}) {
    if (!part.empty() && part != (o == op::lookup ? "lookup" : "update")) continue;
    for (unsigned s : scheds) {
      for (int procs : {1, 2, 4}) {
        for (auto c : options) {
          dog.stage(std::string(o == op::lookup ? "lookup " : "update ") + grove::to_string(c));
          table_case(a, o, c, s, procs, keys);
        }
        dog.stage("gen_server baseline");
        gen_server_case(a, o, s, procs, keys);
      }
    }
  }
}
