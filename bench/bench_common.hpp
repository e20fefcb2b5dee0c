// Shared helpers of the Grove benchmarks: argument parsing, JSON output, peak/current RSS,
// a watchdog that bounds every run in time, and a median helper.
//
// Every benchmark accepts:
//   --small          CI smoke size (finishes in a few seconds, also under ASan)
//   N                a bare number: the main count (overrides the default / --small count)
//   --repeat R       repetitions; the reported figure is the median (default 3 full, 1 small)
//   --timeout S      wall-clock limit in seconds; the program aborts with an error line after it
//   --schedulers K   run only the K-scheduler configuration (default: 1 and 2)
//   --stack BYTES    stack size of the benchmark's body processes (default: the node's, 64 KiB)
//   --budget S       time budget of one timed loop (ping_pong, ring): if the warm-up predicts
//                    the requested count would take longer, the count is reduced to fit and the
//                    output says so ("requested" vs the count actually timed)
// Output: one JSON object per line per figure, on stdout. Diagnostics go to stderr.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <grove/grove.hpp>

namespace bench {

using clock = std::chrono::steady_clock;

inline double ns_since(clock::time_point t0) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - t0).count());
}

struct args {
  bool small = false;
  long long n = 0;          // 0: the benchmark's default
  int repeat = 0;           // 0: default
  int timeout_s = 0;        // 0: default
  double budget_s = 0;      // --budget S: time budget of one measurement (0: default)
  std::size_t stack = 0;    // --stack BYTES: body stack size (0: the node default, 64 KiB)
  unsigned schedulers = 0;  // --schedulers K: only this configuration (0: the benchmark's set)
  // Benchmark-specific flags: "--name value" (or "--name" alone, value empty).
  std::vector<std::pair<std::string, std::string>> extra;
  std::string opt(const std::string& name, const std::string& fallback = "") const {
    for (auto& [k, v] : extra) {
      if (k == name) return v;
    }
    return fallback;
  }
  bool flag(const std::string& name) const {
    for (auto& kv : extra) {
      if (kv.first == name) return true;
    }
    return false;
  }
};

inline args parse_args(int argc, char** argv) {
  args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--small") {
      a.small = true;
    } else if (s == "--repeat" && i + 1 < argc) {
      a.repeat = std::atoi(argv[++i]);
    } else if (s == "--timeout" && i + 1 < argc) {
      a.timeout_s = std::atoi(argv[++i]);
    } else if (s == "--budget" && i + 1 < argc) {
      a.budget_s = std::atof(argv[++i]);
    } else if (s == "--stack" && i + 1 < argc) {
      a.stack = std::strtoull(argv[++i], nullptr, 10);
    } else if (s == "--schedulers" && i + 1 < argc) {
      a.schedulers = static_cast<unsigned>(std::atoi(argv[++i]));
    } else if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) {
      a.n = std::atoll(s.c_str());
    } else if (s == "--help" || s == "-h") {
      std::cerr << "usage: " << argv[0]
                << " [--small] [N] [--repeat R] [--timeout S] [--schedulers K] [--stack BYTES] [benchmark flags]\n";
      std::exit(0);
    } else if (s.rfind("--", 0) == 0) {
      std::string v;
      if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) v = argv[++i];
      a.extra.emplace_back(s, v);
    } else {
      std::cerr << argv[0] << ": unexpected argument " << s << "\n";
      std::exit(1);
    }
  }
  return a;
}

