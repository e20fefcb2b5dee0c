// Timers on the node's clock. With the real clock a thread fires them; with the manual clock
// only advance() does, in deadline order (ties in the order they were set), which is what
// makes test runs deterministic. Firing a timer delivers its envelope like a send.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include <grove/detail/envelope.hpp>
#include <grove/runtime/pid.hpp>

#include "spinlock.hpp"

namespace grove::detail {

// Map nodes from the envelope pool's per-thread caches, not malloc: a call with a timeout
// inserts and erases one.
template <class T>
struct pooled_allocator {
  using value_type = T;
  pooled_allocator() = default;
  template <class U>
  pooled_allocator(const pooled_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return n == 1 ? static_cast<T*>(envelope::operator new(sizeof(T))) : std::allocator<T>{}.allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n == 1) {
      envelope::operator delete(p, sizeof(T));
    } else {
      std::allocator<T>{}.deallocate(p, n);
    }
  }
  friend bool operator==(const pooled_allocator&, const pooled_allocator&) noexcept { return true; }
};

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
    std::uint64_t id = 0;  // its low bits name the shard
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
    std::int64_t armed_ticks = 0;   // a timeout armed from the coarse clock: timestamp() then
    std::int64_t delay_ns = 0;      // and its delay
  };
  bool on_time(entry& e);
  static void fire(entry& e);
  using key = std::pair<clock::time_point, std::uint64_t>;
  void run();
  // Moves what is due by `now` out of shard s into due; returns the shard's next deadline.
  clock::time_point take_due(std::size_t s, clock::time_point now, std::vector<entry>& due);
  // After adding a timer due at `at`: makes the timer thread look again if it would sleep past it.
  void after_adding(clock::time_point at);

  // Timers live in shards, each a map under its own mutex. Shard 0 holds send_after timers
  // (cancelled by id) and, with the manual clock, everything, so advance() sees one order.
  // With the real clock a receive's timeout (one per call with a timeout) goes to the shard
  // of the thread that sets it, so callers on different threads do not share a lock.
  static constexpr std::size_t shards = 8;
  static constexpr std::uint64_t shard_bits = 3;
  using timer_map = std::map<key, entry, std::less<key>, pooled_allocator<std::pair<const key, entry>>>;
  struct alignas(64) shard {
    mutable spinlock mutex;  // held for a map operation, never across a call out
    timer_map by_time;
    std::uint64_t next_id = 1;
  };
  shard shards_[shards];

  const bool manual_;
  mutable std::mutex mutex_;  // the timer thread's state below, and manual_now_
  std::condition_variable cv_;
  std::unordered_map<std::uint64_t, clock::time_point> by_id_;  // shard 0's send_after timers
  clock::time_point manual_now_{};
  // When the timer thread will next wake by itself; max() while it is awake and scanning. A
  // timer due later needs no notify: this keeps a stream of short-lived timeouts (one per call)
  // from waking the thread each time. Written under mutex_, read without it.
  std::atomic<clock::rep> thread_wakes_at_{clock::time_point::max().time_since_epoch().count()};
  bool dirty_ = false;  // a timer was added that the thread may have missed: scan again
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace grove::detail
