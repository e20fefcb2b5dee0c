#include "process_impl.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <ostream>
#include <shared_mutex>
#include <sstream>

#include <boost/context/detail/exception.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/operations.hpp>

#include <grove/runtime/blocking.hpp>
#include <grove/runtime/node.hpp>

#include "node_impl.hpp"
#include "scheduler.hpp"

namespace grove {

// ---- printing -------------------------------------------------------------------------------

std::string pid::str() const {
  return "<" + std::to_string(node_) + "." + std::to_string(slot_) + "." + std::to_string(generation_) + ">";
}
std::ostream& operator<<(std::ostream& os, const pid& p) { return os << p.str(); }

std::optional<pid> parse_pid(std::string_view t) {
  if (t.size() < 7 || t.front() != '<' || t.back() != '>') return std::nullopt;
  t = t.substr(1, t.size() - 2);
  std::uint32_t parts[3];
  for (int i = 0; i < 3; ++i) {
    const auto dot = i < 2 ? t.find('.') : t.size();
    if (dot == std::string_view::npos || dot == 0 || dot > 10) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : t.substr(0, dot)) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (v > 0xffffffffu) return std::nullopt;
    parts[i] = static_cast<std::uint32_t>(v);
    t = i < 2 ? t.substr(dot + 1) : std::string_view();
  }
  if (parts[2] == 0) return std::nullopt;
  return pid(parts[0], parts[1], parts[2]);
}
std::ostream& operator<<(std::ostream& os, const ref& r) { return os << "#Ref<" << r.id << ">"; }

std::string exit_reason::str() const {
  switch (kind_) {
    case kind::normal:
      return "normal";
    case kind::shutdown:
      return detail_.empty() ? "shutdown" : "{shutdown," + detail_ + "}";
    case kind::killed:
      return "killed";
    case kind::kill:
      return "kill";
    case kind::noproc:
      return "noproc";
    case kind::noconnection:
      return "noconnection";
    case kind::timeout:
      return "timeout";
    case kind::error:
      return "{error," + detail_ + "}";
    case kind::other:
      return detail_;
  }
  return "?";
}
std::ostream& operator<<(std::ostream& os, const exit_reason& r) { return os << r.str(); }

std::string message::type_name() const { return env_ ? detail::demangle(env_->type->name()) : "none"; }

const char* to_string(process_status s) noexcept {
  switch (s) {
    case process_status::runnable:
      return "runnable";
    case process_status::running:
      return "running";
    case process_status::waiting:
      return "waiting";
    case process_status::exiting:
      return "exiting";
  }
  return "?";
}

namespace detail {

std::string demangle(const char* name) {
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = (status == 0 && d) ? d : name;
  std::free(d);
  return out;
}

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
  if (auto* s = ctx->get_scheduler()) {
    if (s == tl_fiber_scheduler) {
      s->schedule(ctx);
    } else {
      s->schedule_from_remote(ctx);
    }
    return;
  }
  // Detached: it moves to the waker's thread, where it runs next.
  scheduler* here = scheduler::on_this_thread();
  if (here && here->node() == home->node()) {
    tl_fiber_scheduler->schedule(ctx);
  } else {
    home->adopt_remote(ctx);
  }
}

namespace {
std::int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

process* lookup(const pid& p) noexcept {
  node_impl* n = node_impl::find(p.node());
  return n ? n->table.lookup(p.slot()) : nullptr;
}

enum class push_result { ok, dead, dropped, full };
}  // namespace

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
// Ticks become nanoseconds with a rate measured between the first use and now.
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
const tsc_anchor& anchor() noexcept {
  static const tsc_anchor a{raw_ticks(), steady_ns()};
  return a;
}
}  // namespace

std::int64_t timestamp() noexcept {
  (void)anchor();
  std::int64_t t = raw_ticks();
  return t == 0 ? 1 : t;  // 0 means "not running"
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
  p->status.store(process_status::running, std::memory_order_relaxed);
  p->running_since.store(timestamp(), std::memory_order_relaxed);
}

pid process::self() const noexcept { return pid(node->id, slot, generation); }