// A flat JSON object builder: json("bench","x").num("n",3).print();
class json {
 public:
  json& str(const char* k, const std::string& v) {
    sep();
    out_ << '"' << k << "\":\"";
    for (char c : v) {
      if (c == '"' || c == '\\') out_ << '\\';
      out_ << c;
    }
    out_ << '"';
    return *this;
  }
  json& num(const char* k, double v) {
    sep();
    char buf[64];
    if (v == static_cast<double>(static_cast<long long>(v)) && v < 1e15 && v > -1e15) {
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    } else {
      std::snprintf(buf, sizeof buf, "%.1f", v);
    }
    out_ << '"' << k << "\":" << buf;
    return *this;
  }
  template <class I, class = std::enable_if_t<std::is_integral_v<I>>>
  json& num(const char* k, I v) {
    sep();
    out_ << '"' << k << "\":" << static_cast<long long>(v);
    return *this;
  }
  json& boolean(const char* k, bool v) {
    sep();
    out_ << '"' << k << "\":" << (v ? "true" : "false");
    return *this;
  }
  json& nums(const char* k, const std::vector<double>& v) {
    sep();
    out_ << '"' << k << "\":[";
    for (std::size_t i = 0; i < v.size(); ++i) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.1f", v[i]);
      out_ << (i ? "," : "") << buf;
    }
    out_ << ']';
    return *this;
  }
  void print() {
    std::string s = "{" + out_.str() + "}\n";
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  }

 private:
  void sep() {
    if (!first_) out_ << ',';
    first_ = false;
  }
  std::ostringstream out_;
  bool first_ = true;
};

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// VmRSS / VmHWM from /proc/self/status, in bytes (0 if unavailable).
inline std::size_t proc_status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  std::size_t klen = std::strlen(key);
  while (std::getline(f, line)) {
    if (line.compare(0, klen, key) == 0 && line.size() > klen && line[klen] == ':') {
      return std::strtoull(line.c_str() + klen + 1, nullptr, 10);
    }
  }
  return 0;
}
inline std::size_t rss_bytes() { return proc_status_kb("VmRSS") * 1024; }
inline std::size_t hwm_bytes() { return proc_status_kb("VmHWM") * 1024; }

// Aborts the whole program (with a JSON error line) if it is still running after `seconds`.
// Bounds every run in time even if the runtime deadlocks or a benchmark stalls.
class watchdog {
 public:
  watchdog(std::string bench, int seconds) : bench_(std::move(bench)) {
    thread_ = std::thread([this, seconds] {
      std::unique_lock lk(m_);
      if (!cv_.wait_for(lk, std::chrono::seconds(seconds), [this] { return done_; })) {
        std::string s = "{\"bench\":\"" + bench_ + "\",\"error\":\"timeout after " + std::to_string(seconds) +
                        " s (watchdog)\",\"stage\":\"" + stage_ + "\"}\n";
        std::fwrite(s.data(), 1, s.size(), stdout);
        std::fflush(stdout);
        std::_Exit(3);
      }
    });
  }
  ~watchdog() {
    {
      std::lock_guard lk(m_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void stage(std::string s) {
    std::lock_guard lk(m_);
    stage_ = std::move(s);
  }

 private:
  std::string bench_;
  std::string stage_ = "start";
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// The stack size a body process gets for a --stack request (the runtime rounds up to a power
// of two, at least 8 KiB; 0 means the node default of 64 KiB).
inline std::size_t effective_stack(std::size_t requested) {
  if (requested == 0) return 64 * 1024;
  std::size_t s = 8 * 1024;
  while (s < requested) s *= 2;
  return s;
}

inline double budget_seconds(const args& a) { return a.budget_s > 0 ? a.budget_s : (a.small ? 1.5 : 30.0); }

// The count to time: `requested`, or fewer if `est_ns_each` predicts more than the budget.
inline long long fit_budget(long long requested, double est_ns_each, double budget_s, long long at_least) {
  if (est_ns_each <= 0) return requested;
  double fit = budget_s * 1e9 / est_ns_each;
  if (fit >= static_cast<double>(requested)) return requested;
  return std::max(at_least, static_cast<long long>(fit));
}

inline std::vector<unsigned> scheduler_set(const args& a) {
  if (a.schedulers) return {a.schedulers};
  return {1u, 2u};
}

[[noreturn]] inline void fail(const std::string& bench, const std::string& what) {
  json().str("bench", bench).str("error", what).print();
  std::_Exit(2);
}

// Called by a driver process before it returns: yields until every other process of its node
// has ended (process_count() == 1), so that the node's stop never has to kill anyone and the
// next timed run starts from an empty node.
inline void await_others_gone(const std::string& bench, std::chrono::seconds limit = std::chrono::seconds(60)) {
  grove::node& n = grove::this_node();
  auto deadline = clock::now() + limit;
  while (n.process_count() > 1) {
    if (clock::now() > deadline)
      fail(bench, "processes still alive at the end: " + std::to_string(n.process_count() - 1));
    grove::yield();
  }
}

}  // namespace bench
