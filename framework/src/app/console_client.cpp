// `grove console [ADDR]` (console_client.hpp). One thread: poll() on the socket and stdin. On a
// terminal libedit's callback interface edits the line, so output from the node (answers and
// streamed events) is printed above it and the prompt is drawn again; from a pipe, each line is
// sent once the previous one is answered.
#include "console_client.hpp"

#include <grove/observe/console.hpp>

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <editline/readline.h>

namespace grove::detail {

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// The node sends its prompt after every answer (in text mode); the client shows its own.
constexpr std::string_view server_prompt = "grove> ";
// Commands that talk to a process time out on the node after 2 s, but `tree` makes a call per
// supervisor: past this the node is not answering.
constexpr auto answer_deadline = 15s;
constexpr auto connect_deadline = 5s;
constexpr auto quit_deadline = 2s;  // for the node to close the session after `quit`

void complain(const std::string& what) { std::fprintf(stderr, "grove console: %s\n", what.c_str()); }

int millis_until(steady::time_point t) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t - steady::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

std::vector<std::string> words_of(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

struct endpoint {
  std::string host, port;
};

std::optional<endpoint> parse_endpoint(const std::string& address) {
  auto a = parse_console_address(address);
  if (!a || a->what != console_address::kind::tcp || a->port == 0) return std::nullopt;
  return endpoint{a->host, std::to_string(a->port)};
}

// A connected (blocking) socket, or -1 with `error` set.
int connect_to(const endpoint& ep, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(ep.host.c_str(), ep.port.c_str(), &hints, &res); rc != 0) {
    error = gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a && fd < 0; a = a->ai_next) {
    const int s = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (s < 0) {
      error = std::strerror(errno);
      continue;
    }
    int rc = ::connect(s, a->ai_addr, a->ai_addrlen);
    if (rc < 0 && errno == EINPROGRESS) {  // a remote host that drops packets must not hang us
      pollfd p{s, POLLOUT, 0};
      rc = poll(&p, 1, static_cast<int>(std::chrono::milliseconds(connect_deadline).count()));
      if (rc == 0) {
        errno = ETIMEDOUT;
        rc = -1;
      } else if (rc > 0) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
        errno = err;
        rc = err ? -1 : 0;
      }
    }
    if (rc == 0) {
      fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
      fd = s;
    } else {
      error = std::strerror(errno);
      ::close(s);
    }
  }
  freeaddrinfo(res);
  return fd;
}

// Takes the first complete line out of buf (without its '\n'); false if there is none yet. The
// one line splitter of the client, for the node's output and for stdin.
bool take_line(std::string& buf, std::string& line) {
  const auto nl = buf.find('\n');
  if (nl == std::string::npos) return false;
  line.assign(buf, 0, nl);
  buf.erase(0, nl + 1);
  return true;
}

// The node's output as lines and prompts. A prompt is only ever at the start of a line, and
// lines always end with '\n', so a partial line waits for the rest of it.
class output_parser {
 public:
  struct item {
    bool prompt = false;
    std::string line;  // without its '\n'
  };

  void feed(const char* data, std::size_t n) { buf_.append(data, n); }

  std::optional<item> next() {
    if (buf_.starts_with(server_prompt)) {
      buf_.erase(0, server_prompt.size());
      return item{true, {}};
    }
    if (buf_.size() < server_prompt.size() && server_prompt.starts_with(buf_)) return std::nullopt;  // maybe one
    item it;
    if (!take_line(buf_, it.line)) return std::nullopt;
    return it;
  }

  // What is left when the connection closes.
  std::string rest() { return std::exchange(buf_, {}); }

 private:
  std::string buf_;
};

class client {
 public:
  client(int fd, bool terminal) : fd_(fd), terminal_(terminal) {}
  ~client() { ::close(fd_); }
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  int run() { return terminal_ ? run_terminal() : run_script(); }

 private:
  // What ends the answer to the line just sent (script mode).
  enum class expect {
    nothing,
    prompt,       // text mode: the node's prompt
    json_answer,  // JSON mode (no prompts): a line {"ok":...}
    json_on,      // `json on` in text mode: the prompt if it failed, else its answer line
  };
  enum class waited { answered, closed, timed_out };

  // ---- both modes ----

  // What the client sends by itself first (their success lines are not shown); how many lines.
  int hello() {
    int sent = 0;
    if (isatty(1)) {
      send_line("color on");
      hide_once_.insert("color on");
      ++sent;
    }
    if (const char* token = std::getenv("GROVE_CONSOLE_TOKEN"); token && *token) {
      send_line(std::string("auth ") + token);
      hide_once_.insert("authenticated");
      ++sent;
    }
    return sent;
  }

