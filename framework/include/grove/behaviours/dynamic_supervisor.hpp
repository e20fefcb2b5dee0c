// dynamic_supervisor: children started on demand, one_for_one only — Elixir's
// DynamicSupervisor, in place of OTP's simple_one_for_one. Children are known by pid; at the
// supervisor's shutdown they are all stopped at once (in parallel), each within its shutdown
// time. Extra start arguments: capture them in the spec's start function.
#pragma once

#include <deque>
#include <limits>
#include <vector>

#include <grove/behaviours/supervisor.hpp>

namespace grove {

struct dynamic_supervisor_flags {
  int intensity = 1;  // as supervisor_flags: OTP's default, 1 restart in 5 seconds
  std::chrono::seconds period{5};
  std::size_t max_children = std::numeric_limits<std::size_t>::max();
};

class dynamic_supervisor final : public gen_server<dynamic_supervisor> {
 public:
  struct start_q {
    child_spec spec;
  };
  struct terminate_q {
    pid who;
  };
  struct which_q {};
  struct count_q {};
  struct retry {
    std::uint64_t key;
  };
  using handles = types<start_q, terminate_q, which_q, count_q, detail::sup_status_q, exit_signal, retry>;

  explicit dynamic_supervisor(dynamic_supervisor_flags flags, std::string path = {})
      : flags_(flags), reporter_{std::move(path), flags.intensity, flags.period.count()} {}
  init_result init();
  void terminate(const exit_reason& r);
  child_result handle_call(const start_q& q, const from&);
  child_result handle_call(const terminate_q& q, const from&);
  std::vector<child_info> handle_call(const which_q&, const from&);
  supervisor_status handle_call(const detail::sup_status_q&, const from&);
  child_counts handle_call(const count_q&, const from&);
  void handle_info(const exit_signal& e);
  void handle_info(const retry& r);
  std::string format_status() const;

 private:
  struct child {
    child_spec spec;
    pid who;
    std::uint64_t key = 0;
    bool restarting = false;
    std::optional<exit_reason> last_exit;
  };
  bool add_restart();
  // Starts a restarting child again; on failure it stays restarting and is retried.
  void try_restart(std::vector<child>::iterator it);
  void give_up(const child& offender);
  // A dynamic child is reported by its spec's id, if it has one, else by its key.
  std::string id_of(const child& c) const;
  void stop_all();

  dynamic_supervisor_flags flags_;
  detail::sup_reporter reporter_;
  std::vector<child> children_;
  std::deque<std::int64_t> restarts_;
  std::uint64_t next_key_ = 1;
};

start_result start_dynamic_supervisor(dynamic_supervisor_flags flags = {}, const start_options& opts = {});
start_result start_dynamic_supervisor_link(dynamic_supervisor_flags flags = {}, const start_options& opts = {});
// Starts a child under a dynamic supervisor: its pid, or max_children / start_failed.
child_result start_dynamic_child(const server_ref& sup, child_spec spec);
// A child spec for a dynamic supervisor nested in a supervisor; opts.name (or opts.via)
// registers it, so code and the console can start children under it by name.
child_spec dynamic_supervisor_child(std::string id, dynamic_supervisor_flags flags, const start_options& opts = {});
child_result terminate_dynamic_child(const server_ref& sup, const pid& child);
std::vector<child_info> which_dynamic_children(const server_ref& sup);
child_counts count_dynamic_children(const server_ref& sup);

}  // namespace grove
