#include "watchdog.hpp"

#include <algorithm>
#include <string>

#include "node_impl.hpp"
#include "process_impl.hpp"
#include "scheduler.hpp"
#include "spinlock.hpp"

namespace grove::detail {

watchdog::watchdog(node_impl& node, std::chrono::nanoseconds threshold)
    : node_(node), threshold_(threshold), reported_(node.schedulers.size(), {nullptr, 0}) {
  thread_ = std::thread([this] { run(); });
}

watchdog::~watchdog() {
  {
    std::lock_guard lk(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void watchdog::run() {
  std::unique_lock lk(mutex_);
  while (!cv_.wait_for(lk, threshold_ / 2, [this] { return stop_; })) {
    lk.unlock();
    look();
    lk.lock();
  }
}

void watchdog::look() {
  for (std::size_t i = 0; i < node_.schedulers.size(); ++i) {
    process* p = node_.schedulers[i]->running();
    if (!p) continue;
    // Both read without a lock: a control block is never freed while the node lives, and a
    // process that suspends or ends clears running_since first.
    const std::int64_t since = p->running_since.load(std::memory_order_relaxed);
    if (since == 0 || p->status.load(std::memory_order_relaxed) != process_status::running) continue;
    // Once per activation, on whichever thread it is seen: a thread's `running` may still name
    // a process that went on elsewhere (seen reported twice under TSan in CI).
    const std::pair<const void*, std::int64_t> activation{p, since};
    if (std::find(reported_.begin(), reported_.end(), activation) != reported_.end()) continue;
    const auto ran = std::chrono::nanoseconds(timestamp_to_ns(timestamp() - since));
    if (ran < threshold_) continue;
    pid who;
    std::string label;
    {
      spinlock_lock lk(p->lock);
      if (p->state != life::alive || p->running_since.load(std::memory_order_relaxed) != since) continue;
      who = p->self();
      label = p->label;
    }
    reported_[i] = {p, since};
    std::shared_lock hl(node_.hooks_mutex);
    for (auto& [fn, ctx] : node_.long_schedule_hooks) fn(ctx, who, label, ran);
  }
}

}  // namespace grove::detail
