// Distribution over loopback (docs/concepts/distribution.md): a remote gen_server call's round
// trip and one-way message throughput, between two Grove nodes, Grove and Erlang both ways, and
// two Erlang nodes (Debian's erl, bench/erl/dist_peer.erl) measured in the same run.
//
//   call_rtt_us   sequential calls of {echo, Node} with an integer: microseconds per call
//   call_p50_us, call_p99_us
//                 a Grove client's calls: the median and 99th percentile (the mean hides
//                 whether every call is slower or a few wait for a sleeping thread)
//   msgs_per_s    {msg, I} sent to {sink, Node} one after another, then {count, self()}
//                 answered once all arrived: messages per second
//
// --grove-only measures Grove to Grove alone (no Erlang figures to compare with).
//
// Every node is its own OS process: the Grove peer is this program run with --peer, the
// Erlang ones are erl. Grove nodes run with default options but the scheduler count.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include <grove/dist/distribution.hpp>
#include <grove/grove.hpp>

#include "bench_common.hpp"

extern char** environ;

namespace d = grove::dist;
using d::term;

namespace {

// A child program whose stdout we read by lines; killed when it goes.
class child {
 public:
  explicit child(std::vector<std::string> args) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) bench::fail("dist", "pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0)
      bench::fail("dist", "cannot run " + args[0]);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = out[0];
  }
  ~child() {
    close(to_);
    close(from_);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::string line(int seconds = 120) {
    const auto deadline = bench::clock::now() + std::chrono::seconds(seconds);
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return l;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - bench::clock::now()).count();
      pollfd p{from_, POLLIN, 0};
      if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) return "";
      char b[4096];
      const ssize_t n = read(from_, b, sizeof b);
      if (n <= 0) return "";
      buf_.append(b, static_cast<std::size_t>(n));
    }
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buf_;
};

class echo : public grove::gen_server<echo> {
 public:
  using handles = grove::types<term>;
  term handle_call(const term& t, const grove::from&) { return t; }
};

// The Grove peer: `echo` and `sink` as bench/erl/dist_peer.erl has them; runs until stdin closes.
int run_peer(const std::string& name, const std::string& cookie, unsigned schedulers) {
  grove::node n({.schedulers = schedulers});
  d::distribution dist(n, {.name = name, .cookie = cookie});
  n.run([&] { grove::start(std::make_unique<echo>(), {.name = "echo"}).value(); });
  n.spawn([&] {
    grove::register_name("sink", grove::self());
    std::int64_t count = 0;
    for (;;) {
      grove::receive([&](const term& t) {
        const auto* tu = t.get_if<d::tuple>();
        if (tu && tu->elements.size() == 2 && tu->elements[0] == term::make_atom("count") &&
            tu->elements[1].is<d::erl_pid>()) {
          if (auto p = dist.from_erl(tu->elements[1].as<d::erl_pid>()))
            grove::send(*p, term::make_tuple({term::make_atom("count"), term(count)}));
          count = 0;
        } else {
          ++count;
        }
      });
    }
  });
  std::printf("%s\n", dist.name().c_str());
  std::fflush(stdout);
  char b;
  while (read(0, &b, 1) > 0) {
  }
  return 0;
}

struct figures {
  double call_rtt_us = 0, msgs_per_s = 0;
  double call_p50_us = -1, call_p99_us = -1;  // -1: not measured (an Erlang client)
};

// Grove as the client of `peer` (a Grove or an Erlang node).
figures grove_client(const std::string& peer, const std::string& cookie, unsigned schedulers, long long calls,
                     long long msgs) {
  grove::node n({.schedulers = schedulers});
  d::distribution dist(n, {.name = "bench_client_" + std::to_string(getpid()), .cookie = cookie});
  std::string why;
  if (!dist.connect(peer, &why)) bench::fail("dist", "cannot connect to " + peer + ": " + why);
  return n.run([&] {
    figures f;
    const grove::server_ref echo_ref("echo", peer);
    for (int i = 1; i <= 1000; ++i) grove::call<term>(echo_ref, term(i));  // warm-up
    auto t0 = bench::clock::now();
    std::vector<double> each(static_cast<std::size_t>(calls));
    for (long long i = 1; i <= calls; ++i) {
      const auto t = bench::clock::now();
      if (!(grove::call<term>(echo_ref, term(static_cast<std::int64_t>(i))) == term(static_cast<std::int64_t>(i))))
        bench::fail("dist", "a wrong reply");
      each[static_cast<std::size_t>(i - 1)] = bench::ns_since(t) / 1e3;
    }
    f.call_rtt_us = bench::ns_since(t0) / 1e3 / static_cast<double>(calls);
    std::sort(each.begin(), each.end());
    f.call_p50_us = each[each.size() / 2];
    f.call_p99_us = each[each.size() * 99 / 100];
    const grove::pid sink = *dist.address("sink", peer);
    const term count = term::make_tuple({term::make_atom("count"), term(dist.to_erl(grove::self()))});
    auto counted = [] {
      auto r = grove::receive_for(std::chrono::seconds(120), [](const term& t) { return t; });
      if (!r) bench::fail("dist", "the sink did not answer");
      return r->as<d::tuple>().elements.at(1).as<std::int64_t>();
    };
    grove::send(sink, count);
    counted();
    t0 = bench::clock::now();
    for (long long i = 1; i <= msgs; ++i)
      grove::send(sink, term::make_tuple({term::make_atom("msg"), term(static_cast<std::int64_t>(i))}));
    grove::send(sink, count);
    const std::int64_t got = counted();
    f.msgs_per_s = static_cast<double>(msgs) / (bench::ns_since(t0) / 1e9);
    if (got != msgs) bench::fail("dist", "the sink counted " + std::to_string(got) + " of " + std::to_string(msgs));
    return f;
  });
}

