// One scheduler thread, and how the threads of a node share work.
//
// Each thread runs Boost.Fiber with a `ready_queue` of its own. Its fibers: the thread's main
// context, a manager that creates worker fibers on demand; workers, which take processes from
// the thread's run queue (the first start of a body process, which becomes a fiber of its own,
// and every activation of a handler process, which runs on the worker); and the fibers of
// body processes.
//
// Locality first, then stealing (docs/design/runtime.md):
// - A body process that waits for mail (or yields) detaches its fiber from the thread. Whoever
//   wakes it attaches it to the waker's own thread, in the "run next" slot: a partner about to
//   block hands over directly, with no cross-thread wake-up. A waker outside the node's threads
//   sends it back to the thread it last ran on.
// - An idle thread spins briefly, then parks. While spinning it steals: a detached fiber from
//   another thread's ready queue, or a process from another thread's run queue. The "run next"
//   fiber and a lone queued activation are left to their thread unless it has not switched for
//   a while (it is busy with something long).
// - A thread parks only when nothing can be stolen, and is woken only when work it could take
//   appears while no other thread is spinning.
// - Workers, the manager and Boost's dispatcher never migrate, nor does a body fiber before its
//   first wait or a process spawned with placement::pinned.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/context.hpp>
#include <boost/fiber/scheduler.hpp>

#include <grove/runtime/node.hpp>

#include "process_impl.hpp"

namespace grove::detail {

class scheduler;

// Calls counted where they are made, one block per scheduler thread: plain loads and stores,
// no locked instruction on the call path. Every call is counted; one in `sample_every` is
// timed into the histogram (bucket bounds in call_bucket_ns, the last bucket for slower ones).
inline constexpr std::size_t call_buckets = call_latency_bounds_ns.size();
struct call_counters {
  static constexpr unsigned sample_every = 16;
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> sampled_ns{0};
  std::array<std::atomic<std::uint64_t>, call_buckets + 1> buckets{};
  bool sample_next() noexcept {  // counts the call; true when this one is to be timed
    const std::uint64_t c = calls.load(std::memory_order_relaxed);
    calls.store(c + 1, std::memory_order_relaxed);
    return c % sample_every == 0;
  }
  void record(std::int64_t ns) noexcept;
};

// The ready fibers of one thread. Owned by the scheduler (it outlives the thread, so a thief
// never reads freed memory); Boost's algorithm object forwards to it.
class ready_queue {
 public:
  explicit ready_queue(scheduler* owner);
  ~ready_queue();
  ready_queue(const ready_queue&) = delete;
  ready_queue& operator=(const ready_queue&) = delete;

  // ---- called by Boost.Fiber on the owning thread ----
  void awakened(boost::fibers::context* ctx) noexcept;
  boost::fibers::context* pick_next() noexcept;
  bool has_ready() const noexcept;
  void suspend_until(std::chrono::steady_clock::time_point const& tp) noexcept;
  void notify() noexcept;

  // ---- any thread ----
  // A detached fiber another thread may run, or null. `stale`: the owner has not switched for
  // a while, so its "run next" fiber may be taken too.
  boost::fibers::context* steal(bool stale) noexcept;
  bool has_stealable(bool stale) const noexcept {
    return stealable_.load(std::memory_order_relaxed) > 0 ||
           (stale &&
            (run_next_migratable_.load(std::memory_order_relaxed) || held_count_.load(std::memory_order_relaxed) > 0));
  }
  bool parked() const noexcept { return sleeping_.load(std::memory_order_relaxed); }

  // ---- input (the node's io_poller, remote.hpp) ----
  // The thread's poller fiber, which runs the poller's ready() when this thread found input:
  // it runs before anything else here.
  void set_poller_fiber(boost::fibers::context* ctx) noexcept { poller_fiber_ = ctx; }
  // Time the thread spent with nothing to run (spinning for work, then asleep), in ns, the
  // idle spell in progress included.
  std::uint64_t idle_ns() const noexcept;

