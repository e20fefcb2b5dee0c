// The console's I/O thread: accepts connections, reads lines, sends queued output; all
// sockets non-blocking, one poll loop for every session.
#include <grove/observe/console.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>

#include "console_impl.hpp"

namespace grove {

// ---- console_output ---------------------------------------------------------------------------

namespace detail {

void console_output::flush_marker() {
  if (dropped_ == 0) return;
  if (json_) {
    buf_ += "{\"dropped\":" + std::to_string(dropped_) + "}\n";
  } else {
    buf_ += "-- dropped " + std::to_string(dropped_) + " events: the client fell behind\n";
  }
  dropped_ = 0;
}

void console_output::answer(const std::string& text) {
  {
    std::lock_guard lk(mu_);
    if (closing_) return;
    flush_marker();
    // A client that never reads cannot make the node hold unbounded answers either.
    if (buf_.size() + text.size() > 4 * limit_) {
      buf_ += "-- answer dropped: the client is not reading\n";
    } else {
      buf_ += text;
    }
  }
  wake_();
}

bool console_output::stream(const std::string& line) {
  {
    std::lock_guard lk(mu_);
    if (closing_) return false;
    if (buf_.size() + line.size() > limit_) {
      ++dropped_;
      ++dropped_total_;
      return false;
    }
    flush_marker();
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

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

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

  struct conn {
    int in_fd = -1, out_fd = -1;
    bool socket = true;
    std::string inbuf;
    bool discarding = false;  // inside an over-long line
    bool read_closed = false;
    std::shared_ptr<detail::console_output> out;
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
    cfg->authed = opts.token.empty() || !socket;  // the terminal is trusted
    cfg->color = tty;
    conn c;
    c.in_fd = in_fd;
    c.out_fd = out_fd;
    c.socket = socket;
    c.out = std::make_shared<detail::console_output>(opts.output_limit, [w = waker_] { w->wake(); });
    if (socket) set_nonblocking(in_fd);
    try {
      c.proc = n.spawn([out = c.out, cfg] { detail::run_console_session(out, cfg); },
                       {.stack_size = 256 * 1024, .label = "console_session"});
    } catch (const std::exception&) {  // the node is stopping
      if (socket) ::close(in_fd);
      return;
    }
    conns.push_back(std::move(c));
    ++count;
  }

  void accept_all() {
    for (;;) {
      int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      if (count.load() >= static_cast<std::size_t>(opts.max_sessions)) {
        const char msg[] = "error: too many console sessions\n";
        [[maybe_unused]] auto r = ::send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        ::close(fd);
        continue;
      }
      open_session(fd, fd, true, false);
    }
  }

  void read_from(conn& c) {
    char buf[4096];
    for (;;) {
      ssize_t r = ::read(c.in_fd, buf, sizeof buf);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        c.read_closed = true;
        send(c.proc, detail::console_closed{});
        return;
      }
      for (ssize_t i = 0; i < r; ++i) {
        const char ch = buf[i];
        if (ch == '\n') {
          if (!c.discarding) {
            if (!c.inbuf.empty() && c.inbuf.back() == '\r') c.inbuf.pop_back();
            send(c.proc, detail::console_line{std::move(c.inbuf)});
          }
          c.inbuf.clear();
          c.discarding = false;
        } else if (!c.discarding) {
          c.inbuf += ch;
          if (c.inbuf.size() > opts.max_line) {
            c.discarding = true;
            c.inbuf.clear();
            c.out->answer("error: line too long (the limit is " + std::to_string(opts.max_line) + " bytes)\n" +
                          (c.out->json() ? "" : "grove> "));
          }
        }
      }
      if (!c.socket) return;  // a terminal: one read per wake-up is plenty
    }
  }

  // False when the connection is gone.
  bool write_to(conn& c) {
    for (;;) {
      std::string chunk = c.out->peek(64 * 1024);
      if (chunk.empty()) return true;
      ssize_t w = c.socket ? ::send(c.out_fd, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT)
                           : ::write(c.out_fd, chunk.data(), chunk.size());
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (w <= 0) return false;
      c.out->consume(static_cast<std::size_t>(w));
    }
  }

  void end(std::list<conn>::iterator it) {
    if (!it->read_closed) send(it->proc, detail::console_closed{});
    it->out->discard();
    it->out->close();
    if (it->socket) ::close(it->in_fd);
    conns.erase(it);
    --count;
  }

  void loop() {
    std::vector<pollfd> fds;
    std::vector<std::pair<std::list<conn>::iterator, bool>> who;  // per pollfd: conn, is output
    while (!stopping.load()) {
      fds.clear();
      who.clear();
      fds.push_back({wake_fd, POLLIN, 0});
      who.emplace_back(conns.end(), false);
      if (listen_fd >= 0) {
        fds.push_back({listen_fd, POLLIN, 0});
        who.emplace_back(conns.end(), false);
      }
      for (auto it = conns.begin(); it != conns.end(); ++it) {
        const bool out = it->out->has_data();
        if (it->in_fd == it->out_fd) {
          fds.push_back({it->in_fd, static_cast<short>((it->read_closed ? 0 : POLLIN) | (out ? POLLOUT : 0)), 0});
          who.emplace_back(it, false);
        } else {
          if (!it->read_closed) {
            fds.push_back({it->in_fd, POLLIN, 0});
            who.emplace_back(it, false);
          }
          if (out) {
            fds.push_back({it->out_fd, POLLOUT, 0});
            who.emplace_back(it, true);
          }
        }
      }
      if (poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
      if (fds[0].revents) {
        std::uint64_t v;
        [[maybe_unused]] auto r = ::read(wake_fd, &v, sizeof v);
      }
      if (listen_fd >= 0 && fds[1].revents) accept_all();
      std::vector<std::list<conn>::iterator> gone;
      for (std::size_t i = listen_fd >= 0 ? 2 : 1; i < fds.size(); ++i) {
        auto [it, is_out] = who[i];
        const short ev = fds[i].revents;
        if (!ev) continue;
        if (!is_out && (ev & (POLLIN | POLLHUP | POLLERR)) && !it->read_closed) read_from(*it);
        if ((ev & POLLOUT) || (is_out && (ev & (POLLHUP | POLLERR)))) {
          if (!write_to(*it)) gone.push_back(it);
        }
      }
      // Flush what a session wrote since the poll, and end the sessions that are done.
      for (auto it = conns.begin(); it != conns.end(); ++it) {
        if (std::find(gone.begin(), gone.end(), it) != gone.end()) continue;
        if (it->out->has_data() && !write_to(*it)) {
          gone.push_back(it);
          continue;
        }
        const bool finished = it->out->closing() && !it->out->has_data();
        const bool client_gone = it->read_closed && it->socket;
        if (finished || client_gone) gone.push_back(it);
      }
      for (auto it : gone) end(it);
    }
  }

  void stop() {
    if (io.joinable()) {
      stopping.store(true);
      wake();
      io.join();
    }
    while (!conns.empty()) end(conns.begin());
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
