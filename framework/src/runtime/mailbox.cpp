#include "process_impl.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <boost/fiber/operations.hpp>
#include <boost/fiber/scheduler.hpp>

#include <grove/detail/remote.hpp>
#include <grove/runtime/blocking.hpp>
#include <grove/runtime/errors.hpp>
#include <grove/runtime/message.hpp>

#include "node_impl.hpp"
#include "scheduler.hpp"
#include "spinlock.hpp"
#include "timer_service.hpp"

namespace grove::detail {

std::atomic<int> recording_nodes{0};

// ---- mailbox ----------------------------------------------------------------------------------

mailbox::pushed mailbox::push(envelope* e) noexcept {
  const auto address = reinterpret_cast<std::uintptr_t>(e);
  if ((address >> (44 + address_shift)) != 0 || (address & ((1u << address_shift) - 1)) != 0) [[unlikely]] {
    std::fputs("grove: an envelope's address does not fit a mailbox head word\n", stderr);
    std::abort();
  }
  const bool message = e->is_message();
  const bool bounded = message && capacity != 0 && overflow != overflow_policy::drop_oldest;
  std::uintptr_t h = head_.load(std::memory_order_relaxed);
  std::size_t before = 0;
  std::uintptr_t n = 0;
  do {
    if (h == closed_tag) return pushed::closed;
    const std::size_t count = count_of(h);
    // What a sender sees of the owner's queue may be a moment old: at worst it refuses a
    // message the owner was just making room for, as if sent a moment earlier.
    before = count + queued.load(std::memory_order_relaxed);
    if (bounded && before >= capacity) return overflow == overflow_policy::fail ? pushed::full : pushed::dropped;
    e->next = top(h);
    n = (address >> address_shift) | (h & room_bit) |
        (static_cast<std::uintptr_t>(count + (message && count < count_max ? 1 : 0)) << count_shift);
  } while (!head_.compare_exchange_weak(h, n, std::memory_order_acq_rel, std::memory_order_relaxed));
  if (h == waiting_tag) return pushed::woke_waiter;
  if (h == idle_tag) return pushed::woke_idle;
  return before >= backlog && message ? pushed::backlogged : pushed::queued;
}

bool mailbox::want_room() noexcept {
  std::uintptr_t h = head_.load(std::memory_order_relaxed);
  do {
    if (h == waiting_tag || h == idle_tag || h == closed_tag) return false;
  } while (!head_.compare_exchange_weak(h, h | room_bit, std::memory_order_acq_rel, std::memory_order_relaxed));
  return true;
}

envelope_list mailbox::reversed(envelope* e) noexcept {
  envelope_list l;
  l.tail = e;
  envelope* prev = nullptr;
  while (e) {
    envelope* n = e->next;
    e->next = prev;
    prev = e;
    e = n;
  }
  l.head = prev;
  return l;
}

envelope* mailbox::take_newest_first(std::size_t& messages) noexcept {
  messages = 0;
  if (head_.load(std::memory_order_relaxed) <= closed_tag) return nullptr;
  const std::uintptr_t h = head_.exchange(running_tag, std::memory_order_seq_cst);
  after_taking();
  if (h & room_bit) room_seen_ = true;
  messages = count_of(h);
  return top(h);
}

void mailbox::open(std::size_t cap, overflow_policy policy) noexcept {
  capacity = cap;
  overflow = policy;
  room_seen_ = false;
  queued.store(0, std::memory_order_relaxed);
  messages_in.store(0, std::memory_order_relaxed);
  head_.store(running_tag, std::memory_order_release);
}

envelope_list mailbox::close() noexcept {
  const std::uintptr_t h = head_.exchange(closed_tag, std::memory_order_seq_cst);
  after_taking();
  if (h & room_bit) room_seen_ = true;
  return reversed(top(h));
}

// ---- pushing ------------------------------------------------------------------------------------

namespace {
// Appends e to p's mailbox and does what the push asks (wake, schedule, free).
push_result push_envelope(process* p, envelope* e) {
  const bool message = e->is_message();  // e may be taken and freed once the owner is woken
  switch (p->mail.push(e)) {
    case mailbox::pushed::queued:
      return push_result::ok;
    case mailbox::pushed::backlogged:
      return push_result::backlogged;
    case mailbox::pushed::woke_waiter: {
      boost::fibers::context* w = p->waiter;
      if (p->wait_thread != scheduler::on_this_thread()) {
        spinlock_lock lk(p->lock);  // held by the owner until its switch away is done
      }
      wake(w, p->home.load(std::memory_order_relaxed));
      // A receiver waiting in a selective receive may keep a backlog it skips.
      return p->mail.size() > mailbox::backlog && message ? push_result::backlogged : push_result::ok;
    }
    case mailbox::pushed::woke_idle:
      p->status.store(process_status::runnable, std::memory_order_relaxed);
      p->node->place().enqueue(p);
      return push_result::ok;
    case mailbox::pushed::closed:
      delete e;
      return push_result::dead;
    case mailbox::pushed::dropped:
      delete e;
      return push_result::dropped;
    case mailbox::pushed::full:
      delete e;
      return push_result::full;
  }
  return push_result::ok;
}

// The same, noting the message in the test kit's log (a node with record_messages): who sent
// what, read before the receiver may take it, kept if it was delivered.
[[gnu::noinline]] push_result push_logged(process* p, envelope* e) {
  if (!p->node->options.record_messages || !e->is_message()) return push_envelope(p, e);
  process* me = current();
  const sent_message log{me ? me->self() : pid{}, p->self(), e->request_type()};
  const push_result r = push_envelope(p, e);
  if (r == push_result::ok || r == push_result::backlogged) p->node->record_sent(log);
  return r;
}

push_result push_impl(process* p, std::uint32_t gen, std::unique_ptr<envelope> env) {
  // A pid of an earlier generation is refused here; one racing the slot's reuse is appended
  // with its generation and dropped by the new owner (drain_impl).
  if (p->generation.load(std::memory_order_acquire) != gen) return push_result::dead;
  env->gen = gen;
  if (recording_nodes.load(std::memory_order_relaxed) != 0) [[unlikely]]
    return push_logged(p, env.release());
  return push_envelope(p, env.release());
}
}  // namespace

push_result push_to(const pid& to, std::unique_ptr<envelope> env) {
  process* p = lookup(to);
  if (!p) [[unlikely]] {
    // Not a process of a local node: perhaps one of another node (grove/detail/remote.hpp).
    if (auto c = remote_node(to.node())) return c->push(to, std::move(env)) ? push_result::ok : push_result::dead;
    return push_result::dead;
  }
  return push_impl(p, to.generation(), std::move(env));
}

void send_signal(const pid& to, envelope_kind k, const pid& from, const exit_reason& r, std::uint64_t token) {
  push_to(to, std::make_unique<signal_envelope>(k, from, r, token));
}

void signal_from_remote(const pid& to, envelope_kind k, const pid& from, const exit_reason& r, std::uint64_t token) {
  send_signal(to, k, from, r, token);
}

namespace {
template <class T>
void queue_message(process* p, T&& v) {
  p->mail.queue.push_back(new message_envelope<std::remove_cvref_t<T>>(std::forward<T>(v)));
  p->mail.add_queued(1);
}

// Drops the n oldest messages of the queue and then of `in` (what just arrived, its messages
// already counted in queued). Returns true if it removed anything from the queue (a scan
// position may be gone).
bool drop_oldest(process* p, std::size_t n, envelope_list& in) {
  bool from_queue = false;
  envelope* prev = nullptr;
  for (envelope* e = p->mail.queue.head; n > 0 && e;) {
    envelope* next = e->next;
    if (e->is_message()) {
      p->mail.queue.unlink(prev, e);
      delete e;
      p->mail.sub_queued(1);
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
      p->mail.sub_queued(1);
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

}  // namespace

bool drain_impl(process* p) {
  std::size_t counted = 0;
  envelope* newest = p->mail.take_newest_first(counted);
  if (!newest) return false;
  // Counted as queued at once, so a sender to a bounded mailbox does not see the messages
  // leave the head's count before they join the owner's; corrected after the walk below.
  p->mail.add_queued(counted);
  // Dropped unseen: anything sent to an earlier holder of its slot (a sender that raced that
  // one's death) and replies to an alias no longer active (a caller that gave up: a late reply
  // never reaches the mailbox).
  const std::uint32_t gen = p->generation.load(std::memory_order_relaxed);
  auto unseen = [&](const envelope* e) {
    return e->gen != gen || (e->kind == envelope_kind::reply &&
                             std::find(p->aliases.begin(), p->aliases.end(), e->alias) == p->aliases.end());
  };
  // One pass over what arrived, newest first: reverse it into arrival order, drop what this
  // process must not see, count the messages and note whether any signal came. A long
  // mailbox is cache-cold, so every pass over it counts.
  envelope_list in;
  std::size_t messages = 0, mail = 0;
  bool signals = false;
  for (envelope* e = newest; e;) {
    envelope* next = e->next;
    if (unseen(e)) {
      delete e;
    } else {
      e->next = in.head;
      in.head = e;
      if (!in.tail) in.tail = e;
      if (e->is_message()) {
        ++messages;
      } else if (!e->is_mail()) {
        signals = true;
      }
      if (e->is_mail()) ++mail;
    }
    e = next;
  }
  if (messages > counted) p->mail.add_queued(messages - counted);
  if (messages < counted) p->mail.sub_queued(counted - messages);
  if (mail) {
    p->mail.messages_in.store(p->mail.messages_in.load(std::memory_order_relaxed) + mail, std::memory_order_relaxed);
  }
  // A drop_oldest mailbox lets every message in and drops the oldest beyond its capacity here.
  bool moved = false;
  const std::size_t cap = p->mail.capacity;
  const std::size_t held = p->mail.queued.load(std::memory_order_relaxed);
  if (cap && p->mail.overflow == overflow_policy::drop_oldest && held > cap) {
    moved = drop_oldest(p, held - cap, in);
  }
  if (!signals) {
    p->mail.queue.append(std::move(in));
    return moved;
  }
  try {
    while (in.head) {
      envelope* e = in.head;
      in.head = e->next;
      if (!in.head) in.tail = nullptr;
      if (e->is_mail()) {
        p->mail.queue.push_back(e);
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
    p->mail.queue.append(std::move(in));  // freed with the process
    throw;
  }
  return moved;
}

namespace {
void wait_for_mail(process* p) {
  fiber_slot* mine = this_fiber_slot();
  auto* self = mine->ctx;
  const bool worker = scheduler::in_worker();
  if (worker) scheduler::on_this_thread()->before_worker_suspends();
  release_room_if_wanted(*p);  // it has had its turn
  // Held until the switch away is done, so a waker on another thread never sees this fiber
  // half-suspended (push_impl).
  spinlock_lock lk(p->lock);
  p->waiter = self;
  scheduler* here = scheduler::on_this_thread();
  p->wait_thread = here;
  if (!p->mail.try_wait()) return;
  p->status.store(process_status::waiting, std::memory_order_relaxed);
  p->running_since.store(0, std::memory_order_relaxed);
  scheduler::set_in_worker(false);
  if (worker || p->pinned) {
    suspend_unlocking(self, lk, here->switch_lock());
  } else {
    // A body process waits detached from its thread: whoever wakes it runs it (scheduler.hpp).
    // The lock is released only once the switch is done, so no waker sees it half-suspended.
    boost::fibers::scheduler* fs = self->get_scheduler();
    fs->detach_worker_context(self);
    suspend_unlocking(fs, lk, here->switch_lock());
  }
  on_resume(mine);
  scheduler::set_in_worker(worker);
  if (!worker) p->home.store(scheduler::on_this_thread(), std::memory_order_relaxed);
  mark_running(p);
}
}  // namespace

void drain(process* p) { drain_impl(p); }

// ---- messages ---------------------------------------------------------------------------------

namespace {
constexpr std::uint64_t room_token = ~std::uint64_t{0};  // a timeout signal no receive waits for

// Back-pressure, as Erlang charges a sender for a long receiver queue: a process whose message
// joined a backlog waits until the receiver has had its turn (its backlog fell to half the
// mark, it suspended, ended its turn or ended) or anything arrives for the sender itself, so
// a flood cannot outrun its receiver. The message is already sent: the wait is a suspension
// point of the sender (exit signals act there), never a deadlock. A handler process yields
// instead. Never inside a catch block or while unwinding (a fiber must not suspend there);
// from outside the node a send never waits.
void wait_for_room(process& me, const pid& to) {
  if (scheduler::in_worker()) return yield_turn(true);
  process* r = lookup(to);
  if (!r || r == &me) return;
  {
    spinlock_lock lk(r->node->room_lock);
    if (r->generation.load(std::memory_order_acquire) != to.generation()) return;
    r->node->room_waiters.emplace_back(r, me.self());
  }
  // Registered first, then the bit in the receiver's head: the receiver lets go of every
  // registered sender once it sees the bit, and it cannot miss it (it takes its head before
  // it waits, idles or dies). A receiver already waiting or idle has had its turn.
  if (!r->mail.want_room() || r->mail.size() < mailbox::backlog / 2) release_room(*r);
  wait_for_mail(&me);
  drain_impl(&me);
}
}  // namespace

void release_room(process& p) {
  std::vector<pid> go;
  {
    spinlock_lock lk(p.node->room_lock);
    auto& w = p.node->room_waiters;
    for (std::size_t i = 0; i < w.size();) {
      if (w[i].first == &p) {
        go.push_back(w[i].second);
        w[i] = w.back();
        w.pop_back();
      } else {
        ++i;
      }
    }
  }
  for (const pid& s : go) {
    deliver_quiet(s, std::make_unique<signal_envelope>(envelope_kind::timeout, pid{}, exit_reason{}, room_token));
  }
}

send_result deliver(const pid& to, std::unique_ptr<envelope> env) {
  process* me = current();
  if (me) me->messages_out.store(me->messages_out.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  switch (push_to(to, std::move(env))) {
    case push_result::ok:
      return send_result::ok;
    case push_result::backlogged:
      if (me && std::uncaught_exceptions() == 0 && !std::current_exception()) wait_for_room(*me, to);
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

namespace {
// Whether anything else is ready on this thread: a turn ends only for someone. Yielding with
// nobody waiting here would only offer the process to an idle thread, away from its partners
// (a receiver flooded by senders that wait for its room would move at every turn).
bool others_wait_here() noexcept {
  scheduler* s = scheduler::on_this_thread();
  return !s || s->fibers().has_ready() || s->run_queue_length() > 0;
}

// A process with a backlog would otherwise receive without ever suspending and keep its thread
// from every other process on it (issue 16 item 7): past its turn, a receive yields first.
// Never inside a catch block (a fiber must not suspend there), where the turn just goes on.
// Either way the process stays on this thread (not offered to an idle one): those it yields to
// are here.
void end_turn_if_due(process& p) {
  if (std::current_exception()) return;
  // Past its time slice it yields even with nobody ready in sight: wake-ups from other threads
  // and timers wait in Boost's remote queue, which the thread looks at only between fibers.
  const std::int64_t since = p.running_since.load(std::memory_order_relaxed);
  if (since != 0 && timestamp_to_ns(timestamp() - since) >= scheduler::turn_ns) return yield_turn(false);
  if (p.turn_receives >= scheduler::turn_receives && others_wait_here()) yield_turn(false);
}
}  // namespace

envelope* receive_match(match_fn match, void* ctx, std::int64_t timeout_ns) {
  process& p = current_or_throw("receive");
  if (++p.turn_receives % scheduler::turn_check == 0) end_turn_if_due(p);
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
    for (envelope* e = scanned ? scanned->next : p.mail.queue.head; e; e = e->next) {
      if (match(*e, ctx)) {
        p.mail.queue.unlink(before, e);
        took_from_queue(p, *e);
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
  p.aliases.push_back(alias);
}

void alias_deactivate(std::uint64_t alias) {
  process& p = current_or_throw("alias");
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

}  // namespace grove::detail

namespace grove {

using detail::current_or_throw;
using detail::spinlock_lock;

void sleep(duration d) {
  auto none = [](const detail::envelope&, void*) { return false; };
  detail::receive_match(none, nullptr, detail::to_ns(d));
}

void yield() { detail::yield_turn(true); }

void detail::yield_turn(bool may_migrate) {
  detail::process& p = current_or_throw("yield");
  detail::release_room_if_wanted(p);
  const bool worker = detail::scheduler::in_worker();
  if (worker) detail::scheduler::on_this_thread()->before_worker_suspends();
  p.status.store(process_status::runnable, std::memory_order_relaxed);
  detail::scheduler::set_in_worker(false);
  detail::fiber_slot* mine = detail::this_fiber_slot();
  detail::ready_queue::yielding(mine->ctx, may_migrate && !worker && !p.pinned);
  boost::this_fiber::yield();
  detail::on_resume(mine);
  detail::scheduler::set_in_worker(worker);
  if (!worker) p.home.store(detail::scheduler::on_this_thread(), std::memory_order_relaxed);
  detail::mark_running(&p);
  detail::drain(&p);
}

std::vector<std::string> peek_mailbox(const pid& p, std::size_t max) {
  std::vector<std::string> out;
  detail::process* t = detail::lookup(p);
  if (!t) return out;
  std::vector<const std::type_info*> types;
  {
    spinlock_lock lk(t->lock);
    if (t->generation != p.generation() || t->state != detail::life::alive) return out;
    t->mail.peek([&](const detail::envelope& e) {
      if (types.size() < max && e.is_message() && e.type) types.push_back(e.type);
    });
  }
  for (auto* ty : types) out.push_back(detail::demangle(ty->name()));  // outside the lock: it allocates
  return out;
}

}  // namespace grove
