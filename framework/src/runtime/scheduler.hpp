// One scheduler thread. Its fibers: the thread's main context acts as a manager that creates
// worker fibers on demand; workers take processes from the run queue (the first start of a
// body process, which becomes a fiber of its own here, and every activation of a handler
// process, which runs on the worker); and the fibers of body processes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/context.hpp>
#include <boost/fiber/scheduler.hpp>

#include "process_impl.hpp"

namespace grove::detail {

// Boost.Fiber algorithm: a FIFO ready queue; when idle, spin briefly before sleeping so a
// wake-up from another thread seldom costs a futex round trip.
class spin_then_sleep final : public boost::fibers::algo::algorithm {
 public:
  void awakened(boost::fibers::context* ctx) noexcept override;
  boost::fibers::context* pick_next() noexcept override;
  bool has_ready_fibers() const noexcept override;
  void suspend_until(std::chrono::steady_clock::time_point const& tp) noexcept override;
  void notify() noexcept override;

 private:
  boost::fibers::scheduler::ready_queue_type ready_;
  std::atomic<bool> woken_{false};
  std::atomic<bool> sleeping_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
};

class scheduler {
 public:
  scheduler(node_impl* n, unsigned index);
  ~scheduler();
  void start();
  // Queues p to run here. From a worker of this thread it only queues: that worker takes it
  // when its handler returns (or wakes another before it suspends).
  void enqueue(process* p);
  // A worker of this thread is about to suspend inside a handler: make sure queued work still
  // has a worker.
  void before_worker_suspends();
  void stop();  // all processes must have ended
  unsigned index() const noexcept { return index_; }
  std::size_t run_queue_length() const noexcept { return queued_.load(std::memory_order_relaxed); }

  static scheduler* on_this_thread() noexcept;
  static bool in_worker() noexcept;
  // Whether the running fiber is a worker inside an activation; a fiber that suspends saves
  // and clears it, and restores it when it resumes.
  static void set_in_worker(bool on) noexcept;
  static constexpr int activation_budget = 64;

 private:
  void thread_main();
  void worker_main();
  // With lock held: gets a worker to look at the queue. Returns a context to schedule after
  // unlocking, or null.
  boost::fibers::context* wake_one_locked() noexcept;

  node_impl* const node_;
  const unsigned index_;
  std::thread thread_;
  spinlock lock_;
  process* head_ = nullptr;
  process* tail_ = nullptr;
  std::atomic<std::size_t> queued_{0};
  std::vector<boost::fibers::context*> parked_;
  boost::fibers::context* manager_ = nullptr;
  bool need_worker_ = false;
  bool stop_ = false;
  unsigned workers_ = 0;
  static constexpr std::size_t max_parked = 8;
};

}  // namespace grove::detail
