// OS processes as children (issue 15), with real programs: sh, sleep, head, yes, python3.
// Every wait is on a message, a monitor, or a condition with a deadline.
#include <dirent.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <grove/app/kinds.hpp>
#include <grove/behaviours/command.hpp>
#include <grove/behaviours/supervisor.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/events.hpp>
#include <grove/runtime/os_process.hpp>

#include "../runtime/support.hpp"

using namespace grove_test;
using grove::exit_reason;

namespace {

grove::command_options sh(const std::string& script) {
  grove::command_options o;
  o.command.argv = {"sh", "-c", script};
  return o;
}

// How a command ends (linked at its start, so that even a program that ends at once is seen).
exit_reason end_of(grove::command_options o) {
  grove::trap_exit(true);
  auto started = grove::start_command_link(std::move(o));
  REQUIRE(started);
  auto x = grove::receive_for(
      10s, grove::when<grove::exit_signal>([&](const grove::exit_signal& e) { return e.from == started.pid(); },
                                           [](const grove::exit_signal& e) { return e.reason; }));
  REQUIRE(x);
  return *x;
}

// /proc/PID's state letter ('Z' for a zombie), or 0 when there is no such process.
char proc_state(int os_pid) {
  std::ifstream f("/proc/" + std::to_string(os_pid) + "/stat");
  std::string all;
  if (!std::getline(f, all)) return 0;
  auto close = all.rfind(')');
  return close == std::string::npos || close + 2 >= all.size() ? 0 : all[close + 2];
}
bool gone(int os_pid) {
  const char s = proc_state(os_pid);
  return s == 0 || s == 'Z' || s == 'X';
}

// Children of this OS process, by /proc (pid, state).
std::vector<std::pair<int, char>> my_children() {
  std::vector<std::pair<int, char>> out;
  const std::string me = std::to_string(getpid());
  DIR* d = opendir("/proc");
  while (dirent* e = d ? readdir(d) : nullptr) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string all;
    if (!std::getline(f, all)) continue;
    auto close = all.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(all.substr(close + 2));
    char state = 0;
    std::string ppid;
    rest >> state >> ppid;
    if (ppid == me) out.emplace_back(std::stoi(e->d_name), state);
  }
  if (d) closedir(d);
  return out;
}

int os_pid_of(const grove::server_ref& server) {
  const auto st = grove::sys::get_state(server);
  const auto at = st.find("os pid ");
  REQUIRE(at != std::string::npos);
  return std::stoi(st.substr(at + 7));
}

std::vector<std::string> log_texts(const std::string& key) {
  std::vector<std::string> out;
  if (auto l = grove::os_log(grove::this_node(), key)) {
    for (auto& line : *l) out.push_back(line.text);
  }
  return out;
}

// A subscription read event by event: the next event of kind k for child `id`, within
// `limit`; the events after it stay for the next look.
struct event_reader {
  std::shared_ptr<grove::subscription> sub = grove::events().subscribe(8192, grove::self());
  std::deque<grove::event> pending;

  std::optional<grove::event> next(grove::event_kind k, const std::string& id, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      while (!pending.empty()) {
        grove::event e = std::move(pending.front());
        pending.pop_front();
        if (e.kind == k && e.child == id) return e;
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      for (auto& e : sub->take()) pending.push_back(std::move(e));
      if (pending.empty()) grove::receive_for(50ms, [](grove::subscription::ready) {});
    }
  }
};

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

bool port_accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// ASan keeps freed blocks in quarantine (up to 256 MB): a peak RSS there says nothing of a bound.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool rss_is_meaningful = false;
#else
constexpr bool rss_is_meaningful = true;
#endif

std::size_t peak_rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

struct got_output {
  std::string line;
};

}  // namespace

TEST_CASE("an exit status, an exit by a signal and exit 0 become the documented reasons", "[command]") {
  grove::node n;
  n.run([] {
    CHECK(end_of(sh("exit 0")) == exit_reason::normal());
    CHECK(end_of(sh("exit 3")) == exit_reason::other("{exit_status,3}"));
    CHECK(end_of(sh("kill -SEGV $$")) == exit_reason::other("{signal,SIGSEGV}"));
    CHECK(end_of(sh("kill -TERM $$")) == exit_reason::other("{signal,SIGTERM}"));
  });
}

