// The debug console's command parser and dispatcher on arbitrary bytes, through the path a real
// client takes: each input is sent as-is over a loopback TCP connection to a console of one node
// (lines, CR, NUL, over-long lines, an unterminated last line), then the client half-closes and
// reads every answer until the node closes the connection. The node, its two consoles and its
// applications are started once and reused; each input must leave them working:
//   - the session ends (the node closes the connection) within 8 s;
//   - its output starts with the greeting, never reports dropped answers, never has a command
//     that failed with an unexpected exception (`error: failed: ...`), and every JSON line parses;
//   - afterwards a new session answers `apps` with both applications running.
// The node is a small tree with real targets for every command: application "shop" (registered
// top supervisor, one_for_one): GenServers counter and echo (registered), supervisor cache
// (one_for_all: reader registered, writer not), dynamic supervisor sessions (two children) and a
// body process ticker; application "jobs" (rest_for_one, intensity 1: two kills stop it): GenServer
// queue and body process beat; application "archive", never running.
//
// Nothing is excluded: kill, exit, terminate, delete and suspend may stop any process, an
// application or the session itself. After each input the harness resumes every GenServer and,
// if any process of the applications changed, stops what is left of them and starts them again,
// so inputs do not depend on each other.
//
// Bounds, so that one input stays fast (usually 5-30 ms with ASan; at most ~3 s): only the
// first 32 lines are sent (the rest of the input is dropped), and of those at most 1 that
// contains "stats" (each `stats` samples for 250 ms; later ones are dropped). The consoles run
// with small limits so that short inputs reach them: max_line 512, input_limit 2048,
// command_timeout 20 ms (a suspended supervisor makes `tree` wait that long per supervisor). An
// input that starts with "auth" goes to a second console that requires the token "fuzz-token"
// (auth_delay 1 ms). The client acknowledges what it reads at once (TCP_QUICKACK).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <grove/grove.hpp>
#include <nlohmann/json.hpp>

using namespace std::chrono_literals;

namespace {

constexpr std::size_t max_lines = 32;
constexpr int max_stats = 1;
constexpr auto session_deadline = 8s;

[[noreturn]] void fail(const std::string& what, std::string_view input, const std::string& output) {
  std::fprintf(stderr, "console_command_fuzz: %s\n-- input (%zu bytes) --\n%.*s\n-- output --\n%s\n", what.c_str(),
               input.size(), static_cast<int>(std::min<std::size_t>(input.size(), 2000)), input.data(),
               output.substr(0, 4000).c_str());
  std::abort();
}

class counter final : public grove::gen_server<counter> {
 public:
  using handles = grove::types<int>;
  int handle_call(const int& x, const grove::from&) { return n_ += x; }
  void handle_cast(const int& x) { n_ += x; }
  std::string format_status() const { return "counter = " + std::to_string(n_); }

 private:
  int n_ = 0;
};

class echo final : public grove::gen_server<echo> {
 public:
  using handles = grove::types<std::string>;
  std::string handle_call(const std::string& s, const grove::from&) { return s; }
};

grove::child_spec server(const std::string& id, bool registered,
                         grove::restart_type restart = grove::restart_type::permanent) {
  grove::child_spec s;
  s.id = id;
  s.restart = restart;
  s.shutdown = grove::shutdown_spec::after(200ms);
  s.start = [id, registered] {
    grove::start_options o;
    if (registered) o.name = id;
    o.spawn.label = id;
    if (id == "echo") return grove::start_link(std::make_unique<echo>(), o);
    return grove::start_link(std::make_unique<counter>(), o);
  };
  return s;
}

// A body process (not a GenServer): `state` and `suspend` refuse it.
grove::child_spec body(const std::string& id) {
  grove::child_spec s;
  s.id = id;
  s.shutdown = grove::shutdown_spec::brutal_kill();
  s.start = [id] {
    grove::spawn_options o;
    o.label = id;
    return grove::start_result::started(grove::spawn_link(
        [] {
          for (;;) grove::receive([](int) {});
        },
        o));
  };
  return s;
}

grove::node_options node_options() {
  grove::node_options o;
  o.schedulers = 2;
  o.name = "fuzz";
  return o;
}

grove::supervisor_flags flags(grove::strategy how, int intensity) {
  grove::supervisor_flags f;
  f.strategy = how;
  f.intensity = intensity;
  return f;
}

struct world {
  grove::node n{node_options()};
  std::mutex mu;
  grove::pid shop, jobs;             // under mu
  std::vector<grove::pid> baseline;  // under mu
  std::unique_ptr<grove::console> open, guarded;

