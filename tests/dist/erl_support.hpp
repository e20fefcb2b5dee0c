// A real `erl` for the distribution tests (Debian's erlang-nox): an `erl -noshell -eval CODE`
// whose stdin and stdout are the test's, read with deadlines.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

extern char** environ;

namespace {

class erl_shell {
 public:
  // `erl -noshell [args...] -eval code`: args such as {"-sname", "x", "-setcookie", "c"}.
  explicit erl_shell(const std::string& code, const std::vector<std::string>& args_before = {}) {
    int in[2], out[2];
    REQUIRE(pipe2(in, O_CLOEXEC) == 0);
    REQUIRE(pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::vector<std::string> args{"erl", "-noshell"};
    args.insert(args.end(), args_before.begin(), args_before.end());
    args.insert(args.end(), {"-eval", code});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawnp(&pid_, "erl", &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = out[0];
  }
  ~erl_shell() {
    close(to_);
    close(from_);
    kill_now();
  }
  // kill -9: the node vanishes without closing anything itself.
  void kill_now() {
    if (pid_ < 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void write_line(const std::string& line) {
    const std::string s = line + "\n";
    REQUIRE(write(to_, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
  }
  // The next line ("" at the deadline or at the end).
  std::string read_line(std::chrono::seconds limit = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{from_, POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
      char b[65536];
      const ssize_t n = read(from_, b, sizeof b);
      if (n <= 0) return "";
      buf_.append(b, static_cast<std::size_t>(n));
    }
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buf_;
};

}  // namespace

namespace {

// An erl driven line by line: each line written is an Erlang expression sequence ending in a
// dot, evaluated in one process (the shell: bindings and mailbox kept from line to line); the
// answer is its value on one line (~p), or "CLASS:REASON" if it raised.
class erl_repl : public erl_shell {
 public:
  explicit erl_repl(const std::vector<std::string>& args) : erl_shell(code, args) {}
  std::string eval(const std::string& exprs, std::chrono::seconds limit = std::chrono::seconds(30)) {
    write_line(exprs);
    return read_line(limit);
  }

 private:
  static constexpr const char* code = R"(
    Loop = fun L(B) ->
      case io:get_line("") of
        eof -> halt();
        Line ->
          B2 = try
                 {ok, Toks, _} = erl_scan:string(Line),
                 {ok, Exprs} = erl_parse:parse_exprs(Toks),
                 {value, V, NB} = erl_eval:exprs(Exprs, B),
                 io:format("~1000000p~n", [V]),
                 NB
               catch C:R -> io:format("~p:~1000000p~n", [C, R]), B
               end,
          L(B2)
      end
    end,
    Loop(erl_eval:new_bindings()).)";
};

}  // namespace
