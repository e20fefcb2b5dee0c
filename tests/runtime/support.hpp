// Helpers shared by the runtime tests. No sleeps: every wait is on a message or on a
// condition with a deadline.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

#include <grove/grove.hpp>

namespace grove_test {

using namespace std::chrono_literals;

// Spins (without suspending, so no signal is acted on) until cond holds or the deadline
// passes; returns whether it holds.
inline bool spin_until(const std::function<bool()>& cond, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// Receives the down message of monitor r (other messages stay queued).
inline grove::down await_down(const grove::monitor_ref& r, std::chrono::nanoseconds limit = std::chrono::seconds(10)) {
  auto d = grove::receive_for(limit, grove::when<grove::down>([r](const grove::down& m) { return m.ref == r; },
                                                              [](grove::down m) { return m; }));
  if (!d) throw std::runtime_error("no down message within the deadline");
  return *d;
}

struct ping {
  grove::pid from;
  int n = 0;
};
struct pong {
  int n = 0;
};
struct go {};
struct ready {
  grove::pid who;
};

}  // namespace grove_test
