#include "process_impl.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/fiber/context.hpp>
#include <boost/fiber/scheduler.hpp>

#include <grove/runtime/errors.hpp>
#include <grove/runtime/node.hpp>

#include "asan_fiber.hpp"
#include "node_impl.hpp"
#include "scheduler.hpp"
#include "spinlock.hpp"
#include "timer_service.hpp"

namespace grove::detail {

// ---- the current process ----------------------------------------------------------------------

namespace {
thread_local fiber_slot* tl_slot = nullptr;
thread_local boost::fibers::scheduler* tl_fiber_scheduler = nullptr;
}  // namespace

// Every access to these thread-locals goes through a function that is never inlined: a body
// process may suspend on one thread and resume on another, and a caller must not keep a
// thread-local's address computed before the switch (GCC treats it as invariant).
[[gnu::noinline]] void bind_fiber(fiber_slot* s) {
  s->ctx = boost::fibers::context::active();
  tl_slot = s;
  asan_on_stack(s->stack);
}

[[gnu::noinline]] fiber_slot* this_fiber_slot() noexcept { return tl_slot; }

[[gnu::noinline]] void on_resume(fiber_slot* mine) noexcept {
  tl_slot = mine;
  asan_on_stack(mine->stack);
}

[[gnu::noinline]] void set_thread_fiber_scheduler(boost::fibers::scheduler* s) noexcept { tl_fiber_scheduler = s; }

[[gnu::noinline]] void wake(boost::fibers::context* ctx, scheduler* home) noexcept {
  auto* s = ctx->get_scheduler();
  announce_handoff(ctx);  // after the last read of ctx here
  if (s) {
    if (s == tl_fiber_scheduler) {
      s->schedule(ctx);
    } else {
      s->schedule_from_remote(ctx);
    }
    return;
  }
  // Detached: it moves to the waker's thread, where it runs next. From outside the schedulers
  // (timers, the watchdog, blocking work, plain threads) it goes home, unless home is held by a
  // process that does not suspend: then to another thread.
  scheduler* here = scheduler::on_this_thread();
  if (here && here->node() == home->node()) {
    tl_fiber_scheduler->schedule(ctx);
  } else {
    (home->hogged() ? home->node()->free_scheduler(home) : *home).adopt_remote(ctx);
  }
}

namespace {
std::int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

process* lookup(const pid& p) noexcept {
  node_impl* n = node_impl::find(p.node());
  return n ? n->table.lookup(p.slot()) : nullptr;
}

[[gnu::noinline]] process* current() noexcept { return tl_slot ? tl_slot->p : nullptr; }

[[gnu::noinline]] void set_current(process* p) noexcept {
  if (tl_slot) tl_slot->p = p;
}

process& current_or_throw(const char* what) {
  process* p = current();
  if (!p) throw not_in_process(what);
  return *p;
}

// The TSC is read at every resume; clock_gettime costs several times more on these VMs.
// Ticks become nanoseconds with a rate measured between program start and now.
namespace {
struct tsc_anchor {
  std::int64_t ticks;
  std::int64_t ns;
};
std::int64_t raw_ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  return static_cast<std::int64_t>(__builtin_ia32_rdtsc());
#else
  return steady_ns();
#endif
}
// The anchor's TSC and clock read together: the clock read between two TSC reads, again when
// the thread was held up between them (preempted, or its vCPU descheduled), so the pair is at
// most a few microseconds apart and the rate measured from it is not skewed by a preemption.
// Once, at start-up; conversions (on the receive path) read the pair plainly.
tsc_anchor read_together() noexcept {
  constexpr std::int64_t close_enough = 20'000;  // ticks: under 10 µs at any TSC rate above 2 GHz
  tsc_anchor best{0, 0};
  std::int64_t best_gap = -1;
  for (int attempt = 0; attempt < 16; ++attempt) {
    const std::int64_t before = raw_ticks();
    const std::int64_t ns = steady_ns();
    const std::int64_t gap = raw_ticks() - before;
    if (best_gap < 0 || gap < best_gap) {
      best = {before + gap / 2, ns};
      best_gap = gap;
    }
    if (gap < close_enough) break;
  }
  return best;
}
const tsc_anchor& anchor() noexcept {
  static const tsc_anchor a = read_together();
  return a;
}

// The rate is measured from program start: conversions made early are as good as late ones.
[[maybe_unused]] const tsc_anchor& anchored_at_start = anchor();
}  // namespace

#if !defined(__x86_64__) && !defined(__i386__)
std::int64_t timestamp() noexcept {
  std::int64_t t = raw_ticks();
  return t == 0 ? 1 : t;  // 0 means "not running"
}
#endif

std::int64_t turn_started() noexcept {
  process* p = current();
  return p ? p->running_since.load(std::memory_order_relaxed) : 0;
}

std::int64_t timestamp_to_ns(std::int64_t ticks) noexcept {
#if defined(__x86_64__) || defined(__i386__)
  const auto& a = anchor();
  std::int64_t dt = raw_ticks() - a.ticks, dn = steady_ns() - a.ns;
  if (dt <= 0 || dn <= 0) return 0;
  return static_cast<std::int64_t>(static_cast<double>(ticks) * static_cast<double>(dn) / static_cast<double>(dt));
#else
  return ticks;
#endif
}

void mark_running(process* p) noexcept {
  p->turn_receives = 0;
  if (scheduler* s = scheduler::on_this_thread()) s->note_running(p);
  p->status.store(process_status::running, std::memory_order_relaxed);
  p->running_since.store(timestamp(), std::memory_order_relaxed);
}

pid process::self() const noexcept { return pid(node->id, slot, generation.load(std::memory_order_relaxed)); }

}  // namespace grove::detail