TEST_CASE("a program that cannot start fails the start with a reason that says why", "[command]") {
  grove::node n;
  n.run([] {
    grove::command_options o;
    o.command.argv = {"grove-no-such-program"};
    auto r = grove::start_command(o);
    CHECK_FALSE(r);
    CHECK(r.reason() == exit_reason::other("{enoent,grove-no-such-program}"));
    o = sh("true");
    o.command.cwd = "/grove/no/such/dir";
    r = grove::start_command(o);
    CHECK(r.reason() == exit_reason::other("{enoent,chdir}"));
    char text[] = "/tmp/grove-not-a-program-XXXXXX";  // not executable, even by root
    const int fd = mkstemp(text);
    REQUIRE(fd >= 0);
    close(fd);
    o.command.argv = {text};
    o.command.cwd.clear();
    CHECK(grove::start_command(o).reason() == exit_reason::other(std::string("{eacces,") + text + "}"));
    unlink(text);
    o.command.argv.clear();
    CHECK(grove::start_command(o).reason() == exit_reason::other("{bad_command,empty_argv}"));
  });
}

TEST_CASE("a crashing command is restarted with its backoff, as any child", "[command]") {
  grove::node n;
  n.run([] {
    event_reader events;
    grove::child_spec c;
    c.id = "crashy";
    auto o = sh("echo starting; exit 7");
    c.start = [o] { return grove::start_command_link(o); };
    c.backoff = grove::backoff_spec{.min_delay = 100ms, .max_delay = 1s, .multiplier = 2.0};
    auto sup = grove::start_supervisor({.intensity = 100, .period = 10s}, {c}).value();
    REQUIRE(events.next(grove::event_kind::progress, "crashy"));             // the first start
    std::vector<std::chrono::system_clock::time_point> terminated, started;  // when the supervisor said so
    while (started.size() < 3) {
      auto t = events.next(grove::event_kind::child_terminated, "crashy");
      REQUIRE(t);
      CHECK(t->reason == exit_reason::other("{exit_status,7}"));
      terminated.push_back(t->time);
      auto s = events.next(grove::event_kind::progress, "crashy");
      REQUIRE(s);
      started.push_back(s->time);
    }
    // Each restart waited at least its backoff: 100 ms, then 200 ms, then 400 ms.
    CHECK(started[0] - terminated[0] >= 100ms);
    CHECK(started[1] - terminated[1] >= 200ms);
    CHECK(started[2] - terminated[2] >= 400ms);
    grove::stop(sup, exit_reason::shutdown());
  });
}

TEST_CASE("a program that ignores SIGTERM is killed after its shutdown time: shutdown_error, killed", "[command]") {
  grove::node n;
  n.run([] {
    event_reader events;
    grove::child_spec c;
    c.id = "stubborn";
    auto o = sh("trap '' TERM; echo armed; while :; do sleep 1; done");
    o.command.ready_line = "^armed$";
    c.start = [o] { return grove::start_command_link(o, {.name = "stubborn"}); };
    c.shutdown = grove::shutdown_spec::after(300ms);
    auto sup = grove::start_supervisor({}, {c}).value();
    const int os_pid = os_pid_of("stubborn");
    const auto t0 = std::chrono::steady_clock::now();
    grove::terminate_child(sup, "stubborn");
    auto e = events.next(grove::event_kind::shutdown_error, "stubborn");
    REQUIRE(e);
    CHECK(e->reason == exit_reason::killed());
    CHECK(std::chrono::steady_clock::now() - t0 >= 300ms);
    CHECK(spin_until([&] { return gone(os_pid); }));
    grove::stop(sup, exit_reason::shutdown());
  });
}