namespace {
push_result push_impl(process* p, std::uint32_t gen, std::unique_ptr<envelope> env) {
  spinlock_lock lk(p->lock);
  if (p->generation != gen || p->state != life::alive) return push_result::dead;
  if (env->kind == envelope_kind::reply) {
    if (std::find(p->aliases.begin(), p->aliases.end(), env->alias) == p->aliases.end()) {
      return push_result::dropped;  // the caller gave up: a late reply never reaches its mailbox
    }
    p->length.fetch_add(1, std::memory_order_relaxed);
    p->messages_in.fetch_add(1, std::memory_order_relaxed);
  } else if (env->is_message()) {
    if (p->capacity && p->length.load(std::memory_order_relaxed) - p->drop_oldest_pending >= p->capacity) {
      switch (p->overflow) {
        case overflow_policy::drop_newest:
          return push_result::dropped;
        case overflow_policy::fail:
          return push_result::full;
        case overflow_policy::drop_oldest: {
          // The oldest message is in the owner's queue if any is left there: the owner drops
          // it at its next look. Otherwise it is the first message still in incoming.
          envelope* prev = nullptr;
          envelope* e = nullptr;
          if (p->drop_oldest_pending >= p->queued.load(std::memory_order_relaxed)) {
            e = p->incoming.head;
            while (e && !e->is_message()) {
              prev = e;
              e = e->next;
            }
          }
          if (e) {
            p->incoming.unlink(prev, e);
            delete e;
            --p->incoming_messages;
            p->length.fetch_sub(1, std::memory_order_relaxed);
          } else {
            ++p->drop_oldest_pending;
          }
          break;
        }
      }
    }
    p->length.fetch_add(1, std::memory_order_relaxed);
    p->messages_in.fetch_add(1, std::memory_order_relaxed);
    ++p->incoming_messages;
  }
  p->incoming.push_back(env.release());
  if (p->waiter) {
    auto* w = p->waiter;
    p->waiter = nullptr;
    scheduler* home = p->home.load(std::memory_order_relaxed);
    lk.unlock();
    wake(w, home);
  } else if (p->handler_form && p->idle) {
    p->idle = false;
    p->status.store(process_status::runnable, std::memory_order_relaxed);
    lk.unlock();
    p->node->place().enqueue(p);
  }
  return push_result::ok;
}

push_result push_to(const pid& to, std::unique_ptr<envelope> env) {
  process* p = lookup(to);
  if (!p) return push_result::dead;
  return push_impl(p, to.generation(), std::move(env));
}

void send_signal(const pid& to, envelope_kind k, const pid& from, const exit_reason& r, std::uint64_t token = 0) {
  push_to(to, std::make_unique<signal_envelope>(k, from, r, token));
}

template <class T>
void queue_message(process* p, T&& v) {
  p->queue.push_back(new message_envelope<std::remove_cvref_t<T>>(std::forward<T>(v)));
  p->length.fetch_add(1, std::memory_order_relaxed);
  p->queued.fetch_add(1, std::memory_order_relaxed);
}

// Returns true if it removed anything from the queue (a scan position may be gone).
bool drop_oldest(process* p, std::size_t n, envelope_list& in) {
  bool from_queue = false;
  envelope* prev = nullptr;
  for (envelope* e = p->queue.head; n > 0 && e;) {
    envelope* next = e->next;
    if (e->is_message()) {
      p->queue.unlink(prev, e);
      delete e;
      p->length.fetch_sub(1, std::memory_order_relaxed);
      p->queued.fetch_sub(1, std::memory_order_relaxed);
      from_queue = true;
      --n;
    } else {
      prev = e;
    }
    e = next;
  }
  prev = nullptr;
  for (envelope* e = in.head; n > 0 && e;) {
    envelope* next = e->next;
    if (e->is_message()) {
      in.unlink(prev, e);
      delete e;
      p->length.fetch_sub(1, std::memory_order_relaxed);
      p->queued.fetch_sub(1, std::memory_order_relaxed);
      --n;
    } else {
      prev = e;
    }
    e = next;
  }
  return from_queue;
}

[[noreturn]] void terminate_with(exit_reason r) { throw process_exit(std::move(r)); }

void on_exit_signal(process* p, signal_envelope& s, bool via_link) {
  if (!via_link && s.reason.what() == exit_reason::kind::kill) {
    p->by_signal = true;
    terminate_with(exit_reason::killed());
  }
  if (p->trapping.load(std::memory_order_relaxed)) {
    queue_message(p, exit_signal{s.from, s.reason});
  } else if (s.reason.is_normal()) {
    if (!via_link && s.from == p->self()) {
      p->by_signal = true;
      terminate_with(exit_reason::normal());
    }
  } else {
    p->by_signal = true;
    terminate_with(s.reason);
  }
}

bool drain_impl(process* p) {
  envelope_list in;
  std::size_t drop = 0;
  {
    spinlock_lock lk(p->lock);
    in = p->incoming.take();
    drop = std::exchange(p->drop_oldest_pending, 0);
    p->queued.fetch_add(std::exchange(p->incoming_messages, 0), std::memory_order_relaxed);
  }
  bool moved = drop ? drop_oldest(p, drop, in) : false;
  try {
    while (in.head) {
      envelope* e = in.head;
      in.head = e->next;
      if (!in.head) in.tail = nullptr;
      if (e->is_mail()) {
        p->queue.push_back(e);
        continue;
      }
      std::unique_ptr<signal_envelope> s(static_cast<signal_envelope*>(e));
      switch (s->kind) {
        case envelope_kind::exit_link: {
          bool linked = false;
          {
            spinlock_lock lk(p->lock);
            auto it = std::find(p->links.begin(), p->links.end(), s->from);
            if (it != p->links.end()) {
              p->links.erase(it);
              linked = true;
            }
          }
          if (linked) on_exit_signal(p, *s, true);  // an unlinked link's signal is dropped
          break;
        }
        case envelope_kind::exit_direct:
          on_exit_signal(p, *s, false);
          break;
        case envelope_kind::exit_forced:
          p->by_signal = true;
          terminate_with(s->reason);
        case envelope_kind::down: {
          bool active = false;
          {
            spinlock_lock lk(p->lock);
            auto it = std::find_if(p->monitors.begin(), p->monitors.end(),
                                   [&](const monitor_entry& m) { return m.ref == s->token; });
            if (it != p->monitors.end()) {
              p->monitors.erase(it);
              active = true;
            }
          }
          if (active) queue_message(p, down{ref{s->token}, s->from, s->reason});
          break;
        }
        case envelope_kind::timeout:
          if (s->token == p->receive_token) p->timed_out = true;
          break;
        case envelope_kind::message:
        case envelope_kind::reply:
          break;
      }
    }
  } catch (...) {
    p->queue.append(std::move(in));  // freed with the process
    throw;
  }
  return moved;
}

void wait_for_mail(process* p) {
  fiber_slot* mine = this_fiber_slot();
  auto* self = mine->ctx;
  const bool worker = scheduler::in_worker();
  if (worker) scheduler::on_this_thread()->before_worker_suspends();
  spinlock_lock lk(p->lock);
  if (!p->incoming.empty()) return;
  p->waiter = self;
  p->status.store(process_status::waiting, std::memory_order_relaxed);
  p->running_since.store(0, std::memory_order_relaxed);
  scheduler::set_in_worker(false);
  auto blk = to_boost(lk);
  if (worker || p->pinned) {
    self->suspend(blk);
  } else {
    // A body process waits detached from its thread: whoever wakes it runs it (scheduler.hpp).
    // The lock is released only once the switch is done, so no waker sees it half-suspended.
    boost::fibers::scheduler* fs = self->get_scheduler();
    fs->detach_worker_context(self);
    fs->suspend(blk);
  }
  on_resume(mine);
  scheduler::set_in_worker(worker);
  if (!worker) p->home.store(scheduler::on_this_thread(), std::memory_order_relaxed);
  mark_running(p);
}
}  // namespace

