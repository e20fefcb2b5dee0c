#include "process_impl.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <typeinfo>
#include <utility>
#include <vector>

#include <grove/detail/remote.hpp>
#include <grove/runtime/errors.hpp>
#include <grove/runtime/message.hpp>

#include "spinlock.hpp"

namespace grove {

using detail::current_or_throw;
using detail::spinlock_lock;

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
  } else if (auto c = detail::remote_node(other.node())) {
    // A process of another node: the link holds here at once; the other node is told, and
    // answers a dead process (or a lost connection) with an exit signal.
    {
      spinlock_lock lk(me.lock);
      if (std::find(me.links.begin(), me.links.end(), other) != me.links.end()) return;
      me.links.push_back(other);
    }
    c->link(mine, other);
    return;
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
  } else if (auto c = detail::remote_node(other.node())) {
    c->unlink(mine, other);
  }
}

bool detail::add_remote_link(const pid& local, const pid& remote) {
  detail::process* t = detail::lookup(local);
  if (!t) return false;
  spinlock_lock lk(t->lock);
  if (t->generation != local.generation() || t->state != detail::life::alive) return false;
  if (std::find(t->links.begin(), t->links.end(), remote) == t->links.end()) t->links.push_back(remote);
  return true;
}

bool detail::add_remote_monitor(const pid& local, const pid& remote, std::uint64_t ref) {
  detail::process* t = detail::lookup(local);
  if (!t) return false;
  spinlock_lock lk(t->lock);
  if (t->generation != local.generation() || t->state != detail::life::alive) return false;
  t->monitored_by.push_back({ref, remote});
  return true;
}

void detail::remove_remote_monitor(const pid& local, std::uint64_t ref) {
  if (detail::process* t = detail::lookup(local)) {
    spinlock_lock lk(t->lock);
    if (t->generation == local.generation()) {
      auto& v = t->monitored_by;
      v.erase(std::remove_if(v.begin(), v.end(), [&](const detail::monitor_entry& e) { return e.ref == ref; }),
              v.end());
    }
  }
}

void detail::remove_remote_link(const pid& local, const pid& remote) {
  if (detail::process* t = detail::lookup(local)) {
    spinlock_lock lk(t->lock);
    if (t->generation == local.generation())
      t->links.erase(std::remove(t->links.begin(), t->links.end(), remote), t->links.end());
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
  } else if (auto c = detail::remote_node(other.node())) {
    c->monitor(mine, other, r.id);
    return r;
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
    } else if (auto c = detail::remote_node(target.node())) {
      c->demonitor(me.self(), target, r.id);
    }
  }
  if (flush) {
    // A down still in flight is dropped when drained (the monitor is gone); one already
    // queued as a message is removed here.
    detail::envelope* prev = nullptr;
    for (detail::envelope* e = me.mail.queue.head; e;) {
      detail::envelope* next = e->next;
      // is_message first: while a process unwinds, its queue may hold untyped signals.
      if (e->is_message() && detail::same_type(e->type, typeid(down)) &&
          static_cast<detail::message_envelope<down>*>(e)->value.ref == r) {
        me.mail.queue.unlink(prev, e);
        delete e;
        me.mail.sub_queued(1);
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

void exit_after_handler(exit_reason reason) {
  detail::process* p = detail::current();
  if (!p || !p->handler_form) throw not_in_process("exit_after_handler (handler processes only)");
  p->ending = std::make_unique<exit_reason>(std::move(reason));
}

bool trap_exit(bool on) { return current_or_throw("trap_exit").trapping.exchange(on); }

}  // namespace grove