TEST_CASE("a program that stops on SIGTERM ends with shutdown, no error reported", "[command]") {
  grove::node n;
  n.run([] {
    event_reader events;
    grove::child_spec c;
    c.id = "polite";
    auto o = sh("exec sleep 1000");
    c.start = [o] { return grove::start_command_link(o, {.name = "polite"}); };
    auto sup = grove::start_supervisor({}, {c}).value();
    const int os_pid = os_pid_of("polite");
    auto m = grove::monitor(*grove::whereis("polite"));
    grove::terminate_child(sup, "polite");
    CHECK(await_down(m).reason == exit_reason::shutdown());
    CHECK(gone(os_pid));  // reaped before the owner ended
    for (auto& ev : events.sub->take()) CHECK(ev.kind != grove::event_kind::shutdown_error);
    grove::stop(sup, exit_reason::shutdown());
  });
}

TEST_CASE("with kill_group, a program's grandchildren are gone after its shutdown", "[command]") {
  grove::node n;
  n.run([] {
    auto o = sh("sleep 1000 & echo $!; wait");
    o.command.ready_line = "^[0-9]+$";
    o.command.log_key = "test/forker";
    auto started = grove::start_command_link(o);
    REQUIRE(started);
    auto lines = log_texts("test/forker");
    REQUIRE(lines.size() == 2);  // the start marker, the grandchild's pid
    const int grandchild = std::stoi(lines[1]);
    CHECK_FALSE(gone(grandchild));
    grove::trap_exit(true);
    grove::stop(started.pid(), exit_reason::shutdown());
    CHECK(spin_until([&] { return gone(grandchild); }));
  });
}

TEST_CASE("no zombie is left after 1,000 restarts", "[command]") {
  grove::node n;
  n.run([] {
    event_reader events;
    grove::child_spec c;
    c.id = "flapping";
    grove::command_options o;
    o.command.argv = {"false"};
    c.start = [o] { return grove::start_command_link(o); };
    auto sup = grove::start_supervisor({.intensity = 1000000, .period = 1s}, {c}).value();
    int restarts = 0;
    while (restarts < 1000) {
      auto e = events.next(grove::event_kind::child_terminated, "flapping");
      REQUIRE(e);
      CHECK(e->reason == exit_reason::other("{exit_status,1}"));
      ++restarts;
    }
    grove::stop(sup, exit_reason::shutdown());
    // Each program was reaped before its owner ended, so none is left, not even as a zombie.
    CHECK(my_children().empty());
  });
}

TEST_CASE("a program sees no file descriptor of the node but 0, 1 and 2", "[command]") {
  int leaky[2];
  REQUIRE(pipe(leaky) == 0);  // no O_CLOEXEC: a descriptor a careless node would pass on
  grove::node n;
  n.run([] {
    grove::os_command c;
    c.argv = {"sh", "-c", "exec ls -l /proc/$$/fd"};
    c.log_key = "test/fds";
    auto p = grove::os_process::start(c);
    auto x = grove::receive([](const grove::os_exited& e) { return e; });
    CHECK(x.reason == exit_reason::normal());
    int fds = 0;
    for (auto& line : log_texts("test/fds")) {
      auto arrow = line.find(" -> ");
      if (arrow == std::string::npos) continue;
      auto name_end = arrow;
      auto name_start = line.rfind(' ', name_end - 1) + 1;
      const int fd = std::stoi(line.substr(name_start, name_end - name_start));
      const std::string target = line.substr(arrow + 4);
      // 0, 1, 2, and the directory ls itself opened to list them.
      if (fd > 2) CHECK(target == "/proc/" + std::to_string(x.os_pid) + "/fd");
      ++fds;
    }
    CHECK(fds == 4);
  });
  close(leaky[0]);
  close(leaky[1]);
}

namespace {
// Runs argv to its end while another process keeps ticking; returns the log kept under key.
std::vector<grove::os_log_line> run_flood(std::vector<std::string> argv, const std::string& key) {
  struct how_many {
    grove::pid from;
  };
  auto ticker = grove::spawn([] {
    int ticks = 0;
    for (;;) {
      grove::receive_for(1ms, [&](const how_many& h) { grove::send(h.from, ticks); });
      ++ticks;
    }
  });
  grove::os_command c;
  c.argv = std::move(argv);
  c.log_key = key;
  auto p = grove::os_process::start(c);
  auto x = grove::receive([](const grove::os_exited& e) { return e; });
  CHECK(x.reason == exit_reason::normal());
  grove::send(ticker, how_many{grove::self()});
  CHECK(grove::receive([](int t) { return t; }) > 0);  // the node went on meanwhile
  grove::exit(ticker, exit_reason::kill());
  auto log = grove::os_log(grove::this_node(), key);
  REQUIRE(log);
  return *log;
}
}  // namespace

