// Helpers shared by the runtime tests. No sleeps: every wait is on a message or on a
// condition with a deadline.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>

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

// Receives the down message of monitor r (other messages stay queued); throws (the test kit's
// expectation_failed) once `limit` of real time is spent, also on a manual clock.
inline grove::down await_down(const grove::monitor_ref& r, std::chrono::milliseconds limit = 10s) {
  return grove::testing::await_down(r, limit);
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