  // While one lives on this thread, fibers it wakes go to the back of the queue (FIFO), not
  // into "run next": timers that fire together wake their processes in order. With
  // `keep_first`, the first one woken is held for this thread (another takes it only from a
  // stale owner, and no idle thread is woken for it); the others are offered to idle threads.
  struct wake_in_order {
    explicit wake_in_order(bool keep_first = false) noexcept;
    ~wake_in_order();
    wake_in_order(const wake_in_order&) = delete;
    wake_in_order& operator=(const wake_in_order&) = delete;
  };

  // The next fiber awakened on this thread is a new, unpinned body process's: it is detached,
  // so another thread may take it before it first runs.
  static void spawning() noexcept;

  // The fiber about to yield: it goes to the back of the queue, not into "run next", and
  // becomes stealable if it may migrate.
  static void yielding(boost::fibers::context* ctx, bool may_migrate) noexcept;

 private:
  boost::fibers::context* take_local() noexcept;
  void uncount_locked(boost::fibers::context* ctx) noexcept;  // a migratable fiber leaves ready_
  boost::fibers::context* steal_elsewhere() noexcept;
  // Looks at the node's io_poller if it has one and nobody else does: waits until `until` (or a
  // notify) when `wait`, else only looks. True when there is input: the poller fiber is woken
  // and holds the node's poll turn until it has run ready().
  bool poll_input(bool wait, std::chrono::steady_clock::time_point until) noexcept;
  // Whether another thread has work this one could take (or, in `queued_elsewhere`, may have
  // soon).
  bool work_to_steal(bool& queued_elsewhere) noexcept;

  scheduler* const owner_;
  mutable spinlock lock_;
  boost::fibers::scheduler::ready_queue_type ready_;  // FIFO, under lock_
  boost::fibers::context* run_next_ = nullptr;        // under lock_
  int run_next_streak_ = 0;                           // owner only: run_next picks in a row
  std::atomic<std::size_t> stealable_{0};             // detached fibers in ready_
  std::atomic<bool> run_next_migratable_{false};
  // Detached fibers displaced from "run next" by a later wake-up: partners of the running
  // process, stolen only from a stale owner, like the run-next fiber itself (under lock_).
  std::vector<boost::fibers::context*> held_;
  std::atomic<std::size_t> held_count_{0};
  // parking
  alignas(64) std::atomic<bool> woken_{false};
  std::atomic<bool> sleeping_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::chrono::microseconds recheck_{1000};  // owner only: see recheck_min in scheduler.cpp
  std::atomic<std::uint64_t> idle_ns_{0};    // written by the owner only
  std::atomic<std::int64_t> idle_since_{0};  // steady_clock ns since the epoch while idle, else 0
  // input
  boost::fibers::context* poller_fiber_ = nullptr;  // set before the thread runs anything
  bool poller_due_ = false;                         // under lock_: woken, runs next
  int wake_fd_ = -1;                                // eventfd: notify() ends a wait for input
  std::atomic<bool> polling_{false};                // waiting for input (in poll(2))
  std::atomic<bool> wake_written_{false};           // notify() wrote wake_fd_ (to be drained)
  std::int64_t next_look_ = 0;                      // owner only: timestamp() of the next look while busy
  bool polled_wait_ = false;                        // owner only: poll_input's last call waited
  bool ran_ = false;  // owner only: a fiber (not the poller) ran since the last idle spell
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
  node_impl* node() const noexcept { return node_; }
  std::size_t run_queue_length() const noexcept { return queued_.load(std::memory_order_relaxed); }
  ready_queue& fibers() noexcept { return fibers_; }
  boost::fibers::scheduler* fiber_scheduler() const noexcept { return fiber_scheduler_; }

  // Makes a detached fiber ready on this thread, from any thread.
  void adopt_remote(boost::fibers::context* ctx) noexcept;

