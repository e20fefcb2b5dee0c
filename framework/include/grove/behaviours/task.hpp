// task: run a function in a process of its own and await its result, like Elixir's Task.
//
//   auto t = grove::async([] { return fetch(); });    // linked to the caller, and monitored
//   auto v = grove::await(t, 2s);                    // its result, or throws
//
// Under a task supervisor (a dynamic supervisor whose children are temporary), async(sup, fn)
// is also linked to the caller; async_nolink(sup, fn) is not, so its crash only fails await.
// await leaves nothing behind in the caller's mailbox: on success the monitor is removed with
// its DOWN flushed; on timeout the task is killed and its reply and DOWN are flushed.
#pragma once

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include <grove/behaviours/dynamic_supervisor.hpp>
#include <grove/behaviours/gen_server.hpp>

namespace grove {

template <class R>
class task {
 public:
  task() = default;
  task(pid who, monitor_ref m, std::uint64_t ref, bool linked) : who_(who), m_(m), ref_(ref), linked_(linked) {}
  const pid& who() const noexcept { return who_; }

 private:
  template <class T>
  friend T await(task<T>& t, duration timeout);
  pid who_;
  monitor_ref m_;
  std::uint64_t ref_ = 0;
  bool linked_ = false;
  bool done_ = false;
};

namespace detail {
// What a task sends its owner: its result (an empty optional for void) tagged with its ref.
template <class R>
struct task_reply {
  std::uint64_t ref = 0;
  std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> value{};
};

template <class F>
using task_result_t = std::invoke_result_t<std::decay_t<F>&>;

// Sent by the owner once it monitors a task started by a supervisor: the task waits for it,
// so that its end (even at once) is seen by the monitor and not answered with noproc.
struct task_go {
  std::uint64_t ref = 0;
};

template <class F>
auto task_body(pid owner, std::uint64_t ref, F fn, bool link_owner, bool wait_go) {
  return [owner, ref, fn = std::move(fn), link_owner, wait_go]() mutable {
    using R = task_result_t<F>;
    if (wait_go) receive(when<task_go>([ref](const task_go& g) { return g.ref == ref; }, [](const task_go&) {}));
    if (link_owner) link(owner);
    task_reply<R> r;
    r.ref = ref;
    if constexpr (std::is_void_v<R>) {
      fn();
      r.value = true;
    } else {
      r.value.emplace(fn());
    }
    send(owner, std::move(r));
  };
}
}  // namespace detail

// Runs fn in a new process linked to the caller and monitored by it.
template <class F>
task<detail::task_result_t<F>> async(F&& fn) {
  using R = detail::task_result_t<F>;
  const std::uint64_t ref = detail::make_ref();
  auto [p, m] = spawn_monitor(detail::task_body(self(), ref, std::decay_t<F>(std::forward<F>(fn)), true, false),
                              {.label = "task"});
  return task<R>(p, m, ref, true);
}

// Runs fn as a temporary child of a task supervisor (a dynamic supervisor), linked to the
// caller (link_caller) or not (async_nolink), and monitored by it.
template <class F>
task<detail::task_result_t<F>> async(const server_ref& task_sup, F&& fn, bool link_caller = true) {
  using R = detail::task_result_t<F>;
  const std::uint64_t ref = detail::make_ref();
  child_spec spec;
  spec.id = "task";
  spec.restart = restart_type::temporary;
  spec.shutdown = shutdown_spec::brutal_kill();
  spec.start = [body = detail::task_body(self(), ref, std::decay_t<F>(std::forward<F>(fn)), link_caller, true)]() {
    return start_result::started(spawn_link(body, {.label = "task"}));
  };
  child_result c = start_dynamic_child(task_sup, std::move(spec));
  if (!c) throw process_error(c.reason, "async under a task supervisor");
  const monitor_ref m = monitor(c.who);
  send(c.who, detail::task_go{ref});
  return task<R>(c.who, m, ref, link_caller);
}

template <class F>
task<detail::task_result_t<F>> async_nolink(const server_ref& task_sup, F&& fn) {
  return async(task_sup, std::forward<F>(fn), false);
}

// The task's result. Throws process_error with the task's exit reason if it died, or
// call_error(timeout) after killing it when no result came within `timeout`.
template <class R>
R await(task<R>& t, duration timeout = std::chrono::seconds(5)) {
  if (t.done_) throw std::logic_error("await: this task was already awaited");
  t.done_ = true;
  const std::uint64_t ref = t.ref_;
  const monitor_ref m = t.m_;
  std::optional<detail::task_reply<R>> reply;
  std::optional<exit_reason> died;
  receive_for(timeout,
              when<detail::task_reply<R>>([ref](const detail::task_reply<R>& r) { return r.ref == ref; },
                                          [&](detail::task_reply<R> r) { reply = std::move(r); }),
              when<down>([m](const down& d) { return d.ref == m; }, [&](const down& d) { died = d.reason; }));
  if (reply) {
    demonitor(m, true);
    if (t.linked_) unlink(t.who_);
    if constexpr (!std::is_void_v<R>)
      return std::move(*reply->value);
    else
      return;
  }
  if (died) {
    if (t.linked_) unlink(t.who_);
    throw process_error(*died, "task " + t.who_.str());
  }
  // Timeout: the task is killed; neither its reply nor its DOWN is left behind.
  if (t.linked_) unlink(t.who_);
  exit(t.who_, exit_reason::kill());
  receive(when<down>([m](const down& d) { return d.ref == m; }, [](const down&) {}));
  receive_for(duration::zero(),
              when<detail::task_reply<R>>([ref](const detail::task_reply<R>& r) { return r.ref == ref; },
                                          [](const detail::task_reply<R>&) {}));
  throw call_error(exit_reason::timeout(), "task " + t.who_.str());
}

// A task supervisor: a dynamic supervisor for tasks.
inline start_result start_task_supervisor(const start_options& opts = {}) { return start_dynamic_supervisor({}, opts); }

}  // namespace grove
