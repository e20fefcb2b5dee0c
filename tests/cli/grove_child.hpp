// The grove binary run as a child process, for the CLI tests. No sleeps: every wait reads
// its output with a deadline.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

extern char** environ;

namespace grove_cli_test {

using namespace std::chrono_literals;

// The grove binary with stdout and stderr on one pipe and, if given, stdin from a pipe that
// already holds `input` (written before the start, so a client that exits early cannot make
// this process take a SIGPIPE). The pipe stays open until close_input().
class grove_child {
 public:
  // argv0: the name the program is started as (default: its path); env: NAME=VALUE entries
  // that replace or add to this process's environment (NAME= alone removes NAME).
  explicit grove_child(const std::vector<std::string>& rest, std::optional<std::string> input = std::nullopt,
                       std::optional<std::string> argv0 = std::nullopt, const std::vector<std::string>& env = {}) {
    static const std::string binary = GROVE_CLI_PATH;
    std::vector<std::string> args{argv0.value_or(binary)};
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
    // The demo's dashboard takes ${GROVE_HTTP_PORT:-8080}: any free port here, so that tests
    // run side by side (and beside a running demo).
    std::vector<std::string> given{"GROVE_HTTP_PORT=0"};
    given.insert(given.end(), env.begin(), env.end());
    auto key = [](const std::string& entry) { return entry.substr(0, entry.find('=') + 1); };
    std::vector<std::string> env_text;
    for (char** e = environ; *e; ++e) {
      const std::string entry(*e);
      if (std::none_of(given.begin(), given.end(), [&](const std::string& g) { return key(g) == key(entry); }))
        env_text.push_back(entry);
    }
    for (const auto& g : given) {
      if (g.size() > key(g).size()) env_text.push_back(g);
    }
    std::vector<char*> envp;
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    REQUIRE(posix_spawn(&pid_, binary.c_str(), &fa, nullptr, argv.data(), envp.data()) == 0);
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

  // Feeds a line to its standard input (started with an input).
  void write_line(const std::string& line) {
    std::string s = line + "\n";
    REQUIRE(::write(in_, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
  }

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

// Writes a YAML file for one test; the caller removes it.
inline std::string temp_yaml(const std::string& name, const std::string& text) {
  std::string path = "/tmp/grove_cli_test_" + std::to_string(getpid()) + "_" + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace grove_cli_test
