// Keyed registry: two figures.
//  lookup   K looker processes (K = 1 and 2, on a node with 2 scheduler threads) each call
//           find() — a unique-key lookup returning the pid and value — on random keys out of
//           10,000 held by 1,000 handler processes (10 keys each), N times in total (default
//           4,000,000). Reports lookups per second, all lookers together; also for lookup()
//           (which returns a vector).
//  publish  1,000 handler processes subscribe to one key of a duplicate-key registry; the
//           driver publishes P messages (default 1,000) to it. Reports the time per publish
//           until every subscriber has received every message, and the time the publishing
//           process spends inside publish(), with 1 and 2 scheduler threads.
// Flags: --partitions P (default: one per scheduler thread), --keys K, --subscribers S.
#include <grove/behaviours/keyed_registry.hpp>
#include <grove/grove.hpp>

#include "bench_common.hpp"

namespace {
struct go {};
struct done {
  std::int64_t sum;
};
struct ready {};
struct stop {};
struct news {
  std::int64_t n;
};

using unique_registry = grove::keyed_registry<std::string, std::int64_t>;
using topic_registry = grove::keyed_registry<std::string>;

std::string key_name(long long i) { return "key:" + std::to_string(i); }

// Holds keys [first, first + n) and idles until told to stop.
class holder final : public grove::process_handler {
 public:
  holder(unique_registry& r, grove::pid driver, long long first, long long n)
      : reg_(r), driver_(driver), first_(first), n_(n) {}
  void on_start() override {
    for (long long k = first_; k < first_ + n_; ++k) {
      if (!reg_.register_self(key_name(k), k)) bench::fail("keyed_registry", "register failed");
    }
    grove::send(driver_, ready{});
  }
  void on_message(grove::message& m) override {
    if (m.is<stop>()) grove::exit(grove::exit_reason::normal());
  }

 private:
  unique_registry& reg_;
  grove::pid driver_;
  long long first_, n_;
};

enum class op { find, lookup };

double lookup_run(grove::node& node, op which, int lookers, long long total, long long keys, unsigned partitions) {
  unique_registry reg(node, {.keys = grove::keys::unique, .partitions = partitions});
  std::vector<std::string> names;
  for (long long k = 0; k < keys; ++k) names.push_back(key_name(k));
  const double rate = node.run([&] {
    const grove::pid driver = grove::self();
    constexpr long long per_holder = 10;
    const long long holders = keys / per_holder;
    std::vector<grove::pid> hs;
    for (long long h = 0; h < holders; ++h) {
      hs.push_back(grove::spawn_handler(std::make_unique<holder>(reg, driver, h * per_holder, per_holder)));
    }
    for (long long h = 0; h < holders; ++h) grove::receive([](ready) {});
    const long long each = total / lookers;
    std::vector<grove::pid> ls;
    for (int l = 0; l < lookers; ++l) {
      ls.push_back(grove::spawn([&reg, &names, driver, each, which, seed = 0x9e3779b97f4a7c15ULL * (l + 1)] {
        grove::receive([](go) {});
        std::uint64_t x = seed;
        std::int64_t sum = 0;
        const std::uint64_t n = names.size();
        for (long long i = 0; i < each; ++i) {
          x ^= x << 13;
          x ^= x >> 7;
          x ^= x << 17;
          const std::string& k = names[x % n];
          if (which == op::find) {
            if (auto e = reg.find(k)) sum += e->value;
          } else {
            for (auto& e : reg.lookup(k)) sum += e.value;
          }
        }
        grove::send(driver, done{sum});
      }));
    }
    grove::sleep(std::chrono::milliseconds(20));  // let every looker reach its receive
    auto t0 = bench::clock::now();
    for (auto& l : ls) grove::send(l, go{});
    for (int l = 0; l < lookers; ++l) {
      if (grove::receive([](done d) { return d.sum; }) == 0) bench::fail("keyed_registry", "nothing found");
    }
    const double ns = bench::ns_since(t0);
    for (auto& h : hs) grove::send(h, stop{});
    bench::await_others_gone("keyed_registry");
    return static_cast<double>(each * lookers) / (ns / 1e9);
  });
  if (reg.count() != 0) bench::fail("keyed_registry", "entries left after the holders ended");
  return rate;
}

// Counts the news it receives; tells the driver when it has them all.
class subscriber final : public grove::process_handler {
 public:
  subscriber(topic_registry& r, grove::pid driver, long long expected)
      : reg_(r), driver_(driver), expected_(expected) {}
  void on_start() override {
    if (!reg_.register_self("topic")) bench::fail("keyed_registry", "subscribe failed");
    grove::send(driver_, ready{});
  }
  void on_message(grove::message& m) override {
    if (m.is<news>()) {
      if (++got_ == expected_) grove::send(driver_, done{got_});
    } else if (m.is<stop>()) {
      grove::exit(grove::exit_reason::normal());
    }
  }

