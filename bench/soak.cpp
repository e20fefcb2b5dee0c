// Chaos soak: a supervision tree of about 10,000 named GenServers (100 one_for_one supervisors
// of 100 workers under one top supervisor) and the bank service, under load, while a killer
// process kills random workers at a fixed rate (1,000/s by default) for minutes. Not a speed
// benchmark and not run in CI at full size: it checks that the node survives, that every call
// is answered or fails with a reason, that the tree returns to its steady state (processes,
// names), that RSS stays flat and that the bank keeps its invariants. See docs/reliability.md.
//
//   soak [--small] [--minutes M] [--kill-rate R] [--processes P] [--schedulers K]
//        [--clients C] [--supervisor-kill-every N] [--yield] [--bank-transfers T] [--timeout S]
//        [--malloc-arenas N] [--memory-csv FILE]
//
// --small: 3 s with 1,000 processes (the CI smoke size). --supervisor-kill-every N: every N-th
// kill takes a whole sub-supervisor instead of a worker (default 1000; 0: workers only).
// --yield: clients yield after each call (by default they call back to back).
// --bank-transfers T: per bank client and round (default 5000, 1000 with --small; 0: no bank load).
// --malloc-arenas N: glibc's M_ARENA_MAX (default 1; 0: glibc's default, 8 per core).
// --memory-csv FILE: writes the memory breakdown sampled each second (RSS by mapping, malloc's
// statistics, the stack pool) to FILE.
// Output: one JSON line per figure group, the last with "ok"; exit status 1 if a check failed
// (the failures on stderr).
#include <bank.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <grove/app/service.hpp>
#include <grove/behaviours/supervisor.hpp>
#include <grove/grove.hpp>
#include <map>
#include <memory>
#include <random>
#include <thread>

#include "bench_common.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

using namespace std::chrono_literals;
using bench::clock;

struct ping {};
struct peek {};

// A worker: a counter, so a reply is a value the server computed (not a default). Two request
// types, because with one gen_server.hpp's dispatch fold is a lone comparison whose value g++ 12
// reports unused (-Wunused-value, an error under GROVE_WERROR).
class worker final : public grove::gen_server<worker> {
 public:
  using handles = grove::types<ping, peek>;
  std::uint64_t handle_call(const ping&, const grove::from&) { return ++count_; }
  std::uint64_t handle_call(const peek&, const grove::from&) { return count_; }

 private:
  std::uint64_t count_ = 0;
};

constexpr auto bank_kill_every = 10ms;  // the bank's own crasher, during each round
constexpr auto sample_every = 100ms;
constexpr std::size_t rss_floor = 2u << 20;  // RSS growth below this passes whatever its percentage

struct settings {
  double seconds = 60;
  double kill_rate = 1000;
  int subs = 100, per_sub = 100;
  int clients = 4;
  int supervisor_kill_every = 1000;
  grove::duration call_timeout = 1s;
  grove::duration hang_slack = 1s;  // a call longer than timeout + slack hung
  // Clients call back to back, as a real client would. Until 2692932 a client and the worker
  // it called handed the thread to each other and starved timers there (docs/reliability.md);
  // --yield makes them yield after each call, as the soak first had to.
  bool client_yield = false;
  grove::pid bank;  // the bank application's top supervisor
  // Per client and round. A round's maps of transfers are what RSS swings by: a small run's
  // rounds are smaller, so the swings stay below its RSS check's floor.
  int bank_transfers = 5000;
  int malloc_arenas = 1;  // M_ARENA_MAX; 0: glibc's default (main below says why 1)
};

