#include <grove/behaviours/command.hpp>

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

#include <grove/runtime/blocking.hpp>

namespace grove {

int signal_by_name(const std::string& name) {
  if (name.empty()) return 0;
  if (std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isdigit(c); })) {
    const int n = name.size() < 4 ? std::stoi(name) : 0;
    return n > 0 && n < NSIG ? n : 0;
  }
  std::string bare = name.rfind("SIG", 0) == 0 ? name.substr(3) : name;
  for (int sig = 1; sig < NSIG; ++sig) {
    const char* abbrev = sigabbrev_np(sig);
    if (abbrev && bare == abbrev) return sig;
  }
  return 0;
}

namespace {

// True if a TCP connection to host:port is accepted within 200 ms. Runs on the blocking pool.
bool accepts(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return false;
  bool ok = false;
  for (addrinfo* a = found; a && !ok; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 200) == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        ok = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
      }
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return ok;
}

class command_server final : public gen_server<command_server> {
 public:
  using handles = types<command_input, command_request, os_line, os_ready, os_input_closed, os_exited>;

  explicit command_server(command_options o) : o_(std::move(o)) {
    if (o_.lines) {
      o_.command.input = true;
      o_.command.stdout_to_owner = true;
    }
  }

  init_result init() {
    trap_exit(true);  // so that terminate runs when the supervisor shuts the child down
    try {
      proc_ = os_process::start(o_.command);
    } catch (const process_error& e) {
      return init_result::error(e.reason());
    }
    const bool want_line = !o_.command.ready_line.empty();
    const bool want_port = o_.ready_port.has_value();
    if (!want_line && !want_port) return init_result::ok();
    bool line_ok = !want_line, port_ok = !want_port;
    std::optional<exit_reason> ended;
    const auto deadline = now() + o_.start_timeout;
    while (!(line_ok && port_ok) && !ended) {
      if (!port_ok) {
        port_ok = blocking([host = o_.ready_host, port = *o_.ready_port] { return accepts(host, port); });
        if (port_ok && line_ok) break;
      }
      const auto left = deadline - now();
      if (left <= duration::zero()) break;
      const duration wait = port_ok ? left : std::min<duration>(left, std::chrono::milliseconds(50));
      receive_for(
          wait, [&](const os_ready&) { line_ok = true; }, [&](const os_exited& x) { ended = x.reason; },
          [&](const os_line& l) { take(l); });  // a chatty program must not block before it is ready
    }
    if (ended) return init_result::error(exit_reason::other("{exited_before_ready," + ended->str() + "}"));
    if (line_ok && port_ok) return init_result::ok();
    // Not ready in time: the program goes (and is reaped) before the start fails.
    proc_.kill();
    wait_exit();
    std::string what = !line_ok ? "line /" + o_.command.ready_line + "/" : "port " + std::to_string(*o_.ready_port);
    return init_result::error(exit_reason::other("{ready_timeout," + what + "}"));
  }

  void handle_cast(const command_input& in) {
    if (!proc_.write_line(in.line)) ++refused_;
  }

  deferred_t handle_call(const command_request& req, const from& f) {
    if (!o_.lines) {
      reply(f, detail::call_refused{exit_reason::other("{no_line_protocol," + proc_.log_key() + "}")});
    } else if (input_closed_) {
      reply(f, detail::call_refused{exit_reason::other("stdin_closed")});
    } else if (!proc_.write_line(req.line)) {
      reply(f, detail::call_refused{exit_reason::other("input_full")});
    } else {
      waiting_.push_back(f);
    }
    return deferred;
  }

  void handle_info(const os_line& l) { take(l); }

  void handle_info(const os_ready&) {}  // only init waits for it

  // The program closed its stdin: the calls waiting fail (a reply it writes after all goes
  // to deliver_to or the log), and so does any new one.
  void handle_info(const os_input_closed&) {
    input_closed_ = true;
    for (auto& f : waiting_) reply(f, detail::call_refused{exit_reason::other("stdin_closed")});
    waiting_.clear();
  }

  void handle_info(const os_exited& x) {
    exited_ = x;
    stop_after(x.reason);
  }

  void terminate(const exit_reason&) {
    if (!proc_.running()) return;
    proc_.stop();
    // No timeout of its own: the supervisor's shutdown time bounds this wait, then kills the
    // server, whose handle then SIGKILLs the program (shutdown_error, killed, as in OTP).
    wait_exit();
  }

  std::string format_status() const {
    std::string s = "command";
    for (auto& a : o_.command.argv) s += " " + a;
    s += proc_.running() ? ", os pid " + std::to_string(proc_.os_pid()) : ", exited";
    if (o_.lines) {
      s += ", " + std::to_string(lines_in_) + " lines in, " + std::to_string(waiting_.size()) + " calls waiting";
      if (input_closed_) s += ", stdin closed by the program";
    }
    if (refused_) s += ", " + std::to_string(refused_) + " input lines refused (stdin full or closed)";
    return s;
  }

 private:
  // Until the program has exited, taking its lines meanwhile: one that writes as it stops
  // must not block on a full pipe.
  void wait_exit() {
    bool done = false;
    while (!done) {
      receive([&](const os_exited&) { done = true; }, [&](const os_line& l) { take(l); });
    }
  }

  // A stdout line (line protocol): the oldest waiting call's reply, else deliver_to's, else
  // the log's.
  void take(const os_line& l) {
    proc_.took_lines();
    ++lines_in_;
    if (!waiting_.empty()) {
      reply(waiting_.front(), l.text);
      waiting_.pop_front();
      return;
    }
    if (!o_.deliver_to.empty()) {
      if (auto to = whereis(o_.deliver_to)) {
        const auto& key = proc_.log_key();
        try {
          send(*to, command_output{key.substr(key.rfind('/') + 1), l.text, self()});
          return;
        } catch (const mailbox_full&) {  // its bounded mailbox is full: the line goes to the log
        }
      }
    }
    proc_.log(os_stream::out, l.text, l.cut);
  }

  command_options o_;
  os_process proc_;
  std::deque<from> waiting_;
  std::uint64_t lines_in_ = 0, refused_ = 0;
  std::optional<os_exited> exited_;
  bool input_closed_ = false;
};

}  // namespace

namespace {
// The log's key: the child's path when a supervisor starts it (taken here, in the supervisor,
// as a nested supervisor takes its own), else the registered name, else os_process's default.
void name_the_log(command_options& o, const start_options& so) {
  std::string path = detail::take_next_spawn_path();
  if (o.command.log_key.empty()) o.command.log_key = !path.empty() ? path : so.name;
}
}  // namespace

start_result start_command(command_options o, const start_options& so) {
  name_the_log(o, so);
  return start(std::make_unique<command_server>(std::move(o)), so);
}

start_result start_command_link(command_options o, const start_options& so) {
  name_the_log(o, so);
  return start_link(std::make_unique<command_server>(std::move(o)), so);
}

}  // namespace grove
