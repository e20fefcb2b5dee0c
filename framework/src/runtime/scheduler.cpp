#include "scheduler.hpp"

#include <pthread.h>

#include <boost/fiber/fiber.hpp>
#include <boost/fiber/operations.hpp>

#include "node_impl.hpp"

namespace grove::detail {

namespace {
thread_local scheduler* tl_scheduler = nullptr;
thread_local bool tl_in_worker = false;

stack_bounds thread_stack() noexcept {
  pthread_attr_t attr;
  stack_bounds b;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr = nullptr;
    std::size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) b = {addr, size};
    pthread_attr_destroy(&attr);
  }
  return b;
}

inline void spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

// ---- spin_then_sleep ------------------------------------------------------------------------

void spin_then_sleep::awakened(boost::fibers::context* ctx) noexcept { ctx->ready_link(ready_); }

boost::fibers::context* spin_then_sleep::pick_next() noexcept {
  if (ready_.empty()) return nullptr;
  boost::fibers::context* ctx = &ready_.front();
  ready_.pop_front();
  return ctx;
}

bool spin_then_sleep::has_ready_fibers() const noexcept { return !ready_.empty(); }

void spin_then_sleep::suspend_until(std::chrono::steady_clock::time_point const& tp) noexcept {
  // Spin for a few microseconds: a partner on another thread usually answers within that.
  for (int i = 0; i < 4000; ++i) {
    if (woken_.exchange(false, std::memory_order_acq_rel)) return;
    spin_pause();
  }
  std::unique_lock lk(mutex_);
  sleeping_.store(true, std::memory_order_seq_cst);
  if (!woken_.exchange(false, std::memory_order_seq_cst)) {
    if (tp == std::chrono::steady_clock::time_point::max()) {
      cv_.wait(lk, [this] { return woken_.load(std::memory_order_seq_cst); });
    } else {
      cv_.wait_until(lk, tp, [this] { return woken_.load(std::memory_order_seq_cst); });
    }
    woken_.store(false, std::memory_order_relaxed);
  }
  sleeping_.store(false, std::memory_order_relaxed);
}

void spin_then_sleep::notify() noexcept {
  if (woken_.exchange(true, std::memory_order_seq_cst)) return;
  if (sleeping_.load(std::memory_order_seq_cst)) {
    std::lock_guard lk(mutex_);
    cv_.notify_one();
  }
}

// ---- scheduler ------------------------------------------------------------------------------

scheduler::scheduler(node_impl* n, unsigned index) : node_(n), index_(index) {}

scheduler::~scheduler() {
  if (thread_.joinable()) stop();
}

void scheduler::start() {
  thread_ = std::thread([this] { thread_main(); });
}

scheduler* scheduler::on_this_thread() noexcept { return tl_scheduler; }
bool scheduler::in_worker() noexcept { return tl_in_worker; }
void scheduler::set_in_worker(bool on) noexcept { tl_in_worker = on; }

boost::fibers::context* scheduler::wake_one_locked() noexcept {
  if (!parked_.empty()) {
    auto* ctx = parked_.back();
    parked_.pop_back();
    return ctx;
  }
  if (!need_worker_) {
    need_worker_ = true;
    auto* m = manager_;
    manager_ = nullptr;
    return m;
  }
  return nullptr;
}

void scheduler::enqueue(process* p) {
  p->run_next = nullptr;
  spinlock_lock lk(lock_);
  if (tail_) {
    tail_->run_next = p;
  } else {
    head_ = p;
  }
  tail_ = p;
  queued_.fetch_add(1, std::memory_order_relaxed);
  if (tl_scheduler == this && tl_in_worker) return;  // the running worker takes it next
  auto* ctx = wake_one_locked();
  lk.unlock();
  if (ctx) wake(ctx);
}

void scheduler::before_worker_suspends() {
  spinlock_lock lk(lock_);
  if (!head_) return;
  auto* ctx = wake_one_locked();
  lk.unlock();
  if (ctx) wake(ctx);
}

void scheduler::thread_main() {
  boost::fibers::use_scheduling_algorithm<spin_then_sleep>();
  tl_scheduler = this;
  auto* self = boost::fibers::context::active();
  set_thread_fiber_scheduler(self->get_scheduler());
  fiber_slot slot;  // the manager runs no process; the slot records the thread's own stack
  slot.stack = thread_stack();
  bind_fiber(&slot);
  spinlock_lock lk(lock_);
  for (;;) {
    while (!need_worker_ && !stop_) {
      manager_ = self;
      self->suspend(lk);
      on_resume(&slot);
      lk.lock();
    }
    if (stop_) break;
    need_worker_ = false;
    ++workers_;
    lk.unlock();
    boost::fibers::fiber(std::allocator_arg,
                         pooled_stack{&node_->stacks, stack_pool::round(node_->options.handler_stack_size)},
                         [this] { worker_main(); })
        .detach();
    lk.lock();
  }
  // Stopping: every process has ended. Release parked workers and wait for all to return.
  while (workers_ > 0) {
    std::vector<boost::fibers::context*> to_wake;
    to_wake.swap(parked_);
    manager_ = self;
    lk.unlock();
    for (auto* ctx : to_wake) self->schedule(ctx);
    lk.lock();
    if (workers_ == 0) break;
    if (manager_ == self) {
      self->suspend(lk);
      on_resume(&slot);
      lk.lock();
    }
  }
  manager_ = nullptr;
  lk.unlock();
  tl_scheduler = nullptr;
}

void scheduler::worker_main() {
  auto* self = boost::fibers::context::active();
  fiber_slot slot;
  slot.stack = bounds_of_stack(&slot, stack_pool::round(node_->options.handler_stack_size));
  bind_fiber(&slot);
  spinlock_lock lk(lock_);
  for (;;) {
    while (!head_) {
      if (stop_ || parked_.size() >= max_parked) {
        --workers_;
        boost::fibers::context* m = nullptr;
        if (stop_ && workers_ == 0) {
          m = manager_;
          manager_ = nullptr;
        }
        lk.unlock();
        if (m) self->schedule(m);
        return;
      }
      parked_.push_back(self);
      self->suspend(lk);
      on_resume(&slot);
      lk.lock();
    }
    process* p = head_;
    head_ = p->run_next;
    if (!head_) tail_ = nullptr;
    queued_.fetch_sub(1, std::memory_order_relaxed);
    lk.unlock();
    tl_in_worker = true;
    run_activation(p);
    tl_in_worker = false;
    set_current(nullptr);
    lk.lock();
  }
}

void scheduler::stop() {
  {
    spinlock_lock lk(lock_);
    stop_ = true;
    auto* m = manager_;
    manager_ = nullptr;
    lk.unlock();
    if (m) wake(m);
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace grove::detail
