// The scheduler watchdog, like Erlang's system_monitor long_schedule: a process that runs
// longer than node_options::long_schedule without suspending (a busy loop, a blocking system
// call, a huge computation in a callback) holds its scheduler thread from every other process
// there. A thread of its own looks at each scheduler's running process every half threshold
// and reports such an activation once, through the node's long-schedule hooks (the event bus
// turns it into a `long_schedule` event). It only reports: nothing preempts a fiber.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace grove::detail {

class node_impl;

class watchdog {
 public:
  watchdog(node_impl& node, std::chrono::nanoseconds threshold);
  ~watchdog();  // stops and joins the thread
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

 private:
  void run();
  void look();

  node_impl& node_;
  const std::chrono::nanoseconds threshold_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  // Per scheduler: the activation last reported (its process and start), so each is reported once.
  std::vector<std::pair<const void*, std::int64_t>> reported_;
  std::thread thread_;
};

}  // namespace grove::detail
