#include "scheduler.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include <boost/fiber/fiber.hpp>
#include <boost/fiber/operations.hpp>

#include <grove/detail/remote.hpp>

#include "node_impl.hpp"

namespace grove::detail {

namespace {
thread_local scheduler* tl_scheduler = nullptr;
thread_local bool tl_in_worker = false;
thread_local boost::fibers::context* tl_yielding = nullptr;
thread_local bool tl_yield_migrates = false;
thread_local int tl_in_order = 0;         // wake_in_order scopes open on this thread
thread_local bool tl_keep_first = false;  // the next one woken in the scope is held here
thread_local bool tl_spawning = false;    // the next fiber awakened is a new body process's

// A thread that has not switched fibers for this long is busy with one: its "run next" fiber
// and a lone queued process may be stolen (TSC ticks; about 40 µs at 2.5 GHz).
constexpr std::int64_t stale_ticks = 100'000;
// "Run next" picks in a row before the ready queue gets a turn (the dispatcher, which brings in
// wake-ups from other threads, waits there).
constexpr int run_next_limit = 16;
// How often a busy thread looks for input (remote.hpp's poll_interval, in TSC ticks at about
// 2.5 GHz).
constexpr std::int64_t look_ticks = 2'500 * poll_interval.count();
// How long an idle thread spins (looking for work to steal) before it parks.
constexpr auto spin_time = std::chrono::microseconds(20);
// How long it spins on a node with a distribution, looking at the input too (suspend_until).
constexpr auto input_spin_time = std::chrono::microseconds(100);
// A parked thread looks again after a while even if nobody woke it: another thread may have
// queued work and then stayed busy with one process (stale), which wakes nobody. It looks after
// 1 ms while work is queued elsewhere, otherwise after twice as long as the last time up to
// 100 ms, so an idle node costs about ten wake-ups a second per thread.
constexpr auto recheck_min = std::chrono::milliseconds(1);
constexpr auto recheck_max = std::chrono::milliseconds(100);

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

bool migratable(const boost::fibers::context* ctx) noexcept { return ctx->get_scheduler() == nullptr; }

// The Boost.Fiber algorithm of a scheduler thread: forwards to the scheduler's ready_queue,
// which outlives the thread.
class algorithm_adapter final : public boost::fibers::algo::algorithm {
 public:
  explicit algorithm_adapter(ready_queue* q) : q_(q) {}
  void awakened(boost::fibers::context* ctx) noexcept override { q_->awakened(ctx); }
  boost::fibers::context* pick_next() noexcept override { return q_->pick_next(); }
  bool has_ready_fibers() const noexcept override { return q_->has_ready(); }
  void suspend_until(std::chrono::steady_clock::time_point const& tp) noexcept override { q_->suspend_until(tp); }
  void notify() noexcept override { q_->notify(); }

