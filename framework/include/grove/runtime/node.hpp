// node: one Grove runtime in an OS process. It owns the scheduler threads, the process table,
// the clock, the timers, the stack pool and the thread pool for blocking work.
//
// Stopping a node (stop() or its destructor) ends every process with reason `shutdown` — an
// untrappable signal that unwinds each stack at its next suspension point — then joins its
// threads and frees every stack. A process that never suspends keeps stop() waiting; the node
// logs such a process by pid and label every few seconds while it waits.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <grove/runtime/process.hpp>

namespace grove {

namespace detail {
class node_impl;
struct node_access;  // the runtime's way in (src/runtime/node_impl.hpp)
// Marks p as owning something an exit hook must release when it dies. False if p is dead.
bool mark_owner(const pid& p);
// True once p's death pipeline has completed (hooks run, signals sent, slot free).
bool ended(const pid& p);
// A message the node recorded (node_options::record_messages): its sender (none from outside
// the node), its receiver and its type (a call's or cast's request type, not the wrapper's).
struct sent_message {
  pid from;
  pid to;
  const std::type_info* type = nullptr;
};
// The oldest recorded message to `to` not taken yet, taken; waits up to `wait` (real time) for
// one. Nothing if none came, or if the node does not record.
std::optional<sent_message> take_sent(node& n, const pid& to, std::chrono::milliseconds wait);
bool records_messages(node& n) noexcept;
}  // namespace detail

struct node_options {
  unsigned schedulers = 0;                      // scheduler threads; 0 = one per core
  std::size_t default_stack_size = 64 * 1024;   // body processes, unless spawn_options says
  std::size_t handler_stack_size = 256 * 1024;  // the pooled fibers that run handlers
  unsigned blocking_threads = 4;                // threads for blocking()
  bool manual_clock = false;                    // time moves only through advance()
  // A process running longer than this without suspending is reported (long-schedule hooks,
  // the `long_schedule` event), like Erlang's system_monitor long_schedule; zero: not watched.
  std::chrono::milliseconds long_schedule{100};
  std::string name = "grove";  // shown in events, logs and the console
  // The test kit's log of every message sent between processes (who, to whom, what type), for
  // testing::expect<T>(from, to): one lock per message, so for tests only (a deterministic
  // node has it on).
  bool record_messages = false;
};

// Upper bounds (ns) of the buckets of node_totals::call_latency: 1 µs to 5 s.
inline constexpr std::array<std::int64_t, 20> call_latency_bounds_ns{
    1'000,      2'500,       5'000,       10'000,      25'000,        50'000,       100'000,
    250'000,    500'000,     1'000'000,   2'500'000,   5'000'000,     10'000'000,   25'000'000,
    50'000'000, 100'000'000, 250'000'000, 500'000'000, 1'000'000'000, 5'000'000'000};

// Counters since the node started, for metrics. Reading them walks no process: they are kept
// where the work happens (per scheduler thread, or once per process start and end) and cost
// the message path nothing.
struct node_totals {
  std::uint64_t spawned = 0;             // processes started
  std::uint64_t ended = 0;               // processes that ended
  std::uint64_t ended_messages_in = 0;   // messages taken by processes that ended (add info() of live ones)
  std::uint64_t ended_messages_out = 0;  // messages sent by processes that ended
  std::chrono::nanoseconds uptime{0};
  // Per scheduler thread: time it had nothing to run (looking for work, then asleep).
  std::vector<std::chrono::nanoseconds> scheduler_idle;
  std::uint64_t calls = 0;          // GenServer calls made by processes (client threads' included)
  std::uint64_t sampled_calls = 0;  // of those, the ones timed: one in 16 per thread, answered ones only
  std::chrono::nanoseconds sampled_call_time{0};
  // Timed calls per latency bucket (call_latency_bounds_ns; the last: slower), not cumulative.
  std::array<std::uint64_t, call_latency_bounds_ns.size() + 1> call_latency{};
};

class node {
 public:
  explicit node(node_options opts = {});
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  // Ends every process with `shutdown`, then joins the threads. Idempotent.
  void stop();

  template <class F>
  pid spawn(F&& body, const spawn_options& opts = {}) {
    return detail::spawn_body(this, detail::unique_function(std::forward<F>(body)), opts, detail::spawn_link_mode::none)
        .who;
  }
  pid spawn_handler(std::unique_ptr<process_handler> h, const spawn_options& opts = {});

  // Runs fn as a process and blocks the calling thread (which must not be a process) until it
  // returns; returns fn's result or rethrows its exception. If the process is ended by a
  // signal, throws process_error with the exit reason.
  template <class F>
  auto run(F&& fn, const spawn_options& opts = {}) -> std::invoke_result_t<F&>;