  void send_line(const std::string& line) {
    const std::string data = line + "\n";
    std::size_t sent = 0;
    while (sent < data.size() && !closed_) {
      const ssize_t w = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        closed_ = true;
        break;
      }
      sent += static_cast<std::size_t>(w);
    }
  }

  // Reads what the node sent; its complete lines are appended to `lines`.
  void read_socket(std::vector<std::string>& lines) {
    char buf[64 * 1024];
    ssize_t r;
    do {
      r = ::read(fd_, buf, sizeof buf);
    } while (r < 0 && errno == EINTR);
    if (r > 0) {
      parser_.feed(buf, static_cast<std::size_t>(r));
    } else {
      closed_ = true;
    }
    while (auto it = parser_.next()) on_item(*it, lines);
    if (closed_) {
      if (std::string rest = parser_.rest(); !rest.empty() && rest != server_prompt) lines.push_back(rest);
    }
  }

  void on_item(const output_parser::item& it, std::vector<std::string>& lines) {
    if (it.prompt) {
      greeted_ = true;
      if (expect_ == expect::prompt || expect_ == expect::json_on) answered_ = true;
      return;
    }
    const std::string& line = it.line;
    if (greeted_ &&
        (line.starts_with("error: ") || line.starts_with("\x1b[31merror: ") || line.starts_with(R"({"ok":false)"))) {
      any_error_ = true;
    }
    // An over-long line is refused by the node's I/O thread, with no prompt.
    if (line.starts_with("error: line too long")) answered_ = true;
    if (expect_ == expect::json_answer && line.starts_with(R"({"ok":)")) answered_ = true;
    if (expect_ == expect::json_on && (line == "json on" || line.starts_with(R"({"ok":true,"command":"json")"))) {
      answered_ = true;
      json_ = true;
    }
    if (auto h = hide_once_.find(line); h != hide_once_.end()) {
      hide_once_.erase(h);
      return;
    }
    if (!greeted_ && !terminal_ && line.starts_with("grove console on node ")) return;  // a script wants answers
    lines.push_back(line);
  }

  static void print(const std::vector<std::string>& lines) {
    for (auto& l : lines) std::fprintf(stdout, "%s\n", l.c_str());
    std::fflush(stdout);
  }

  // ---- from a pipe ----

  int run_script() {
    if (wait_for(expect::prompt) != waited::answered) {  // the greeting and its prompt
      complain(closed_ ? "the node closed the connection before the session started" : "the node does not answer");
      return 1;
    }
    for (int n = hello(); n > 0; --n) {
      if (wait_for(expect::prompt) != waited::answered) break;
    }
    hide_once_.clear();  // a failed `auth` showed its error instead: later answers are the user's
    std::string line;
    while (!closed_ && next_input_line(line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto words = words_of(line);
      std::erase(words, std::string("--json"));
      if (words.empty()) continue;  // no answer at all in JSON mode
      const bool quit = words[0] == "quit" || (words[0] == "exit" && words.size() == 1);
      expect e = json_ ? expect::json_answer : expect::prompt;
      if (words[0] == "json" && words.size() == 2) {
        if (!json_ && words[1] == "on") e = expect::json_on;
        if (json_ && words[1] == "off") {
          e = expect::prompt;  // its JSON answer, then a prompt
          json_ = false;
        }
      }
      send_line(line);
      if (quit) e = expect::nothing;  // the node closes the session
      const waited w = wait_for(e, quit ? quit_deadline : answer_deadline);
      if (w == waited::timed_out && !quit) {
        complain("no answer to '" + line + "' within " + std::to_string(answer_deadline.count()) + " s");
        return 1;
      }
      if (quit) return any_error_ ? 1 : 0;
    }
    if (closed_) complain("the node closed the connection");
    return any_error_ ? 1 : 0;  // a script learns that a command failed
  }

  waited wait_for(expect e, std::chrono::milliseconds limit = answer_deadline) {
    expect_ = e;
    answered_ = false;
    const auto deadline = steady::now() + limit;
    std::vector<std::string> lines;
    while (!answered_ && !closed_) {
      pollfd p{fd_, POLLIN, 0};
      const int rc = poll(&p, 1, millis_until(deadline));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) break;
      lines.clear();
      read_socket(lines);
      print(lines);
    }
    expect_ = expect::nothing;
    return answered_ ? waited::answered : closed_ ? waited::closed : waited::timed_out;
  }

  // The next line of stdin (false at its end), printing what the node streams meanwhile.
  bool next_input_line(std::string& line) {
    std::vector<std::string> lines;
    for (;;) {
      if (take_line(in_, line)) return true;
      if (in_eof_) {
        line = std::exchange(in_, {});
        return !line.empty();
      }
      pollfd p[2] = {{0, POLLIN, 0}, {fd_, POLLIN, 0}};
      if (poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      if (p[1].revents) {
        lines.clear();
        read_socket(lines);
        print(lines);
        if (closed_) return false;
      }
      if (p[0].revents) {
        char buf[4096];
        const ssize_t r = ::read(0, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
          in_eof_ = true;
        } else {
          in_.append(buf, static_cast<std::size_t>(r));
        }
      }
    }
  }

  // ---- on a terminal ----

  static inline client* current_ = nullptr;  // for libedit's line callback

  static std::string history_file() {
    const char* home = std::getenv("HOME");
    return home && *home ? std::string(home) + "/.grove_console_history" : std::string();
  }

  int run_terminal() {
    const std::string history = history_file();
    rl_readline_name = "grove";
    using_history();
    stifle_history(1000);
    if (!history.empty()) read_history(history.c_str());  // best effort: a first run has none
    hello();
    current_ = this;
    install_line_handler();
    std::optional<steady::time_point> quit_by;
    std::vector<std::string> lines;
    while (!done_ && !closed_) {
      if (quitting_ && !quit_by) quit_by = steady::now() + quit_deadline;
      pollfd p[2] = {{0, POLLIN, 0}, {fd_, POLLIN, 0}};
      const int rc = poll(quitting_ ? p + 1 : p, quitting_ ? 1 : 2, quit_by ? millis_until(*quit_by) : -1);
      if (rc < 0 && errno != EINTR) break;
      if (rc == 0) break;                        // quit, and the node did not close the session in time
      const bool from_node = p[1].revents != 0;  // before on_line may set quitting_
      if (!quitting_ && p[0].revents) {
        rl_callback_read_char();
        // libedit leaves its unbuffered (one key at a time) mode once a line is read.
        if (std::exchange(line_read_, false) && !done_ && !quitting_) install_line_handler();
      }
      if (from_node) {
        lines.clear();
        read_socket(lines);
        print_above(lines);
      }
    }
    if (closed_ && !quitting_) print_above({"grove console: the node closed the connection"});
    rl_callback_handler_remove();
    current_ = nullptr;
    if (!closed_ || !quitting_) {
      std::fputs("\r\x1b[K", stdout);  // the prompt line
      std::fflush(stdout);
    }
    if (!history.empty()) write_history(history.c_str());
    return 0;
  }

  static void install_line_handler() {
    rl_callback_handler_install(std::string(server_prompt).c_str(), [](char* line) { current_->on_line(line); });
  }

  // Output arrives at any time: erase the prompt line, print, and let libedit draw the prompt
  // and the line being edited again below.
  void print_above(const std::vector<std::string>& lines) {
    if (lines.empty()) return;
    if (!quitting_) std::fputs("\r\x1b[K", stdout);
    print(lines);
    if (!quitting_ && !closed_ && !done_) rl_forced_update_display();
  }

  void on_line(char* line) {
    line_read_ = true;
    if (!line) {  // Ctrl-D
      std::fputs("\n", stdout);
      done_ = true;
      return;
    }
    const std::string text = line;
    std::free(line);
    auto words = words_of(text);
    if (!words.empty()) add_history(text.c_str());
    send_line(text);
    if (!words.empty() && (words[0] == "quit" || (words[0] == "exit" && words.size() == 1))) quitting_ = true;
  }

  int fd_;
  bool terminal_;
  output_parser parser_;
  bool closed_ = false;   // the connection is gone
  bool greeted_ = false;  // the first prompt (after the greeting) arrived
  bool json_ = false;     // the session answers in JSON lines, with no prompt
  expect expect_ = expect::nothing;
  bool answered_ = false;
  bool any_error_ = false;  // an answer was an error (a script's exit code says so)
  std::multiset<std::string> hide_once_;
  std::string in_;
  bool in_eof_ = false;
  bool done_ = false;       // Ctrl-D
  bool line_read_ = false;  // libedit handed over a line
  bool quitting_ = false;   // `quit` sent: wait for the node to close
};

}  // namespace

int run_console_client(const std::string& address) {
  const auto ep = parse_endpoint(address);
  if (!ep) {
    complain("'" + address + "' is not host:port (like 127.0.0.1:7070 or [::1]:7070)");
    return 2;
  }
  std::string error;
  const int fd = connect_to(*ep, error);
  if (fd < 0) {
    complain("cannot connect to " + address + ": " + error + " (is the node running with its console on?)");
    return 1;
  }
  client c(fd, isatty(0) != 0);
  return c.run();
}

}  // namespace grove::detail