void drain(process* p) { drain_impl(p); }

void set_next_spawn(std::optional<spawn_overrides> o) {
  process* p = current();
  if (!p) throw not_in_process("set_next_spawn");
  p->next_spawn = std::move(o);
}

exit_reason reason_of_current_exception() noexcept {
  try {
    throw;
  } catch (const process_exit& e) {
    return e.reason();
  } catch (const process_error& e) {
    return e.reason();
  } catch (const std::exception& e) {
    return exit_reason::error(demangle(typeid(e).name()) + ": " + e.what());
  } catch (...) {
    return exit_reason::error("unknown exception");
  }
}

void die(process* p, const exit_reason& reason) {
  p->status.store(process_status::exiting, std::memory_order_relaxed);
  envelope_list in;
  std::vector<pid> links;
  std::vector<monitor_entry> monitors, monitored_by;
  const pid me = p->self();
  auto run_exit_hooks = [&] {
    std::shared_lock hl(p->node->hooks_mutex);
    for (auto& [fn, ctx] : p->node->exit_hooks) fn(ctx, me);
  };
  // What it owned is released first, while it still counts as alive: a monitor or link made
  // meanwhile is queued and answered after the release, never with an early noproc.
  if (!p->by_signal && reason.is_crash()) {
    std::shared_lock hl(p->node->hooks_mutex);
    for (auto& [fn, ctx] : p->node->crash_hooks) fn(ctx, me, p->label, reason);
  }
  bool owner = false;
  {
    spinlock_lock lk(p->lock);
    owner = p->owner;
  }
  if (owner) run_exit_hooks();
  {
    spinlock_lock lk(p->lock);
    p->state = life::exiting;
    // Once more if it owned anything: a registration that raced the first run is released now.
    owner = std::exchange(p->owner, false);
    in = p->incoming.take();
    links.swap(p->links);
    p->aliases.clear();
    monitors.swap(p->monitors);
    monitored_by.swap(p->monitored_by);
    p->waiter = nullptr;
  }
  in.clear();
  p->queue.clear();
  if (owner) run_exit_hooks();
  for (auto& m : monitors) {
    if (process* t = lookup(m.other)) {
      spinlock_lock lk(t->lock);
      if (t->generation == m.other.generation()) {
        auto& v = t->monitored_by;
        v.erase(std::remove_if(v.begin(), v.end(), [&](const monitor_entry& e) { return e.ref == m.ref; }), v.end());
      }
    }
  }
  for (auto& l : links) send_signal(l, envelope_kind::exit_link, me, reason);
  for (auto& m : monitored_by) send_signal(m.other, envelope_kind::down, me, reason, m.ref);
  p->handler.reset();
  p->body = unique_function();
  {
    spinlock_lock lk(p->lock);
    p->state = life::free;
  }
  node_impl* n = p->node;
  n->table.release(p);
  n->process_ended();
}

