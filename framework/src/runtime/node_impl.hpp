#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include <grove/detail/remote.hpp>
#include <grove/runtime/node.hpp>

#include "process_impl.hpp"
#include "scheduler.hpp"
#include "stack_pool.hpp"
#include "timer_service.hpp"
#include "watchdog.hpp"

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
  std::atomic<std::uint64_t> spawned{0};  // beside live: one more add on a line already written
  // Counted when a process ends (node::totals).
  alignas(64) std::atomic<std::uint64_t> ended{0};
  std::atomic<std::uint64_t> ended_in{0}, ended_out{0};
  const std::chrono::steady_clock::time_point started_at = std::chrono::steady_clock::now();
  std::atomic<std::uint64_t> next_ref{1};
  std::atomic<unsigned> next_placement{0};
  alignas(64) std::atomic<int> spinning{0};  // scheduler threads idle and looking for work
  // Input the scheduler threads look at (remote.hpp's io_poller). The turn: one thread at a
  // time waits for input or runs ready(); taken before `poller` is read.
  alignas(64) std::atomic<io_poller*> poller{nullptr};
  std::atomic<bool> poll_turn{false};
  std::atomic<bool> input_watcher{false};  // an idle thread spins on the input
  std::atomic<int> input_parked{0};        // idle threads parked because the turn was taken
  // Gives the poll turn back; unless a watcher spins (it waits on the input next), wakes a
  // thread parked because the turn was taken, so that an idle thread waits on the input again.
  void give_back_poll_turn() noexcept;
  std::atomic<ready_queue*> poll_waiter{nullptr};  // the thread waiting for input (it answers at once)
  std::atomic<std::int64_t> polled_at{0};          // timestamp() of the last look
  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  std::atomic<int> end_waiters{0};
  // Senders waiting for a receiver's backlog to shrink (back-pressure, mailbox.cpp): the
  // receiver, and the sender to tell. Few at a time; the receiver's room_wanted says to look.
  spinlock room_lock;
  std::vector<std::pair<process*, pid>> room_waiters;
  std::shared_mutex hooks_mutex;
  std::vector<std::pair<node::exit_hook, void*>> exit_hooks;
  std::vector<std::pair<node::crash_hook, void*>> crash_hooks;
  std::vector<std::pair<node::long_schedule_hook, void*>> long_schedule_hooks;
  std::pair<node::namer, void*> namer{nullptr, nullptr};  // under hooks_mutex
  // The test kit's message log (options.record_messages), oldest first; at most sent_kept.
  static constexpr std::size_t sent_kept = 1'000'000;
  std::mutex sent_mu;
  std::condition_variable sent_cv;
  std::deque<detail::sent_message> sent;
  void record_sent(sent_message m);
  std::unique_ptr<watchdog> watcher;  // null when long_schedule is zero
  // Services are found without a lock, so lookups scale with the number of callers: an entry
  // is written once, before `count` publishes it (release), and stays until ~node_impl.
  struct service_list {
    std::array<std::pair<const std::type_info*, std::shared_ptr<void>>, 64> entries;
    std::atomic<std::size_t> count{0};
    // The same type_info object first (one binary), then by equality (copies across shared
    // objects), so passing over another service never costs a strcmp.
    void* find(const std::type_info& t, std::size_t n) const noexcept {
      for (std::size_t i = 0; i < n; ++i)
        if (entries[i].first == &t) return entries[i].second.get();
      for (std::size_t i = 0; i < n; ++i)
        if (*entries[i].first == t) return entries[i].second.get();
      return nullptr;
    }
    // The last made first: a service's constructor may have made the services it uses.
    void clear() noexcept {
      for (std::size_t i = count.load(std::memory_order_acquire); i-- > 0;) entries[i].second.reset();
      count.store(0, std::memory_order_release);
    }
  };
  std::recursive_mutex services_mutex;  // creators only; a service's constructor may make another
  service_list services;
  bool stopped = false;

  std::uint64_t make_ref() noexcept { return next_ref.fetch_add(1, std::memory_order_relaxed); }
  // Where a new process (or a handler activation) is queued: the current thread if it is one of
  // this node's, round-robin otherwise. Idle threads steal from there.
  scheduler& place() noexcept;
  scheduler& round_robin() noexcept;
  // A thread other than `busy` that is not hogged either (a parked one first), else busy.
  scheduler& free_scheduler(scheduler* busy) noexcept;
  // Work another thread could take appeared on `from`: wakes a parked thread unless one is
  // already spinning (it will find the work).
  void work_available(scheduler* from) noexcept;
  void process_ended() noexcept;
  void stop();

  static node_impl* find(std::uint32_t id) noexcept;
};

// The runtime's access to a node's implementation (node::impl_ is private to everyone else).
struct node_access {
  static node_impl& of(node& n) noexcept { return *n.impl_; }
};

}  // namespace grove::detail
