#include <grove/behaviours/dynamic_supervisor.hpp>

#include "supervisor_impl.hpp"

#include <algorithm>

namespace grove {

init_result dynamic_supervisor::init() {
  trap_exit(true);
  if (reporter_.path.empty()) reporter_.path = detail::root_path();
  return init_result::ok();
}

void dynamic_supervisor::terminate(const exit_reason&) { stop_all(); }

// All children at once: signal every one, then wait for each within its own shutdown time.
void dynamic_supervisor::stop_all() {
  struct stopping {
    pid who;
    monitor_ref m;
    shutdown_spec sd;
    const child* c;
    exit_reason how;
  };
  std::vector<stopping> all;
  for (auto& c : children_) {
    if (!c.who) continue;
    shutdown_spec sd = detail::shutdown_of(c.spec);
    all.push_back({c.who, monitor(c.who), sd, &c, {}});
    exit(c.who, sd.what == shutdown_spec::kind::brutal_kill ? exit_reason::kill() : exit_reason::shutdown());
  }
  const auto start = now();
  for (auto& s : all) {
    auto is_down =
        when<down>([m = s.m](const down& d) { return d.ref == m; }, [&s](const down& d) { s.how = d.reason; });
    if (s.sd.what == shutdown_spec::kind::timeout) {
      auto left = s.sd.timeout - std::chrono::duration_cast<duration>(now() - start);
      if (left < duration::zero()) left = duration::zero();
      if (receive_for(left, is_down)) continue;
      exit(s.who, exit_reason::kill());
    }
    receive(is_down);
  }
  for (auto& s : all) {
    detail::unlink_flush(s.who, s.how);
    reporter_.report(event_kind::exit, id_of(*s.c), s.who, {}, s.how, static_cast<int>(restarts_.size()));
    if (detail::shutdown_failed(s.c->spec, s.how)) {
      reporter_.report(event_kind::shutdown_error, id_of(*s.c), s.who, {}, s.how, static_cast<int>(restarts_.size()));
    }
  }
  children_.clear();
}

bool dynamic_supervisor::add_restart() { return detail::add_restart(restarts_, flags_.intensity, flags_.period); }

child_result dynamic_supervisor::handle_call(const start_q& q, const from&) {
  if (children_.size() >= flags_.max_children) return child_result{child_error::max_children, {}, {}};
  pid started;
  const std::uint64_t key = next_key_++;
  child c{q.spec, {}, key, false, std::nullopt};
  if (auto err = detail::start_child_process(q.spec, started, reporter_.path)) {
    reporter_.report(event_kind::start_error, id_of(c), {}, {}, *err, static_cast<int>(restarts_.size()));
    return child_result{child_error::start_failed, {}, *err};
  }
  if (started) {  // ignore: nothing is kept
    c.who = started;
    reporter_.report(event_kind::progress, id_of(c), {}, started, {}, 0);
    children_.push_back(std::move(c));
  }
  return child_result{child_error::none, started, {}};
}

child_result dynamic_supervisor::handle_call(const terminate_q& q, const from&) {
  auto it = std::find_if(children_.begin(), children_.end(), [&](const child& c) { return c.who == q.who; });
  if (it == children_.end()) return child_result{child_error::not_found, {}, {}};
  child c = std::move(*it);
  children_.erase(it);
  exit_reason how = detail::stop_child(c.who, detail::shutdown_of(c.spec));
  reporter_.report(event_kind::exit, id_of(c), c.who, {}, how, static_cast<int>(restarts_.size()));
  if (detail::shutdown_failed(c.spec, how)) {
    reporter_.report(event_kind::shutdown_error, id_of(c), c.who, {}, how, static_cast<int>(restarts_.size()));
  }
  return child_result{};
}

std::vector<child_info> dynamic_supervisor::handle_call(const which_q&, const from&) {
  std::vector<child_info> out;
  for (auto& c : children_) out.push_back(child_info{id_of(c), c.who, c.restarting, c.spec.type, c.last_exit, 0});
  return out;
}

supervisor_status dynamic_supervisor::handle_call(const detail::sup_status_q&, const from& f) {
  supervisor_status s;
  s.path = reporter_.path;
  s.dynamic = true;
  s.intensity = flags_.intensity;
  s.period = flags_.period;
  s.restarts = detail::restarts_in_window(restarts_, flags_.period);
  s.children = handle_call(which_q{}, f);
  return s;
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
  it->last_exit = e.reason;
  reporter_.report(event_kind::exit, id_of(*it), e.from, {}, e.reason, static_cast<int>(restarts_.size()));
  const bool restarts = detail::restarts_after(type, e.reason);
  const bool within = !restarts || add_restart();
  if (detail::reported_end(type, e.reason)) {
    reporter_.report(event_kind::child_terminated, id_of(*it), e.from, {}, e.reason,
                     static_cast<int>(restarts_.size()));
  }
  if (!restarts) {
    children_.erase(it);
    return;
  }
  it->who = pid{};
  if (!within) {
    give_up(*it);
    return;
  }
  it->restarting = true;
  try_restart(it);
}

void dynamic_supervisor::try_restart(std::vector<child>::iterator it) {
  pid started;
  if (auto err = detail::start_child_process(it->spec, started, reporter_.path)) {
    reporter_.report(event_kind::start_error, id_of(*it), {}, {}, *err, static_cast<int>(restarts_.size()));
    send(self(), retry{it->key});  // retried as a message, counted against the intensity
    return;
  }
  if (!started) {
    children_.erase(it);  // ignore: nothing is kept
    return;
  }
  it->who = started;
  it->restarting = false;
  reporter_.report(event_kind::progress, id_of(*it), {}, started, {}, std::max(1, static_cast<int>(restarts_.size())));
}

void dynamic_supervisor::handle_info(const retry& r) {
  auto it = std::find_if(children_.begin(), children_.end(), [&](const child& c) { return c.key == r.key; });
  if (it == children_.end() || !it->restarting) return;
  if (!add_restart()) {
    give_up(*it);
    return;
  }
  try_restart(it);
}

std::string dynamic_supervisor::id_of(const child& c) const {
  return c.spec.id.empty() ? "#" + std::to_string(c.key) : c.spec.id;
}

void dynamic_supervisor::give_up(const child& offender) {
  reporter_.report(event_kind::intensity_reached, id_of(offender), {}, {},
                   offender.last_exit.value_or(exit_reason::other("restart_failed")),
                   static_cast<int>(restarts_.size()));
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
child_spec dynamic_supervisor_child(std::string id, dynamic_supervisor_flags flags, const start_options& opts) {
  child_spec s;
  s.id = std::move(id);
  s.start = [flags, opts]() {
    return start_link(std::make_unique<dynamic_supervisor>(flags, detail::take_child_path()), opts);
  };
  s.type = child_type::supervisor;
  return s;
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