void run_activation(process* p) {
  set_current(p);
  mark_running(p);
  if (!p->handler_form) {
    // First start of a body process: it becomes a fiber of this thread for its whole life.
    p->home.store(scheduler::on_this_thread(), std::memory_order_relaxed);
    if (!p->pinned) ready_queue::spawning();
    boost::fibers::fiber(std::allocator_arg, pooled_stack{&p->node->stacks, p->stack_size}, [p] {
      run_body(p);
    }).detach();
    return;
  }
  try {
    if (!p->started) {
      p->started = true;
      drain_impl(p);
      p->handler->on_start();
    }
    int budget = scheduler::activation_budget;
    for (;;) {
      drain_impl(p);
      while (p->queue.head) {
        if (budget-- <= 0) {  // fairness: let the others on this thread run
          p->status.store(process_status::runnable, std::memory_order_relaxed);
          p->running_since.store(0, std::memory_order_relaxed);
          scheduler::on_this_thread()->enqueue(p);
          return;
        }
        envelope* e = p->queue.head;
        p->queue.unlink(nullptr, e);
        p->length.fetch_sub(1, std::memory_order_relaxed);
        if (!e->is_message()) {  // a reply whose call is over
          delete e;
          continue;
        }
        p->queued.fetch_sub(1, std::memory_order_relaxed);
        message m{std::unique_ptr<envelope>(e)};
        p->handler->on_message(m);
      }
      spinlock_lock lk(p->lock);
      if (!p->incoming.empty()) continue;
      p->idle = true;
      p->status.store(process_status::waiting, std::memory_order_relaxed);
      p->running_since.store(0, std::memory_order_relaxed);
      return;
    }
  } catch (const boost::context::detail::forced_unwind&) {
    throw;
  } catch (...) {
    die(p, reason_of_current_exception());
  }
}