namespace grove {

// ---- public functions ----------------------------------------------------------------------------

using detail::current_or_throw;
using detail::spinlock_lock;

pid self() { return current_or_throw("self").self(); }

bool in_process() noexcept { return detail::current() != nullptr; }

node& this_node() { return *current_or_throw("this_node").node->owner; }

bool detail::mark_owner(const pid& p) {
  detail::process* t = detail::lookup(p);
  if (!t) return false;
  spinlock_lock lk(t->lock);
  if (t->generation != p.generation() || t->state != detail::life::alive) return false;
  t->owner = true;
  return true;
}

bool detail::ended(const pid& p) {
  detail::process* t = detail::lookup(p);
  if (!t) return true;
  spinlock_lock lk(t->lock);
  return t->generation != p.generation() || t->state == detail::life::free;
}

void detail::node_impl::record_sent(sent_message m) {
  {
    std::lock_guard lk(sent_mu);
    if (sent.size() == sent_kept) sent.pop_front();
    sent.push_back(m);
  }
  sent_cv.notify_all();
}

std::optional<detail::sent_message> detail::take_sent(node& n, const pid& to, std::chrono::milliseconds wait) {
  detail::node_impl& impl = detail::node_access::of(n);
  if (!impl.options.record_messages) return std::nullopt;
  std::unique_lock lk(impl.sent_mu);
  std::optional<sent_message> out;
  impl.sent_cv.wait_for(lk, wait, [&] {
    auto it = std::find_if(impl.sent.begin(), impl.sent.end(), [&](const sent_message& m) { return m.to == to; });
    if (it == impl.sent.end()) return false;
    out = *it;
    impl.sent.erase(it);
    return true;
  });
  return out;
}

bool detail::records_messages(node& n) noexcept { return detail::node_access::of(n).options.record_messages; }

bool alive(const pid& p) {
  detail::process* t = detail::lookup(p);
  if (!t) return false;
  spinlock_lock lk(t->lock);
  return t->generation == p.generation() && t->state == detail::life::alive;
}

std::chrono::steady_clock::time_point now() { return current_or_throw("now").node->timers.now(); }

std::optional<duration> cancel_timer(const timer_ref& t) {
  return current_or_throw("cancel_timer").node->timers.cancel(t.id);
}

std::optional<process_info> info(const pid& p) {
  detail::process* t = detail::lookup(p);
  if (!t) return std::nullopt;
  process_info i;
  {
    spinlock_lock lk(t->lock);
    if (t->generation != p.generation() || t->state != detail::life::alive) return std::nullopt;
    i.pid = p;
    i.label = t->label;
    i.handler_form = t->handler_form;
    i.links = t->links;
    for (auto& m : t->monitors) i.monitors.push_back(m.other);
    for (auto& m : t->monitored_by) i.monitored_by.push_back(m.other);
    i.stack_size = t->handler_form ? 0 : t->stack_size;
    if (!t->handler_form) {
      if (detail::scheduler* h = t->home.load(std::memory_order_relaxed)) i.scheduler = static_cast<int>(h->index());
    }
  }
  i.status = t->status.load(std::memory_order_relaxed);
  i.mailbox_length = t->mail.size();
  // Taken by the process, plus the messages still incoming.
  i.messages_in = t->mail.messages_in.load(std::memory_order_relaxed) + t->mail.incoming();
  i.messages_out = t->messages_out.load(std::memory_order_relaxed);
  i.trap_exit = t->trapping.load(std::memory_order_relaxed);
  auto since = t->running_since.load(std::memory_order_relaxed);
  if (since != 0 && i.status == process_status::running) {
    auto d = detail::timestamp() - since;
    i.running_for = duration(d > 0 ? detail::timestamp_to_ns(d) : 0);
  }
  return i;
}

}  // namespace grove
