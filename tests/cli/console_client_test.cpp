// `grove console`, the client, run as a real process against a real node: answers to lines from a
// pipe (text and JSON), the node closing the session, and addresses it cannot reach.
#ifdef GROVE_CLI_PATH

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

extern char** environ;

namespace {

using namespace std::chrono_literals;

// The grove binary with stdout and stderr on one pipe and, if given, stdin from a pipe that
// already holds `input` (written before the start, so a client that exits early cannot make
// this process take a SIGPIPE). The pipe stays open until close_input().
class grove_child {
 public:
  explicit grove_child(const std::vector<std::string>& rest, std::optional<std::string> input = std::nullopt) {
    static const std::string binary = GROVE_CLI_PATH;
    std::vector<std::string> args{binary};
    args.insert(args.end(), rest.begin(), rest.end());
    int out[2];
    REQUIRE(pipe(out) == 0);
    int in[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (input) {
      REQUIRE(pipe(in) == 0);
      REQUIRE(input->size() < 16 * 1024);  // fits in the pipe
      REQUIRE(write(in[1], input->data(), input->size()) == static_cast<ssize_t>(input->size()));
      posix_spawn_file_actions_adddup2(&fa, in[0], 0);
      posix_spawn_file_actions_addclose(&fa, in[1]);
    }
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, out[1], 2);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    out_ = out[0];
    if (input) {
      close(in[0]);
      in_ = in[1];
    }
  }
  ~grove_child() {
    close_input();
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
  }
  grove_child(const grove_child&) = delete;
  grove_child& operator=(const grove_child&) = delete;

  void close_input() {
    if (in_ >= 0) close(in_);
    in_ = -1;
  }

  // Reads output until `text` appears (true) or the deadline or end of output (false).
  bool wait_for(const std::string& text, std::chrono::milliseconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (output_.find(text) == std::string::npos) {
      if (!read_some(deadline)) return false;
    }
    return true;
  }

  void signal(int sig) { kill(pid_, sig); }

  // Ends the input, reads to the end of the output, then reaps the process: its exit code (-1:
  // the deadline).
  int finish(std::chrono::milliseconds limit = 30s) {
    close_input();
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (read_some(deadline)) {
    }
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  const std::string& output() const { return output_; }

 private:
  bool read_some(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{out_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[4096];
    ssize_t n = read(out_, buf, sizeof buf);
    if (n <= 0) return false;
    output_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  std::string output_;
};

std::string temp_yaml(const std::string& name, const std::string& text) {
  std::string path = "/tmp/grove_console_client_test_" + std::to_string(getpid()) + "_" + name;
  std::ofstream(path) << text;
  return path;
}

// A node with one application and its console on a free loopback port.
class test_node {
 public:
  test_node()
      : yaml_(temp_yaml("node.yaml", R"(node: { name: console_test, schedulers: 1, console: { address: "127.0.0.1:0" } }
applications:
  - name: shop
    start: permanent
    supervisor:
      children:
        - { id: counter, kind: counter, name: counter }
)")),
        proc_({"run", yaml_}) {
    const std::string said = "grove: console on 127.0.0.1:";
    REQUIRE(proc_.wait_for(said));
    REQUIRE(proc_.wait_for("application shop started"));
    const auto& out = proc_.output();
    address_ = "127.0.0.1:" + std::to_string(std::stoi(out.substr(out.find(said) + said.size())));
  }
  ~test_node() { std::remove(yaml_.c_str()); }

  const std::string& address() const { return address_; }
  grove_child& process() { return proc_; }

 private:
  std::string yaml_;
  grove_child proc_;
  std::string address_;
};

}  // namespace

TEST_CASE("grove console answers each line from a pipe, with no prompt, and exits 0 after the last answer", "[cli]") {
  test_node node;
  grove_child c({"console", node.address()}, "tree\n\napps\nquit\n");
  REQUIRE(c.finish() == 0);
  const auto& out = c.output();
  CHECK(out.find("ID         PID      TYPE         STATUS   RESTARTS   LAST EXIT") != std::string::npos);
  CHECK(out.find("shop       <") != std::string::npos);
  CHECK(out.find("  counter  <") != std::string::npos);
  CHECK(out.find("APPLICATION  START      SUPERVISOR  STATUS") != std::string::npos);
  CHECK(out.find("shop         permanent  <") != std::string::npos);
  CHECK(out.find("bye") != std::string::npos);
  CHECK(out.find("grove> ") == std::string::npos);                // the node's prompt is taken out
  CHECK(out.find("grove console on node") == std::string::npos);  // and a script gets no greeting
  CHECK(out.find("closed") == std::string::npos);                 // quit is not a surprise
  CHECK(out.find("LAST EXIT") < out.find("APPLICATION"));         // answers in order

  // No quit: the end of input ends the session once the last answer (stats samples for 250 ms)
  // arrived. JSON for the session and for one command.
  grove_child j({"console", node.address()}, "json on\ntree\njson off\nps --top 1 --json\nstats\nbogus");
  REQUIRE(j.finish() == 0);
  const auto& js = j.output();
  CHECK(js.find("json on\n") != std::string::npos);
  CHECK(js.find(R"({"ok":true,"command":"tree","result":[{"id":"shop","pid":"<)") != std::string::npos);
  CHECK(js.find(R"({"ok":true,"command":"json","result":false})") != std::string::npos);
  CHECK(js.find(R"({"ok":true,"command":"ps","result":[{"pid":)") != std::string::npos);
  CHECK(js.find("processes") != std::string::npos);
  CHECK(js.find("error: unknown command 'bogus'") != std::string::npos);
  CHECK(js.find("grove> ") == std::string::npos);

  // An over-long line is refused by the node; the next line is answered.
  grove_child l({"console", node.address()}, std::string(5000, 'x') + "\napps\n");
  REQUIRE(l.finish() == 0);
  CHECK(l.output().find("error: line too long") != std::string::npos);
  CHECK(l.output().find("shop         permanent") != std::string::npos);

  node.process().signal(SIGTERM);
  CHECK(node.process().finish() == 0);
}

TEST_CASE("grove console says so and exits 0 when the node closes the session", "[cli]") {
  test_node node;
  grove_child c({"console", node.address()}, "apps\n");  // stdin stays open
  REQUIRE(c.wait_for("shop         permanent"));
  node.process().signal(SIGTERM);
  CHECK(c.wait_for("grove console: the node closed the connection"));
  CHECK(c.finish() == 0);
  CHECK(node.process().finish() == 0);
}

TEST_CASE("grove console exits 1 with an error when nothing listens, and 2 for a malformed address", "[cli]") {
  // A bound socket that does not listen: connecting to its port is refused, and no one else
  // can take the port meanwhile.
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(s >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  grove_child c({"console", address}, "apps\n");
  CHECK(c.finish() == 1);
  CHECK(c.output().find("grove console: cannot connect to " + address + ": Connection refused") != std::string::npos);
  close(s);

  for (const char* bad : {"localhost", "127.0.0.1:http", "127.0.0.1:70000", "::1:7070"}) {
    grove_child b({"console", bad}, "");
    CHECK(b.finish() == 2);
    CHECK(b.output().find("is not host:port") != std::string::npos);
  }
  grove_child two({"console", "127.0.0.1:1", "127.0.0.1:2"});
  CHECK(two.finish() == 2);
  CHECK(two.output().find("usage: grove run FILE.yaml") != std::string::npos);
  grove_child help({"--help"});
  CHECK(help.finish() == 0);
  CHECK(help.output().find("grove console [ADDR]") != std::string::npos);
}

#endif
