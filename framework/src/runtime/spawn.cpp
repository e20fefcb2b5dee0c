#include "process_impl.hpp"

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include <grove/runtime/errors.hpp>
#include <grove/runtime/node.hpp>

#include "node_impl.hpp"
#include "spinlock.hpp"
#include "stack_pool.hpp"

namespace grove::detail {

std::string take_next_spawn_path() {
  process* p = current();
  if (!p || !p->next_spawn) return {};
  return std::exchange(p->next_spawn->path, std::string());
}

void set_next_spawn(std::optional<spawn_overrides> o) {
  process* p = current();
  if (!p) throw not_in_process("set_next_spawn");
  p->next_spawn = o ? std::make_unique<spawn_overrides>(std::move(*o)) : nullptr;
}

namespace {
spawn_result spawn_common(node* on, const spawn_options& opts, spawn_link_mode mode, bool handler_form,
                          unique_function body, std::unique_ptr<process_handler> handler) {
  process* parent = current();
  node_impl* n = on ? &node_access::of(*on) : (parent ? parent->node : nullptr);
  if (!n) throw not_in_process("spawn");
  if (mode != spawn_link_mode::none && (!parent || parent->node != n)) throw not_in_process("spawn_link/spawn_monitor");
  if (n->stopping.load(std::memory_order_acquire)) throw node_stopping();
  // What a supervisor imposes on its child's process (set around the child's start) wins over
  // the child's own options; checked before a slot is taken.
  const spawn_overrides* v = parent ? parent->next_spawn.get() : nullptr;
  const std::size_t stack = v && v->stack_size ? v->stack_size : opts.stack_size;
  const std::size_t capacity = v && v->mailbox_capacity ? v->mailbox_capacity : opts.mailbox_capacity;
  const overflow_policy overflow = v && v->overflow ? *v->overflow : opts.overflow;
  if (capacity > max_mailbox_capacity) {
    throw std::invalid_argument("grove: mailbox_capacity " + std::to_string(capacity) +
                                " is above the most a mailbox counts (" + std::to_string(max_mailbox_capacity) + ")");
  }
  process* p = n->table.acquire();
  p->handler_form = handler_form;
  p->label = opts.label.empty() && v ? v->label : opts.label;
  if (v) parent->next_spawn.reset();
  p->stack_size = handler_form ? 0 : stack_pool::round(stack ? stack : n->options.default_stack_size);
  p->body = std::move(body);
  p->handler = std::move(handler);
  p->started = false;
  p->receive_token = 0;
  p->timed_out = false;
  p->by_signal = false;
  p->ending.reset();
  p->next_spawn.reset();
  p->home.store(nullptr, std::memory_order_relaxed);
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
  n->spawned.fetch_add(1, std::memory_order_relaxed);
  {
    spinlock_lock lk(p->lock);
    p->mail.open(capacity, overflow);
    p->state = life::alive;
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

}  // namespace grove::detail

namespace grove {

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

}  // namespace grove