TEST_CASE("100 MB without a newline neither blocks the node nor grows its memory past the bound", "[command]") {
  grove::node n;
  n.run([] {
    const std::size_t before = peak_rss_kb();
    auto log = run_flood({"head", "-c", "100000000", "/dev/zero"}, "test/flood");
    // One line, cut at max_line; the rest of it (until a newline that never comes) dropped.
    REQUIRE(log.size() == 3);
    CHECK(log[1].text == std::string(4096, '\0') + " [cut at 4096 bytes]");
    if (rss_is_meaningful) CHECK(peak_rss_kb() - before < 64 * 1024);
  });
}

TEST_CASE("lines faster than the log's rate are dropped and counted, the log stays bounded", "[command]") {
  grove::node n;
  n.run([] {
    const std::size_t before = peak_rss_kb();
    auto sub = grove::events().subscribe(1 << 20, grove::self());
    const long long total = 2000000;
    auto log = run_flood(
        {"sh", "-c", "yes 0123456789012345678901234567890123456789 | head -n " + std::to_string(total)}, "test/chatty");
    CHECK(log.size() <= 1001);  // log_lines, and the marker of what it no longer keeps
    // Every line is either logged (published) or counted in a drop report: none is lost
    // silently, and the flood is far over 1,000 lines a second.
    long long logged = 0, dropped = 0, reports = 0;
    for (auto& e : sub->take()) {
      REQUIRE(e.kind != grove::event_kind::dropped);  // the subscription kept up
      if (e.kind != grove::event_kind::output || e.child != "chatty") continue;
      if (e.text.rfind("-- dropped ", 0) == 0) {
        dropped += std::stoll(e.text.substr(11));
        ++reports;
      } else if (e.text.rfind("-- ", 0) != 0) {  // not the start and exit markers
        ++logged;
      }
    }
    CHECK(logged + dropped == total);
    CHECK(dropped > total / 2);
    CHECK(logged >= 1000);  // the burst at least: drop reports take nothing from the lines' share
    if (rss_is_meaningful) CHECK(peak_rss_kb() - before < 64 * 1024);
  });
}

TEST_CASE("a program writing faster than its owner reads is slowed down, and no line is lost", "[command]") {
  grove::node n;
  n.run([] {
    grove::os_command c;
    c.argv = {"sh", "-c", "seq 1 300000"};
    c.stdout_to_owner = true;
    auto p = grove::os_process::start(c);
    // Take nothing for a while: the reactor must stop reading, not fill this mailbox.
    struct never {};
    for (int i = 0; i < 20; ++i) {
      grove::receive_for(10ms, [](never) {});
      CHECK(grove::info(grove::self())->mailbox_length < 50000);
    }
    CHECK(p.running());  // blocked on its full pipe
    std::uint64_t expected = 1;
    bool in_order = true, exited = false;
    while (!exited) {
      grove::receive(
          [&](const grove::os_line& l) {
            in_order &= l.text == std::to_string(expected);
            ++expected;
            p.took_lines();
          },
          [&](const grove::os_exited& x) {
            CHECK(x.reason == exit_reason::normal());
            exited = true;
          });
    }
    CHECK(in_order);
    CHECK(expected == 300001);
  });
}

TEST_CASE("readiness by a line: the start completes only once the line came", "[command]") {
  grove::node n;
  n.run([] {
    auto o = sh("sleep 0.2; echo 'server listening on 9000'; exec sleep 1000");
    o.command.ready_line = "listening on [0-9]+";
    o.command.log_key = "test/ready-line";
    auto r = grove::start_command(o);
    REQUIRE(r);
    auto lines = log_texts("test/ready-line");
    REQUIRE(lines.size() == 2);
    CHECK(lines[1] == "server listening on 9000");
    grove::stop(r.pid(), exit_reason::shutdown());
  });
}

