// Supervisors: crash → restarted-and-answering latency (p50, p99 over many crashes, each
// followed by a successful call to the child's name), one_for_all cost against 10, 100 and
// 1,000 children, and start + orderly shutdown of a flat tree of 10,000 children and of a deep
// tree (4 levels of supervisors, 10 children each: 10,000 workers).
#include <algorithm>
#include <grove/behaviours/supervisor.hpp>
#include <grove/grove.hpp>

#include "bench_common.hpp"

namespace {
struct ping {};
struct crash {};

class svc final : public grove::gen_server<svc> {
 public:
  using handles = grove::types<ping, crash>;
  int handle_call(const ping&, const grove::from&) { return 1; }
  void handle_cast(const crash&) { throw std::runtime_error("crash"); }
};

grove::child_spec child(const std::string& id) {
  grove::child_spec s;
  s.id = id;
  s.start = [id] { return grove::start_link(std::make_unique<svc>(), {.name = id}); };
  return s;
}

// Calls the name until it answers (a restarting child is briefly unregistered: noproc).
void until_answers(const std::string& name, const grove::pid& old) {
  for (;;) {
    auto p = grove::whereis(name);
    if (p && *p != old) {
      auto r = grove::try_call<int>(*p, ping{});
      if (r) return;
    }
    grove::yield();
  }
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

void restart_latency(const bench::args& a) {
  const int crashes = a.n ? static_cast<int>(a.n) : (a.small ? 500 : 10000);
  grove::node node({.schedulers = 1});
  node.run([&] {
    auto sup =
        grove::start_supervisor({.intensity = 1000000000, .period = std::chrono::seconds(1)}, {child("svc")}).value();
    std::vector<double> ns;
    ns.reserve(static_cast<std::size_t>(crashes));
    for (int i = 0; i < crashes; ++i) {
      grove::pid old = *grove::whereis("svc");
      auto t0 = bench::clock::now();
      grove::cast(old, crash{});
      until_answers("svc", old);
      ns.push_back(bench::ns_since(t0));
    }
    bench::json()
        .str("bench", "restart_latency")
        .num("crashes", crashes)
        .num("p50_us", percentile(ns, 0.5) / 1000)
        .num("p99_us", percentile(ns, 0.99) / 1000)
        .print();
    grove::stop(sup, grove::exit_reason::shutdown());
  });
}

void one_for_all(const bench::args& a, int n) {
  const int rounds = a.small ? 5 : 50;
  grove::node node({.schedulers = 1});
  node.run([&] {
    std::vector<grove::child_spec> kids;
    for (int i = 0; i < n; ++i) kids.push_back(child("c" + std::to_string(i)));
    auto sup =
        grove::start_supervisor(
            {.strategy = grove::strategy::one_for_all, .intensity = 1000000000, .period = std::chrono::seconds(1)},
            kids)
            .value();
    const std::string last = "c" + std::to_string(n - 1);
    std::vector<double> ns;
    for (int r = 0; r < rounds; ++r) {
      grove::pid old_last = *grove::whereis(last);
      auto t0 = bench::clock::now();
      grove::cast("c0", crash{});
      until_answers(last, old_last);  // the last child restarts last
      ns.push_back(bench::ns_since(t0));
    }
    bench::json()
        .str("bench", "one_for_all")
        .num("children", n)
        .num("rounds", rounds)
        .num("us_per_restart_of_all", bench::median(ns) / 1000)
        .print();
    grove::stop(sup, grove::exit_reason::shutdown());
  });
}

void flat_tree(const bench::args& a) {
  const int n = a.small ? 1000 : 10000;
  grove::node node({.schedulers = 1});
  node.run([&] {
    std::vector<grove::child_spec> kids;
    for (int i = 0; i < n; ++i) kids.push_back(child("f" + std::to_string(i)));
    auto t0 = bench::clock::now();
    auto sup = grove::start_supervisor({}, kids).value();
    double start_ns = bench::ns_since(t0);
    auto t1 = bench::clock::now();
    grove::stop(sup, grove::exit_reason::shutdown());
    double stop_ns = bench::ns_since(t1);
    bench::json()
        .str("bench", "tree_flat")
        .num("children", n)
        .num("start_ms", start_ns / 1e6)
        .num("shutdown_ms", stop_ns / 1e6)
        .print();
  });
}
// A tree of nested supervisors, `fanout` children per supervisor, `depth` levels of
// supervisors above the workers: fanout^depth workers.
grove::child_spec subtree(const std::string& id, int depth, int fanout) {
  if (depth == 0) return child(id);
  std::vector<grove::child_spec> kids;
  for (int i = 0; i < fanout; ++i) kids.push_back(subtree(id + "." + std::to_string(i), depth - 1, fanout));
  return grove::supervisor_child(id, {}, kids);
}

void deep_tree(const bench::args& a) {
  const int depth = a.small ? 3 : 4, fanout = 10;
  grove::node node({.schedulers = 1});
  node.run([&] {
    std::vector<grove::child_spec> top;
    for (int i = 0; i < fanout; ++i) top.push_back(subtree("t" + std::to_string(i), depth - 1, fanout));
    auto t0 = bench::clock::now();
    auto sup = grove::start_supervisor({}, top).value();
    double start_ns = bench::ns_since(t0);
    std::size_t processes = grove::this_node().process_count() - 1;
    auto t1 = bench::clock::now();
    grove::stop(sup, grove::exit_reason::shutdown());
    double stop_ns = bench::ns_since(t1);
    bench::json()
        .str("bench", "tree_deep")
        .num("depth", depth)
        .num("fanout", fanout)
        .num("processes", processes)
        .num("start_ms", start_ns / 1e6)
        .num("shutdown_ms", stop_ns / 1e6)
        .print();
  });
}
}  // namespace

int main(int argc, char** argv) {
  auto a = bench::parse_args(argc, argv);
  bench::watchdog dog("supervisor", a.timeout_s ? a.timeout_s : (a.small ? 60 : 600));
  dog.stage("restart latency");
  restart_latency(a);
  for (int n : {10, 100, 1000}) {
    dog.stage("one_for_all");
    one_for_all(a, n);
  }
  dog.stage("flat tree");
  flat_tree(a);
  dog.stage("deep tree");
  deep_tree(a);
}
