#include "process_impl.hpp"

#include <algorithm>
#include <exception>
#include <memory>
#include <shared_mutex>
#include <typeinfo>
#include <utility>
#include <vector>

#include <boost/context/detail/exception.hpp>
#include <boost/fiber/fiber.hpp>

#include <grove/detail/remote.hpp>
#include <grove/runtime/errors.hpp>
#include <grove/runtime/message.hpp>

#include "asan_fiber.hpp"
#include "node_impl.hpp"
#include "scheduler.hpp"
#include "spinlock.hpp"
#include "stack_pool.hpp"

namespace grove::detail {

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
  release_room_if_wanted(*p);
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
    in = p->mail.close();
    links.swap(p->links);
    p->aliases.clear();
    monitors.swap(p->monitors);
    monitored_by.swap(p->monitored_by);
  }
  in.clear();
  p->mail.queue.clear();
  p->mail.queued.store(0, std::memory_order_relaxed);
  release_room_if_wanted(*p);  // a sender that asked after the first look
  if (owner) run_exit_hooks();
  for (auto& m : monitors) {
    if (process* t = lookup(m.other)) {
      spinlock_lock lk(t->lock);
      if (t->generation == m.other.generation()) {
        auto& v = t->monitored_by;
        v.erase(std::remove_if(v.begin(), v.end(), [&](const monitor_entry& e) { return e.ref == m.ref; }), v.end());
      }
    } else if (auto c = remote_node(m.other.node())) {
      c->demonitor(me, m.other, m.ref);
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
  n->ended_in.fetch_add(p->mail.messages_in.load(std::memory_order_relaxed), std::memory_order_relaxed);
  n->ended_out.fetch_add(p->messages_out.load(std::memory_order_relaxed), std::memory_order_relaxed);
  n->ended.fetch_add(1, std::memory_order_relaxed);
  n->table.release(p);
  n->process_ended();
}

namespace {
// A handler asked to end once its callback returned (exit_after_handler): no unwinding.
void end_now(process* p) {
  exit_reason r = std::move(*p->ending);
  p->ending.reset();
  die(p, r);
}
}  // namespace

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
      if (p->ending) return end_now(p);
    }
    int budget = scheduler::activation_budget;
    for (;;) {
      drain_impl(p);
      while (p->mail.queue.head) {
        if (budget-- <= 0) {  // fairness: let the others on this thread run
          release_room_if_wanted(*p);
          p->status.store(process_status::runnable, std::memory_order_relaxed);
          p->running_since.store(0, std::memory_order_relaxed);
          scheduler::on_this_thread()->enqueue(p);
          return;
        }
        envelope* e = p->mail.queue.head;
        p->mail.queue.unlink(nullptr, e);
        took_from_queue(*p, *e);
        if (!e->is_message()) {  // a reply whose call is over
          delete e;
          continue;
        }
        message m{std::unique_ptr<envelope>(e)};
        p->handler->on_message(m);
        if (p->ending) return end_now(p);
      }
      // Idle until a push schedules it again; that may happen on another thread the moment
      // try_idle succeeds, so the status is set before.
      p->status.store(process_status::waiting, std::memory_order_relaxed);
      p->running_since.store(0, std::memory_order_relaxed);
      release_room_if_wanted(*p);
      if (p->mail.try_idle()) return;
      mark_running(p);
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

}  // namespace grove::detail
