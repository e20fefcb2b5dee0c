// The grove command, run as a real process: check, run, signals and exit codes.
#ifdef GROVE_CLI_PATH

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "../dist/erl_support.hpp"
#include "grove_child.hpp"

namespace {

using namespace std::chrono_literals;
using grove_process = grove_cli_test::grove_child;
using grove_cli_test::temp_yaml;

const std::string demo = std::string(GROVE_SOURCE_DIR) + "/config/demo.yaml";

// The node name `grove run --sname` printed in its net_adm:ping('NAME@HOST') hint.
std::string printed_node(const grove_process& p) {
  const auto at = p.output().find("net_adm:ping('") + 14;
  return p.output().substr(at, p.output().find('\'', at) - at);
}

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

TEST_CASE("a command line typo gets a did-you-mean, a missing file exits 2, the usage names the program", "[cli]") {
  // Issue 12 item 4.
  grove_process typo({"chek", demo});
  CHECK(typo.finish() == 2);
  CHECK(typo.output().find("unknown command 'chek' (did you mean 'check'?)") != std::string::npos);
  grove_process missing({"check", "/nonexistent/nosuch.yaml"});
  CHECK(missing.finish() == 2);
  CHECK(missing.output().find("no such file: /nonexistent/nosuch.yaml") != std::string::npos);
  grove_process service({"frob"}, std::nullopt, "/opt/bank/bin/bankd");  // a service's own binary
  CHECK(service.finish() == 2);
  CHECK(service.output().find("bankd: unknown command 'frob'") != std::string::npos);
  CHECK(service.output().find("usage: bankd run FILE.yaml") != std::string::npos);
  CHECK(service.output().find("grove") == std::string::npos);
}

TEST_CASE("grove console without a port uses the default one", "[cli][console]") {
  // Nothing listens on 127.0.0.2: the client says where it tried, and exits 1 (not 2).
  grove_process p({"console", "127.0.0.2"});
  CHECK(p.finish() == 1);
  CHECK(p.output().find("cannot connect to 127.0.0.2:7070") != std::string::npos);
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
  grove_process p({"run", demo, "--schedulers", "1", "--console", "off"});  // off: 7070 may be in use
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
  grove_process p({"run", demo, "--log-format", "json", "--console", "127.0.0.1:0"});
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
  CHECK(bad.output().find("args.rate: must be between 0 and 1000000") != std::string::npos);
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

TEST_CASE("grove run: a command child's program does not outlive the node, even one killed with SIGKILL", "[cli]") {
  const int sig = GENERATE(SIGTERM, SIGKILL);
  // As root, also as another user: changing ids clears a parent-death signal set before.
  const bool as_nobody = GENERATE(false, true) && geteuid() == 0;
  auto yaml = temp_yaml("command.yaml", std::string(R"(applications:
  - name: ext
    start: permanent
    supervisor:
      children:
        - id: sleeper
          kind: command
          args: { argv: [sh, -c, "echo my pid is $$$$; exec sleep 1000"], ready: { line: "^my pid" })") +
                                            (as_nobody ? ", user: nobody" : "") + " }\n");
  grove_process p({"run", yaml, "--console", "off"});
  REQUIRE(p.wait_for("application ext started"));
  const auto& out = p.output();
  const auto at = out.find("stdout: my pid is ");
  REQUIRE(at != std::string::npos);  // the ready line, logged before the start completed
  INFO(out);
  CHECK(out.find("output ext/sleeper <") != std::string::npos);
  const int os_pid = std::stoi(out.substr(at + 18));
  CHECK(kill(os_pid, 0) == 0);
  p.signal(sig);
  p.finish();
  // Its parent gone, the program got SIGKILL (PR_SET_PDEATHSIG) or its stop signal: it is
  // gone, or a zombie left to the system's reaper.
  auto gone = [os_pid] {
    std::ifstream f("/proc/" + std::to_string(os_pid) + "/stat");
    std::string stat;
    if (!std::getline(f, stat)) return true;
    const auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
  };
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!gone() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  CHECK(gone());
  std::remove(yaml.c_str());
}

TEST_CASE("grove run --console stdio serves the console on the terminal", "[cli][console]") {
  grove_process p({"run", demo, "--console", "stdio"}, std::string());
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
  // Refused before anything starts, by check as by run (a configuration error, exit 1).
  for (const char* command : {"run", "check"}) {
    grove_process bad({command, demo, "--console", "0.0.0.0:0"});
    CHECK(bad.finish() == 1);
    CHECK(bad.output().find("is not loopback: set a token") != std::string::npos);
    grove_process port({command, demo, "--console", "127.0.0.1:99999"});
    CHECK(port.finish() == 1);
    CHECK(port.output().find("port up to 65535") != std::string::npos);
  }
}

TEST_CASE("grove run --http serves the dashboard and says where; beyond loopback it needs a token", "[cli][http]") {
  grove_process p({"run", demo, "--console", "off", "--http", "127.0.0.1:0"});
  REQUIRE(p.wait_for("grove: dashboard on http://127.0.0.1:"));
  REQUIRE(p.wait_for("(metrics: /metrics)"));
  p.signal(SIGTERM);
  CHECK(p.finish() == 0);
  for (const char* command : {"run", "check"}) {
    grove_process bad({command, demo, "--http", "0.0.0.0:0"});
    CHECK(bad.finish() == 1);
    CHECK(bad.output().find("--http: error: http address 0.0.0.0:0 is not loopback: set a token") != std::string::npos);
    grove_process malformed({command, demo, "--http", "stdio"});
    CHECK(malformed.finish() == 1);
    CHECK(malformed.output().find("is not host:port") != std::string::npos);
  }
}

TEST_CASE("grove run --sname joins an Erlang cluster: erl calls the demo's echo with any term", "[cli][dist]") {
  const std::string cookie = "clicookie" + std::to_string(getpid());
  const std::string cookie_file = temp_yaml("cookie", cookie);
  REQUIRE(chmod(cookie_file.c_str(), 0400) == 0);
  const std::string name = "grove_cli_" + std::to_string(getpid());
  grove_process p({"run", demo, "--sname", name, "--cookie-file", cookie_file, "--console", "stdio"}, std::string());
  REQUIRE(p.wait_for(" in the Erlang cluster — from erl: net_adm:ping('" + name + "@"));
  REQUIRE(p.wait_for("')."));
  REQUIRE(p.wait_for("grove> "));
  CHECK(p.output().find(cookie) == std::string::npos);  // the cookie is never printed
  p.write_line("nodes");
  REQUIRE(p.wait_for("no connected nodes"));
  const std::string node = printed_node(p);
  const std::string erl_name = "erl_cli_" + std::to_string(getpid());
  {
    erl_shell erl("N = '" + node + R"(',
      io:format("~p~n", [net_adm:ping(N)]),
      T = {any, [1, 2 | 3], #{{k} => <<"v">>}, 12345678901234567890123, 'ünï', <<1:5>>, self()},
      io:format("~p~n", [gen_server:call({echo, N}, T) =:= T]),
      io:format("~p~n", [element(1, element(2, catch gen_server:call({nobody, N}, x)))]),
      io:get_line(""),
      halt().)",
                  {"-sname", erl_name, "-setcookie", cookie});
    CHECK(erl.read_line() == "pong");
    CHECK(erl.read_line() == "true");
    CHECK(erl.read_line() == "noproc");
    p.write_line("nodes");
    REQUIRE(p.wait_for(erl_name + "@"));
    CHECK(p.wait_for("the peer"));
    erl.write_line("");
  }
  p.signal(SIGTERM);
  CHECK(p.finish() == 0);
  std::remove(cookie_file.c_str());
}

TEST_CASE("grove run takes the cookie from --cookie-file, else GROVE_COOKIE, else ~/.erlang.cookie, made when missing",
          "[cli][dist]") {
  const std::string id = std::to_string(getpid());
  const std::string home = "/tmp/grove_cli_test_" + id + "_home";  // a home with no cookie file yet
  std::filesystem::remove_all(home);
  REQUIRE(std::filesystem::create_directory(home));
  const std::string home_cookie = home + "/.erlang.cookie";
  // Starts the demo as a node with `args` and `env`, then an erl with the cookie `cookie()` gives
  // (asked once the node is up) pings it: the erl's answer.
  auto ping = [&](const std::string& tag, const std::vector<std::string>& args, const std::vector<std::string>& env,
                  const std::function<std::string()>& cookie) {
    std::vector<std::string> all{"run", demo, "--sname", "grove_ck_" + tag + "_" + id, "--console", "stdio"};
    all.insert(all.end(), args.begin(), args.end());
    grove_process p(all, std::string(), std::nullopt, env);
    REQUIRE(p.wait_for("net_adm:ping('"));
    REQUIRE(p.wait_for("')."));
    const std::string node = printed_node(p);
    const std::string c = cookie();
    erl_shell erl("io:format(\"~p~n\", [net_adm:ping('" + node + "')]), halt().",
                  {"-sname", "erl_ck_" + tag + "_" + id, "-setcookie", c});
    const std::string answer = erl.read_line();
    p.signal(SIGTERM);
    CHECK(p.finish() == 0);
    CHECK(p.output().find(c) == std::string::npos);  // the cookie is never printed
    return answer;
  };
  auto read_home_cookie = [&] {
    std::string c;
    std::getline(std::ifstream(home_cookie), c);
    return c;
  };
  // Neither a file nor GROVE_COOKIE: ~/.erlang.cookie, made as erl makes it (20 capitals, 0400).
  CHECK(ping("home", {}, {"HOME=" + home, "GROVE_COOKIE="}, read_home_cookie) == "pong");
  const std::string made = read_home_cookie();
  CHECK(made.size() == 20);
  CHECK(std::all_of(made.begin(), made.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; }));
  struct stat st {};
  REQUIRE(stat(home_cookie.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0400);
  // GROVE_COOKIE comes before ~/.erlang.cookie, which stays as it was.
  const std::string env_cookie = "envcookie" + id;
  CHECK(ping("env", {}, {"HOME=" + home, "GROVE_COOKIE=" + env_cookie}, [&] { return env_cookie; }) == "pong");
  CHECK(read_home_cookie() == made);
  // --cookie-file comes before GROVE_COOKIE.
  const std::string file_cookie = "filecookie" + id;
  const std::string file = temp_yaml("ck_cookie", file_cookie);
  REQUIRE(chmod(file.c_str(), 0400) == 0);
  CHECK(ping("file", {"--cookie-file", file}, {"HOME=" + home, "GROVE_COOKIE=" + env_cookie},
             [&] { return file_cookie; }) == "pong");
  // No cookie anywhere to be had: a clear error.
  grove_process none({"run", demo, "--console", "off", "--sname", "grove_ck_none_" + id}, std::nullopt, std::nullopt,
                     {"HOME=", "GROVE_COOKIE="});
  CHECK(none.finish() != 0);
  CHECK(none.output().find("no cookie: give --cookie-file PATH or GROVE_COOKIE") != std::string::npos);
  std::remove(file.c_str());
  std::filesystem::remove_all(home);
}

TEST_CASE("grove run: bad node names and cookie files are refused with a clear error", "[cli][dist]") {
  grove_process both({"run", demo, "--sname", "a", "--name", "a@b"});
  CHECK(both.finish() == 2);
  CHECK(both.output().find("give --sname or --name, not both") != std::string::npos);
  grove_process bad({"run", demo, "--sname", "no spaces"});
  CHECK(bad.finish() == 2);
  CHECK(bad.output().find("--sname: 'no spaces' is not a node name") != std::string::npos);
  const std::string open_file = temp_yaml("open_cookie", "secret");
  REQUIRE(chmod(open_file.c_str(), 0644) == 0);
  grove_process open({"run", demo, "--console", "off", "--sname", "grove_cli_open_" + std::to_string(getpid()),
                      "--cookie-file", open_file});
  CHECK(open.finish() != 0);
  CHECK(open.output().find("must be accessible by its owner only (chmod 400") != std::string::npos);
  CHECK(open.output().find("secret") == std::string::npos);
  std::remove(open_file.c_str());
}

TEST_CASE("numbers on the command line are checked against the same limits as the YAML", "[cli][limits]") {
  for (std::vector<std::string> args : {std::vector<std::string>{"run", demo, "--schedulers", "-1"},
                                        {"run", demo, "--schedulers", "2000"},
                                        {"run", demo, "--schedulers", "0"},
                                        {"check", demo, "--schedulers", "5abc"},
                                        {"run", demo, "--shutdown-timeout", "-1"},
                                        {"run", demo, "--shutdown-timeout", "1e9"}}) {
    grove_process p(args);
    CHECK(p.finish() == 2);
    CHECK(p.output().find("takes") != std::string::npos);
  }
  auto path = temp_yaml("limits.yaml", R"(applications:
  - name: a
    supervisor:
      children:
        - { id: p, kind: partition_supervisor, name: parts, args: { partitions: 1000000000, child: { kind: counter } } }
        - { id: w, kind: pool, args: { size: 1000000000000000000, worker: { kind: counter } } }
        - { id: c, kind: crasher, args: { rate: .inf } }
)");
  grove_process check({"check", path});
  CHECK(check.finish() == 1);
  CHECK(check.output().find("partitions: must be between 1 and 1024") != std::string::npos);
  CHECK(check.output().find("size + max_overflow must be at most 100000") != std::string::npos);
  CHECK(check.output().find("args.rate: must be between 0 and 1000000") != std::string::npos);
  std::remove(path.c_str());
}

#endif
