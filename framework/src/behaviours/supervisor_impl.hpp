// The supervisor behaviour's implementation (private to src/behaviours): the supervisor class,
// and the rules supervisors, dynamic supervisors and pools share. The public API is
// grove/behaviours/supervisor.hpp.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include <grove/behaviours/supervisor.hpp>

namespace grove {

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
// How long stop_child waits for a killed child's down before it counts the child killed and
// moves on (a child that does not suspend cannot be ended; see stop_child).
inline constexpr duration kill_grace = std::chrono::seconds(1);
// Unlinks a stopped child and drops its exit signal; if `how` is noproc (it was dead when
// monitored), the exit signal's reason replaces it. OTP's unlink_flush.
void unlink_flush(const pid& child, exit_reason& how);
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
  // `restart`: the start is a restart (its progress event carries the restarts in the window).
  std::optional<exit_reason> start(child& c, bool restart = false);
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

}  // namespace grove