// Reports the helper processes send back when told to stop.
struct stop_msg {};
struct client_report {
  std::uint64_t ok = 0, failed = 0, over_deadline = 0;
  std::map<std::string, std::uint64_t> reasons;
  double max_ms = 0;
};
struct killer_report {
  std::uint64_t kills = 0, misses = 0, supervisor_kills = 0;
  double seconds = 0;
};
struct sample {
  double t = 0;
  std::size_t processes = 0, names = 0, rss = 0;
};
// Where the memory is, once a second: RSS split by mapping (from /proc/self/smaps), glibc's
// malloc statistics and the node's stack pool.
struct mem_sample {
  double t = 0;
  std::size_t processes = 0;
  std::size_t rss = 0;
  // Resident bytes by mapping: the stack pool's slabs (anonymous, 256 MiB and more: glibc's
  // arena heaps are at most 64 MiB, thread stacks 8 MiB), the main arena ([heap]), other
  // anonymous mappings (the other arenas, large malloc blocks, thread stacks), files. With
  // several arenas the kernel may merge an arena's heap into an adjacent slab's mapping, whose
  // figure then counts both.
  std::size_t rss_slabs = 0, rss_heap = 0, rss_anon = 0, rss_file = 0;
  std::size_t stacks_mapped = 0, stacks_warm = 0, stacks_released = 0;
  // mallinfo2: bytes the arenas got from the system (arena), in large mmapped blocks (hblkhd),
  // in use (uordblks), free inside the arenas (fordblks), trimmable at the main heap's top.
  std::size_t arena = 0, mmapped = 0, in_use = 0, free = 0, keepcost = 0;
  std::size_t arenas = 0;  // glibc arenas (malloc_info's heaps)
  std::string per_arena;   // "system KiB:free KiB:free chunks" per arena, space-separated
};
struct sampler_report {
  std::vector<sample> samples;
  std::vector<mem_sample> mem;
  double max_gap_ms = 0;  // beyond sample_every between two samples: how long its wake-up waited
};
struct bank_report {
  std::uint64_t rounds = 0, transfers = 0, applied = 0, retries = 0, ledger_kills = 0;
  double seconds = 0;  // in rounds: the crasher is due to kill seconds / kill_every times
  std::string failure;
};

struct outcome {
  killer_report killer;
  client_report calls;
  sampler_report samples;
  bank_report bank;
  bool bank_finished = false;
  std::size_t processes_before = 0, processes_after = 0, names_before = 0, names_after = 0;
  bool steady = false;
  double steady_ms = 0;
  std::uint64_t final_ok = 0, final_failed = 0;
  std::size_t rss_start = 0, rss_after = 0;
  double warm_s = 0;  // the warm-up
  double shutdown_ms = 0;
  std::vector<std::string> problems;  // what went wrong outside the checks (a lost report)
};

std::string worker_name(int i, int j) { return "w." + std::to_string(i) + "." + std::to_string(j); }
std::string sup_name(int i) { return "s." + std::to_string(i); }

