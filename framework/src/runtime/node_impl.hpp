#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include <grove/runtime/node.hpp>

#include "process_impl.hpp"
#include "scheduler.hpp"
#include "stack_pool.hpp"
#include "timer_service.hpp"

namespace grove::detail {

// Slots in chunks that never move, so a control block found by slot stays valid.
class process_table {
 public:
  static constexpr std::uint32_t chunk_bits = 16;
  static constexpr std::uint32_t chunk_size = 1u << chunk_bits;
  static constexpr std::uint32_t max_chunks = 1u << 12;

  explicit process_table(node_impl* n) : node_(n) {}
  ~process_table();

  process* lookup(std::uint32_t slot) const noexcept {
    auto c = slot >> chunk_bits;
    if (c >= max_chunks) return nullptr;
    process** chunk = chunks_[c].load(std::memory_order_acquire);
    if (!chunk) return nullptr;
    return __atomic_load_n(&chunk[slot & (chunk_size - 1)], __ATOMIC_ACQUIRE);
  }
  // A free control block, state still `free`; its generation is already the new one.
  process* acquire();
  void release(process* p) noexcept;
  std::uint32_t high_water() const noexcept { return next_slot_.load(std::memory_order_acquire); }

 private:
  node_impl* node_;
  std::atomic<process**> chunks_[max_chunks] = {};
  spinlock free_lock_;
  std::deque<std::uint32_t> free_;
  std::atomic<std::uint32_t> next_slot_{0};
};

class blocking_pool {
 public:
  explicit blocking_pool(unsigned threads);
  ~blocking_pool();
  void submit(unique_function job);
  void stop();

 private:
  void run();
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<unique_function> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

class node_impl {
 public:
  node_impl(node* owner, node_options opts);
  ~node_impl();

  node* const owner;
  const node_options options;
  std::uint32_t id = 0;
  stack_pool stacks;
  process_table table{this};
  timer_service timers;
  blocking_pool blocking;
  std::vector<std::unique_ptr<scheduler>> schedulers;

  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> live{0};
  std::atomic<std::uint64_t> next_ref{1};
  std::atomic<unsigned> next_placement{0};
  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  std::atomic<int> end_waiters{0};
  std::shared_mutex hooks_mutex;
  std::vector<std::pair<node::exit_hook, void*>> exit_hooks;
  std::vector<std::pair<node::crash_hook, void*>> crash_hooks;
  std::recursive_mutex services_mutex;  // a service may use another while it is made
  std::vector<std::pair<const std::type_info*, std::shared_ptr<void>>> services;  // threads in node::wait_ended
  bool stopped = false;

  std::uint64_t make_ref() noexcept { return next_ref.fetch_add(1, std::memory_order_relaxed); }
  scheduler& place() noexcept;          // for a new body process
  scheduler& place_handler() noexcept;  // for a handler activation
  void process_ended() noexcept;
  void stop();

  static node_impl* find(std::uint32_t id) noexcept;
};

}  // namespace grove::detail
