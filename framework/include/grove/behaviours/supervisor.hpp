// supervisor: keeps a list of children alive, OTP's way. Children start in order and stop in
// reverse; a child that ends is restarted according to its restart type and the supervisor's
// strategy, within the restart intensity (more than `intensity` restarts within `period`
// seconds and the supervisor gives up: it terminates the rest and exits with `shutdown`).
// See docs/concepts/supervisors.md and ../shared/reference/otp-semantics.md §3.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <grove/behaviours/gen_server.hpp>
#include <grove/behaviours/restart.hpp>
#include <grove/runtime/events.hpp>

namespace grove {

// How a child is stopped: brutal_kill (exit kill at once), a timeout (exit shutdown, then kill
// after the timeout) or infinity (exit shutdown, wait as long as it takes).
struct shutdown_spec {
  enum class kind : unsigned char { brutal_kill, timeout, infinity };
  kind what = kind::timeout;
  duration timeout = std::chrono::seconds(5);
  static shutdown_spec brutal_kill() { return {kind::brutal_kill, duration::zero()}; }
  static shutdown_spec after(duration d) { return {kind::timeout, d}; }
  static shutdown_spec infinity() { return {kind::infinity, duration::max()}; }
};

// Restart backoff, beyond OTP: the n-th consecutive restart of a child waits
// min(max, min_delay * multiplier^(n-1)), +/- jitter (a fraction); a child that ran for
// reset_after before dying starts again from min_delay. Each restart still counts against the
// intensity when it is decided. While a child backs off it is not running: its name is free, a
// call to it fails at once with noproc, a cast to it does nothing.
struct backoff_spec {
  duration min_delay = std::chrono::milliseconds(100);
  duration max_delay = std::chrono::seconds(10);
  double multiplier = 2.0;
  double jitter = 0.0;
  duration reset_after = std::chrono::seconds(30);
};

// A child, as plain values. `start` must start a process linked to its caller (the supervisor)
// and return its start_result, like grove::start_link does.
struct child_spec {
  std::string id;
  std::function<start_result()> start;
  restart_type restart = restart_type::permanent;
  std::optional<shutdown_spec> shutdown;  // default: 5 s for a worker, infinity for a supervisor
  child_type type = child_type::worker;
  // With the supervisor's auto_shutdown: its ending "for good" (a transient child ending
  // normally, a temporary one ending at all) may stop the supervisor. Not with permanent.
  bool significant = false;
  std::optional<backoff_spec> backoff;  // this child's; else the supervisor's, if any
  // Imposed on the child's process (the first process `start` spawns); 0 / empty: its own.
  std::size_t stack_size = 0;
  std::size_t mailbox_capacity = 0;
  std::optional<overflow_policy> overflow;
};

struct supervisor_flags {
  grove::strategy strategy = grove::strategy::one_for_one;
  int intensity = 1;               // OTP's default: 1 restart ...
  std::chrono::seconds period{5};  // ... in 5 seconds
  grove::auto_shutdown auto_shutdown = grove::auto_shutdown::never;
  std::optional<backoff_spec> backoff;  // for every child without its own
};

struct child_info {
  std::string id;
  pid who;  // empty when not running
  bool restarting = false;
  child_type type = child_type::worker;
  std::optional<exit_reason> last_exit;  // how its previous run ended, if it ended
  int restarts = 0;                      // its restarts counted in the supervisor's current window
};

// A supervisor as the console shows it (either kind of supervisor answers).
struct supervisor_status {
  std::string path;      // as in its reports
  bool dynamic = false;  // a dynamic_supervisor
  grove::strategy strategy = grove::strategy::one_for_one;
  int intensity = 0;
  std::chrono::seconds period{0};
  int restarts = 0;  // in the current window
  std::vector<child_info> children;
};

struct child_counts {
  std::size_t specs = 0, active = 0, supervisors = 0, workers = 0;
};

// Errors of the child API, with OTP's names.
enum class child_error : unsigned char {
  none,
  not_found,
  running,
  restarting,
  already_present,
  already_started,
  start_failed,
  max_children  // dynamic supervisor: max_children reached
};
const char* to_string(child_error e) noexcept;

struct child_result {
  child_error error = child_error::none;
  pid who;             // the child (ok, already_started)
  exit_reason reason;  // start_failed
  explicit operator bool() const noexcept { return error == child_error::none; }
};

namespace detail {
// Stops a linked child OTP's way: monitor; exit shutdown (kill for brutal_kill); wait for the down
// up to the shutdown time, then kill; unlink and drop its exit signal. Returns how it ended.
exit_reason stop_child(const pid& child, const shutdown_spec& sd);
// Asks either kind of supervisor for its supervisor_status.
struct sup_status_q {};
// The reports of one supervisor, published on the node's event bus.
struct sup_reporter {
  std::string path;
  int intensity = 0;
  std::int64_t period_s = 0;
  void report(event_kind k, const std::string& child, const pid& old_pid, const pid& new_pid, const exit_reason& r,
              int restarts) const;
};
// start_supervisor_link, with the path its reports carry (an application's top supervisor: the
// application's name).
start_result start_supervisor_link_at(supervisor_flags flags, std::vector<child_spec> children, std::string path,
                                      const start_options& opts);
}  // namespace detail

// Starts a supervisor (from a process) and its children, in order. A child that fails to start
// makes the whole start fail with {shutdown,{failed_to_start_child,Id,Reason}} after the
// children already started are stopped in reverse order.
start_result start_supervisor(supervisor_flags flags, std::vector<child_spec> children, const start_options& opts = {});
start_result start_supervisor_link(supervisor_flags flags, std::vector<child_spec> children,
                                   const start_options& opts = {});
// A child spec for a nested supervisor; opts.name (or opts.via) registers it, so code and the
// console can reach it by name.
child_spec supervisor_child(std::string id, supervisor_flags flags, std::vector<child_spec> children,
                            const start_options& opts = {});

std::vector<child_info> which_children(const server_ref& sup);
child_counts count_children(const server_ref& sup);
child_result start_child(const server_ref& sup, child_spec spec);
// The child API waits as long as it takes, as OTP's does, unless given a timeout.
child_result terminate_child(const server_ref& sup, const std::string& id, duration timeout = duration::max());
child_result restart_child(const server_ref& sup, const std::string& id, duration timeout = duration::max());
child_result delete_child(const server_ref& sup, const std::string& id, duration timeout = duration::max());
std::optional<child_spec> get_childspec(const server_ref& sup, const std::string& id);
// The status of a supervisor or dynamic supervisor (another server answers call_error
// {bad_call,...}).
supervisor_status supervisor_status_of(const server_ref& sup, duration timeout = std::chrono::seconds(5));

}  // namespace grove