  std::uint32_t id() const noexcept;
  const std::string& name() const noexcept;
  unsigned schedulers() const noexcept;
  std::size_t process_count() const noexcept;
  std::vector<pid> processes() const;
  // Processes waiting to run, per scheduler thread.
  std::vector<std::size_t> run_queue_lengths() const;
  // Fiber stack memory: address space mapped for stacks; stacks of ended processes kept warm
  // for reuse (pages resident, up to 64 MiB in all); and kept with their pages returned to the
  // OS (above that mark).
  struct stack_memory {
    std::size_t mapped = 0, warm = 0, released = 0;
  };
  stack_memory stack_memory_stats() const;
  node_totals totals() const;

  std::chrono::steady_clock::time_point now() const;
  // Manual clock only: moves time forward by d, firing due timers in deadline order. Callable
  // from a process or from any thread.
  void advance(duration d);

  // Extension point for what processes own (names, registry keys, tables). For a process marked
  // with detail::mark_owner, each hook runs in the dying process's own context after its stack
  // unwound and before its exit and down signals go out, so what it owned is released before
  // anyone hears of the death.
  using exit_hook = void (*)(void* ctx, const pid& who);
  void add_exit_hook(exit_hook fn, void* ctx);
  void remove_exit_hook(exit_hook fn, void* ctx);

  // Called when a process crashes: it ended by itself (an exception or exit(reason)) with a
  // reason other than normal, shutdown or {shutdown, _}. A process ended by an exit signal is
  // not a crash of its own. Runs in the dying process, before its exit hooks; must not block.
  using crash_hook = void (*)(void* ctx, const pid& who, const std::string& label, const exit_reason& reason);
  void add_crash_hook(crash_hook fn, void* ctx);
  void remove_crash_hook(crash_hook fn, void* ctx);

  // Called from the watchdog's thread when a process has run longer than
  // node_options::long_schedule without suspending (once per such activation; `ran` is how long
  // it had run when seen). Nothing is preempted: the process runs on.
  using long_schedule_hook = void (*)(void* ctx, const pid& who, const std::string& label,
                                      std::chrono::nanoseconds ran);
  void add_long_schedule_hook(long_schedule_hook fn, void* ctx);
  void remove_long_schedule_hook(long_schedule_hook fn, void* ctx);

  // How reports name a process: the name registry (a layer above) installs itself here when
  // it is created, and removes itself (fn null) when destroyed. registered_name asks it.
  using namer = std::optional<std::string> (*)(void* ctx, const pid& who);
  void set_namer(namer fn, void* ctx);
  std::optional<std::string> registered_name(const pid& who) const;

  // One instance of T per node (T constructible from node&), created on first use and
  // destroyed with the node after every process has ended. Layers above the runtime keep their
  // per-node state here (the name registry, for instance).
  template <class T>
  T& service() {
    void* p = service_slot(typeid(T), [](node& n) -> std::shared_ptr<void> { return std::make_shared<T>(n); });
    return *static_cast<T*>(p);
  }

 private:
  friend struct detail::node_access;
  void assert_outside_process(const char* what) const;
  void wait_ended(const pid& p);
  void* service_slot(const std::type_info& t, std::shared_ptr<void> (*make)(node&));
  std::unique_ptr<detail::node_impl> impl_;
};

template <class F>
auto node::run(F&& fn, const spawn_options& opts) -> std::invoke_result_t<F&> {
  using R = std::invoke_result_t<F&>;
  assert_outside_process("node::run");
  struct state {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> value{};
    std::exception_ptr error;
  };
  auto st = std::make_shared<state>();
  pid runner = spawn(
      [st, f = std::forward<F>(fn)]() mutable {
        struct notify_on_exit {
          state& s;
          ~notify_on_exit() {
            std::lock_guard lk(s.m);
            s.done = true;
            s.cv.notify_all();
          }
        } guard{*st};
        try {
          if constexpr (std::is_void_v<R>) {
            f();
          } else {
            st->value.emplace(f());
          }
        } catch (const process_exit& e) {
          st->error = std::make_exception_ptr(process_error(e.reason(), "process ended"));
          throw;
        } catch (...) {
          st->error = std::current_exception();
        }
      },
      opts);
  {
    std::unique_lock lk(st->m);
    st->cv.wait(lk, [&] { return st->done; });
  }
  wait_ended(runner);  // its links, monitors and slot are released too
  if (auto e = std::exchange(st->error, nullptr)) std::rethrow_exception(e);  // the only reference
  if constexpr (!std::is_void_v<R>) return std::move(*st->value);
}

}  // namespace grove
