// The console's I/O thread: accepts connections, reads lines, sends queued output; all
// sockets non-blocking, one poll loop for every session, each getting a bounded turn. A
// session's input stops being read while it is behind (too many lines not yet run, or output
// the client has not read); a lost connection ends its session before its next line.
#include <grove/observe/console.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>

#include "console_impl.hpp"

namespace grove {

// ---- console_output ---------------------------------------------------------------------------

namespace detail {

void console_output::flush_markers() {
  if (dropped_answers_ != 0) {
    buf_ += json_ ? "{\"dropped_answers\":" + std::to_string(dropped_answers_) + "}\n"
                  : "-- dropped " + std::to_string(dropped_answers_) + " answers: the client is not reading\n";
    dropped_answers_ = 0;
  }
  if (dropped_ != 0) {
    buf_ += json_ ? "{\"dropped\":" + std::to_string(dropped_) + "}\n"
                  : "-- dropped " + std::to_string(dropped_) + " events: the client fell behind\n";
    dropped_ = 0;
  }
}

void console_output::answer(const std::string& text) {
  {
    std::lock_guard lk(mu_);
    if (closing_) return;
    // A client that never reads cannot make the node hold unbounded answers either; a dropped
    // one is only counted, so a flood of them holds nothing.
    if (buf_.size() - head_ + text.size() > 4 * limit_) {
      ++dropped_answers_;
      return;
    }
    flush_markers();
    buf_ += text;
  }
  wake_();
}

bool console_output::stream(const std::string& line) {
  {
    std::lock_guard lk(mu_);
    if (closing_) return false;
    if (buf_.size() - head_ + line.size() > limit_) {
      ++dropped_;
      return false;
    }
    flush_markers();
    buf_ += line;
  }
  wake_();
  return true;
}

void console_output::close() {
  {
    std::lock_guard lk(mu_);
    closing_ = true;
  }
  wake_();
}

void console_output::last_words(const std::string& text) {
  std::lock_guard lk(mu_);
  buf_ = text;
  head_ = 0;
  dropped_ = dropped_answers_ = 0;
  closing_ = true;
}

}  // namespace detail

// ---- addresses ---------------------------------------------------------------------------------

bool console_address::loopback() const noexcept {
  return what == kind::tcp && (host == "127.0.0.1" || host == "localhost" || host == "::1");
}

std::optional<console_address> parse_console_address(std::string_view text) {
  console_address a;
  if (text == "off") return a;
  if (text == "stdio") {
    a.what = console_address::kind::stdio;
    return a;
  }
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  if (host.front() == '[') {  // [::1]:7070
    if (host.size() < 3 || host.back() != ']') return std::nullopt;
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return std::nullopt;  // an IPv6 address needs brackets
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  int p = 0;
  for (char c : port) p = p * 10 + (c - '0');
  if (p > 65535) return std::nullopt;
  a.what = console_address::kind::tcp;
  a.host = std::string(host);
  a.port = p;
  return a;
}

std::string console_address_problem(std::string_view address, std::string_view token) {
  auto a = parse_console_address(address);
  if (!a) {
    return "console address '" + std::string(address) +
           "' is not off, stdio or host:port with a port up to 65535, like 127.0.0.1:7070";
  }
  if (a->what == console_address::kind::tcp && !a->loopback() && token.empty()) {
    return "console address " + std::string(address) +
           " is not loopback: set a token (node.console.token or GROVE_CONSOLE_TOKEN) to bind it";
  }
  return {};
}

// ---- the server -------------------------------------------------------------------------------

namespace {

using steady = std::chrono::steady_clock;

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// "10 min", "10 s" or "300 ms".
std::string duration_text(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms != 0 && ms % 60000 == 0) return std::to_string(ms / 60000) + " min";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

// Bytes sent on a TCP socket and not yet acknowledged by the peer (0 if unknown).
int unacknowledged(int fd) {
  int n = 0;
  if (ioctl(fd, TIOCOUTQ, &n) < 0) return 0;
  return n;
}

// Closes a socket so that the client can read what was sent before: closed with unread input,
// it would be reset at once. Draining is bounded: a client that keeps sending gets the reset.
void close_socket(int fd) {
  ::shutdown(fd, SHUT_WR);
  char sink[4096];
  for (int i = 0; i < 16 && ::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
  }
  ::close(fd);
}

// Wakes the I/O thread. Shared with the sessions' outputs, which their processes may still
// write after the console is gone: then it does nothing.
struct waker {
  std::mutex mu;
  int fd = -1;
  void wake() {
    std::lock_guard lk(mu);
    if (fd < 0) return;
    std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(fd, &one, sizeof one);
  }
  void close() {
    std::lock_guard lk(mu);
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

// Captured by a session's process body, so that it is destroyed with the process however the
// process ends (even killed before it ran): then the connection can be closed and forgotten.
struct ended_mark {
  std::shared_ptr<detail::console_output> out;
  std::shared_ptr<detail::console_link> link;
  ended_mark(std::shared_ptr<detail::console_output> o, std::shared_ptr<detail::console_link> l)
      : out(std::move(o)), link(std::move(l)) {}
  ended_mark(ended_mark&&) = default;
  ended_mark& operator=(ended_mark&&) = delete;
  ~ended_mark() {
    if (!link) return;  // moved from
    out->close();
    link->set_ended();
  }
};

}  // namespace

struct console::impl {
  node& n;
  console_options opts;
  int listen_fd = -1;
  int wake_fd = -1;
  std::shared_ptr<waker> waker_ = std::make_shared<waker>();
  int bound_port = 0;
  bool stdio = false;
  std::atomic<bool> stopping{false};
  std::thread io;

  // A session, from accept until its connection is closed, which waits for its process to end:
  // until then it counts against max_sessions.
  struct conn {
    int in_fd = -1, out_fd = -1;
    bool socket = true;
    std::string raw;                    // read, not yet split into lines
    std::string line;                   // the line being put together
    bool discarding = false;            // inside an over-long line
    bool paused = false;                // the session is behind: no lines for it until it is half caught up
    bool eof = false;                   // the client sends no more (or stdin ended)
    bool eof_sent = false;              // console_eof sent, after every line before it
    bool gone = false;                  // lost, timed out or ended by the console: nothing more is run
    bool confirming = false;            // the process waits for console_acked
    steady::time_point opened, active;  // accepted; the last byte read or written
    steady::time_point confirm_at;      // confirming: when to look at the socket again
    steady::duration confirm_step{};
    std::shared_ptr<detail::console_output> out;
    std::shared_ptr<detail::console_link> link;
    pid proc;
  };
  std::list<conn> conns;  // I/O thread only
  std::atomic<std::size_t> count{0};

  impl(node& node, console_options o) : n(node), opts(std::move(o)) {}

  void wake() const { waker_->wake(); }

  bool start(std::string& error) {
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    waker_->fd = wake_fd;
    if (opts.address == "stdio") {
      stdio = true;
    } else if (!listen_on(error)) {
      return false;
    }
    if (stdio) open_session(0, 1, false, isatty(1) != 0);
    io = std::thread([this] { loop(); });
    return true;
  }

  bool listen_on(std::string& error) {
    if (error = console_address_problem(opts.address, opts.token); !error.empty()) return false;
    const console_address address = *parse_console_address(opts.address);
    if (address.what != console_address::kind::tcp) {
      error = "console address '" + opts.address + "' is not host:port or stdio";
      return false;
    }
    const std::string& host = address.host;
    const std::string port = std::to_string(address.port);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* res = nullptr;
    if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res); rc != 0) {
      error = "console address " + opts.address + ": " + gai_strerror(rc);
      return false;
    }
    for (addrinfo* a = res; a; a = a->ai_next) {
      int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      int yes = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0) {
        listen_fd = fd;
        break;
      }
      error = "console address " + opts.address + ": " + std::strerror(errno);
      ::close(fd);
    }
    freeaddrinfo(res);
    if (listen_fd < 0) {
      if (error.empty()) error = "console address " + opts.address + ": cannot listen";
      return false;
    }
    set_nonblocking(listen_fd);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len);
    bound_port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                          : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return true;
  }

