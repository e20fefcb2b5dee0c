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

#include "grove_child.hpp"

namespace {

using namespace std::chrono_literals;
using grove_cli_test::grove_child;
using grove_cli_test::temp_yaml;

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

TEST_CASE(
    "grove console answers each line from a pipe, with no prompt; it exits 0 after the last answer, 1 if one was an "
    "error",
    "[cli]") {
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
  REQUIRE(j.finish() == 1);  // `bogus` was answered with an error: a script learns it (issue 12 item 5)
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
  REQUIRE(l.finish() == 1);
  CHECK(l.output().find("error: line too long") != std::string::npos);
  CHECK(l.output().find("shop         permanent") != std::string::npos);

  // A JSON error answer counts too.
  grove_child e({"console", node.address()}, "json on\nkill nobody\n");
  CHECK(e.finish() == 1);
  CHECK(e.output().find(R"({"ok":false,"command":"kill")") != std::string::npos);

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

  for (const char* bad : {"127.0.0.1:http", "127.0.0.1:70000", "::1:7070"}) {  // no port: the default (cli_test)
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
