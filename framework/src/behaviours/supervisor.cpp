#include "supervisor_impl.hpp"

#include <algorithm>
#include <string_view>
#include <unordered_set>

namespace grove {

const char* to_string(child_error e) noexcept {
  switch (e) {
    case child_error::none:
      return "ok";
    case child_error::not_found:
      return "not_found";
    case child_error::running:
      return "running";
    case child_error::restarting:
      return "restarting";
    case child_error::already_present:
      return "already_present";
    case child_error::already_started:
      return "already_started";
    case child_error::start_failed:
      return "start_failed";
    case child_error::max_children:
      return "max_children";
  }
  return "?";
}

supervisor::supervisor(supervisor_flags flags, std::vector<child_spec> children, std::string path)
    : flags_(flags), reporter_{std::move(path), flags.intensity, flags.period.count()} {
  for (auto& c : children) children_.push_back(child{std::move(c), {}, false});
}

std::string detail::take_child_path() { return take_next_spawn_path(); }

std::string detail::root_path() {
  if (auto name = names().name_of(self())) return *name;
  if (auto i = info(self()); i && !i->label.empty()) return i->label;
  return self().str();
}

void detail::sup_reporter::report(event_kind k, const std::string& child, const pid& old_pid, const pid& new_pid,
                                  const exit_reason& r, int restarts) const {
  event e;
  e.kind = k;
  e.supervisor = path;
  e.supervisor_pid = self();
  e.child = child;
  e.old_pid = old_pid;
  e.new_pid = new_pid;
  e.reason = r;
  e.restarts = restarts;
  e.intensity = intensity;
  e.period_s = period_s;
  events().publish(std::move(e));
}

supervisor::iterator supervisor::find(const std::string& id) {
  return std::find_if(children_.begin(), children_.end(), [&](const child& c) { return c.spec.id == id; });
}

supervisor::iterator supervisor::find(const pid& p) {
  return std::find_if(children_.begin(), children_.end(), [&](const child& c) { return c.who == p; });
}

init_result supervisor::init() {
  trap_exit(true);
  if (reporter_.path.empty()) reporter_.path = detail::root_path();
  std::unordered_set<std::string_view> ids;
  for (auto& c : children_) {
    if (!ids.insert(c.spec.id).second)
      return init_result::stop(exit_reason::other("{duplicate_child_name," + c.spec.id + "}"));
  }
  for (auto& c : children_) {
    if (c.spec.significant && c.spec.restart == restart_type::permanent) {
      return init_result::stop(exit_reason::other("{bad_child_spec," + c.spec.id + ",significant_permanent}"));
    }
    if (c.spec.significant && flags_.auto_shutdown == auto_shutdown::never) {
      return init_result::stop(
          exit_reason::other("{bad_child_spec," + c.spec.id + ",significant_without_auto_shutdown}"));
    }
  }
  for (auto it = children_.begin(); it != children_.end();) {
    if (auto err = start(*it)) {
      terminate_all_reverse(children_.begin(), it);
      return init_result::stop(exit_reason::shutdown("{failed_to_start_child," + it->spec.id + "," + err->str() + "}"));
    }
    if (!it->who && it->spec.restart == restart_type::temporary) {
      it = children_.erase(it);  // an ignored temporary child is not kept
    } else {
      ++it;
    }
  }
  return init_result::ok();
}

void supervisor::terminate(const exit_reason&) { terminate_all_reverse(children_.begin(), children_.end()); }

std::optional<exit_reason> detail::start_child_process(const child_spec& spec, pid& started,
                                                       const std::string& sup_path) {
  start_result r = start_result::ignored();
  try {
    // The path travels with the overrides, in this process's state: the start function may
    // suspend and resume on another thread before it reads it.
    set_next_spawn(
        spawn_overrides{spec.stack_size, spec.mailbox_capacity, spec.overflow, spec.id, sup_path + "/" + spec.id});
    r = spec.start();
    set_next_spawn(std::nullopt);
  } catch (const process_exit&) {
    throw;
  } catch (...) {
    set_next_spawn(std::nullopt);
    return detail::reason_of_current_exception();
  }
  switch (r.what()) {
    case start_result::kind::ok:
      started = r.pid();
      return std::nullopt;
    case start_result::kind::ignored:
      started = pid{};
      return std::nullopt;
    case start_result::kind::already_started:
      return exit_reason::other("{already_started," + r.pid().str() + "}");
    case start_result::kind::error:
      return r.reason();
  }
  return exit_reason::other("bad_start_result");
}

std::optional<exit_reason> supervisor::start(child& c, bool restart) {
  pid started;
  auto err = detail::start_child_process(c.spec, started, reporter_.path);
  if (!err) {
    c.who = started;
    c.restarting = false;
    c.started_at = now();
    if (started) {
      const int in_window = restart ? std::max(1, static_cast<int>(restarts_.size())) : 0;
      reporter_.report(event_kind::progress, c.spec.id, {}, started, {}, in_window);
    }
  } else {
    reporter_.report(event_kind::start_error, c.spec.id, {}, {}, *err, static_cast<int>(restarts_.size()));
  }
  return err;
}

shutdown_spec detail::shutdown_of(const child_spec& spec) {
  return spec.shutdown.value_or(spec.type == child_type::supervisor ? shutdown_spec::infinity()
                                                                    : shutdown_spec::after(std::chrono::seconds(5)));
}

exit_reason detail::stop_child(const pid& p, const shutdown_spec& sd) {
  // Through a monitor, not the link: a child that unlinked itself cannot hang its supervisor.
  const monitor_ref m = monitor(p);
  exit_reason how;
  auto is_down = when<down>([m](const down& d) { return d.ref == m; }, [&how](const down& d) { how = d.reason; });
  // A kill takes effect at the child's next suspension point. One that does not suspend (a
  // busy loop, a blocking system call) cannot be ended by anyone, so its supervisor waits
  // kill_grace for it, then counts it killed and moves on: the kill stays queued and ends it
  // when it next suspends; the watchdog reports it meanwhile (long_schedule).
  auto kill = [&] {
    exit(p, exit_reason::kill());
    if (!receive_for(kill_grace, is_down)) {
      demonitor(m);
      how = exit_reason::killed();
    }
  };
  if (sd.what == shutdown_spec::kind::brutal_kill) {
    kill();
  } else {
    exit(p, exit_reason::shutdown());
    if (sd.what == shutdown_spec::kind::infinity) {
      receive(is_down);
    } else if (!receive_for(sd.timeout, is_down)) {
      kill();
    }
  }
  unlink_flush(p, how);
  return how;
}

void detail::unlink_flush(const pid& p, exit_reason& how) {
  unlink(p);
  // Already dead when monitored: its exit signal says how it ended.
  receive_for(duration::zero(), when<exit_signal>([p](const exit_signal& e) { return e.from == p; },
                                                  [&how](const exit_signal& e) {
                                                    if (how.what() == exit_reason::kind::noproc) how = e.reason;
                                                  }));
}

bool detail::shutdown_failed(const child_spec& spec, const exit_reason& r) {
  const bool brutal = shutdown_of(spec).what == shutdown_spec::kind::brutal_kill;
  if (brutal ? r.what() == exit_reason::kind::killed : (r.is_shutdown() && r.detail().empty())) return false;
  // A child that is not permanent may also have ended normally or with {shutdown, _} on its own.
  if (spec.restart != restart_type::permanent && !r.is_crash()) return false;
  return true;
}

void supervisor::shut_down(child& c) {
  if (!c.who) return;
  const pid p = c.who;
  c.who = pid{};
  exit_reason how = detail::stop_child(p, detail::shutdown_of(c.spec));
  reporter_.report(event_kind::exit, c.spec.id, p, {}, how, static_cast<int>(restarts_.size()));
  if (detail::shutdown_failed(c.spec, how)) {
    reporter_.report(event_kind::shutdown_error, c.spec.id, p, {}, how, static_cast<int>(restarts_.size()));
  }
  c.last_exit = std::move(how);
}

void supervisor::terminate_all_reverse(iterator first, iterator last) {
  for (auto it = last; it != first;) {
    --it;
    shut_down(*it);
  }
}

bool detail::add_restart(std::deque<std::int64_t>& restarts, int intensity, std::chrono::seconds period) {
  const std::int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(now().time_since_epoch()).count();
  while (!restarts.empty() && restarts.back() < now_s - period.count()) restarts.pop_back();
  restarts.push_front(now_s);
  return static_cast<int>(restarts.size()) <= intensity;
}

bool supervisor::add_restart() { return detail::add_restart(restarts_, flags_.intensity, flags_.period); }

int detail::restarts_in_window(const std::deque<std::int64_t>& restarts, std::chrono::seconds period) {
  const std::int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(now().time_since_epoch()).count();
  int n = 0;
  for (std::int64_t t : restarts) {
    if (t < now_s - period.count()) break;
    ++n;
  }
  return n;
}

const char* to_string(restart_type v) noexcept {
  switch (v) {
    case restart_type::permanent:
      return "permanent";
    case restart_type::transient:
      return "transient";
    case restart_type::temporary:
      return "temporary";
  }
  return "?";
}

const char* to_string(child_type v) noexcept { return v == child_type::worker ? "worker" : "supervisor"; }

const char* to_string(auto_shutdown v) noexcept {
  switch (v) {
    case auto_shutdown::never:
      return "never";
    case auto_shutdown::any_significant:
      return "any_significant";
    case auto_shutdown::all_significant:
      return "all_significant";
  }
  return "?";
}

const char* to_string(grove::strategy s) noexcept {
  switch (s) {
    case strategy::one_for_one:
      return "one_for_one";
    case strategy::one_for_all:
      return "one_for_all";
    case strategy::rest_for_one:
      return "rest_for_one";
  }
  return "?";
}

void supervisor::give_up(const child& offender) {
  reporter_.report(event_kind::intensity_reached, offender.spec.id, {}, {},
                   offender.last_exit.value_or(exit_reason::other("restart_failed")),
                   static_cast<int>(restarts_.size()));
  terminate_all_reverse(children_.begin(), children_.end());
  stop_after(exit_reason::shutdown());
}

void supervisor::restart(iterator it) {
  const std::string id = it->spec.id;
  if (flags_.strategy != strategy::one_for_one) {
    iterator first = flags_.strategy == strategy::one_for_all ? children_.begin() : std::next(it);
    auto keep_index = std::distance(children_.begin(), first);
    terminate_all_reverse(first, children_.end());
    // Temporary children are terminated and removed, never restarted.
    children_.erase(
        std::remove_if(children_.begin() + keep_index, children_.end(),
                       [&](const child& c) { return c.spec.restart == restart_type::temporary && c.spec.id != id; }),
        children_.end());
    it = find(id);
  }
  const duration delay = backoff_delay(*it);
  if (delay > duration::zero()) {
    it->restarting = true;
    send_after(delay, self(), retry{id, false, true});
    return;
  }
  start_from(flags_.strategy == strategy::one_for_all ? children_.begin() : it, id);
}

void supervisor::start_from(iterator from, const std::string& target) {
  for (auto c = from; c != children_.end(); ++c) {
    if (c->who) continue;
    if (flags_.strategy == strategy::one_for_one && c->spec.id != target) continue;
    if (start(*c, true)) {
      c->restarting = true;
      send(self(), retry{c->spec.id, true, false});  // retried as a message, counted against the intensity
      return;
    }
  }
}

duration supervisor::backoff_delay(child& c) {
  const auto& b = c.spec.backoff ? c.spec.backoff : flags_.backoff;
  if (!b) return duration::zero();
  if (now() - c.started_at >= b->reset_after) c.consecutive = 0;
  double d = static_cast<double>(b->min_delay.count());
  for (int i = 0; i < c.consecutive && d < static_cast<double>(b->max_delay.count()); ++i) d *= b->multiplier;
  d = std::min(d, static_cast<double>(b->max_delay.count()));
  if (b->jitter > 0) {
    jitter_state_ ^= jitter_state_ << 13;  // xorshift: cheap, and deterministic for a run
    jitter_state_ ^= jitter_state_ >> 7;
    jitter_state_ ^= jitter_state_ << 17;
    double unit = static_cast<double>(jitter_state_ % 2001) / 1000.0 - 1.0;  // [-1, 1]
    d *= 1.0 + b->jitter * unit;
  }
  ++c.consecutive;
  return duration(static_cast<duration::rep>(std::max(d, 0.0)));
}

void supervisor::handle_info(const exit_signal& e) {
  auto it = find(e.from);
  if (it == children_.end()) return;  // not (or no longer) a child
  it->who = pid{};
  it->last_exit = e.reason;
  reporter_.report(event_kind::exit, it->spec.id, e.from, {}, e.reason, static_cast<int>(restarts_.size()));
  const restart_type type = it->spec.restart;
  const bool significant = it->spec.significant;
  const bool restarts = detail::restarts_after(type, e.reason);
  const bool within = !restarts || add_restart();
  if (restarts) note_restart(*it);
  if (detail::reported_end(type, e.reason)) {
    reporter_.report(event_kind::child_terminated, it->spec.id, e.from, {}, e.reason,
                     static_cast<int>(restarts_.size()));
  }
  if (type == restart_type::temporary) {
    children_.erase(it);
    if (significant) significant_ended();
    return;
  }
  if (!restarts) {
    if (significant) significant_ended();
    return;
  }
  if (!within) {
    give_up(*it);
    return;
  }
  restart(it);
}

void supervisor::significant_ended() {
  if (flags_.auto_shutdown == auto_shutdown::all_significant) {
    for (auto& c : children_) {
      if (c.spec.significant && c.who) return;  // another significant child still runs
    }
  } else if (flags_.auto_shutdown != auto_shutdown::any_significant) {
    return;
  }
  terminate_all_reverse(children_.begin(), children_.end());
  stop_after(exit_reason::shutdown());
}

void supervisor::handle_info(const retry& r) {
  auto it = find(r.id);
  if (it == children_.end() || !it->restarting) return;
  if (r.counted && !add_restart()) {
    give_up(*it);
    return;
  }
  if (r.counted) note_restart(*it);
  start_from(r.whole_group && flags_.strategy == strategy::one_for_all ? children_.begin() : it, r.id);
}

std::vector<child_info> supervisor::handle_call(const which_q&, const from&) {
  std::vector<child_info> out;
  for (auto& c : children_) {
    out.push_back(child_info{c.spec.id, c.who, c.restarting, c.spec.type, c.last_exit,
                             detail::restarts_in_window(c.restarts, flags_.period)});
  }
  return out;
}

supervisor_status supervisor::handle_call(const detail::sup_status_q&, const from& f) {
  supervisor_status s;
  s.path = reporter_.path;
  s.strategy = flags_.strategy;
  s.intensity = flags_.intensity;
  s.period = flags_.period;
  s.restarts = detail::restarts_in_window(restarts_, flags_.period);
  s.children = handle_call(which_q{}, f);
  return s;
}

void supervisor::note_restart(child& c) {
  // Only what is still in the window is kept (pruned by time as well as by count): with a high
  // intensity the history would otherwise grow for the supervisor's whole life.
  const std::int64_t now_s = restarts_.front();
  c.restarts.push_front(now_s);
  while (!c.restarts.empty() && (c.restarts.size() > static_cast<std::size_t>(flags_.intensity) + 1 ||
                                 c.restarts.back() < now_s - flags_.period.count()))
    c.restarts.pop_back();
}

child_counts supervisor::handle_call(const count_q&, const from&) {
  child_counts n;
  for (auto& c : children_) {
    ++n.specs;
    if (c.who && alive(c.who)) ++n.active;
    if (c.spec.type == child_type::supervisor) {
      ++n.supervisors;
    } else {
      ++n.workers;
    }
  }
  return n;
}

child_result supervisor::handle_call(const start_child_q& q, const from&) {
  if (auto it = find(q.spec.id); it != children_.end()) {
    if (it->who) return child_result{child_error::already_started, it->who, {}};
    return child_result{child_error::already_present, {}, {}};
  }
  children_.push_back(child{q.spec, {}, false});
  auto& c = children_.back();
  if (auto err = start(c)) {
    children_.pop_back();
    return child_result{child_error::start_failed, {}, *err};
  }
  pid who = c.who;
  if (!who && c.spec.restart == restart_type::temporary) children_.pop_back();
  return child_result{child_error::none, who, {}};
}

child_result supervisor::handle_call(const terminate_child_q& q, const from&) {
  auto it = find(q.id);
  if (it == children_.end()) return child_result{child_error::not_found, {}, {}};
  shut_down(*it);
  it->restarting = false;
  if (it->spec.restart == restart_type::temporary) children_.erase(it);
  return child_result{};
}

child_result supervisor::handle_call(const restart_child_q& q, const from&) {
  auto it = find(q.id);
  if (it == children_.end()) return child_result{child_error::not_found, {}, {}};
  if (it->who) return child_result{child_error::running, it->who, {}};
  if (it->restarting) return child_result{child_error::restarting, {}, {}};
  if (auto err = start(*it)) return child_result{child_error::start_failed, {}, *err};
  return child_result{child_error::none, it->who, {}};
}

child_result supervisor::handle_call(const delete_child_q& q, const from&) {
  auto it = find(q.id);
  if (it == children_.end()) return child_result{child_error::not_found, {}, {}};
  if (it->who) return child_result{child_error::running, it->who, {}};
  if (it->restarting) return child_result{child_error::restarting, {}, {}};
  children_.erase(it);
  return child_result{};
}

std::optional<child_spec> supervisor::handle_call(const get_spec_q& q, const from&) {
  auto it = find(q.id);
  if (it == children_.end()) return std::nullopt;
  return it->spec;
}

std::string supervisor::format_status() const {
  return std::string("supervisor ") + to_string(flags_.strategy) + " with " + std::to_string(children_.size()) +
         " children, " + std::to_string(detail::restarts_in_window(restarts_, flags_.period)) +
         " restarts in the window (limit " + std::to_string(flags_.intensity) + ")";
}

start_result start_supervisor(supervisor_flags flags, std::vector<child_spec> children, const start_options& opts) {
  return start(std::make_unique<supervisor>(flags, std::move(children)), opts);
}

start_result start_supervisor_link(supervisor_flags flags, std::vector<child_spec> children,
                                   const start_options& opts) {
  return start_link(std::make_unique<supervisor>(flags, std::move(children)), opts);
}

start_result detail::start_supervisor_link_at(supervisor_flags flags, std::vector<child_spec> children,
                                              std::string path, const start_options& opts) {
  return start_link(std::make_unique<supervisor>(flags, std::move(children), std::move(path)), opts);
}

child_spec supervisor_child(std::string id, supervisor_flags flags, std::vector<child_spec> children,
                            const start_options& opts) {
  child_spec s;
  s.id = std::move(id);
  s.start = [flags, children, opts]() {
    return start_link(std::make_unique<supervisor>(flags, children, detail::take_child_path()), opts);
  };
  s.type = child_type::supervisor;
  return s;
}

namespace {
constexpr duration forever = duration::max();  // supervisor calls wait as long as it takes, as in OTP
}

std::vector<child_info> which_children(const server_ref& sup) {
  return call<std::vector<child_info>>(sup, supervisor::which_q{}, forever);
}
child_counts count_children(const server_ref& sup) { return call<child_counts>(sup, supervisor::count_q{}, forever); }
child_result start_child(const server_ref& sup, child_spec spec) {
  return call<child_result>(sup, supervisor::start_child_q{std::move(spec)}, forever);
}
child_result terminate_child(const server_ref& sup, const std::string& id, duration timeout) {
  return call<child_result>(sup, supervisor::terminate_child_q{id}, timeout);
}
child_result restart_child(const server_ref& sup, const std::string& id, duration timeout) {
  return call<child_result>(sup, supervisor::restart_child_q{id}, timeout);
}
child_result delete_child(const server_ref& sup, const std::string& id, duration timeout) {
  return call<child_result>(sup, supervisor::delete_child_q{id}, timeout);
}
std::optional<child_spec> get_childspec(const server_ref& sup, const std::string& id) {
  return call<std::optional<child_spec>>(sup, supervisor::get_spec_q{id}, forever);
}
supervisor_status supervisor_status_of(const server_ref& sup, duration timeout) {
  return call<supervisor_status>(sup, detail::sup_status_q{}, timeout);
}

}  // namespace grove