double ms_between(clock::time_point a, clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

grove::child_spec worker_spec(const std::string& name) {
  grove::child_spec s;
  s.id = name;
  s.start = [name] { return grove::start_link(std::make_unique<worker>(), {.name = name}); };
  return s;
}

// A named sub-supervisor, so the killer can find it; the intensity is far above what the chaos
// can reach, so no supervisor ever gives up and the tree's shape stays what it was.
grove::child_spec sub_supervisor_spec(int i, int per_sub) {
  const grove::supervisor_flags flags{.intensity = 1000000, .period = std::chrono::seconds(1)};
  std::vector<grove::child_spec> kids;
  for (int j = 0; j < per_sub; ++j) kids.push_back(worker_spec(worker_name(i, j)));
  grove::child_spec s;
  s.id = sup_name(i);
  s.type = grove::child_type::supervisor;
  s.start = [flags, kids, name = s.id] {
    return grove::detail::start_supervisor_link_at(flags, kids, "soak/" + name, {.name = name});
  };
  return s;
}

template <class T>
std::optional<T> receive_report(grove::duration limit) {
  return grove::receive_for(limit, [](T r) { return r; });
}

// Calls random workers by name until told to stop; every call ends as a reply or a reason.
grove::pid start_client(const grove::pid& me, std::shared_ptr<const std::vector<std::string>> names, std::uint64_t seed,
                        const settings& s) {
  return grove::spawn([me, names, seed, timeout = s.call_timeout, slack = s.hang_slack, yield = s.client_yield] {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<std::size_t> pick(0, names->size() - 1);
    client_report r;
    const double hang_ms = std::chrono::duration<double, std::milli>(timeout + slack).count();
    while (!grove::receive_for(grove::duration::zero(), [](stop_msg) {})) {
      const std::string& name = (*names)[pick(rng)];
      const auto t0 = clock::now();
      try {
        grove::call<std::uint64_t>(name, ping{}, timeout);
        ++r.ok;
      } catch (const grove::call_error& e) {
        ++r.failed;
        ++r.reasons[e.reason().str()];
      } catch (const std::exception& e) {
        // Not a call_error: the call failed some other way; keep it visible.
        ++r.failed;
        ++r.reasons[std::string("exception: ") + e.what()];
      }
      const double ms = ms_between(t0, clock::now());
      r.max_ms = std::max(r.max_ms, ms);
      if (ms > hang_ms) ++r.over_deadline;
      if (yield) grove::yield();
    }
    grove::send(me, std::move(r));
  });
}

// Kills at `kill_rate` per second on average: each tick catches up with the schedule, so a
// late tick does not lower the rate.
grove::pid start_killer(const grove::pid& me, std::shared_ptr<const std::vector<std::string>> names, int subs,
                        const settings& s) {
  return grove::spawn([me, names, subs, rate = s.kill_rate, sup_every = s.supervisor_kill_every] {
    std::mt19937_64 rng(0x5eed);
    std::uniform_int_distribution<std::size_t> pick_worker(0, names->size() - 1);
    std::uniform_int_distribution<int> pick_sup(0, subs - 1);
    killer_report r;
    const auto t0 = clock::now();
    std::uint64_t attempts = 0;
    while (!grove::receive_for(1ms, [](stop_msg) {})) {
      const double due = rate * std::chrono::duration<double>(clock::now() - t0).count();
      while (static_cast<double>(attempts) < due) {
        ++attempts;
        const bool sup = sup_every > 0 && attempts % static_cast<std::uint64_t>(sup_every) == 0;
        const std::string name = sup ? sup_name(pick_sup(rng)) : (*names)[pick_worker(rng)];
        auto p = grove::whereis(name);
        if (!p) {
          ++r.misses;  // mid-restart: the name is free until the new process registers it
          continue;
        }
        grove::exit(*p, grove::exit_reason::kill());
        ++(sup ? r.supervisor_kills : r.kills);
      }
    }
    r.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    grove::send(me, r);
  });
}

// Resident bytes per kind of mapping, from /proc/self/smaps.
void smaps_rss(mem_sample& m) {
  constexpr std::size_t slab_min = std::size_t{256} << 20;
  std::ifstream f("/proc/self/smaps");
  std::string line;
  std::size_t* into = nullptr;
  while (std::getline(f, line)) {
    // A mapping's header: "lo-hi perms offset dev inode [path]"; its fields follow, one a line.
    const auto sp = line.find(' ');
    if (sp != std::string::npos && line.find_first_not_of("0123456789abcdef-") == sp) {
      unsigned long lo = 0, hi = 0, inode = 0;
      int path_at = 0;
      if (std::sscanf(line.c_str(), "%lx-%lx %*s %*s %*s %lu %n", &lo, &hi, &inode, &path_at) < 3) {
        into = nullptr;
        continue;
      }
      const std::string path = path_at > 0 ? line.substr(static_cast<std::size_t>(path_at)) : "";
      if (path == "[heap]") {
        into = &m.rss_heap;
      } else if (inode != 0) {
        into = &m.rss_file;
      } else if (path.empty() && hi - lo >= slab_min) {
        into = &m.rss_slabs;
      } else {
        into = &m.rss_anon;
      }
    } else if (into && line.compare(0, 4, "Rss:") == 0) {
      *into += std::strtoull(line.c_str() + 4, nullptr, 10) * 1024;
    }
  }
}

mem_sample take_mem_sample(double t) {
  mem_sample m;
  m.t = t;
  m.processes = grove::this_node().process_count();
  m.rss = bench::rss_bytes();
  smaps_rss(m);
  const auto st = grove::this_node().stack_memory_stats();
  m.stacks_mapped = st.mapped;
  m.stacks_warm = st.warm;
  m.stacks_released = st.released;
#if defined(__GLIBC__)
  const struct mallinfo2 mi = ::mallinfo2();
  m.arena = mi.arena;
  m.mmapped = mi.hblkhd;
  m.in_use = mi.uordblks;
  m.free = mi.fordblks;
  m.keepcost = mi.keepcost;
  char* buf = nullptr;
  std::size_t len = 0;
  if (FILE* f = ::open_memstream(&buf, &len)) {
    ::malloc_info(0, f);
    std::fclose(f);
    // Per arena: its size from the system, and its free chunks (bytes, count).
    auto field = [](const char* from, const char* end, const char* tag, const char* attr) -> std::size_t {
      const char* p = std::strstr(from, tag);
      if (!p || p > end) return 0;
      p = std::strstr(p, attr);
      return p && p < end ? std::strtoull(p + std::strlen(attr), nullptr, 10) : 0;
    };
    for (const char* p = buf; (p = std::strstr(p, "<heap nr=")) != nullptr; ++p) {
      ++m.arenas;
      const char* end = std::strstr(p, "</heap>");
      if (!end) break;
      const std::size_t cur = field(p, end, "<system type=\"current\"", "size=\"");
      const std::size_t fast = field(p, end, "<total type=\"fast\"", "size=\"");
      const std::size_t rest = field(p, end, "<total type=\"rest\"", "size=\"");
      const std::size_t chunks =
          field(p, end, "<total type=\"fast\"", "count=\"") + field(p, end, "<total type=\"rest\"", "count=\"");
      m.per_arena += (m.per_arena.empty() ? "" : " ") + std::to_string(cur >> 10) + ":" +
                     std::to_string((fast + rest) >> 10) + ":" + std::to_string(chunks);
    }
    std::free(buf);
  }
#endif
  return m;
}

grove::pid start_sampler(const grove::pid& me) {
  return grove::spawn([me] {
    sampler_report r;
    const auto t0 = clock::now();
    auto last = t0;
    do {
      if (r.samples.size() % 10 == 0) {
        r.mem.push_back(take_mem_sample(std::chrono::duration<double>(clock::now() - t0).count()));
      }
      const auto now = clock::now();
      const double due_ms = r.samples.empty() ? 0.0 : std::chrono::duration<double, std::milli>(sample_every).count();
      r.max_gap_ms = std::max(r.max_gap_ms, ms_between(last, now) - due_ms);
      last = now;
      r.samples.push_back({std::chrono::duration<double>(now - t0).count(), grove::this_node().process_count(),
                           grove::registered().size(), bench::rss_bytes()});
    } while (!grove::receive_for(sample_every, [](stop_msg) {}));
    grove::send(me, std::move(r));
  });
}

// Rounds of the bank's own load (with its ledger crasher) until told to stop; each round checks
// the invariants against the acknowledged transfers. The bank starts afresh before each round
// (vault and ledger stopped and started again): run_load numbers its transfers from 1 each
// time, and the ledger answers a known transfer id with its first outcome without applying it.
grove::pid start_bank_load(const grove::pid& me, const grove::pid& bank_sup, int transfers) {
  return grove::spawn([me, bank_sup, transfers] {
    bank_report r;
    if (transfers == 0) grove::receive([](stop_msg) {});  // --bank-transfers 0: no bank load
    while (transfers > 0 && !grove::receive_for(grove::duration::zero(), [](stop_msg) {})) {
      for (const char* id : {"ledger", "vault"}) grove::terminate_child(bank_sup, id);
      for (const char* id : {"vault", "ledger"}) {
        if (auto c = grove::restart_child(bank_sup, id); !c && r.failure.empty()) {
          r.failure =
              std::string("restarting the bank's ") + id + ": " + grove::to_string(c.error) + " " + c.reason.str();
        }
      }
      bank::load_options o;
      o.clients = 2;
      o.transfers_per_client = transfers;
      o.reads_per_transfer = 1;
      o.accounts = 16;
      o.kill_every = bank_kill_every;
      o.seed = r.rounds + 1;
      const auto rep = bank::run_load(o);
      ++r.rounds;
      r.transfers += rep.transfers_acked;
      r.applied += rep.transfers_applied;
      r.retries += rep.retries;
      r.ledger_kills += rep.ledger_kills;
      r.seconds += rep.seconds;
      if (!rep.ok() && r.failure.empty()) r.failure = "round " + std::to_string(r.rounds) + ": " + rep.failure;
    }
    grove::send(me, r);
  });
}

// Every worker and sub-supervisor registered again, and the process and name counts back to
// the steady state's.
bool tree_steady(const std::vector<std::string>& names, int subs, const outcome& o) {
  for (auto& n : names) {
    if (!grove::whereis(n)) return false;
  }
  for (int i = 0; i < subs; ++i) {
    if (!grove::whereis(sup_name(i))) return false;
  }
  return grove::this_node().process_count() == o.processes_before && grove::registered().size() == o.names_before;
}

outcome run_soak(const settings& s, bench::watchdog& dog) {
  outcome o;
  o.rss_start = bench::rss_bytes();
  dog.stage("start the tree");
  std::vector<grove::child_spec> subs;
  for (int i = 0; i < s.subs; ++i) subs.push_back(sub_supervisor_spec(i, s.per_sub));
  auto top =
      grove::start_supervisor({.intensity = 1000000, .period = std::chrono::seconds(1)}, subs, {.name = "soak.top"})
          .value();
  auto names = std::make_shared<std::vector<std::string>>();
  for (int i = 0; i < s.subs; ++i) {
    for (int j = 0; j < s.per_sub; ++j) names->push_back(worker_name(i, j));
  }
  o.processes_before = grove::this_node().process_count();
  o.names_before = grove::registered().size();

  dog.stage("chaos");
  const grove::pid me = grove::self();
  std::vector<grove::pid> helpers;
  std::vector<grove::monitor_ref> watched;
  auto watch = [&](grove::pid p) {
    helpers.push_back(p);
    watched.push_back(grove::monitor(p));
  };
  watch(start_sampler(me));
  watch(start_bank_load(me, s.bank, s.bank_transfers));
  for (int c = 0; c < s.clients; ++c) watch(start_client(me, names, 1000 + static_cast<std::uint64_t>(c), s));
  watch(start_killer(me, names, s.subs, s));

  // RSS is compared between the warm-up (a tenth of the run, at least 1 s: allocator pools,
  // stack caches and mailboxes reach their working size) and as long a stretch at the end.
  o.warm_s = std::min(std::max(s.seconds / 10, 1.0), s.seconds / 2);
  grove::sleep(std::chrono::duration_cast<grove::duration>(std::chrono::duration<double>(s.seconds)));

  dog.stage("stop the chaos and the load: the killer's report");
  for (auto& p : helpers) grove::send(p, stop_msg{});
  // The reports come in any order: each receive picks its own type.
  if (auto r = receive_report<killer_report>(30s)) {
    o.killer = *r;
  } else {
    o.problems.push_back("the killer did not report within 30 s");
  }
  dog.stage("stop the chaos and the load: the clients' reports");
  for (int c = 0; c < s.clients; ++c) {
    if (auto r = receive_report<client_report>(s.call_timeout + s.hang_slack + 30s)) {
      o.calls.ok += r->ok;
      o.calls.failed += r->failed;
      o.calls.over_deadline += r->over_deadline;
      o.calls.max_ms = std::max(o.calls.max_ms, r->max_ms);
      for (auto& [k, v] : r->reasons) o.calls.reasons[k] += v;
    } else {
      o.problems.push_back("a client did not report within 30 s after its call timeout");
    }
  }
  dog.stage("stop the chaos and the load: the sampler's report");
  if (auto r = receive_report<sampler_report>(30s)) {
    o.samples = std::move(*r);
  } else {
    o.problems.push_back("the sampler did not report within 30 s");
  }
  dog.stage("stop the chaos and the load: the bank's report");
  // A round takes a fraction of a second, but it retries each call until the ledger answers.
  if (auto r = receive_report<bank_report>(120s)) {
    o.bank = *r;
    o.bank_finished = true;
  } else {
    o.problems.push_back("the bank load did not finish its round within 120 s");
  }
  dog.stage("stop the chaos and the load: the helpers' ends");
  for (std::size_t i = 0; i < watched.size(); ++i) {
    if (!grove::receive_for(30s, [](const grove::down&) {})) {
      o.problems.push_back("a helper process did not end within 30 s");
      break;
    }
  }

  dog.stage("wait for the steady state");
  const auto t_stop = clock::now();
  const auto deadline = t_stop + 60s;
  while (!(o.steady = tree_steady(*names, s.subs, o)) && clock::now() < deadline) grove::sleep(10ms);
  o.steady_ms = ms_between(t_stop, clock::now());
  o.processes_after = grove::this_node().process_count();
  o.names_after = grove::registered().size();

  dog.stage("final calls");
  // The node is alive: every worker answers once more.
  for (auto& n : *names) {
    if (grove::try_call<std::uint64_t>(n, ping{}, s.call_timeout)) {
      ++o.final_ok;
    } else {
      ++o.final_failed;
    }
  }
  o.rss_after = bench::rss_bytes();

  dog.stage("stop the tree");
  const auto t_down = clock::now();
  grove::stop(top, grove::exit_reason::shutdown());
  o.shutdown_ms = ms_between(t_down, clock::now());
  return o;
}

double mb(std::size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

}  // namespace

int main(int argc, char** argv) {
  auto a = bench::parse_args(argc, argv);
  settings s;
  s.seconds = a.flag("--minutes") ? 60.0 * std::atof(a.opt("--minutes").c_str()) : (a.small ? 3.0 : 60.0);
  s.kill_rate = std::atof(a.opt("--kill-rate", "1000").c_str());
  long long processes = a.small ? 1000 : 10000;
  if (a.flag("--processes")) processes = std::atoll(a.opt("--processes").c_str());
  if (a.n) processes = a.n;
  s.clients = std::atoi(a.opt("--clients", "4").c_str());
  s.supervisor_kill_every = std::atoi(a.opt("--supervisor-kill-every", "1000").c_str());
  s.client_yield = a.flag("--yield");
  if (a.small) s.bank_transfers = 1000;
  if (a.flag("--bank-transfers")) s.bank_transfers = std::atoi(a.opt("--bank-transfers").c_str());
  s.malloc_arenas = std::atoi(a.opt("--malloc-arenas", "1").c_str());
  if (s.seconds <= 0 || s.kill_rate < 0 || processes < 1 || s.clients < 1 || s.supervisor_kill_every < 0 ||
      s.bank_transfers < 0 || s.malloc_arenas < 0) {
    std::cerr << "soak: --minutes, --processes and --clients must be positive; --kill-rate, "
                 "--supervisor-kill-every, --bank-transfers and --malloc-arenas not negative\n";
    return 2;
  }
  // glibc gives each thread that allocates its own malloc arena (up to 8 per core), and a
  // process's memory comes from the arena of the scheduler thread it runs on at that moment. The
  // tree is built on one scheduler, so that arena holds all of it; restarts then allocate in
  // whichever scheduler's arena runs them, while the first arena keeps the pages its freed
  // processes leave among its live ones. RSS climbs for minutes with the live heap flat (see
  // docs/reliability.md). One arena, set here before any thread exists, makes RSS follow the
  // live heap, which is what the RSS check is for; --malloc-arenas 0 keeps glibc's default.
#if defined(__GLIBC__)
  if (s.malloc_arenas > 0 && ::mallopt(M_ARENA_MAX, s.malloc_arenas) != 1) {
    std::cerr << "soak: mallopt(M_ARENA_MAX) failed\n";
    return 2;
  }
#endif
  // A square tree: sqrt(P) supervisors of sqrt(P) workers (100 x 100 for 10,000).
  s.subs = std::max(1, static_cast<int>(std::lround(std::sqrt(static_cast<double>(processes)))));
  s.per_sub = static_cast<int>((processes + s.subs - 1) / s.subs);

  const int limit = a.timeout_s ? a.timeout_s : static_cast<int>(s.seconds) + (a.small ? 60 : 600);
  bench::watchdog dog("soak", limit);

  grove::kind_registry kinds;
  grove::add_builtin_kinds(kinds);
  bank::add_kinds(kinds);
  grove::service_options so;
  so.handle_signals = false;
  if (a.schedulers) so.schedulers = a.schedulers;
  // The bank's supervisor must outlast its ledger crasher as the tree's supervisors outlast
  // the killer; logging is off because every kill would be reported.
  const char* yaml = R"(
node: { logging: { level: off } }
applications:
  - name: bank
    supervisor:
      intensity: 1000000
      period: 1s
      children:
        - { id: vault, kind: bank_vault, name: bank.vault }
        - { id: ledger, kind: bank_ledger, name: bank.ledger, args: { storage: process, accounts: 16, opening: 1000 } }
)";
  grove::service svc(std::move(kinds), so);
  if (!svc.load_string(yaml, "soak.yaml")) {
    std::cerr << svc.errors().to_string();
    return 2;
  }
  int run_status = -1;
  std::thread runner([&] { run_status = svc.run(); });
  if (!svc.wait_started(std::chrono::seconds(30))) {
    svc.stop();
    runner.join();
    bench::fail("soak", "the bank service did not start");
  }
  grove::node& node = *svc.running_node();
  s.bank = svc.application("bank").value_or(grove::pid{});
  const unsigned schedulers = node.schedulers();
  outcome o;
  try {
    o = node.run([&] { return run_soak(s, dog); });
  } catch (const std::exception& e) {
    svc.stop();
    runner.join();
    bench::fail("soak", std::string("the driver process failed: ") + e.what());
  }
  dog.stage("stop the node");
  svc.stop();
  runner.join();

  const double kills_per_s = o.killer.seconds > 0 ? static_cast<double>(o.killer.kills) / o.killer.seconds : 0;
  // Peaks, not single samples: the bank's rounds allocate and free a few MB each, so one
  // sample depends on where in a round it falls; the highest of many does not.
  std::size_t rss_warm = 0, rss_end = 0, rss_max = 0;
  std::vector<double> rss_series;  // MB at the start and after every tenth of the run
  for (auto& x : o.samples.samples) {
    if (x.t <= o.warm_s) rss_warm = std::max(rss_warm, x.rss);
    if (x.t >= s.seconds - o.warm_s) rss_end = std::max(rss_end, x.rss);
    rss_max = std::max(rss_max, x.rss);
    if (x.t >= s.seconds / 10 * static_cast<double>(rss_series.size())) rss_series.push_back(mb(x.rss));
  }
  const double growth =
      rss_warm ? 100.0 * (static_cast<double>(rss_end) - static_cast<double>(rss_warm)) / static_cast<double>(rss_warm)
               : 0;
  std::size_t max_processes = 0, min_names = o.names_before;
  for (auto& x : o.samples.samples) {
    max_processes = std::max(max_processes, x.processes);
    min_names = std::min(min_names, x.names);
  }

  // The checks, each with its failure text.
  std::vector<std::string> failures = o.problems;
  auto check = [&](bool pass, const std::string& what) {
    if (!pass) failures.push_back(what);
    return pass;
  };
  const bool calls_ok = check(o.calls.over_deadline == 0, std::to_string(o.calls.over_deadline) +
                                                              " calls took longer than their timeout + 1 s (max " +
                                                              std::to_string(o.calls.max_ms) + " ms)");
  const bool steady_ok =
      check(o.steady, "the tree did not return to its steady state within 60 s: processes " +
                          std::to_string(o.processes_before) + " -> " + std::to_string(o.processes_after) + ", names " +
                          std::to_string(o.names_before) + " -> " + std::to_string(o.names_after));
  const bool alive_ok =
      check(o.final_failed == 0, std::to_string(o.final_failed) + " workers did not answer a call after the chaos");
  // A floor of 2 MiB: a 3 s run's 12 MB are still warming up (about 1 MB over its last
  // seconds); a real leak over minutes is far above it.
  const bool rss_ok = check(growth <= 5.0 || rss_end <= rss_warm + rss_floor,
                            "RSS grew by " + std::to_string(growth) + " % from the warm-up to the end");
  const bool bank_ok = check(o.bank_finished && o.bank.failure.empty(), "bank: " + o.bank.failure);
  const bool node_ok = check(run_status == 0, "the service ended with status " + std::to_string(run_status));
  const bool ok = failures.empty();

  bench::json()
      .str("bench", "soak")
      .str("group", "config")
      .num("seconds", s.seconds)
      .num("kill_rate", s.kill_rate)
      .num("workers", s.subs * s.per_sub)
      .num("supervisors", s.subs + 1)
      .num("schedulers", schedulers)
      .num("clients", s.clients)
      .num("supervisor_kill_every", s.supervisor_kill_every)
      .boolean("client_yield", s.client_yield)
      .num("malloc_arenas", s.malloc_arenas)
      .print();
  bench::json()
      .str("bench", "soak")
      .str("group", "chaos")
      .num("kills", o.killer.kills)
      .num("kills_per_s", kills_per_s)
      .num("kill_misses", o.killer.misses)
      .num("supervisor_kills", o.killer.supervisor_kills)
      .num("max_processes", max_processes)
      .num("min_names", min_names)
      .num("max_sample_gap_ms", o.samples.max_gap_ms)
      .print();
  {
    bench::json j;
    j.str("bench", "soak")
        .str("group", "calls")
        .num("calls_ok", o.calls.ok)
        .num("calls_failed", o.calls.failed)
        .num("calls_over_deadline", o.calls.over_deadline)
        .num("max_call_ms", o.calls.max_ms);
    for (auto& [reason, n] : o.calls.reasons) j.num(("failed_" + reason).c_str(), n);
    j.boolean("ok", calls_ok).print();
  }
  bench::json()
      .str("bench", "soak")
      .str("group", "steady")
      .num("processes_before", o.processes_before)
      .num("processes_after", o.processes_after)
      .num("names_before", o.names_before)
      .num("names_after", o.names_after)
      .num("steady_ms", o.steady_ms)
      .num("final_calls_ok", o.final_ok)
      .num("final_calls_failed", o.final_failed)
      .num("tree_shutdown_ms", o.shutdown_ms)
      .boolean("ok", steady_ok && alive_ok)
      .print();
  bench::json mj;
  mj.str("bench", "soak")
      .str("group", "memory")
      .num("rss_start_mb", mb(o.rss_start))
      .num("warm_s", o.warm_s)
      .num("rss_warm_mb", mb(rss_warm))
      .num("rss_end_mb", mb(rss_end))
      .num("rss_growth_pct", growth)
      .num("rss_floor_mb", mb(rss_floor))
      .num("rss_max_mb", mb(rss_max))
      .num("rss_after_mb", mb(o.rss_after))
      .nums("rss_mb", rss_series);
  {
    // The breakdown (once a second), at the start and after every tenth of the run, as rss_mb.
    std::vector<const mem_sample*> tenths;
    for (auto& m : o.samples.mem) {
      if (m.t >= s.seconds / 10 * static_cast<double>(tenths.size())) tenths.push_back(&m);
    }
    auto series = [&](const char* key, std::size_t mem_sample::*field) {
      std::vector<double> v;
      for (auto* m : tenths) v.push_back(mb(m->*field));
      mj.nums(key, v);
    };
    series("rss_stack_slabs_mb", &mem_sample::rss_slabs);
    series("rss_main_heap_mb", &mem_sample::rss_heap);
    series("rss_other_anon_mb", &mem_sample::rss_anon);
    series("rss_file_mb", &mem_sample::rss_file);
    series("malloc_arena_mb", &mem_sample::arena);
    series("malloc_mmapped_mb", &mem_sample::mmapped);
    series("malloc_in_use_mb", &mem_sample::in_use);
    series("malloc_free_mb", &mem_sample::free);
    series("malloc_keepcost_mb", &mem_sample::keepcost);
    series("stacks_mapped_mb", &mem_sample::stacks_mapped);
    series("stacks_warm_mb", &mem_sample::stacks_warm);
    series("stacks_released_mb", &mem_sample::stacks_released);
    std::vector<double> arenas, procs;
    for (auto* m : tenths) {
      arenas.push_back(static_cast<double>(m->arenas));
      procs.push_back(static_cast<double>(m->processes));
    }
    mj.nums("malloc_arena_count", arenas).nums("processes", procs);
  }
  mj.boolean("ok", rss_ok).print();
  bench::json()
      .str("bench", "soak")
      .str("group", "bank")
      .num("rounds", o.bank.rounds)
      .num("transfers", o.bank.transfers)
      .num("transfers_applied", o.bank.applied)
      .num("retries", o.bank.retries)
      .num("ledger_kills", o.bank.ledger_kills)
      .num("ledger_kills_due", std::floor(o.bank.seconds / std::chrono::duration<double>(bank_kill_every).count()) +
                                   static_cast<double>(o.bank.rounds))
      .num("seconds_in_rounds", o.bank.seconds)
      .boolean("invariants_ok", bank_ok)
      .print();
  bench::json()
      .str("bench", "soak")
      .str("group", "result")
      .boolean("calls_ok", calls_ok)
      .boolean("steady_ok", steady_ok)
      .boolean("alive_ok", alive_ok)
      .boolean("rss_ok", rss_ok)
      .boolean("bank_ok", bank_ok)
      .boolean("node_ok", node_ok)
      .boolean("ok", ok)
      .print();
  if (a.flag("--memory-csv")) {
    // Every breakdown sample (once a second), for a closer look than the tenths above.
    std::ofstream csv(a.opt("--memory-csv"));
    csv << "t,processes,rss,rss_stack_slabs,rss_main_heap,rss_other_anon,rss_file,stacks_mapped,stacks_warm,"
           "stacks_released,malloc_arena,malloc_mmapped,malloc_in_use,malloc_free,malloc_keepcost,malloc_arenas,"
           "per_arena\n";
    for (auto& m : o.samples.mem) {
      csv << m.t << ',' << m.processes << ',' << m.rss << ',' << m.rss_slabs << ',' << m.rss_heap << ',' << m.rss_anon
          << ',' << m.rss_file << ',' << m.stacks_mapped << ',' << m.stacks_warm << ',' << m.stacks_released << ','
          << m.arena << ',' << m.mmapped << ',' << m.in_use << ',' << m.free << ',' << m.keepcost << ',' << m.arenas
          << ',' << m.per_arena << '\n';
    }
  }
  for (auto& f : failures) std::cerr << "soak: " << f << "\n";
  return ok ? 0 : 1;
}
