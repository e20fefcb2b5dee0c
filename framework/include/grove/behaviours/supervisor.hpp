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
// Runs spec.start (in the supervisor at `sup_path`): the child's pid (empty when it answered
// ignore), or the reason it failed. A nested supervisor started by spec.start takes
// sup_path/id as its path (see take_child_path).
std::optional<exit_reason> start_child_process(const child_spec& spec, pid& started, const std::string& sup_path);
// In a child's start function, before it suspends: the path the supervisor gave this child
// ("" outside a supervisor's start).
std::string take_child_path();
// The path of a top supervisor: its registered name, else its label, else its pid.
std::string root_path();
// Stops a linked child OTP's way: monitor; exit shutdown (kill for brutal_kill); wait for the down
// up to the shutdown time, then kill; unlink and drop its exit signal. Returns how it ended.
exit_reason stop_child(const pid& child, const shutdown_spec& sd);
// How long stop_child waits for a killed child's down before it counts the child killed and
// moves on (a child that does not suspend cannot be ended; see stop_child).
inline constexpr duration kill_grace = std::chrono::seconds(1);
// Unlinks a stopped child and drops its exit signal; if `how` is noproc (it was dead when
// monitored), the exit signal's reason replaces it. OTP's unlink_flush.
void unlink_flush(const pid& child, exit_reason& how);
// Asks either kind of supervisor for its supervisor_status.
struct sup_status_q {};
// How many of `restarts` (seconds, newest first) fall in the window ending now.
int restarts_in_window(const std::deque<std::int64_t>& restarts, std::chrono::seconds period);
// OTP's rules when a child ends with r: whether it is restarted (permanent always, transient
// after a crash), and whether its end is reported (permanent always, others when abnormal).
inline bool restarts_after(restart_type t, const exit_reason& r) {
  return t == restart_type::permanent || (t == restart_type::transient && r.is_crash());
}
inline bool reported_end(restart_type t, const exit_reason& r) { return t == restart_type::permanent || r.is_crash(); }
// Whether OTP would write a shutdown_error for a child stopped with sd that ended with r.
bool shutdown_failed(const child_spec& spec, const exit_reason& r);

// The reports of one supervisor, published on the node's event bus.
struct sup_reporter {
  std::string path;
  int intensity = 0;
  std::int64_t period_s = 0;
  void report(event_kind k, const std::string& child, const pid& old_pid, const pid& new_pid, const exit_reason& r,
              int restarts) const;
};
shutdown_spec shutdown_of(const child_spec& spec);
// Restart intensity, OTP's algorithm: whole seconds of the node's clock. False: too many.
bool add_restart(std::deque<std::int64_t>& restarts, int intensity, std::chrono::seconds period);
}  // namespace detail

class supervisor final : public gen_server<supervisor> {
 public:
  struct which_q {};
  struct count_q {};
  struct start_child_q {
    child_spec spec;
  };
  struct terminate_child_q {
    std::string id;
  };
  struct restart_child_q {
    std::string id;
  };
  struct delete_child_q {
    std::string id;
  };
  struct get_spec_q {
    std::string id;
  };
  struct retry {
    std::string id;
    bool counted = true;       // a retry after a failed start counts against the intensity
    bool whole_group = false;  // after a backoff: start the strategy's whole group again
  };
  using handles = types<which_q, count_q, start_child_q, terminate_child_q, restart_child_q, delete_child_q, get_spec_q,
                        detail::sup_status_q, exit_signal, retry>;

  // path: where it sits in the tree ("" for a top supervisor: its name, label or pid).
  supervisor(supervisor_flags flags, std::vector<child_spec> children, std::string path = {});

  init_result init();
  void terminate(const exit_reason& r);
  std::vector<child_info> handle_call(const which_q&, const from&);
  child_counts handle_call(const count_q&, const from&);
  child_result handle_call(const start_child_q&, const from&);
  child_result handle_call(const terminate_child_q&, const from&);
  child_result handle_call(const restart_child_q&, const from&);
  child_result handle_call(const delete_child_q&, const from&);
  std::optional<child_spec> handle_call(const get_spec_q&, const from&);
  supervisor_status handle_call(const detail::sup_status_q&, const from&);
  void handle_info(const exit_signal& e);
  void handle_info(const retry& r);
  std::string format_status() const;

 private:
  struct child {
    child_spec spec;
    pid who;
    bool restarting = false;
    int consecutive = 0;  // restarts in a row, for the backoff
    std::chrono::steady_clock::time_point started_at{};
    std::optional<exit_reason> last_exit;
    std::deque<std::int64_t> restarts;  // its own restarts, newest first, for status
  };
  using iterator = std::vector<child>::iterator;
  iterator find(const std::string& id);
  iterator find(const pid& p);
  // Starts c; on failure returns the reason.
  std::optional<exit_reason> start(child& c);
  void shut_down(child& c);
  void terminate_all_reverse(iterator first, iterator last);
  bool add_restart();  // false: intensity reached
  void restart(iterator it);
  // Starts the children from `from` on that are not running (only `target` for one_for_one).
  void start_from(iterator from, const std::string& target);
  duration backoff_delay(child& c);
  void give_up(const child& offender);
  void note_restart(child& c);  // after a counted restart of c
  // A significant child ended for good: stops the supervisor if auto_shutdown says so.
  void significant_ended();

  supervisor_flags flags_;
  detail::sup_reporter reporter_;
  std::vector<child> children_;
  std::deque<std::int64_t> restarts_;  // seconds on the node's clock
  std::uint64_t jitter_state_ = 0x9e3779b97f4a7c15ull;
};

// Starts a supervisor (from a process) and its children, in order. A child that fails to start
// makes the whole start fail with {shutdown,{failed_to_start_child,Id,Reason}} after the
// children already started are stopped in reverse order.
start_result start_supervisor(supervisor_flags flags, std::vector<child_spec> children, const start_options& opts = {});
start_result start_supervisor_link(supervisor_flags flags, std::vector<child_spec> children,
                                   const start_options& opts = {});
// A child spec for a nested supervisor.
child_spec supervisor_child(std::string id, supervisor_flags flags, std::vector<child_spec> children);

std::vector<child_info> which_children(const server_ref& sup);
child_counts count_children(const server_ref& sup);
child_result start_child(const server_ref& sup, child_spec spec);
child_result terminate_child(const server_ref& sup, const std::string& id);
child_result restart_child(const server_ref& sup, const std::string& id);
child_result delete_child(const server_ref& sup, const std::string& id);
std::optional<child_spec> get_childspec(const server_ref& sup, const std::string& id);
// The status of a supervisor or dynamic supervisor (call it only on one: another server would
// crash with bad_call).
supervisor_status supervisor_status_of(const server_ref& sup, duration timeout = std::chrono::seconds(5));

}  // namespace grove