  // ---- work stealing (called by ready_queue on the thief's own thread) ----
  // Whether `victim` has not switched fibers for a while, as seen from this (the thief's)
  // thread: its switch count stayed the same for stale_ticks of the thief's time. The owner only
  // counts switches, so its own path reads no clock.
  bool stale(const scheduler& victim) noexcept;
  void note_switch() noexcept {
    switches_.store(switches_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  // The process this thread last started or resumed (for the watchdog; it may have suspended
  // since: its running_since then reads 0).
  process* running() const noexcept { return running_.load(std::memory_order_acquire); }
  void note_running(process* p) noexcept { running_.store(p, std::memory_order_release); }
  // Whether this thread has run one process for over hog_limit without suspending: a fiber
  // woken from outside the schedulers then goes to another thread, which would otherwise never
  // see it (only this thread's dispatcher takes its remote wake-ups).
  bool hogged() const noexcept;
  static constexpr std::int64_t hog_limit_ns = 1'000'000;
  bool has_stealable_process(bool victim_stale) const noexcept;
  // Moves one queued process of victim's run queue to this thread's and returns a context to
  // run it (a parked worker or the manager), or null.
  boost::fibers::context* steal_process_from(scheduler& victim, bool victim_stale) noexcept;

  static scheduler* on_this_thread() noexcept;
  // What a fiber of this thread suspends through (suspend_unlocking); this thread only.
  boost::fibers::detail::spinlock_lock& switch_lock() noexcept { return switch_lock_; }
  // GenServer calls made by processes of this thread (written by this thread only).
  call_counters& calls() noexcept { return calls_; }
  const call_counters& calls() const noexcept { return calls_; }
  static bool in_worker() noexcept;
  void poller_has_turn() noexcept { poller_turn_ = true; }
  // Whether the running fiber is a worker inside an activation; a fiber that suspends saves
  // and clears it, and restores it when it resumes.
  static void set_in_worker(bool on) noexcept;
  static constexpr int activation_budget = 64;
  // A body process's turn (Erlang bounds it by reductions): after this many receives, or this
  // long since it last resumed, a receive first yields its thread to the others. Checked every
  // turn_check receives, so the clock is read rarely.
  static constexpr unsigned turn_receives = 1024;
  static constexpr std::int64_t turn_ns = 1'000'000;
  static constexpr unsigned turn_check = 64;

 private:
  void thread_main();
  void worker_main();
  void poller_main();
  // With lock held: gets a worker to look at the queue. Returns a context to schedule after
  // unlocking, or null.
  boost::fibers::context* wake_one_locked() noexcept;
  process* pop_locked() noexcept;
  void push_locked(process* p) noexcept;

  node_impl* const node_;
  const unsigned index_;
  std::thread thread_;
  ready_queue fibers_{this};
  boost::fibers::scheduler* fiber_scheduler_ = nullptr;
  alignas(64) std::atomic<std::uint64_t> switches_{0};
  std::atomic<process*> running_{nullptr};
  struct sighting {
    std::uint64_t switches = ~std::uint64_t{0};
    std::int64_t since = 0;
  };
  std::vector<sighting> seen_;  // thief-side, per victim index; owner only
  alignas(64) spinlock lock_;
  process* head_ = nullptr;
  process* tail_ = nullptr;
  std::atomic<std::size_t> queued_{0};
  std::vector<boost::fibers::context*> parked_;
  boost::fibers::context* manager_ = nullptr;
  bool need_worker_ = false;
  bool stop_ = false;
  std::atomic<bool> stop_announced_{false};           // stop() is done waking the thread
  bool poller_stop_ = false;                          // owner only
  boost::fibers::detail::spinlock_lock switch_lock_;  // owner only (suspend_unlocking)
  bool poller_turn_ = false;                          // owner only: the poller fiber is woken holding the poll turn
  boost::fibers::context* poller_fiber_context_ = nullptr;
  static constexpr std::size_t poller_stack = 1024 * 1024;  // ready() decodes terms, handles frames
  unsigned workers_ = 0;
  static constexpr std::size_t max_parked = 8;
  call_counters calls_;
};

}  // namespace grove::detail