TEST_CASE("readiness by a port: the start completes once the port accepts", "[command]") {
  grove::node n;
  n.run([] {
    const int port = free_port();
    grove::command_options o;
    o.command.argv = {"python3", "-c",
                      "import socket,time\n"
                      "time.sleep(0.3)\n"
                      "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                      "s.bind(('127.0.0.1'," +
                          std::to_string(port) +
                          ")); s.listen(16)\n"
                          "while True: s.accept()[0].close()\n"};
    o.ready_port = static_cast<std::uint16_t>(port);
    CHECK_FALSE(port_accepts(port));
    auto r = grove::start_command(o);
    REQUIRE(r);
    CHECK(port_accepts(port));
    grove::stop(r.pid(), exit_reason::shutdown());
  });
}

TEST_CASE("readiness that does not come in time fails the start, and the program is gone", "[command]") {
  grove::node n;
  n.run([] {
    auto o = sh("echo $$; exec sleep 1000");
    o.command.ready_line = "^never$";
    o.command.log_key = "test/never-ready";
    o.start_timeout = 300ms;
    const auto t0 = std::chrono::steady_clock::now();
    auto r = grove::start_command(o);
    CHECK(std::chrono::steady_clock::now() - t0 >= 300ms);
    CHECK(r.reason() == exit_reason::other("{ready_timeout,line /^never$/}"));
    auto lines = log_texts("test/never-ready");
    REQUIRE(lines.size() >= 2);
    CHECK(gone(std::stoi(lines[1])));
    o = sh("exit 4");
    o.command.ready_line = "ready";
    CHECK(grove::start_command(o).reason() == exit_reason::other("{exited_before_ready,{exit_status,4}}"));
    grove::command_options p;
    p.command.argv = {"sleep", "1000"};
    p.ready_port = static_cast<std::uint16_t>(free_port());
    p.start_timeout = 200ms;
    CHECK(grove::start_command(p).reason() ==
          exit_reason::other("{ready_timeout,port " + std::to_string(*p.ready_port) + "}"));
  });
}

TEST_CASE("under the line protocol a program is a worker behind a GenServer API", "[command]") {
  grove::node n;
  n.run([] {
    auto collector = grove::spawn([] {
      auto o = grove::receive([](const grove::command_output& c) { return c; });
      auto to = grove::receive([](grove::pid p) { return p; });
      grove::send(to, got_output{o.child + ":" + o.line});
    });
    grove::register_name("collector", collector);
    // Lines starting with + count (and answer nothing); any other line is answered.
    auto o = sh("echo hello; n=0; while read l; do case $l in +*) n=$((n+1));; *) echo \"got $l $n\";; esac; done");
    o.lines = true;
    o.deliver_to = "collector";
    o.command.log_key = "test/worker";
    auto r = grove::start_command(o, {.name = "worker"});
    REQUIRE(r);
    grove::send(collector, grove::self());
    CHECK(grove::receive([](const got_output& g) { return g.line; }) == "worker:hello");
    for (int i = 0; i < 100; ++i) {
      CHECK(grove::call<std::string>("worker", grove::command_request{std::to_string(i)}) ==
            "got " + std::to_string(i) + " 0");
    }
    grove::cast("worker", grove::command_input{"+"});
    grove::cast("worker", grove::command_input{"+"});
    CHECK(grove::call<std::string>("worker", grove::command_request{"count"}) == "got count 2");
    grove::stop("worker", exit_reason::shutdown());
  });
}

TEST_CASE("output lines are logged and published with their stream's level; long lines are cut", "[command]") {
  grove::node n;
  n.run([] {
    auto sub = grove::events().subscribe(4096, grove::self());
    grove::os_command c;
    c.argv = {"sh", "-c", "echo out; echo err >&2; head -c 10000 /dev/zero | tr '\\0' x; echo; echo short"};
    c.log_key = "test/levels";
    c.stderr_level = "error";
    c.max_line = 100;
    auto p = grove::os_process::start(c);
    grove::receive([](const grove::os_exited&) {});
    std::vector<grove::event> out;
    std::size_t markers = 0;
    for (auto& e : sub->take()) {
      if (e.kind != grove::event_kind::output) continue;
      if (e.text.rfind("-- ", 0) == 0) {  // its start and its exit, for `logs --follow`
        CHECK(e.level == "debug");
        ++markers;
      } else {
        out.push_back(e);
      }
    }
    CHECK(markers == 2);
    REQUIRE(out.size() == 4);
    std::string out_level, err_level;
    for (auto& e : out) {
      CHECK(e.supervisor == "test");
      CHECK(e.child == "levels");
      CHECK(e.old_pid == grove::self());
      if (e.text == "out") out_level = e.level;
      if (e.text == "err") err_level = e.level;
    }
    CHECK(out_level == "info");
    CHECK(err_level == "error");
    auto log = grove::os_log(grove::this_node(), "test/levels");
    REQUIRE(log);
    REQUIRE(log->size() == 6);           // start marker, 4 lines, exit marker
    std::vector<std::string> out_lines;  // stdout's order (the two pipes are read apart)
    for (auto& l : *log) {
      if (!l.marker && l.stream == grove::os_stream::out) out_lines.push_back(l.text);
    }
    CHECK(out_lines == std::vector<std::string>{"out", std::string(100, 'x') + " [cut at 100 bytes]", "short"});
    CHECK(log->back().text.find("exited: normal") != std::string::npos);
  });
}

TEST_CASE("an owner killed by an exit signal leaves no program behind", "[command]") {
  grove::node n;
  n.run([] {
    struct os_pid_is {
      int v;
    };
    const grove::pid me = grove::self();
    auto owner = grove::spawn([me] {
      grove::os_command c;
      c.argv = {"sleep", "1000"};
      auto p = grove::os_process::start(c);
      grove::send(me, os_pid_is{p.os_pid()});
      struct never {};
      grove::receive([](never) {});
    });
    const int os_pid = grove::receive([](os_pid_is p) { return p.v; });
    CHECK_FALSE(gone(os_pid));
    auto m = grove::monitor(owner);
    grove::exit(owner, exit_reason::kill());
    await_down(m);
    CHECK(spin_until([&] { return gone(os_pid); }));
  });
}

TEST_CASE("stopping the node leaves no program behind", "[command]") {
  int os_pid = 0;
  {
    grove::node n;
    os_pid = n.run([] {
      grove::command_options o;
      o.command.argv = {"sleep", "1000"};
      auto r = grove::start_command(o, {.name = "sleeper"});
      REQUIRE(r);
      return os_pid_of("sleeper");
    });
    CHECK_FALSE(gone(os_pid));
  }
  CHECK(gone(os_pid));
}

TEST_CASE("the command kind reads its args and reports bad ones with their key", "[command]") {
  grove::kind_registry kinds;
  grove::add_builtin_kinds(kinds);
  auto args = grove::config::args::parse(
      "argv: []\n"
      "stop_signal: SIGNOPE\n"
      "protocol: pigeons\n"
      "limits: {open_files: 0, cpu: 3}\n"
      "ready: {line: '(', port: 70000}\n"
      "stdout_level: loud\n",
      "child.yaml");
  grove::kind_context k(args, "ext", std::nullopt, grove::config::args{}, &kinds);
  (*kinds.find("command"))(k);
  const std::string all = args.sink()->to_string();
  CHECK_THAT(all, Catch::Contains("argv"));
  CHECK_THAT(all, Catch::Contains("no signal 'SIGNOPE'"));
  CHECK_THAT(all, Catch::Contains("pigeons"));
  CHECK_THAT(all, Catch::Contains("open_files"));
  CHECK_THAT(all, Catch::Contains("cpu"));
  CHECK_THAT(all, Catch::Contains("not a regular expression"));
  CHECK_THAT(all, Catch::Contains("65535"));
  CHECK_THAT(all, Catch::Contains("loud"));
  CHECK_THAT(all, Catch::Contains("child.yaml:"));
}

TEST_CASE("resource limits apply to the program", "[command]") {
  grove::node n;
  n.run([] {
    grove::os_command c;
    c.argv = {"sh", "-c", "ulimit -n; ulimit -t; ulimit -v"};
    c.log_key = "test/limits";
    c.limits.open_files = 37;
    c.limits.cpu_seconds = 5;
    c.limits.address_space = 512ull << 20;
    auto p = grove::os_process::start(c);
    grove::receive([](const grove::os_exited&) {});
    auto lines = log_texts("test/limits");
    REQUIRE(lines.size() == 5);
    CHECK(lines[1] == "37");
    CHECK(lines[2] == "5");
    CHECK(lines[3] == std::to_string(512 * 1024));
  });
}

TEST_CASE("environment, working directory and user: as asked", "[command]") {
  setenv("GROVE_TEST_INHERITED", "from the node", 1);
  grove::node n;
  n.run([] {
    grove::os_command c;
    c.argv = {"sh", "-c", "echo \"$GROVE_TEST_INHERITED|$GROVE_TEST_ADDED|$HOME\"; pwd; id -u"};
    c.env = {{"GROVE_TEST_ADDED", "added"}, {"HOME", "/replaced"}};
    c.cwd = "/tmp";
    c.log_key = "test/env";
    auto p = grove::os_process::start(c);
    grove::receive([](const grove::os_exited&) {});
    auto lines = log_texts("test/env");
    REQUIRE(lines.size() == 5);
    CHECK(lines[1] == "from the node|added|/replaced");
    CHECK(lines[2] == "/tmp");
    CHECK(lines[3] == std::to_string(geteuid()));

    c.inherit_env = false;
    c.env = {{"ONLY", "this"}, {"PATH", "/usr/bin:/bin"}};
    c.argv = {"sh", "-c", "echo \"[$GROVE_TEST_INHERITED][$ONLY]\""};
    c.log_key = "test/env-only";
    auto q = grove::os_process::start(c);
    grove::receive([](const grove::os_exited&) {});
    CHECK(log_texts("test/env-only").at(1) == "[][this]");

    grove::os_command u;
    u.argv = {"id", "-u"};
    u.user = "nobody";
    u.log_key = "test/user";
    if (geteuid() == 0) {
      auto r = grove::os_process::start(u);
      grove::receive([](const grove::os_exited&) {});
      CHECK(log_texts("test/user").at(1) == "65534");  // Debian's nobody
      CHECK(prctl(PR_GET_DUMPABLE) == 1);              // the node's memory was not the child's
    } else {
      CHECK_THROWS_WITH(grove::os_process::start(u), Catch::Contains("not_root"));
    }
    u.user = "grove-no-such-user";
    if (geteuid() == 0) CHECK_THROWS_WITH(grove::os_process::start(u), Catch::Contains("no_such_user"));
  });
}

TEST_CASE("a program that closes its stdin fails the calls waiting for it, and later ones", "[command]") {
  grove::node n;
  n.run([] {
    // Answers one line, then closes its stdin and lives on.
    auto o = sh("read l; echo \"got $l\"; exec 0<&-; exec sleep 1000");
    o.lines = true;
    auto r = grove::start_command(o, {.name = "once"});
    REQUIRE(r);
    CHECK(grove::call<std::string>("once", grove::command_request{"a"}) == "got a");
    // Refused at once if the server knows already; else written into a pipe the program no
    // longer reads, then failed when the reactor sees that: stdin_closed either way.
    auto c = grove::try_call<std::string>("once", grove::command_request{"b"}, 5s);
    CHECK(c.error == exit_reason::other("stdin_closed"));
    c = grove::try_call<std::string>("once", grove::command_request{"c"}, 5s);
    CHECK(c.error == exit_reason::other("stdin_closed"));
    CHECK(grove::sys::get_state("once").find("stdin closed by the program") != std::string::npos);
    grove::stop("once", exit_reason::shutdown());
  });
}

TEST_CASE("a chatty program under the line protocol still gets ready, and stops though it writes as it stops",
          "[command]") {
  grove::node n;
  n.run([] {
    auto o = sh("seq 1 20000; echo ready; trap 'seq 1 20000; exit 0' TERM; while :; do sleep 0.05; done");
    o.lines = true;
    o.command.ready_line = "^ready$";
    o.start_timeout = 20s;
    auto r = grove::start_command(o, {.name = "chatty"});
    REQUIRE(r);
    auto m = grove::monitor(r.pid());
    grove::exit(r.pid(), exit_reason::shutdown());  // as its supervisor would; it traps exits
    CHECK(await_down(m, 20s).reason == exit_reason::shutdown());
  });
}