 private:
  topic_registry& reg_;
  grove::pid driver_;
  long long expected_;
  long long got_ = 0;
};

struct publish_result {
  double ns_per_publish;       // until every subscriber has every message
  double ns_per_publish_call;  // inside publish() only
};

publish_result publish_run(grove::node& node, long long subscribers, long long publishes, unsigned partitions) {
  topic_registry topics(node, {.keys = grove::keys::duplicate, .partitions = partitions});
  return node.run([&] {
    const grove::pid driver = grove::self();
    std::vector<grove::pid> subs;
    for (long long s = 0; s < subscribers; ++s) {
      subs.push_back(grove::spawn_handler(std::make_unique<subscriber>(topics, driver, publishes)));
    }
    for (long long s = 0; s < subscribers; ++s) grove::receive([](ready) {});
    double in_calls = 0;
    auto t0 = bench::clock::now();
    for (long long i = 0; i < publishes; ++i) {
      auto tc = bench::clock::now();
      const std::size_t n = topics.publish("topic", news{i});
      in_calls += bench::ns_since(tc);
      if (static_cast<long long>(n) != subscribers)
        bench::fail("keyed_registry", "publish reached " + std::to_string(n));
    }
    for (long long s = 0; s < subscribers; ++s) grove::receive([](done) {});
    const double ns = bench::ns_since(t0);
    for (auto& s : subs) grove::send(s, stop{});
    bench::await_others_gone("keyed_registry");
    return publish_result{ns / static_cast<double>(publishes), in_calls / static_cast<double>(publishes)};
  });
}
}  // namespace

int main(int argc, char** argv) {
  auto a = bench::parse_args(argc, argv);
  const long long lookups = a.n ? a.n : (a.small ? 200000 : 4000000);
  const long long keys = std::stoll(a.opt("--keys", "10000"));
  const long long subscribers = std::stoll(a.opt("--subscribers", "1000"));
  const long long publishes = a.small ? 100 : 1000;
  const auto partitions = static_cast<unsigned>(std::stoul(a.opt("--partitions", "0")));
  const int repeat = a.repeat ? a.repeat : (a.small ? 1 : 3);
  bench::watchdog dog("keyed_registry", a.timeout_s ? a.timeout_s : (a.small ? 60 : 300));

  const unsigned lookup_scheds = a.schedulers ? a.schedulers : 2;
  for (op which : {op::find, op::lookup}) {
    for (int lookers : {1, 2}) {
      const char* op_name = which == op::find ? "find" : "lookup";
      dog.stage(std::string("lookup ") + op_name + " lookers=" + std::to_string(lookers));
      std::vector<double> runs;
      for (int r = 0; r < repeat; ++r) {
        grove::node node({.schedulers = lookup_scheds});
        runs.push_back(lookup_run(node, which, lookers, lookups, keys, partitions));
      }
      std::vector<double> mps;
      for (double v : runs) mps.push_back(v / 1e6);
      bench::json()
          .str("bench", "keyed_registry")
          .str("figure", "lookup")
          .str("op", op_name)
          .num("schedulers", lookup_scheds)
          .num("lookers", lookers)
          .num("partitions", partitions ? partitions : lookup_scheds)
          .num("keys", keys)
          .num("lookups", lookups / lookers * lookers)
          .num("repeat", repeat)
          .num("lookups_per_sec", bench::median(runs))
          .num("ns_per_lookup_per_looker", 1e9 * lookers / bench::median(runs))
          .nums("runs_million_per_sec", mps)
          .print();
    }
  }

  for (unsigned scheds : bench::scheduler_set(a)) {
    dog.stage("publish schedulers=" + std::to_string(scheds));
    std::vector<double> total, calls;
    for (int r = 0; r < repeat; ++r) {
      grove::node node({.schedulers = scheds});
      auto res = publish_run(node, subscribers, publishes, partitions);
      total.push_back(res.ns_per_publish);
      calls.push_back(res.ns_per_publish_call);
    }
    const double per = bench::median(total);
    bench::json()
        .str("bench", "keyed_registry")
        .str("figure", "publish")
        .num("schedulers", scheds)
        .num("subscribers", subscribers)
        .num("publishes", publishes)
        .num("repeat", repeat)
        .num("ns_per_publish", per)
        .num("ns_per_delivery", per / static_cast<double>(subscribers))
        .num("ns_per_publish_call", bench::median(calls))
        .nums("runs_ns_per_publish", total)
        .print();
  }
}