void run_body(process* p) {
  fiber_slot slot{p, nullptr, {}};
  slot.stack = bounds_of_stack(&slot, p->stack_size);
  bind_fiber(&slot);
  p->home.store(scheduler::on_this_thread(), std::memory_order_relaxed);  // it may have been stolen
  mark_running(p);
  exit_reason reason;
  try {
    drain_impl(p);
    p->body();
  } catch (const boost::context::detail::forced_unwind&) {
    throw;
  } catch (...) {
    reason = reason_of_current_exception();
  }
  die(p, reason);
}

// ---- spawn ----------------------------------------------------------------------------------

namespace {
spawn_result spawn_common(node* on, const spawn_options& opts, spawn_link_mode mode, bool handler_form,
                          unique_function body, std::unique_ptr<process_handler> handler) {
  process* parent = current();
  node_impl* n = on ? &on->impl() : (parent ? parent->node : nullptr);
  if (!n) throw not_in_process("spawn");
  if (mode != spawn_link_mode::none && (!parent || parent->node != n)) throw not_in_process("spawn_link/spawn_monitor");
  if (n->stopping.load(std::memory_order_acquire)) throw node_stopping();
  process* p = n->table.acquire();
  p->handler_form = handler_form;
  std::size_t stack = opts.stack_size;
  p->capacity = opts.mailbox_capacity;
  p->overflow = opts.overflow;
  p->label = opts.label;
  if (parent && parent->next_spawn) {  // set by a supervisor around its child's start
    const spawn_overrides& v = *parent->next_spawn;
    if (v.stack_size) stack = v.stack_size;
    if (v.mailbox_capacity) p->capacity = v.mailbox_capacity;
    if (v.overflow) p->overflow = *v.overflow;
    if (p->label.empty()) p->label = v.label;
    parent->next_spawn.reset();
  }
  p->stack_size = handler_form ? 0 : stack_pool::round(stack ? stack : n->options.default_stack_size);
  p->body = std::move(body);
  p->handler = std::move(handler);
  p->started = false;
  p->receive_token = 0;
  p->timed_out = false;
  p->by_signal = false;
  p->next_spawn.reset();
  p->home.store(nullptr, std::memory_order_relaxed);
  p->length.store(0, std::memory_order_relaxed);
  p->queued.store(0, std::memory_order_relaxed);
  p->incoming_messages = 0;
  p->drop_oldest_pending = 0;
  p->messages_in.store(0, std::memory_order_relaxed);
  p->messages_out.store(0, std::memory_order_relaxed);
  p->trapping.store(false, std::memory_order_relaxed);
  p->status.store(process_status::runnable, std::memory_order_relaxed);
  p->running_since.store(0, std::memory_order_relaxed);
  spawn_result r;
  r.who = p->self();
  if (mode == spawn_link_mode::link) {
    {
      spinlock_lock lk(parent->lock);
      parent->links.push_back(r.who);
    }
    p->links.push_back(parent->self());
  } else if (mode == spawn_link_mode::monitor) {
    r.mref = ref{n->make_ref()};
    {
      spinlock_lock lk(parent->lock);
      parent->monitors.push_back({r.mref.id, r.who});
    }
    p->monitored_by.push_back({r.mref.id, parent->self()});
  }
  n->live.fetch_add(1, std::memory_order_relaxed);
  {
    spinlock_lock lk(p->lock);
    p->state = life::alive;
    p->idle = false;
  }
  p->pinned = !handler_form && opts.placement == placement::pinned;
  n->place().enqueue(p);  // idle threads steal from there
  return r;
}
}  // namespace

spawn_result spawn_body(node* on, unique_function body, const spawn_options& opts, spawn_link_mode mode) {
  return spawn_common(on, opts, mode, false, std::move(body), nullptr);
}

spawn_result spawn_handler(node* on, std::unique_ptr<process_handler> h, const spawn_options& opts,
                           spawn_link_mode mode) {
  if (!h) throw std::invalid_argument("spawn_handler: null handler");
  return spawn_common(on, opts, mode, true, unique_function(), std::move(h));
}

// ---- messages ---------------------------------------------------------------------------------

