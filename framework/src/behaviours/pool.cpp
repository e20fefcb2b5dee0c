#include <grove/behaviours/pool.hpp>

#include <algorithm>

#include "supervisor_impl.hpp"

namespace grove {

init_result pool_server::init() {
  trap_exit(true);
  if (!opts_.worker) return init_result::stop(exit_reason::other("pool_without_worker"));
  for (std::size_t i = 0; i < opts_.size; ++i) {
    pid w = new_worker();
    if (!w) return init_result::stop(exit_reason::other("pool_worker_failed_to_start"));
    idle_.push_back(w);
  }
  return init_result::ok();
}

pid pool_server::new_worker() {
  pid started;
  if (detail::start_child_process(child_spec{"worker", opts_.worker}, started, "pool")) return {};
  return started;
}

void pool_server::terminate(const exit_reason&) {
  for (auto& [w, l] : busy_) detail::stop_child(w, shutdown_spec::after(std::chrono::seconds(5)));
  for (auto& w : idle_) detail::stop_child(w, shutdown_spec::after(std::chrono::seconds(5)));
}

void pool_server::lend(const pid& w, const pid& borrower, std::uint64_t ref, monitor_ref m) {
  busy_[w] = loan{borrower, m ? m : monitor(borrower), ref};
}

deferred_t pool_server::handle_call(const checkout_q& q, const from& f) {
  if (!idle_.empty()) {
    pid w;
    if (opts_.strategy == pool_strategy::lifo) {
      w = idle_.back();
      idle_.pop_back();
    } else {
      w = idle_.front();
      idle_.pop_front();
    }
    lend(w, f.caller(), q.ref, {});
    reply(f, w);
  } else if (overflow_ < opts_.max_overflow) {
    pid w = new_worker();
    if (w) {
      ++overflow_;
      lend(w, f.caller(), q.ref, {});
    }
    reply(f, w);  // empty: the worker failed to start
  } else if (!q.block) {
    reply(f, pid{});
  } else {
    const auto deadline =
        q.timeout == duration::max() ? std::chrono::steady_clock::time_point::max() : now() + q.timeout;
    waiting_.push_back(waiter{f, monitor(f.caller()), q.ref, deadline});
  }
  return deferred;
}

void pool_server::take_back(const pid& w) {
  while (!waiting_.empty()) {
    waiter next = waiting_.front();
    waiting_.pop_front();
    if (now() > next.deadline) {  // it gave up (its cancel is on the way)
      demonitor(next.m);
      continue;
    }
    lend(w, next.f.caller(), next.ref, next.m);
    reply(next.f, w);
    return;
  }
  if (overflow_ > 0) {
    dismiss(w);
    return;
  }
  idle_.push_back(w);
}

void pool_server::dismiss(const pid& w) {
  --overflow_;
  detail::stop_child(w, shutdown_spec::after(std::chrono::seconds(5)));  // unlinks and flushes its exit
}

void pool_server::handle_cast(const checkin_c& c) {
  auto it = busy_.find(c.worker);
  if (it == busy_.end()) return;  // not ours, or already back
  demonitor(it->second.m);
  busy_.erase(it);
  take_back(c.worker);
}

void pool_server::handle_cast(const cancel_c& c) {
  auto w = std::find_if(waiting_.begin(), waiting_.end(), [&](const waiter& x) { return x.ref == c.ref; });
  if (w != waiting_.end()) {
    demonitor(w->m);
    waiting_.erase(w);
    return;
  }
  // Handed a worker just as its checkout timed out: the reply was dropped, take it back.
  auto it = std::find_if(busy_.begin(), busy_.end(), [&](const auto& b) { return b.second.ref == c.ref; });
  if (it != busy_.end()) handle_cast(checkin_c{it->first});
}

void pool_server::handle_info(const down& d) {
  // A waiting borrower died: forget it.
  std::erase_if(waiting_, [&](const waiter& x) { return x.m == d.ref; });
  auto it = std::find_if(busy_.begin(), busy_.end(), [&](const auto& b) { return b.second.m == d.ref; });
  if (it == busy_.end()) return;
  const pid w = it->first;
  if (opts_.kill_on_borrower_death) {
    busy_.erase(it);
    killed_.insert(w);
    exit(w, exit_reason::kill());  // its exit signal brings a replacement
    return;
  }
  busy_.erase(it);
  take_back(w);
}

void pool_server::handle_info(const exit_signal& e) {
  // A worker died (crashed, or killed after its borrower died).
  bool ours = false;
  if (auto it = busy_.find(e.from); it != busy_.end()) {
    demonitor(it->second.m);
    busy_.erase(it);
    ours = true;
  }
  if (auto it = std::find(idle_.begin(), idle_.end(), e.from); it != idle_.end()) {
    idle_.erase(it);
    ours = true;
  }
  if (!ours && !killed_.erase(e.from)) return;  // not a worker (or a dismissed one)
  if (waiting_.empty() && overflow_ > 0) {
    --overflow_;  // one worker fewer is what the pool wants anyway
    return;
  }
  if (pid w = new_worker()) {
    if (waiting_.empty()) {
      idle_.push_back(w);
    } else {
      take_back(w);
    }
  }
}

pool_status pool_server::handle_call(const status_q&, const from&) {
  pool_status s;
  s.idle = idle_.size();
  s.busy = busy_.size();
  s.overflow = overflow_;
  s.waiting = waiting_.size();
  s.state = !idle_.empty() ? "ready" : overflow_ < opts_.max_overflow ? "overflow" : "full";
  return s;
}

std::string pool_server::format_status() const {
  return "pool: " + std::to_string(idle_.size()) + " idle, " + std::to_string(busy_.size()) + " busy (" +
         std::to_string(overflow_) + " overflow), " + std::to_string(waiting_.size()) + " waiting";
}

start_result start_pool(pool_options opts, const start_options& so) {
  return start(std::make_unique<pool_server>(std::move(opts)), so);
}

start_result start_pool_link(pool_options opts, const start_options& so) {
  return start_link(std::make_unique<pool_server>(std::move(opts)), so);
}

std::optional<pid> checkout(const server_ref& pool, bool block, duration timeout) {
  const std::uint64_t ref = detail::make_ref();
  try {
    pid w = call<pid>(pool, pool_server::checkout_q{block, ref, timeout}, timeout);
    if (!w) return std::nullopt;
    return w;
  } catch (const call_error& e) {
    if (e.reason().what() == exit_reason::kind::timeout) cast(pool, pool_server::cancel_c{ref});
    throw;
  }
}

void checkin(const server_ref& pool, const pid& worker) { cast(pool, pool_server::checkin_c{worker}); }

pool_status pool_status_of(const server_ref& pool) { return call<pool_status>(pool, pool_server::status_q{}); }

}  // namespace grove
