// Timers on the node's clock. With the real clock a thread fires them; with the manual clock
// only advance() does, in deadline order (ties in the order they were set), which is what
// makes test runs deterministic. Firing a timer delivers its envelope like a send.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <grove/detail/envelope.hpp>
#include <grove/runtime/pid.hpp>

namespace grove::detail {

class timer_service {
 public:
  using clock = std::chrono::steady_clock;
  explicit timer_service(bool manual);
  ~timer_service();

  clock::time_point now() const;
  // Returns the timer's id (never 0).
  std::uint64_t add(std::int64_t delay_ns, const pid& to, std::unique_ptr<envelope> env);
  // The time left if the timer was still pending.
  std::optional<std::chrono::nanoseconds> cancel(std::uint64_t id);
  // Cancels without reading the clock; true if the timer was still pending.
  bool cancel_quiet(std::uint64_t id);

  // A receive's timeout: delivers a timeout signal with `token` to `to`. Cheaper than add: no
  // envelope until it fires, no id index; cancelled only through its key.
  struct timeout_key {
    clock::time_point at;
    std::uint64_t id = 0;
    explicit operator bool() const noexcept { return id != 0; }
  };
  timeout_key add_timeout(std::int64_t delay_ns, const pid& to, std::uint64_t token);
  void cancel_timeout(const timeout_key& k);
  void advance(std::chrono::nanoseconds d);  // manual clock only
  bool manual() const noexcept { return manual_; }
  void stop();  // fires nothing more; drops what is pending
  std::size_t pending() const;

 private:
  struct entry {
    pid to;
    std::unique_ptr<envelope> env;  // null for a receive timeout
    std::uint64_t token = 0;        // a receive timeout's token
  };
  static void fire(entry& e);
  using key = std::pair<clock::time_point, std::uint64_t>;
  void run();

  const bool manual_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::map<key, entry> by_time_;
  std::unordered_map<std::uint64_t, clock::time_point> by_id_;
  std::uint64_t next_id_ = 1;
  clock::time_point manual_now_{};
  // When the timer thread will next wake by itself. A timer due later needs no notify: this
  // keeps a stream of short-lived timeouts (one per call) from waking the thread each time.
  clock::time_point thread_wakes_at_ = clock::time_point::max();
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace grove::detail