send_result deliver(const pid& to, std::unique_ptr<envelope> env) {
  if (process* me = current()) me->messages_out.fetch_add(1, std::memory_order_relaxed);
  switch (push_to(to, std::move(env))) {
    case push_result::ok:
      return send_result::ok;
    case push_result::dead:
      return send_result::dead;
    case push_result::dropped:
      return send_result::dropped;
    case push_result::full:
      throw mailbox_full();
  }
  return send_result::ok;
}

// Internal deliveries (timers, blocking completions) never throw: a full `fail` mailbox drops.
void deliver_quiet(const pid& to, std::unique_ptr<envelope> env) { push_to(to, std::move(env)); }

envelope* receive_match(match_fn match, void* ctx, std::int64_t timeout_ns) {
  process& p = current_or_throw("receive");
  timer_service::timeout_key timer;
  struct reset_timer {
    process& p;
    timer_service::timeout_key& timer;
    ~reset_timer() {
      if (timer) p.node->timers.cancel_timeout(timer);
      p.receive_token = 0;
      p.timed_out = false;
    }
  } guard{p, timer};
  envelope* scanned = nullptr;  // last queued envelope known not to match
  for (;;) {
    if (drain_impl(&p)) scanned = nullptr;
    envelope* before = scanned;
    for (envelope* e = scanned ? scanned->next : p.queue.head; e; e = e->next) {
      if (match(*e, ctx)) {
        p.queue.unlink(before, e);
        p.length.fetch_sub(1, std::memory_order_relaxed);
        if (e->is_message()) p.queued.fetch_sub(1, std::memory_order_relaxed);
        return e;
      }
      before = e;
    }
    scanned = before;
    if (p.timed_out || timeout_ns == 0) return nullptr;
    if (timeout_ns > 0 && !timer) {
      p.receive_token = ++p.next_token;
      timer = p.node->timers.add_timeout(timeout_ns, p.self(), p.receive_token);
    }
    wait_for_mail(&p);
  }
}

void alias_activate(std::uint64_t alias) {
  process& p = current_or_throw("alias");
  spinlock_lock lk(p.lock);
  p.aliases.push_back(alias);
}

void alias_deactivate(std::uint64_t alias) {
  process& p = current_or_throw("alias");
  spinlock_lock lk(p.lock);
  p.aliases.erase(std::remove(p.aliases.begin(), p.aliases.end(), alias), p.aliases.end());
}

send_result deliver_reply(const pid& to, std::uint64_t alias, std::unique_ptr<envelope> env) {
  env->kind = envelope_kind::reply;  // replies bypass mailbox capacity: deliver never throws for one
  env->alias = alias;
  return deliver(to, std::move(env));
}

std::uint64_t make_ref() {
  // Refs come from the node's counter in blocks per thread, so threads making refs (every call
  // makes one) do not share a cache line.
  struct block {
    node_impl* node = nullptr;
    std::uint64_t next = 0, end = 0;
  };
  thread_local block b;
  if (process* p = current()) {
    if (b.node != p->node || b.next == b.end) {
      constexpr std::uint64_t size = 1024;
      b.node = p->node;
      b.next = p->node->next_ref.fetch_add(size, std::memory_order_relaxed);
      b.end = b.next + size;
    }
    return b.next++;
  }
  static std::atomic<std::uint64_t> outside{std::uint64_t{1} << 62};
  return outside.fetch_add(1, std::memory_order_relaxed);
}

timer_ref send_after_impl(std::int64_t delay_ns, const pid& to, std::unique_ptr<envelope> env) {
  process& p = current_or_throw("send_after");
  return timer_ref{p.node->timers.add(delay_ns, to, std::move(env))};
}

// ---- blocking -----------------------------------------------------------------------------------

namespace {
struct blocking_done {
  std::uint64_t token;
};
}  // namespace

std::uint64_t blocking_submit(unique_function job) {
  process& p = current_or_throw("blocking");
  std::uint64_t token = p.node->make_ref();
  pid who = p.self();
  p.node->blocking.submit([job = std::move(job), who, token]() mutable {
    job();
    deliver_quiet(who, std::make_unique<message_envelope<blocking_done>>(blocking_done{token}));
  });
  return token;
}

void blocking_wait(std::uint64_t token) {
  auto match = [](const envelope& e, void* c) {
    return same_type(e.type, typeid(blocking_done)) &&
           static_cast<const message_envelope<blocking_done>&>(e).value.token == *static_cast<std::uint64_t*>(c);
  };
  std::unique_ptr<envelope> e(receive_match(match, &token, -1));
}

}  // namespace detail

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