  std::vector<grove::console_app> apps() {
    std::lock_guard lk(mu);
    return {{"shop", "permanent", shop}, {"jobs", "transient", jobs}, {"archive", "temporary", grove::pid()}};
  }

  std::size_t expected_processes() {
    std::lock_guard lk(mu);
    return baseline.size();
  }

  grove::console_options options() {
    grove::console_options o;
    o.address = "127.0.0.1:0";
    o.max_line = 512;
    o.input_limit = 2048;
    o.command_timeout = 20ms;
    o.auth_delay = 1ms;
    o.applications = [this] { return apps(); };
    return o;
  }

  world() {
    start_apps();
    open = std::make_unique<grove::console>(n, options());
    auto o = options();
    o.token = "fuzz-token";
    guarded = std::make_unique<grove::console>(n, o);
    std::string err;
    if (!open->start(err) || !guarded->start(err)) fail("console did not start: " + err, {}, {});
  }

  // In a process: every process but this one and console sessions, sorted.
  static std::vector<grove::pid> app_processes() {
    std::vector<grove::pid> out;
    for (auto& p : grove::this_node().processes()) {
      if (p == grove::self()) continue;
      if (auto i = grove::info(p); i && i->label != "console_session") out.push_back(p);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  void start_apps() {
    n.run([this] {
      grove::child_spec cache;
      cache.id = "cache";
      cache.type = grove::child_type::supervisor;
      cache.start = [] {
        return grove::start_supervisor_link(
            flags(grove::strategy::one_for_all, 1000),
            {server("reader", true), server("writer", false, grove::restart_type::transient)});
      };
      grove::start_options shop_opts;
      shop_opts.name = "shop";
      grove::dynamic_supervisor_flags sessions;
      sessions.intensity = 1000;
      auto s = grove::start_supervisor(flags(grove::strategy::one_for_one, 1000),
                                       {server("counter", true), server("echo", true), cache,
                                        grove::dynamic_supervisor_child("sessions", sessions), body("ticker")},
                                       shop_opts)
                   .value();
      for (auto& c : grove::supervisor_status_of(s).children) {
        if (c.id != "sessions") continue;
        for (const char* id : {"s1", "s2"}) {
          if (!grove::start_dynamic_child(c.who, server(id, false, grove::restart_type::temporary))) {
            fail("cannot start a dynamic child", {}, {});
          }
        }
      }
      grove::start_options jobs_opts;
      jobs_opts.spawn.label = "jobs";
      auto j = grove::start_supervisor(flags(grove::strategy::rest_for_one, 1), {server("queue", true), body("beat")},
                                       jobs_opts)
                   .value();
      std::lock_guard lk(mu);
      shop = s;
      jobs = j;
      baseline = app_processes();
    });
  }

  // Back to the state the applications started in.
  void restore() {
    const bool changed = n.run([this] {
      for (auto& p : grove::this_node().processes()) {  // what the input suspended
        auto i = grove::info(p);
        if (!i || !i->handler_form || i->label == "console_session") continue;
        try {
          grove::sys::resume(p, 500ms);
        } catch (const grove::call_error&) {
        }
      }
      const auto now = app_processes();
      std::lock_guard lk(mu);
      return now != baseline;
    });
    if (!changed) return;
    n.run([this] {
      grove::pid s, j;
      {
        std::lock_guard lk(mu);
        s = std::exchange(shop, grove::pid());
        j = std::exchange(jobs, grove::pid());
      }
      for (auto& top : {s, j}) {
        try {
          grove::stop(top, grove::exit_reason::shutdown(), 5s);
        } catch (const grove::call_error&) {  // already gone
        }
      }
      // Processes the input left outside the trees (none expected) are ended too.
      const auto deadline = std::chrono::steady_clock::now() + 5s;
      while (!app_processes().empty()) {
        if (std::chrono::steady_clock::now() > deadline) fail("the applications did not stop", {}, {});
        for (auto& p : app_processes()) grove::exit(p, grove::exit_reason::kill());
        grove::receive_for(1ms, [](int) {});
      }
    });
    start_apps();
  }
};

world& the_world() {
  static world* w = [] {
    auto* p = new world;
    // Stopped before LeakSanitizer's check at exit, which would not see what the fiber stacks hold.
    std::atexit([] { delete w; });
    return p;
  }();
  return *w;
}

// Sends `input` on a new connection to `port`, half-closes, and reads until the node closes.
// False if that takes longer than the deadline.
bool exchange(int port, std::string_view input, std::string& out) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail("cannot connect", input, {});
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  const auto deadline = std::chrono::steady_clock::now() + session_deadline;
  std::size_t sent = 0;
  bool writing = true;
  for (;;) {
    if (writing && sent == input.size()) {
      ::shutdown(fd, SHUT_WR);
      writing = false;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      ::close(fd);
      return false;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (writing ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    if (writing && (p.revents & POLLOUT)) {
      const ssize_t w = ::send(fd, input.data() + sent, input.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        sent += static_cast<std::size_t>(w);
      } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        writing = false;  // the node closed the session (quit): it reads no more
      }
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[65536];
      const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r > 0) {
        out.append(buf, static_cast<std::size_t>(r));
        // Acknowledged at once rather than after the delayed-ACK timer (40 ms): after the
        // half-close the session waits for that before each line (console_link::ask_confirm).
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
      } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        break;  // closed (or reset, after quit with input left unread)
      }
    }
  }
  ::close(fd);
  return true;
}

// The first max_lines lines, without the stats lines past max_stats.
std::string bounded(std::string_view in) {
  std::string out;
  std::size_t at = 0, lines = 0;
  int stats = 0;
  while (at < in.size() && lines < max_lines) {
    const auto nl = in.find('\n', at);
    const std::size_t end = nl == std::string_view::npos ? in.size() : nl + 1;
    const std::string_view line = in.substr(at, end - at);
    at = end;
    ++lines;
    if (line.find("stats") != std::string_view::npos && ++stats > max_stats) continue;
    out += line;
  }
  return out;
}

void check_output(std::string_view input, const std::string& out) {
  if (out.rfind("grove console on node fuzz", 0) != 0) fail("no greeting", input, out);
  if (out.find("answers: the client is not reading") != std::string::npos ||
      out.find("{\"dropped_answers\":") != std::string::npos) {
    fail("answers were dropped", input, out);
  }
  std::size_t at = 0;
  while (at < out.size()) {
    auto nl = out.find('\n', at);
    if (nl == std::string::npos) nl = out.size();
    std::string_view line(out.data() + at, nl - at);
    at = nl + 1;
    while (line.rfind("grove> ", 0) == 0) line.remove_prefix(7);
    if (line.rfind("error: failed: ", 0) == 0) fail("a command failed with an unexpected exception", input, out);
    if (line.empty() || line.front() != '{') continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail("a JSON line does not parse", input, out);
    if (j.contains("error") && j["error"].is_string() && j["error"].get<std::string>().rfind("failed: ", 0) == 0) {
      fail("a command failed with an unexpected exception", input, out);
    }
  }
}

// Whether `apps` answered a line for `app` with that status.
bool app_line(const std::string& out, const std::string& app, const std::string& status) {
  const auto at = out.find("\n" + app + " ");
  if (at == std::string::npos) return false;
  const auto end = out.find('\n', at + 1);
  return end != std::string::npos && end >= status.size() &&
         out.compare(end - status.size(), status.size(), status) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  world& w = the_world();
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  const std::string input = bounded(raw);
  const bool auth = raw.rfind("auth", 0) == 0;
  std::string out;
  if (!exchange(auth ? w.guarded->port() : w.open->port(), input, out)) {
    fail("the session did not end within 8 s", input, out);
  }
  check_output(input, out);
  // The node closes the connection once the session's process has ended; the I/O thread forgets
  // the session just after.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (w.open->session_count() + w.guarded->session_count() != 0) {
    if (std::chrono::steady_clock::now() > deadline) fail("a session is still counted after its end", input, out);
    ::usleep(100);
  }
  w.restore();
  std::string alive;
  if (!exchange(w.open->port(), "apps\n", alive) || !app_line(alive, "shop", "running") ||
      !app_line(alive, "jobs", "running") || !app_line(alive, "archive", "stopped")) {
    fail("the console or the applications are not back after the input", input, alive);
  }
  // Every session's process is over, to its last free (LeakSanitizer, which libFuzzer runs after
  // an input, does not see what a fiber stack holds), and the input left no other process.
  while (w.n.process_count() != w.expected_processes()) {
    if (std::chrono::steady_clock::now() > deadline + 5s) fail("a process outlived the input", input, alive);
    ::usleep(100);
  }
  return 0;
}