 private:
  ready_queue* q_;
};
}  // namespace

// ---- ready_queue ----------------------------------------------------------------------------

void ready_queue::yielding(boost::fibers::context* ctx, bool may_migrate) noexcept {
  tl_yielding = ctx;
  tl_yield_migrates = may_migrate;
}

ready_queue::wake_in_order::wake_in_order(bool keep_first) noexcept {
  ++tl_in_order;
  tl_keep_first = keep_first;
}
ready_queue::wake_in_order::~wake_in_order() {
  --tl_in_order;
  tl_keep_first = false;
}

void ready_queue::spawning() noexcept { tl_spawning = true; }

ready_queue::ready_queue(scheduler* owner) : owner_(owner), wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

ready_queue::~ready_queue() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void ready_queue::awakened(boost::fibers::context* ctx) noexcept {
  if (ctx == poller_fiber_) {
    spinlock_lock lk(lock_);
    poller_due_ = true;
    return;
  }
  accept_handoff(ctx);
  // Run next: a fiber woken by the running one, which usually blocks soon after. Not the
  // dispatcher, nor wake-ups brought in from other threads (the dispatcher is then the active
  // context), nor those of a wake_in_order scope.
  bool to_back = tl_in_order > 0 || ctx->is_context(boost::fibers::type::dispatcher_context) ||
                 boost::fibers::context::active()->is_context(boost::fibers::type::dispatcher_context);
  if (tl_spawning) {
    // A new body process's fiber: free to move from its first run on.
    tl_spawning = false;
    ctx->get_scheduler()->detach_worker_context(ctx);
  }
  if (ctx == tl_yielding) {
    // A yielding body fiber is detached here, now that it no longer runs, so another thread
    // may take it; a pinned one (placement::pinned, a worker) stays.
    tl_yielding = nullptr;
    to_back = true;
    if (tl_yield_migrates) ctx->get_scheduler()->detach_worker_context(ctx);
  }
  const bool mig = migratable(ctx);
  const bool keep = tl_in_order > 0 && !ctx->is_context(boost::fibers::type::dispatcher_context) &&
                    std::exchange(tl_keep_first, false);
  bool announce = false;
  {
    spinlock_lock lk(lock_);
    if (ctx->is_context(boost::fibers::type::dispatcher_context)) {
      // First in line once the run-next chain ends: it releases terminated fibers (their
      // stacks go back to the pool, still warm) and brings in wake-ups from other threads.
      ready_.push_front(*ctx);
    } else if (keep) {
      // In line, but for this thread: what the poller fiber woke first runs here next, with no
      // idle thread woken (and no cache moved) for it.
      ctx->ready_link(ready_);
      if (mig) {
        held_.push_back(ctx);
        held_count_.store(held_.size(), std::memory_order_relaxed);
      }
    } else if (to_back) {
      ctx->ready_link(ready_);
      if (mig) {
        stealable_.fetch_add(1, std::memory_order_relaxed);
        announce = true;
      }
    } else {
      if (boost::fibers::context* old = run_next_) {
        old->ready_link(ready_);
        // A displaced partner usually runs here soon: another thread takes it only from a
        // stale owner, as the run-next fiber (moving it costs more than it waits).
        if (run_next_migratable_.load(std::memory_order_relaxed)) {
          held_.push_back(old);
          held_count_.store(held_.size(), std::memory_order_relaxed);
        }
      }
      run_next_ = ctx;
      run_next_migratable_.store(mig, std::memory_order_relaxed);
    }
  }
  if (announce) owner_->node()->work_available(owner_);
}

boost::fibers::context* ready_queue::take_local() noexcept {
  spinlock_lock lk(lock_);
  if (poller_due_) {
    poller_due_ = false;
    return poller_fiber_;
  }
  if (run_next_ && (ready_.empty() || run_next_streak_ < run_next_limit)) {
    if (run_next_streak_ < run_next_limit) ++run_next_streak_;
    boost::fibers::context* ctx = run_next_;
    run_next_ = nullptr;
    run_next_migratable_.store(false, std::memory_order_relaxed);
    return ctx;
  }
  if (ready_.empty()) return nullptr;
  boost::fibers::context* ctx = &ready_.front();
  ready_.pop_front();
  // The ready queue's turn goes to a fiber, not only to Boost's dispatcher (always first in
  // line): while others wait behind it, the streak stays spent, so the dispatcher's own pick
  // takes the next of them rather than the run-next slot (else two processes waking each other
  // starve every other one). With nobody behind it, the turn is served.
  if (!ctx->is_context(boost::fibers::type::dispatcher_context) || ready_.empty()) run_next_streak_ = 0;
  if (migratable(ctx)) uncount_locked(ctx);
  return ctx;
}

void ready_queue::uncount_locked(boost::fibers::context* ctx) noexcept {
  auto it = std::find(held_.begin(), held_.end(), ctx);
  if (it == held_.end()) {
    stealable_.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  *it = held_.back();
  held_.pop_back();
  held_count_.store(held_.size(), std::memory_order_relaxed);
}

namespace {
thread_local void (*tl_flush)() = nullptr;
}  // namespace

bool flush_later(void (*fn)()) {
  if (!scheduler::on_this_thread()) return false;
  tl_flush = fn;
  return true;
}

void run_flush_later() noexcept {
  if (auto fn = std::exchange(tl_flush, nullptr)) fn();
}

boost::fibers::context* ready_queue::pick_next() noexcept {
  run_flush_later();
  // That ran on the stack of the fiber that suspends (Boost calls pick_next there), after
  // suspend_unlocking announced its switch: announced again for the thread that resumes it.
  announce_handoff(boost::fibers::context::active());
  // Only Boost's dispatcher looks for input and steals: a fiber that suspends may hold a lock
  // either takes. A busy thread looks for input every poll_interval.
  const bool dispatching = boost::fibers::context::active()->is_context(boost::fibers::type::dispatcher_context);
  if (dispatching && poller_fiber_ && owner_->node()->poller.load(std::memory_order_relaxed)) {
    const std::int64_t now = timestamp();
    if (now >= next_look_) {
      next_look_ = now + look_ticks;
      poll_input(false, {});
    }
  }
  boost::fibers::context* ctx = take_local();
  if (!ctx && dispatching) ctx = steal_elsewhere();
  if (ctx) {
    if (migratable(ctx)) owner_->fiber_scheduler()->attach_worker_context(ctx);
    owner_->note_switch();
    if (ctx != poller_fiber_ && !ctx->is_context(boost::fibers::type::dispatcher_context)) ran_ = true;
  }
  return ctx;
}

bool ready_queue::has_ready() const noexcept {
  spinlock_lock lk(lock_);
  return poller_due_ || run_next_ || !ready_.empty();
}

boost::fibers::context* ready_queue::steal(bool stale) noexcept {
  if (!has_stealable(stale)) return nullptr;
  spinlock_lock lk(lock_);
  if (stealable_.load(std::memory_order_relaxed) > 0 || (stale && !held_.empty())) {
    for (auto& c : ready_) {
      if (migratable(&c) && (stale || std::find(held_.begin(), held_.end(), &c) == held_.end())) {
        c.ready_unlink();
        uncount_locked(&c);
        return &c;
      }
    }
  }
  if (stale && run_next_ && run_next_migratable_.load(std::memory_order_relaxed)) {
    boost::fibers::context* ctx = run_next_;
    run_next_ = nullptr;
    run_next_migratable_.store(false, std::memory_order_relaxed);
    return ctx;
  }
  return nullptr;
}

boost::fibers::context* ready_queue::steal_elsewhere() noexcept {
  auto& all = owner_->node()->schedulers;
  const std::size_t n = all.size();
  if (n < 2) return nullptr;
  const std::size_t me = owner_->index();
  for (std::size_t i = 1; i < n; ++i) {
    scheduler& v = *all[(me + i) % n];
    const bool stale = owner_->stale(v);
    if (auto* ctx = v.fibers().steal(stale)) return ctx;
    if (v.has_stealable_process(stale)) {
      if (auto* ctx = owner_->steal_process_from(v, stale)) return ctx;
    }
  }
  return nullptr;
}

bool ready_queue::work_to_steal(bool& queued_elsewhere) noexcept {
  queued_elsewhere = false;
  for (auto& s : owner_->node()->schedulers) {
    if (s.get() == owner_) continue;
    const bool stale = owner_->stale(*s);
    if (s->fibers().has_stealable(stale) || s->has_stealable_process(stale)) return true;
    if (s->run_queue_length() > 0 || s->fibers().has_stealable(true)) queued_elsewhere = true;
  }
  return false;
}

void ready_queue::suspend_until(std::chrono::steady_clock::time_point const& tp) noexcept {
  run_flush_later();
  node_impl* n = owner_->node();
  bool queued_elsewhere = false;  // work that may become stealable
  auto work_elsewhere = [&] { return work_to_steal(queued_elsewhere); };
  // Spin briefly: a partner on another thread often has work within that; look for work to
  // steal meanwhile.
  n->spinning.fetch_add(1, std::memory_order_seq_cst);
  // Idle time is taken from the clock reads the spin makes anyway (the last one seen): finding
  // work early reads no clock more.
  const auto began = std::chrono::steady_clock::now();
  auto seen = began;
  idle_since_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(began.time_since_epoch()).count(),
                    std::memory_order_release);
  auto add_idle = [&](std::chrono::steady_clock::time_point to) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(to - began).count();
    idle_ns_.store(idle_ns_.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(ns),
                   std::memory_order_release);
    idle_since_.store(0, std::memory_order_release);  // after the total: a reader never counts the spell twice
  };
  // With input to wait for (a distribution), one idle thread at a time is the node's input
  // watcher: its spin is longer and looks at the input too, as Erlang's schedulers busy-wait (a
  // reply from another node that comes within it is read with no wake-up of a sleeping thread).
  // Other idle threads spin as usual: more spinners would only take the cores the busy threads
  // (this node's and its peers') need. After the spin, any idle thread waits on the input if no
  // other thread does (else it parks).
  // A thread that ran nothing since its last idle spell (it only looks again) does not take the
  // role from one waiting on the input: two idle threads would wake each other in turn.
  const bool ran = std::exchange(ran_, false);
  const bool input = poller_fiber_ && n->poller.load(std::memory_order_relaxed) &&
                     !n->input_watcher.load(std::memory_order_relaxed) &&
                     (ran || !n->poll_waiter.load(std::memory_order_seq_cst)) &&
                     !n->input_watcher.exchange(true, std::memory_order_seq_cst);
  if (input) {
    // A thread still waiting on the input (from an earlier idle spell) is woken to give it up
    // and park: else it holds the turn, the spin here sees nothing, and input comes through
    // its (slower) wake-up. Once per return to work; the watcher is then the thread that reads.
    if (ready_queue* w = n->poll_waiter.load(std::memory_order_seq_cst); w && w != this) w->notify();
  }
  bool parked_for_input = false;
  struct watcher_role {
    node_impl* n;
    bool held;
    ~watcher_role() {
      if (held) n->input_watcher.store(false, std::memory_order_seq_cst);
    }
  } role{n, input};
  const auto until = began + (input ? input_spin_time : spin_time);
  for (unsigned i = 0;; ++i) {
    if (woken_.exchange(false, std::memory_order_acq_rel) || work_elsewhere()) {
      n->spinning.fetch_sub(1, std::memory_order_seq_cst);
      recheck_ = recheck_min;
      add_idle(seen);
      return;
    }
    for (int k = 0; k < (input ? 4 : 16); ++k) spin_pause();
    if (input && poll_input(false, {})) {
      n->spinning.fetch_sub(1, std::memory_order_seq_cst);
      recheck_ = recheck_min;
      add_idle(std::chrono::steady_clock::now());
      return;
    }
    if ((input || (i & 7) == 7) && (seen = std::chrono::steady_clock::now()) >= until) break;
  }
  n->spinning.fetch_sub(1, std::memory_order_seq_cst);
  if (role.held) {
    role.held = false;
    n->input_watcher.store(false, std::memory_order_seq_cst);
  }
  // While a watcher spins, the thread parks (the watcher waits on the input after its spin): a
  // thread waiting on the input would hold the turn and leave the watcher's looks empty. If the
  // watcher leaves its spin for a long turn instead, the I/O thread's fallback reads.
  const bool has_input = poller_fiber_ && n->poller.load(std::memory_order_relaxed);
  const bool watched = has_input && n->input_watcher.load(std::memory_order_seq_cst);
  if (has_input && !watched) {
    // Waits on the input, unless a watcher spins on it (it waits next), another thread waits
    // or a busy one looks at it this moment (it then sleeps as below).
    const auto last = recheck_;
    if (queued_elsewhere) recheck_ = recheck_min;
    const auto deadline = std::min(tp, std::chrono::steady_clock::now() + recheck_);
    recheck_ = std::min<std::chrono::microseconds>(recheck_ * 2, recheck_max);
    const bool found = poll_input(true, deadline);
    if (found || polled_wait_) {
      if (woken_.exchange(false, std::memory_order_seq_cst) || found) recheck_ = recheck_min;
      add_idle(std::chrono::steady_clock::now());
      return;
    }
    recheck_ = last;
    parked_for_input = true;  // the thread that gives the turn back wakes one such
  }
  struct input_parking {
    node_impl* n;
    bool on;
    input_parking(node_impl* node, bool o) : n(node), on(o) {
      if (on) n->input_parked.fetch_add(1, std::memory_order_seq_cst);
    }
    ~input_parking() {
      if (on) n->input_parked.fetch_sub(1, std::memory_order_seq_cst);
    }
  } parking{n, parked_for_input};
  std::unique_lock lk(mutex_);
  sleeping_.store(true, std::memory_order_seq_cst);
  // Checked after sleeping_ is set: whoever adds work checks sleeping_ after adding it.
  // Parked for input: the turn given back since is seen here, or its giver sees this thread.
  const bool turn_free = parked_for_input && !n->poll_turn.load(std::memory_order_seq_cst);
  if (!woken_.exchange(false, std::memory_order_seq_cst) && !work_elsewhere() && !turn_free) {
    auto woken = [this] { return woken_.load(std::memory_order_seq_cst); };
    if (queued_elsewhere) recheck_ = recheck_min;
    auto deadline = std::min(tp, std::chrono::steady_clock::now() + recheck_);
    recheck_ = std::min<std::chrono::microseconds>(recheck_ * 2, recheck_max);
    if (cv_.wait_until(lk, deadline, woken)) recheck_ = recheck_min;
    woken_.store(false, std::memory_order_relaxed);
  }
  sleeping_.store(false, std::memory_order_relaxed);
  add_idle(std::chrono::steady_clock::now());
}