bool alive(const pid& p) {
  detail::process* t = detail::lookup(p);
  if (!t) return false;
  spinlock_lock lk(t->lock);
  return t->generation == p.generation() && t->state == detail::life::alive;
}

pid spawn_handler(std::unique_ptr<process_handler> h, const spawn_options& opts) {
  return detail::spawn_handler(nullptr, std::move(h), opts, detail::spawn_link_mode::none).who;
}
pid spawn_handler_link(std::unique_ptr<process_handler> h, const spawn_options& opts) {
  return detail::spawn_handler(nullptr, std::move(h), opts, detail::spawn_link_mode::link).who;
}
std::pair<pid, monitor_ref> spawn_handler_monitor(std::unique_ptr<process_handler> h, const spawn_options& opts) {
  auto r = detail::spawn_handler(nullptr, std::move(h), opts, detail::spawn_link_mode::monitor);
  return {r.who, r.mref};
}

void sleep(duration d) {
  auto none = [](const detail::envelope&, void*) { return false; };
  detail::receive_match(none, nullptr, detail::to_ns(d));
}

void yield() {
  detail::process& p = current_or_throw("yield");
  const bool worker = detail::scheduler::in_worker();
  if (worker) detail::scheduler::on_this_thread()->before_worker_suspends();
  p.status.store(process_status::runnable, std::memory_order_relaxed);
  detail::scheduler::set_in_worker(false);
  detail::fiber_slot* mine = detail::this_fiber_slot();
  detail::ready_queue::yielding(mine->ctx, !worker && !p.pinned);
  boost::this_fiber::yield();
  detail::on_resume(mine);
  detail::scheduler::set_in_worker(worker);
  if (!worker) p.home.store(detail::scheduler::on_this_thread(), std::memory_order_relaxed);
  detail::mark_running(&p);
  detail::drain(&p);
}

void link(const pid& other) {
  detail::process& me = current_or_throw("link");
  const pid mine = me.self();
  if (other == mine) return;
  bool ok = false;
  if (detail::process* t = detail::lookup(other)) {
    spinlock_lock lk(t->lock);
    if (t->generation == other.generation() && t->state == detail::life::alive) {
      if (std::find(t->links.begin(), t->links.end(), mine) == t->links.end()) t->links.push_back(mine);
      ok = true;
    }
  }
  if (!ok) {
    if (!me.trapping.load(std::memory_order_relaxed)) throw process_error(exit_reason::noproc(), "link");
    detail::push_to(mine,
                    std::make_unique<detail::message_envelope<exit_signal>>(exit_signal{other, exit_reason::noproc()}));
    return;
  }
  spinlock_lock lk(me.lock);
  if (std::find(me.links.begin(), me.links.end(), other) == me.links.end()) me.links.push_back(other);
}

void unlink(const pid& other) {
  detail::process& me = current_or_throw("unlink");
  const pid mine = me.self();
  {
    spinlock_lock lk(me.lock);
    me.links.erase(std::remove(me.links.begin(), me.links.end(), other), me.links.end());
  }
  if (detail::process* t = detail::lookup(other)) {
    spinlock_lock lk(t->lock);
    if (t->generation == other.generation())
      t->links.erase(std::remove(t->links.begin(), t->links.end(), mine), t->links.end());
  }
}