// An Erlang client (dist_peer:client/3) against `peer`.
figures erl_client(const std::string& beams, const std::string& peer, const std::string& cookie, long long calls,
                   long long msgs) {
  child c({"erl", "-noshell", "-sname", "bench_erlc_" + std::to_string(getpid()), "-setcookie", cookie, "-pa", beams,
           "-eval",
           "dist_peer:client('" + peer + "', " + std::to_string(calls) + ", " + std::to_string(msgs) + "), halt()."});
  const std::string l = c.line(600);
  auto num = [&](const std::string& key) {
    const auto at = l.find("\"" + key + "\":");
    if (at == std::string::npos) bench::fail("dist", "the Erlang client said: " + l);
    return std::atof(l.c_str() + at + key.size() + 3);
  };
  return figures{num("call_rtt_us"), num("msgs_per_s")};
}

void report(const std::string& pair, const std::string& schedulers, const figures& f, long long calls, long long msgs) {
  auto j = bench::json();
  j.str("bench", "dist")
      .str("pair", pair)
      .str("schedulers", schedulers)
      .num("calls", calls)
      .num("msgs", msgs)
      .num("call_rtt_us", f.call_rtt_us);
  if (f.call_p50_us >= 0) j.num("call_p50_us", f.call_p50_us).num("call_p99_us", f.call_p99_us);
  j.num("msgs_per_s", f.msgs_per_s).print();
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  auto a = bench::parse_args(argc, argv);
  if (a.flag("--peer")) {
    return run_peer(a.opt("--peer"), a.opt("--cookie"),
                    static_cast<unsigned>(std::atoi(a.opt("--sched", "2").c_str())));
  }
  bench::watchdog dog("dist", a.timeout_s ? a.timeout_s : 1200);
  const long long calls = a.n ? a.n : a.small ? 2000 : 20000;
  const long long msgs = a.small ? 20000 : 200000;
  const std::string cookie = "bench" + std::to_string(getpid());
  const std::string tag = std::to_string(getpid());
  // The Erlang module, compiled for this run.
  const std::string beams = "/tmp/grove_bench_dist_" + tag;
  if (std::system(
          ("mkdir -p " + beams + " && erlc -o " + beams + " " GROVE_SOURCE_DIR "/bench/erl/dist_peer.erl").c_str()) !=
      0)
    bench::fail("dist", "erlc failed");
  std::system("epmd -daemon");
  std::vector<unsigned> scheds = a.schedulers ? std::vector<unsigned>{a.schedulers} : std::vector<unsigned>{1, 2};
  const std::string self = argv[0];
  std::vector<double> erl_rtt, erl_rate;
  const bool grove_only = a.flag("--grove-only");  // Grove to Grove alone (a quick look; no reference)
  for (unsigned k : scheds) {
    // Grove to Grove.
    {
      child peer({self, "--peer", "bench_gpeer_" + tag, "--cookie", cookie, "--sched", std::to_string(k)});
      const std::string peer_name = peer.line();
      if (peer_name.empty()) bench::fail("dist", "the Grove peer did not start");
      report("grove-grove", std::to_string(k), grove_client(peer_name, cookie, k, calls, msgs), calls, msgs);
      if (grove_only) continue;
      // Erlang to Grove.
      report("erl-grove", std::to_string(k), erl_client(beams, peer_name, cookie, calls, msgs), calls, msgs);
    }
    // Grove to Erlang.
    {
      child peer({"erl", "-noshell", "-sname", "bench_epeer_" + tag, "-setcookie", cookie, "-pa", beams, "-eval",
                  "dist_peer:start(), io:format(\"~s~n\", [node()]), receive after infinity -> ok end."});
      const std::string peer_name = peer.line();
      if (peer_name.empty()) bench::fail("dist", "the Erlang peer did not start");
      report("grove-erl", std::to_string(k), grove_client(peer_name, cookie, k, calls, msgs), calls, msgs);
      if (k == scheds.back()) {
        // Erlang to Erlang, the reference (Erlang's own default schedulers: one per core).
        report("erl-erl", "erl", erl_client(beams, peer_name, cookie, calls, msgs), calls, msgs);
      }
    }
  }
  std::system(("rm -rf " + beams).c_str());
  return 0;
}