std::uint64_t ready_queue::idle_ns() const noexcept {
  // The total first, then the spell in progress: read in this order, a spell that ends between
  // the two reads is missed once (the next read has it), never counted twice.
  const std::uint64_t total = idle_ns_.load(std::memory_order_acquire);
  const std::int64_t since = idle_since_.load(std::memory_order_acquire);
  if (since == 0) return total;
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  return total + static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - since));
}

void ready_queue::notify() noexcept {
  if (woken_.exchange(true, std::memory_order_seq_cst)) return;
  if (polling_.load(std::memory_order_seq_cst)) {
    const std::uint64_t one = 1;
    wake_written_.store(true, std::memory_order_seq_cst);
    [[maybe_unused]] const ssize_t w = ::write(wake_fd_, &one, sizeof one);
    return;
  }
  if (sleeping_.load(std::memory_order_seq_cst)) {
    std::lock_guard lk(mutex_);
    cv_.notify_one();
  }
}

bool ready_queue::poll_input(bool wait, std::chrono::steady_clock::time_point until) noexcept {
  polled_wait_ = false;
  node_impl* n = owner_->node();
  if (n->poll_turn.load(std::memory_order_relaxed) || n->poll_turn.exchange(true, std::memory_order_acquire))
    return false;
  io_poller* p = n->poller.load(std::memory_order_acquire);  // after the turn: set_io_poller waits for it
  if (!p) {
    n->give_back_poll_turn();
    return false;
  }
  if (wait) polled_wait_ = true;
  pollfd fds[2] = {{p->fd(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  int timeout_ms = 0;
  bool waits = false;  // in poll(2), until input, a notify() or `until`
  if (wait) {
    // Counted as parked (work_available wakes it) and as waiting for input (io_polled).
    polling_.store(true, std::memory_order_seq_cst);
    sleeping_.store(true, std::memory_order_seq_cst);
    n->poll_waiter.store(this, std::memory_order_seq_cst);
    // Checked after polling_ is set: whoever adds work checks it after adding. A watcher that
    // began spinning since sees this thread as the waiter (and wakes it), or it is seen here.
    bool queued_elsewhere = false;
    if (!woken_.load(std::memory_order_seq_cst) && !work_to_steal(queued_elsewhere) &&
        !n->input_watcher.load(std::memory_order_seq_cst)) {
      waits = true;
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      timeout_ms = static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 1'000'000));
    }
  }
  n->polled_at.store(timestamp(), std::memory_order_relaxed);
  int r = 0;
  if (waits) {
    r = ::poll(fds, 2, timeout_ms);
  } else if (p->peek()) {
    r = 1;
    fds[0].revents = POLLIN;
  }
  if (wait) {
    n->poll_waiter.store(nullptr, std::memory_order_seq_cst);
    n->polled_at.store(timestamp(), std::memory_order_relaxed);
    sleeping_.store(false, std::memory_order_relaxed);
    polling_.store(false, std::memory_order_seq_cst);
    // Drained whenever a notify() wrote, also one that came after poll(2) returned: a count
    // left over would end the thread's next wait at once.
    const bool written = wake_written_.exchange(false, std::memory_order_seq_cst);
    if (written || (r > 0 && (fds[1].revents & POLLIN))) {
      std::uint64_t count = 0;
      [[maybe_unused]] const ssize_t got = ::read(wake_fd_, &count, sizeof count);
    }
  }
  if (r > 0 && fds[0].revents != 0) {
    owner_->poller_has_turn();
    owner_->fiber_scheduler()->schedule(poller_fiber_);  // it gives the turn back
    return true;
  }
  n->give_back_poll_turn();
  return false;
}

// ---- scheduler ------------------------------------------------------------------------------

std::int64_t call_started() noexcept {
  scheduler* s = scheduler::on_this_thread();
  return s && s->calls().sample_next() ? timestamp() : 0;
}

void call_answered(std::int64_t started) noexcept {
  // Ticks to ns by a factor taken once (timestamp_to_ns reads the system clock each time).
  static const double once = static_cast<double>(timestamp_to_ns(1'000'000'000)) / 1e9;
  const double ns_per_tick = once > 0 ? once : static_cast<double>(timestamp_to_ns(1'000'000'000)) / 1e9;
  // The process may have moved to another thread meanwhile: this thread's block is the one
  // written, so each block keeps one writer.
  if (scheduler* s = scheduler::on_this_thread()) {
    s->calls().record(static_cast<std::int64_t>(static_cast<double>(timestamp() - started) * ns_per_tick));
  }
}

void call_counters::record(std::int64_t ns) noexcept {
  std::size_t b = 0;
  while (b < call_buckets && ns > call_latency_bounds_ns[b]) ++b;
  buckets[b].store(buckets[b].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  sampled_ns.store(sampled_ns.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(ns),
                   std::memory_order_relaxed);
}

scheduler::scheduler(node_impl* n, unsigned index) : node_(n), index_(index) {}

scheduler::~scheduler() {
  if (thread_.joinable()) stop();
}

void scheduler::start() {
  thread_ = std::thread([this] { thread_main(); });
  // Other threads may hand fibers to this one as soon as a process runs.
  while (!__atomic_load_n(&fiber_scheduler_, __ATOMIC_ACQUIRE)) std::this_thread::yield();
}

scheduler* scheduler::on_this_thread() noexcept { return tl_scheduler; }
bool scheduler::in_worker() noexcept { return tl_in_worker; }
void scheduler::set_in_worker(bool on) noexcept { tl_in_worker = on; }

bool scheduler::stale(const scheduler& victim) noexcept {
  if (victim.index_ >= seen_.size()) return false;
  sighting& s = seen_[victim.index_];
  const std::uint64_t now_switches = victim.switches_.load(std::memory_order_relaxed);
  const std::int64_t now = timestamp();
  if (now_switches != s.switches) {
    s = {now_switches, now};
    return false;
  }
  return now - s.since > stale_ticks;
}

bool scheduler::has_stealable_process(bool victim_stale) const noexcept {
  const std::size_t q = queued_.load(std::memory_order_relaxed);
  return q >= 2 || (q == 1 && victim_stale);
}

void scheduler::adopt_remote(boost::fibers::context* ctx) noexcept { fiber_scheduler_->schedule_from_remote(ctx); }

bool scheduler::hogged() const noexcept {
  const process* p = running();
  if (!p) return false;
  const std::int64_t since = p->running_since.load(std::memory_order_relaxed);
  return since != 0 && timestamp_to_ns(timestamp() - since) > hog_limit_ns;
}

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

void scheduler::push_locked(process* p) noexcept {
  p->run_next = nullptr;
  if (tail_) {
    tail_->run_next = p;
  } else {
    head_ = p;
  }
  tail_ = p;
  queued_.fetch_add(1, std::memory_order_relaxed);
}

process* scheduler::pop_locked() noexcept {
  process* p = head_;
  if (!p) return nullptr;
  head_ = p->run_next;
  if (!head_) tail_ = nullptr;
  queued_.fetch_sub(1, std::memory_order_relaxed);
  return p;
}

void scheduler::enqueue(process* p) {
  spinlock_lock lk(lock_);
  push_locked(p);
  const bool stealable = head_ != tail_;
  if (tl_scheduler == this && tl_in_worker) {  // the running worker takes it next
    lk.unlock();
    if (stealable) node_->work_available(this);
    return;
  }
  auto* ctx = wake_one_locked();
  lk.unlock();
  if (ctx) wake(ctx, nullptr);
  if (stealable) node_->work_available(this);
}

boost::fibers::context* scheduler::steal_process_from(scheduler& victim, bool victim_stale) noexcept {
  process* p = nullptr;
  {
    spinlock_lock lk(victim.lock_);
    if (victim.has_stealable_process(victim_stale)) p = victim.pop_locked();
  }
  if (!p) return nullptr;
  spinlock_lock lk(lock_);
  push_locked(p);
  return wake_one_locked();
}

void scheduler::before_worker_suspends() {
  spinlock_lock lk(lock_);
  if (!head_) return;
  auto* ctx = wake_one_locked();
  lk.unlock();
  if (ctx) wake(ctx, nullptr);
}

void scheduler::thread_main() {
  seen_.resize(node_->schedulers.size());  // every scheduler exists before any thread starts
  boost::fibers::use_scheduling_algorithm<algorithm_adapter>(&fibers_);
  tl_scheduler = this;
  auto* self = boost::fibers::context::active();
  set_thread_fiber_scheduler(self->get_scheduler());
  note_switch();
  __atomic_store_n(&fiber_scheduler_, self->get_scheduler(), __ATOMIC_RELEASE);
  fiber_slot slot;  // the manager runs no process; the slot records the thread's own stack
  slot.stack = thread_stack();
  bind_fiber(&slot);
  boost::fibers::fiber poller(std::allocator_arg, pooled_stack{&node_->stacks, stack_pool::round(poller_stack)},
                              [this] { poller_main(); });
  on_resume(&slot);
  spinlock_lock lk(lock_);
  for (;;) {
    while (!need_worker_ && !stop_) {
      manager_ = self;
      suspend_unlocking(self, lk, switch_lock_);
      on_resume(&slot);
      lk = spinlock_lock(lock_);
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
      suspend_unlocking(self, lk, switch_lock_);
      on_resume(&slot);
      lk = spinlock_lock(lock_);
    }
  }
  manager_ = nullptr;
  lk.unlock();
  poller_stop_ = true;
  // Due already when it holds the turn; not started yet when it has no context (it then sees
  // poller_stop_ at once).
  if (!poller_turn_ && poller_fiber_context_) fiber_scheduler_->schedule(poller_fiber_context_);
  poller.join();
  on_resume(&slot);
  while (!stop_announced_.load(std::memory_order_acquire)) std::this_thread::yield();
  tl_scheduler = nullptr;
}

void scheduler::poller_main() {
  auto* self = boost::fibers::context::active();
  fiber_slot slot;  // no process: current() is null while ready() runs
  slot.stack = bounds_of_stack(&slot, stack_pool::round(poller_stack));
  bind_fiber(&slot);
  poller_fiber_context_ = self;
  fibers_.set_poller_fiber(self);
  while (!poller_stop_) {
    self->suspend();
    on_resume(&slot);
    if (poller_turn_) {
      // Woken holding the node's poll turn: the poller stays registered until it is back.
      poller_turn_ = false;
      if (io_poller* p = node_->poller.load(std::memory_order_acquire)) {
        // What it wakes goes to the back of the queue, in order, rather than each into run-next
        // in turn. The first runs here (a reply's caller, a call's server: waking another
        // thread for it would cost more than the work); the rest idle threads may take.
        ready_queue::wake_in_order in_order(true);
        p->ready();
      }
      run_flush_later();
      node_->give_back_poll_turn();
    }
    if (poller_stop_) {
      fibers_.set_poller_fiber(nullptr);  // nothing wakes it once it has ended
      return;
    }
  }
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
      suspend_unlocking(self, lk, switch_lock_);
      on_resume(&slot);
      lk = spinlock_lock(lock_);
    }
    process* p = pop_locked();
    lk.unlock();
    tl_in_worker = true;
    run_activation(p);
    run_flush_later();
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
    if (m) wake(m, nullptr);
  }
  // The thread may not end (destroying Boost's scheduler and its algorithm) before the wake-up
  // above is done with them: it waits for this.
  stop_announced_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

}  // namespace grove::detail