namespace {
// monitor and demonitor; with `alias`, the monitor's ref is also the caller's active alias, set
// and cleared under the same lock (a call needs both: one lock round trip instead of two).
monitor_ref monitor_impl(detail::process& me, const pid& other, bool alias) {
  const pid mine = me.self();
  monitor_ref r{detail::make_ref()};
  {
    spinlock_lock lk(me.lock);
    me.monitors.push_back({r.id, other});
    if (alias) me.aliases.push_back(r.id);
  }
  bool ok = false;
  if (detail::process* t = detail::lookup(other)) {
    spinlock_lock lk(t->lock);
    if (t->generation == other.generation() && t->state == detail::life::alive) {
      t->monitored_by.push_back({r.id, mine});
      ok = true;
    }
  }
  if (!ok) detail::send_signal(mine, detail::envelope_kind::down, other, exit_reason::noproc(), r.id);
  return r;
}

bool demonitor_impl(detail::process& me, const monitor_ref& r, bool flush, bool alias) {
  pid target;
  bool found = false;
  {
    spinlock_lock lk(me.lock);
    if (alias) me.aliases.erase(std::remove(me.aliases.begin(), me.aliases.end(), r.id), me.aliases.end());
    auto it = std::find_if(me.monitors.begin(), me.monitors.end(),
                           [&](const detail::monitor_entry& m) { return m.ref == r.id; });
    if (it != me.monitors.end()) {
      target = it->other;
      me.monitors.erase(it);
      found = true;
    }
  }
  if (found) {
    if (detail::process* t = detail::lookup(target)) {
      spinlock_lock lk(t->lock);
      if (t->generation == target.generation()) {
        auto& v = t->monitored_by;
        v.erase(std::remove_if(v.begin(), v.end(), [&](const detail::monitor_entry& e) { return e.ref == r.id; }),
                v.end());
      }
    }
  }
  if (flush) {
    // A down still in flight is dropped when drained (the monitor is gone); one already
    // queued as a message is removed here.
    detail::envelope* prev = nullptr;
    for (detail::envelope* e = me.queue.head; e;) {
      detail::envelope* next = e->next;
      // is_message first: while a process unwinds, its queue may hold untyped signals.
      if (e->is_message() && detail::same_type(e->type, typeid(down)) &&
          static_cast<detail::message_envelope<down>*>(e)->value.ref == r) {
        me.queue.unlink(prev, e);
        delete e;
        me.length.fetch_sub(1, std::memory_order_relaxed);
        me.queued.fetch_sub(1, std::memory_order_relaxed);
      } else {
        prev = e;
      }
      e = next;
    }
  }
  return found;
}
}  // namespace

monitor_ref monitor(const pid& other) { return monitor_impl(current_or_throw("monitor"), other, false); }

bool demonitor(const monitor_ref& r, bool flush) {
  return demonitor_impl(current_or_throw("demonitor"), r, flush, false);
}

monitor_ref detail::monitor_with_alias(const pid& other) { return monitor_impl(current_or_throw("call"), other, true); }

void detail::demonitor_with_alias(const monitor_ref& r) { demonitor_impl(current_or_throw("call"), r, true, true); }

void exit(const pid& p, exit_reason reason) {
  detail::process* me = detail::current();
  const pid from = me ? me->self() : pid{};
  detail::send_signal(p, detail::envelope_kind::exit_direct, from, reason);
  // As in OTP, a signal to oneself takes effect inside exit/2: acting on the mailbox now (in
  // order, after any signal that came before) ends a caller that does not trap, or that was
  // sent kill, before it returns.
  if (me && p == from) detail::drain(me);
}

void exit(exit_reason reason) { throw process_exit(std::move(reason)); }

bool trap_exit(bool on) { return current_or_throw("trap_exit").trapping.exchange(on); }

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
  i.mailbox_length = t->length.load(std::memory_order_relaxed);
  i.messages_in = t->messages_in.load(std::memory_order_relaxed);
  i.messages_out = t->messages_out.load(std::memory_order_relaxed);
  i.trap_exit = t->trapping.load(std::memory_order_relaxed);
  auto since = t->running_since.load(std::memory_order_relaxed);
  if (since != 0 && i.status == process_status::running) {
    auto d = detail::timestamp() - since;
    i.running_for = duration(d > 0 ? detail::timestamp_to_ns(d) : 0);
  }
  return i;
}

std::vector<std::string> peek_mailbox(const pid& p, std::size_t max) {
  std::vector<std::string> out;
  detail::process* t = detail::lookup(p);
  if (!t) return out;
  std::vector<const std::type_info*> types;
  {
    spinlock_lock lk(t->lock);
    if (t->generation != p.generation() || t->state != detail::life::alive) return out;
    for (detail::envelope* e = t->incoming.head; e && types.size() < max; e = e->next) {
      if (e->is_message() && e->type) types.push_back(e->type);
    }
  }
  for (auto* ty : types) out.push_back(detail::demangle(ty->name()));  // outside the lock: it allocates
  return out;
}

}  // namespace grove