  void open_session(int in_fd, int out_fd, bool socket, bool tty) {
    auto cfg = std::make_shared<detail::console_session_config>();
    cfg->opts = opts;
    cfg->color = tty;
    conn c;
    c.in_fd = in_fd;
    c.out_fd = out_fd;
    c.socket = socket;
    c.opened = c.active = steady::now();
    c.out = std::make_shared<detail::console_output>(opts.output_limit, [w = waker_] { w->wake(); });
    const bool authed = opts.token.empty() || !socket;  // the terminal is trusted
    c.link = std::make_shared<detail::console_link>(opts.input_limit, authed, [w = waker_] { w->wake(); });
    if (socket) {
      int yes = 1;  // answers are whole lines: send them at once
      setsockopt(in_fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
      // A session that waits for events sends nothing for long: keepalive finds a client that
      // vanished (its machine gone, a dropped route) within about two minutes.
      int idle = 60, interval = 10, probes = 6;
      setsockopt(in_fd, SOL_SOCKET, SO_KEEPALIVE, &yes, sizeof yes);
      setsockopt(in_fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
      setsockopt(in_fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
      setsockopt(in_fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
    }
    try {
      c.proc = n.spawn([mark = ended_mark(c.out, c.link),
                        cfg]() mutable { detail::run_console_session(mark.out, mark.link, std::move(cfg)); },
                       {.stack_size = 256 * 1024, .label = "console_session"});
    } catch (const std::exception&) {  // the node is stopping
      if (socket) ::close(in_fd);
      return;
    }
    conns.push_back(std::move(c));
    count = conns.size();
  }

  void accept_some() {
    for (int i = 0; i < 64; ++i) {  // then the others get a turn
      int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;
      if (conns.size() >= static_cast<std::size_t>(std::max(opts.max_sessions, 0))) {
        const char msg[] = "error: too many console sessions\n";
        [[maybe_unused]] auto r = ::send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        close_socket(fd);
        continue;
      }
      open_session(fd, fd, true, false);
    }
  }

  // The connection is lost, or the console ends the session: its process runs nothing more
  // (it looks at the link before each line) and ends; the connection is closed then.
  void lose(conn& c) {
    if (c.gone) return;
    c.gone = true;
    c.link->set_gone();
    send(c.proc, detail::console_closed{});
  }

  // Ends a session for the client, telling it why.
  void end_with(conn& c, const std::string& why) {
    c.out->last_words(c.out->json() ? "{\"closing\":\"" + why + "\"}\n"
                                    : "error: " + why + "; closing the connection\n");
    lose(c);
    if (c.socket) write_to(c);  // best effort: a client that does not read will not read this
  }

  void emit(conn& c, std::string text, bool too_long) {
    c.link->queued(detail::console_link::cost(text));
    send(c.proc, detail::console_line{std::move(text), too_long});
    if (c.link->pending() >= c.link->limit()) c.paused = true;
  }

  // Splits what was read into lines for the session, while it is not too far behind.
  void deliver(conn& c) {
    if (c.gone) return;
    if (c.paused) {
      if (c.link->pending() > c.link->limit() / 2) return;
      c.paused = false;
    }
    std::size_t at = 0;
    while (at < c.raw.size() && !c.paused) {
      const auto nl = c.raw.find('\n', at);
      const std::size_t end = nl == std::string::npos ? c.raw.size() : nl;
      if (!c.discarding) {
        c.line.append(c.raw, at, end - at);
        if (c.line.size() > opts.max_line) {
          c.line.clear();
          c.discarding = true;
          emit(c, {}, true);
        }
      }
      at = nl == std::string::npos ? c.raw.size() : nl + 1;
      if (nl != std::string::npos) {
        if (!c.discarding) {
          if (!c.line.empty() && c.line.back() == '\r') c.line.pop_back();
          emit(c, std::move(c.line), false);
        }
        c.line.clear();
        c.discarding = false;
      }
    }
    c.raw.erase(0, at);
    if (c.eof && c.raw.empty() && !c.paused && !c.eof_sent) {
      if (!c.line.empty() && !c.discarding) {  // a last line without its '\n'
        if (c.line.back() == '\r') c.line.pop_back();
        emit(c, std::move(c.line), false);
      }
      c.line.clear();
      send(c.proc, detail::console_eof{});
      c.eof_sent = true;
    }
  }

  bool wants_input(const conn& c) const {
    return !c.gone && !c.eof && !c.paused && c.raw.empty() && c.out->buffered() < opts.output_limit;
  }

  void read_from(conn& c) {
    char buf[16 * 1024];  // one read per turn: every session gets its turn
    const ssize_t r = ::read(c.in_fd, buf, sizeof buf);
    if (r > 0) {
      c.raw.append(buf, static_cast<std::size_t>(r));
      c.active = steady::now();
    } else if (r == 0) {
      c.eof = true;
      c.link->set_input_ended();
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      lose(c);  // reset
      return;
    }
    deliver(c);
  }

  // False when the connection is gone.
  bool write_to(conn& c) {
    // A bounded share per turn; a terminal gets one write of what poll said fits, as its
    // descriptor is blocking.
    std::size_t budget = c.socket ? 256 * 1024 : 4096;
    while (budget > 0 && c.out->has_data()) {
      int err = 0;
      const long w = c.out->send_some(budget, [&](const char* data, std::size_t len) -> long {
        const ssize_t r =
            c.socket ? ::send(c.out_fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT) : ::write(c.out_fd, data, len);
        if (r < 0) err = errno;
        return r;
      });
      if (w > 0) {
        c.active = steady::now();
        budget -= std::min(budget, static_cast<std::size_t>(w));
        if (!c.socket) return true;
        continue;
      }
      if (err == EINTR) continue;
      if (w == 0 || err == EAGAIN || err == EWOULDBLOCK) return true;
      return false;
    }
    return true;
  }

  void close_fds(conn& c) {
    if (!c.socket) return;  // the terminal is not ours
    if (c.gone) {
      ::close(c.in_fd);
    } else {
      close_socket(c.in_fd);
    }
  }

  // Timeouts, confirmations and resumed input, for one open session. Returns when it next
  // needs a look (time_point::max(): only on an event).
  steady::time_point tend(conn& c, steady::time_point now) {
    auto next = steady::time_point::max();
    if (c.gone) return next;
    deliver(c);  // a paused session may have caught up
    if (c.socket && c.out->has_data() && !write_to(c)) {
      lose(c);
      return next;
    }
    if (c.socket) {
      if (!c.link->authed()) {
        const auto deadline = c.opened + opts.auth_timeout;
        if (now >= deadline) {
          end_with(c, "not authenticated within " + duration_text(opts.auth_timeout));
          return next;
        }
        next = std::min(next, deadline);
      }
      // Idle: nothing either way; but a follower with nothing queued is waiting, not idle.
      const bool waiting = c.link->streaming() && !c.out->has_data();
      if (opts.idle_timeout.count() > 0 && !waiting) {
        const auto deadline = c.active + opts.idle_timeout;
        if (now >= deadline) {
          end_with(c, "idle for " + duration_text(opts.idle_timeout));
          return next;
        }
        next = std::min(next, deadline);
      }
    }
    if (c.link->confirm_asked()) {
      if (!c.confirming) {
        c.confirming = true;
        c.confirm_step = std::chrono::milliseconds(1);
        c.confirm_at = now;
      }
      if (!c.socket || (!c.out->has_data() && unacknowledged(c.out_fd) == 0)) {
        c.confirming = false;
        c.link->confirm_done();
        send(c.proc, detail::console_acked{});
      } else {
        // No event says "acknowledged": look again soon, less often while it takes long.
        if (now >= c.confirm_at) {
          c.confirm_at = now + c.confirm_step;
          c.confirm_step = std::min<steady::duration>(c.confirm_step * 2, std::chrono::milliseconds(100));
        }
        next = std::min(next, c.confirm_at);
      }
    }
    return next;
  }

  void loop() {
    std::vector<pollfd> fds;
    std::vector<std::pair<conn*, bool>> who;  // per pollfd: its session, and whether it is stdout
    while (!stopping.load()) {
      auto now = steady::now();
      auto next = steady::time_point::max();
      for (auto it = conns.begin(); it != conns.end();) {
        conn& c = *it;
        next = std::min(next, tend(c, now));
        // Over once its process is, and the client has what it will get.
        if (c.link->ended() && (c.gone || !c.out->has_data())) {
          close_fds(c);
          it = conns.erase(it);
          count = conns.size();
          continue;
        }
        ++it;
      }
      fds.clear();
      who.clear();
      fds.push_back({wake_fd, POLLIN, 0});
      who.emplace_back(nullptr, false);
      if (listen_fd >= 0) {
        fds.push_back({listen_fd, POLLIN, 0});
        who.emplace_back(nullptr, false);
      }
      for (conn& c : conns) {
        if (c.gone) continue;
        const short in = wants_input(c) ? POLLIN : 0;
        const short out = c.out->has_data() ? POLLOUT : 0;
        if (c.socket) {  // always polled: a reset shows as POLLHUP or POLLERR
          fds.push_back({c.in_fd, static_cast<short>(in | out), 0});
          who.emplace_back(&c, false);
          continue;
        }
        if (in) {
          fds.push_back({c.in_fd, in, 0});
          who.emplace_back(&c, false);
        }
        if (out) {
          fds.push_back({c.out_fd, out, 0});
          who.emplace_back(&c, true);
        }
      }
      int timeout = -1;
      if (next != steady::time_point::max()) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(next - steady::now()).count();
        timeout = static_cast<int>(std::clamp<long long>(left, 0, 60'000));
      }
      if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) break;
      if (fds[0].revents) {
        std::uint64_t v;
        [[maybe_unused]] auto r = ::read(wake_fd, &v, sizeof v);
      }
      if (listen_fd >= 0 && fds[1].revents) accept_some();
      for (std::size_t i = listen_fd >= 0 ? 2 : 1; i < fds.size(); ++i) {
        auto [c, is_stdout] = who[i];
        const short ev = fds[i].revents;
        if (!ev || c->gone) continue;
        if (c->socket) {
          if (ev & (POLLERR | POLLHUP)) {
            lose(*c);
            continue;
          }
          if (ev & POLLIN) read_from(*c);
          if ((ev & POLLOUT) && !c->gone && !write_to(*c)) lose(*c);
        } else if (!is_stdout) {
          if (ev & (POLLIN | POLLHUP | POLLERR)) read_from(*c);  // a pipe's end shows as POLLHUP
        } else if ((ev & (POLLERR | POLLHUP)) || !write_to(*c)) {
          lose(*c);
        }
      }
    }
  }

  void stop() {
    if (io.joinable()) {
      stopping.store(true);
      wake();
      io.join();
    }
    for (conn& c : conns) {
      lose(c);
      close_fds(c);
    }
    conns.clear();
    count = 0;
    if (listen_fd >= 0) ::close(listen_fd);
    waker_->close();  // closes wake_fd
    listen_fd = wake_fd = -1;
  }
};

console::console(node& n, console_options opts) : impl_(std::make_unique<impl>(n, std::move(opts))) {}

console::~console() { impl_->stop(); }

bool console::start(std::string& error) { return impl_->start(error); }

int console::port() const noexcept { return impl_->bound_port; }

std::size_t console::session_count() const { return impl_->count.load(); }

}  // namespace grove
