#include <grove/behaviours/dynamic_supervisor.hpp>

#include <algorithm>

namespace grove {

init_result dynamic_supervisor::init() {
  trap_exit(true);
  return init_result::ok();
}

void dynamic_supervisor::terminate(const exit_reason&) { stop_all(); }

// All children at once: signal every one, then wait for each within its own shutdown time.
void dynamic_supervisor::stop_all() {
  struct stopping {
    pid who;
    monitor_ref m;
    shutdown_spec sd;
  };
  std::vector<stopping> all;
  for (auto& c : children_) {
    if (!c.who) continue;
    shutdown_spec sd = detail::shutdown_of(c.spec);
    all.push_back({c.who, monitor(c.who), sd});
    exit(c.who, sd.what == shutdown_spec::kind::brutal_kill ? exit_reason::kill() : exit_reason::shutdown());
  }
  children_.clear();
  const auto start = now();
  for (auto& s : all) {
    auto is_down = when<down>([m = s.m](const down& d) { return d.ref == m; }, [](const down&) {});
    if (s.sd.what == shutdown_spec::kind::timeout) {
      auto left = s.sd.timeout - std::chrono::duration_cast<duration>(now() - start);
      if (left < duration::zero()) left = duration::zero();
      if (receive_for(left, is_down)) continue;
      exit(s.who, exit_reason::kill());
    }
    receive(is_down);
  }
  for (auto& s : all) {
    unlink(s.who);
    receive_for(duration::zero(), when<exit_signal>([p = s.who](const exit_signal& e) { return e.from == p; },
                                                    [](const exit_signal&) {}));
  }
}

bool dynamic_supervisor::add_restart() { return detail::add_restart(restarts_, flags_.intensity, flags_.period); }

child_result dynamic_supervisor::handle_call(const start_q& q, const from&) {
  if (children_.size() >= flags_.max_children) return child_result{child_error::max_children, {}, {}};
  pid started;
  if (auto err = detail::start_child_process(q.spec, started)) return child_result{child_error::start_failed, {}, *err};
  if (started) children_.push_back(child{q.spec, started, next_key_++, false});  // ignore: nothing is kept
  return child_result{child_error::none, started, {}};
}

child_result dynamic_supervisor::handle_call(const terminate_q& q, const from&) {
  auto it = std::find_if(children_.begin(), children_.end(), [&](const child& c) { return c.who == q.who; });
  if (it == children_.end()) return child_result{child_error::not_found, {}, {}};
  child c = std::move(*it);
  children_.erase(it);
  detail::stop_child(c.who, detail::shutdown_of(c.spec));
  return child_result{};
}

std::vector<child_info> dynamic_supervisor::handle_call(const which_q&, const from&) {
  std::vector<child_info> out;
  for (auto& c : children_) out.push_back(child_info{{}, c.who, c.restarting, c.spec.type});
  return out;
}

child_counts dynamic_supervisor::handle_call(const count_q&, const from&) {
  child_counts n;
  for (auto& c : children_) {
    ++n.specs;
    if (alive(c.who)) ++n.active;
    if (c.spec.type == child_type::supervisor) {
      ++n.supervisors;
    } else {
      ++n.workers;
    }
  }
  return n;
}

void dynamic_supervisor::handle_info(const exit_signal& e) {
  auto it = std::find_if(children_.begin(), children_.end(), [&](const child& c) { return c.who == e.from; });
  if (it == children_.end()) return;
  const restart_type type = it->spec.restart;
  if (type == restart_type::temporary || (type == restart_type::transient && !e.reason.is_crash())) {
    children_.erase(it);
    return;
  }
  it->who = pid{};
  if (!add_restart()) {
    give_up();
    return;
  }
  it->restarting = true;
  try_restart(it);
}

void dynamic_supervisor::try_restart(std::vector<child>::iterator it) {
  pid started;
  if (detail::start_child_process(it->spec, started)) {
    send(self(), retry{it->key});  // retried as a message, counted against the intensity
    return;
  }
  if (!started) {
    children_.erase(it);  // ignore: nothing is kept
    return;
  }
  it->who = started;
  it->restarting = false;
}

void dynamic_supervisor::handle_info(const retry& r) {
  auto it = std::find_if(children_.begin(), children_.end(), [&](const child& c) { return c.key == r.key; });
  if (it == children_.end() || !it->restarting) return;
  if (!add_restart()) {
    give_up();
    return;
  }
  try_restart(it);
}

void dynamic_supervisor::give_up() {
  stop_all();
  stop_after(exit_reason::shutdown());
}

std::string dynamic_supervisor::format_status() const {
  return "dynamic_supervisor with " + std::to_string(children_.size()) + " children";
}

start_result start_dynamic_supervisor(dynamic_supervisor_flags flags, const start_options& opts) {
  return start(std::make_unique<dynamic_supervisor>(flags), opts);
}
start_result start_dynamic_supervisor_link(dynamic_supervisor_flags flags, const start_options& opts) {
  return start_link(std::make_unique<dynamic_supervisor>(flags), opts);
}

namespace {
constexpr duration forever = duration::max();
}
child_result start_dynamic_child(const server_ref& sup, child_spec spec) {
  return call<child_result>(sup, dynamic_supervisor::start_q{std::move(spec)}, forever);
}
child_result terminate_dynamic_child(const server_ref& sup, const pid& child) {
  return call<child_result>(sup, dynamic_supervisor::terminate_q{child}, forever);
}
std::vector<child_info> which_dynamic_children(const server_ref& sup) {
  return call<std::vector<child_info>>(sup, dynamic_supervisor::which_q{}, forever);
}
child_counts count_dynamic_children(const server_ref& sup) {
  return call<child_counts>(sup, dynamic_supervisor::count_q{}, forever);
}

}  // namespace grove
