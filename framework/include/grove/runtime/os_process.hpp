// os_process: an operating-system process owned by a Grove process, as an Erlang port is.
//
// The owner (the process that calls os_process::start) gets a handle; the node's OS-process
// reactor — one thread per node with epoll — starts the program, reads its stdout and
// stderr line by line (never on a scheduler thread), writes its stdin, reaps it, and tells the
// owner how it ended with an os_exited message. Guarantees (docs/concepts/os-processes.md):
//  - nothing leaks: the program inherits only fds 0, 1 and 2; every exit is reaped (no zombie);
//    the handle's destructor SIGKILLs a program still running (its whole process group with
//    kill_group), so an owner killed by an exit signal leaves nothing behind; the program gets
//    SIGKILL when the node dies, even by kill -9 (PR_SET_PDEATHSIG);
//  - output is bounded: a line longer than max_line is cut; lines beyond lines_per_second are
//    dropped and counted, a marker says how many; each owner's log keeps its last log_lines;
//  - order: every line the program wrote before it exited reaches the log (or the owner)
//    before os_exited does.
// The owner's mailbox should be unbounded (the default): the reactor's messages are delivered
// like timer messages, which a full bounded mailbox drops. The handle must not outlive its node.
#pragma once

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <grove/runtime/exit_reason.hpp>
#include <grove/runtime/pid.hpp>

namespace grove {

class node;

struct os_limits {
  std::optional<std::uint64_t> address_space;  // RLIMIT_AS, bytes
  std::optional<std::uint64_t> open_files;     // RLIMIT_NOFILE
  std::optional<std::uint64_t> cpu_seconds;    // RLIMIT_CPU: SIGXCPU at the limit, SIGKILL a second later
};

enum class os_stream : unsigned char { out, err };
const char* to_string(os_stream s) noexcept;

struct os_command {
  std::vector<std::string> argv;           // argv[0] is looked up in PATH unless it holds a '/'
  std::map<std::string, std::string> env;  // added to (or replacing) the node's environment
  bool inherit_env = true;                 // false: the program sees only `env`
  std::string cwd;                         // empty: the node's
  std::string user, group;                 // run as (only when the node runs as root)
  os_limits limits;
  bool kill_group = true;                 // signals reach the program's whole process group
  int stop_signal = SIGTERM;              // what stop() sends
  bool input = false;                     // stdin is a pipe for write_line (else /dev/null)
  bool stdout_to_owner = false;           // stdout lines go to the owner as os_line, not to the log
  std::size_t max_line = 4096;            // longer lines are cut (bytes)
  std::size_t log_lines = 1000;           // lines the log keeps
  std::uint32_t lines_per_second = 1000;  // logged lines per second (and as a burst); more are dropped
  std::string ready_line;                 // an ECMAScript regex: the owner gets os_ready on the first match
  std::string stdout_level = "info", stderr_level = "warning";  // the level of their output events
  // The log's key, and the events' supervisor and child (split at its last '/'): by default the
  // owner's label, else its pid. The command behaviour sets the child's path ("app/sup/child").
  std::string log_key;
};

// Messages the owner receives.
struct os_line {  // a stdout line, with stdout_to_owner
  std::string text;
  bool cut = false;  // the line was longer than max_line; the rest was dropped
};
struct os_ready {  // the first line matching ready_line
  std::string line;
};
struct os_input_closed {};  // the program closed its stdin (with input): what was queued is dropped
struct os_exited {          // the program ended and was reaped
  exit_reason
      reason;       // normal (status 0), {exit_status,N} or {signal,SIGNAME} ({exit_status,unknown}: reaped elsewhere)
  int status = -1;  // the exit status, or -1
  int signal = 0;   // the signal that ended it, or 0
  int os_pid = 0;
};

// One line of a log.
struct os_log_line {
  std::uint64_t seq = 0;  // from 1, per log
  std::chrono::system_clock::time_point time;
  os_stream stream = os_stream::out;
  std::string text;  // a marker line ("-- ...") when `marker`
  bool marker = false;
};

// The reason an exit status maps to: normal, {exit_status,N} or {signal,SIGNAME}.
exit_reason os_exit_reason(int wait_status);

class os_process {
 public:
  // Starts c's program, owned by the calling process, and returns once it runs (exec done).
  // Throws process_error with {enoent,PROGRAM}, {eacces,PROGRAM}, {exec_failed,...},
  // {bad_user,...} etc. when it cannot; not_in_process outside a process.
  static os_process start(const os_command& c);

  os_process() = default;
  os_process(os_process&& o) noexcept = default;
  os_process& operator=(os_process&& o) noexcept;
  ~os_process();  // SIGKILL (to the group with kill_group) if still running

  explicit operator bool() const noexcept { return static_cast<bool>(s_); }
  int os_pid() const noexcept;
  // False once the reactor has reaped it (the owner's os_exited is on its way).
  bool running() const noexcept;
  // Sends sig (to the whole group with kill_group) if still running.
  void signal(int sig) const;
  void stop() const;  // signal(stop_signal)
  void kill() const;  // signal(SIGKILL)
  // Queues text + '\n' for stdin (input must be on). False when the queue (1 MiB) is full or
  // stdin is closed.
  bool write_line(std::string_view text) const;
  // With stdout_to_owner: the owner took n os_line messages. The reactor stops reading stdout
  // while 1,000 lines it sent are not taken, so a slow owner slows the program down, not the node.
  void took_lines(std::size_t n = 1) const;
  // Logs (and publishes) a line as if the program had written it, within the same rate: for
  // an owner that takes stdout itself and has nothing to do with a line.
  void log(os_stream stream, std::string text, bool cut = false) const;
  const std::string& log_key() const noexcept;

  struct state;  // os_process.cpp

 private:
  explicit os_process(std::shared_ptr<state> s) : s_(std::move(s)) {}
  std::shared_ptr<state> s_;
};

// The log of the OS processes started under `key` (kept across restarts), last `n` lines; a
// first marker line says how many earlier lines it no longer holds. Nothing when no OS process
// ever ran under that key.
std::optional<std::vector<os_log_line>> os_log(node& n, const std::string& key, std::size_t last = SIZE_MAX);

}  // namespace grove
