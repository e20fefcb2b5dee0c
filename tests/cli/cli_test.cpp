// The grove command, run as a real process: check, run, signals and exit codes.
#ifdef GROVE_CLI_PATH

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

extern char** environ;

namespace {

using namespace std::chrono_literals;

// The grove binary with stdout and stderr on one pipe.
class grove_process {
 public:
  // With with_stdin, write_line() feeds its standard input.
  explicit grove_process(const std::vector<std::string>& rest, bool with_stdin = false) {
    static const std::string binary = GROVE_CLI_PATH;
    std::vector<std::string> args{binary};
    args.insert(args.end(), rest.begin(), rest.end());
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    int in[2] = {-1, -1};
    if (with_stdin) REQUIRE(pipe(in) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    if (with_stdin) {
      posix_spawn_file_actions_adddup2(&fa, in[0], 0);
      posix_spawn_file_actions_addclose(&fa, in[1]);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    out_ = fds[0];
    if (with_stdin) {
      close(in[0]);
      in_ = in[1];
    }
  }

  void write_line(const std::string& line) {
    std::string s = line + "\n";
    REQUIRE(::write(in_, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
  }
  ~grove_process() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
    if (in_ >= 0) close(in_);
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

  // Reads to the end of the output, then reaps the process: its exit code (-1: killed by the deadline).
  int finish(std::chrono::milliseconds limit = 30s) {
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
  // False at end of output or deadline.
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
  std::string path = "/tmp/grove_cli_test_" + std::to_string(getpid()) + "_" + name;
  std::ofstream(path) << text;
  return path;
}

const std::string demo = std::string(GROVE_SOURCE_DIR) + "/config/demo.yaml";

}  // namespace

TEST_CASE("grove --version and --help", "[cli]") {
  grove_process v({"--version"});
  CHECK(v.finish() == 0);
  CHECK(v.output().rfind("grove ", 0) == 0);
  grove_process h({"--help"});
  CHECK(h.finish() == 0);
  CHECK(h.output().find("grove check FILE.yaml") != std::string::npos);
  CHECK(h.output().find("--log-format") != std::string::npos);
}

TEST_CASE("grove with a bad command line exits 2 with the usage", "[cli]") {
  for (std::vector<std::string> args : {std::vector<std::string>{},
                                        {"frob", "x.yaml"},
                                        {"check"},
                                        {"run", demo, "--log-format", "xml"},
                                        {"run", demo, "--bogus"}}) {
    grove_process p(args);
    CHECK(p.finish() == 2);
    CHECK(p.output().find("usage: grove run FILE.yaml") != std::string::npos);
  }
}

TEST_CASE("grove check prints the tree of a valid file and exits 0", "[cli]") {
  grove_process p({"check", demo});
  CHECK(p.finish() == 0);
  CHECK(p.output().find("application store (permanent)") != std::string::npos);
  CHECK(p.output().find("counter  kind counter, name counter, permanent") != std::string::npos);
  CHECK(p.output().find(": ok") != std::string::npos);
}

TEST_CASE("grove check lists every error with file:line:column and exits 1", "[cli]") {
  auto path = temp_yaml("bad.yaml", R"(applications:
  - name: a
    supervisor:
      strategy: one_for_none
      children:
        - { id: c, kind: countr }
)");
  grove_process p({"check", path});
  CHECK(p.finish() == 1);
  CHECK(p.output().find(path + ":4:17: error: applications[0].supervisor.strategy") != std::string::npos);
  CHECK(p.output().find(path + ":6:26: error: applications[0].supervisor.children[0].kind: unknown kind 'countr'") !=
        std::string::npos);
  CHECK(p.output().find("did you mean 'counter'?") != std::string::npos);
  CHECK(p.output().find("2 errors") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("grove run starts the applications and stops them in reverse on SIGTERM or SIGINT, exit 0", "[cli]") {
  const int sig = GENERATE(SIGTERM, SIGINT);
  grove_process p({"run", demo, "--schedulers", "1"});
  REQUIRE(p.wait_for("application drills started"));
  p.signal(sig);
  CHECK(p.finish() == 0);
  const auto& out = p.output();
  CHECK(out.find(sig == SIGINT ? "SIGINT received" : "SIGTERM received") != std::string::npos);
  const auto drills = out.find("application drills stopped");
  const auto store = out.find("application store stopped");
  REQUIRE(drills != std::string::npos);
  REQUIRE(store != std::string::npos);
  CHECK(drills < store);
}

TEST_CASE("grove run --log-format json writes events as JSON lines", "[cli]") {
  grove_process p({"run", demo, "--log-format", "json"});
  REQUIRE(p.wait_for(R"("kind":"application")"));
  p.signal(SIGTERM);
  CHECK(p.finish() == 0);
  CHECK(p.output().find(R"("kind":"progress","level":"info","node":"demo")") != std::string::npos);
}

TEST_CASE("grove run exits 3 when a permanent application dies, and 4 when one fails to start", "[cli]") {
  auto dies = temp_yaml("dies.yaml", R"(applications:
  - name: fragile
    start: permanent
    supervisor: { intensity: 0, children: [ { id: boom, kind: crasher, args: { after: 1ms } } ] }
)");
  grove_process p({"run", dies});
  CHECK(p.finish() == 3);
  CHECK(p.output().find("application fragile (permanent) exited with reason shutdown; the node stops") !=
        std::string::npos);
  std::remove(dies.c_str());

  auto taken = temp_yaml("taken.yaml", R"(applications:
  - name: a
    start: permanent
    supervisor:
      children:
        - { id: one, kind: counter, name: same }
  - name: b
    start: permanent
    supervisor:
      children:
        - { id: two, kind: counter, name: other }
        - { id: three, kind: echo }
        - { id: four, kind: crasher, args: { rate: -1 } }
)");
  grove_process bad({"run", taken});
  CHECK(bad.finish() == 1);  // a bad args value: nothing starts
  CHECK(bad.output().find("args.rate: must not be negative") != std::string::npos);
  CHECK(bad.output().find("started") == std::string::npos);
  std::remove(taken.c_str());

  auto fails = temp_yaml("fails.yaml", R"(applications:
  - name: a
    start: permanent
    supervisor: { children: [ { id: one, kind: counter } ] }
  - name: b
    start: permanent
    supervisor: { children: [ { id: two, kind: crasher, args: { at_start: true, reason: no_disk } } ] }
)");
  grove_process f({"run", fails});
  CHECK(f.finish() == 4);
  CHECK(f.output().find("application b failed to start: {shutdown,{failed_to_start_child,two,no_disk}}") !=
        std::string::npos);
  CHECK(f.output().find("application a stopped") != std::string::npos);
  std::remove(fails.c_str());
}

TEST_CASE("grove run --console stdio serves the console on the terminal", "[cli][console]") {
  grove_process p({"run", demo, "--console", "stdio"}, true);
  REQUIRE(p.wait_for("application drills started"));
  REQUIRE(p.wait_for("grove> "));
  p.write_line("tree store");
  REQUIRE(p.wait_for("counter"));
  p.write_line("kill store/counter");
  REQUIRE(p.wait_for("sent exit signal kill to <"));
  REQUIRE(p.wait_for("child_terminated supervisor=store child=counter"));
  p.write_line("nonsense");
  REQUIRE(p.wait_for("error: unknown command 'nonsense'"));
  p.write_line("apps");
  REQUIRE(p.wait_for("permanent"));
  p.signal(SIGTERM);
  CHECK(p.finish() == 0);
}

TEST_CASE("grove run says where its console listens and how to connect", "[cli][console]") {
  grove_process p({"run", demo, "--console", "127.0.0.1:0"});
  REQUIRE(p.wait_for("grove: console on 127.0.0.1:"));
  REQUIRE(p.wait_for(" console 127.0.0.1:"));
  p.signal(SIGTERM);
  CHECK(p.finish() == 0);
  grove_process bad({"run", demo, "--console", "0.0.0.0:0"});
  CHECK(bad.finish() == 4);
  CHECK(bad.output().find("is not loopback: set a token") != std::string::npos);
}

#endif
