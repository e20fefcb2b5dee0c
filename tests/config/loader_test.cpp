// The YAML loader: what a valid file turns into, and the exact message and position of every
// class of error, all reported at once.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include <catch2/catch.hpp>
#include <grove/config/config.hpp>
#include <grove/config/limits.hpp>

using namespace std::chrono_literals;
namespace cfg = grove::config;

namespace {

// No environment variable is set unless the test says so.
cfg::load_options options(std::map<std::string, std::string> env = {}) {
  cfg::load_options o;
  o.getenv = [env = std::move(env)](const char* name) -> const char* {
    static thread_local std::string value;
    auto it = env.find(name);
    if (it == env.end()) return nullptr;
    value = it->second;
    return value.c_str();
  };
  return o;
}

cfg::load_result load(std::string_view yaml, cfg::load_options o = options()) {
  return cfg::load_string(yaml, "test.yaml", o);
}

// All errors, formatted; "" when the text loads.
std::string errors(std::string_view yaml, cfg::load_options o = options()) {
  auto r = load(yaml, std::move(o));
  CHECK(r.config.has_value() == r.errors.empty());
  return r.errors.to_string();
}

// A valid application around one child's lines (indented by 8).
std::string with_child(std::string_view child) {
  return "applications:\n"
         "  - name: app\n"
         "    supervisor:\n"
         "      children:\n" +
         std::string(child);
}

}  // namespace

TEST_CASE("a full file loads into the structs, with defaults where keys are absent", "[config]") {
  auto r = load(R"(node:
  name: demo
  schedulers: 2
  logging: { level: debug, format: json }
  console: { address: "127.0.0.1:7070", token: secret, max_sessions: 4 }
applications:
  - name: bank
    start: permanent
    depends_on: [logger]
    env: { currency: EUR }
    supervisor:
      strategy: rest_for_one
      intensity: 3
      period: 10s
      auto_shutdown: any_significant
      backoff: { min: 50ms, max: 5s, multiplier: 1.5, jitter: 0.1, reset_after: 1m }
      children:
        - id: ledger
          kind: counter
          name: ledger
          restart: transient
          shutdown: 2s
          significant: true
          stack_size: 128KiB
          mailbox_capacity: 1000
          overflow: drop_oldest
          args: { opening: 100 }
        - id: workers
          supervisor:
            children:
              - { id: w1, kind: echo, shutdown: brutal_kill }
        - id: sessions
          dynamic_supervisor: { intensity: 5, period: 30s, max_children: 100 }
  - name: logger
    supervisor: {}
)");
  INFO(r.errors.to_string());
  REQUIRE(r.config);
  const cfg::node_config& n = *r.config;
  CHECK(n.name == "demo");
  CHECK(n.schedulers == 2);
  CHECK(n.logging.level == cfg::log_level::debug);
  CHECK(n.logging.format == cfg::log_format::json);
  CHECK(n.console.mode == cfg::console_mode::tcp);
  CHECK(n.console.host == "127.0.0.1");
  CHECK(n.console.port == 7070);
  CHECK(n.console.token == "secret");
  CHECK(n.console.max_sessions == 4);
  REQUIRE(n.applications.size() == 2);

  const cfg::app_config& bank = n.applications[0];
  CHECK(bank.name == "bank");
  CHECK(bank.start == cfg::start_type::permanent);
  CHECK(bank.depends_on == std::vector<std::string>{"logger"});
  CHECK(bank.env.get<std::string>("currency") == "EUR");
  CHECK(bank.pos == cfg::source_pos{"test.yaml", 7, 5});
  const cfg::supervisor_config& sup = bank.supervisor;
  CHECK(sup.strategy == cfg::strategy::rest_for_one);
  CHECK(sup.intensity == 3);
  CHECK(sup.period == 10s);
  CHECK(sup.auto_shutdown == cfg::auto_shutdown::any_significant);
  REQUIRE(sup.backoff);
  CHECK(sup.backoff->min == 50ms);
  CHECK(sup.backoff->max == 5s);
  CHECK(sup.backoff->multiplier == 1.5);
  CHECK(sup.backoff->jitter == 0.1);
  CHECK(sup.backoff->reset_after == 1min);
  REQUIRE(sup.children.size() == 3);

  const cfg::child_config& ledger = sup.children[0];
  CHECK(ledger.id == "ledger");
  CHECK(ledger.type == cfg::child_type::worker);
  CHECK(ledger.kind == "counter");
  CHECK(ledger.name == "ledger");
  CHECK(ledger.restart == cfg::restart_type::transient);
  REQUIRE(ledger.shutdown);
  CHECK(ledger.shutdown->what == cfg::shutdown_config::kind::timeout);
  CHECK(ledger.shutdown->timeout == 2s);
  CHECK(ledger.significant);
  CHECK(ledger.stack_size == 128u * 1024);
  CHECK(ledger.mailbox_capacity == 1000u);
  CHECK(ledger.overflow == cfg::overflow_policy::drop_oldest);
  CHECK(ledger.args.get<std::int64_t>("opening") == 100);
  CHECK(ledger.pos == cfg::source_pos{"test.yaml", 18, 11});

  const cfg::child_config& workers = sup.children[1];
  CHECK(workers.type == cfg::child_type::supervisor);
  REQUIRE(workers.supervisor);
  CHECK(workers.supervisor->strategy == cfg::strategy::one_for_one);
  CHECK(workers.supervisor->intensity == 1);
  CHECK(workers.supervisor->period == 5s);
  CHECK_FALSE(workers.shutdown);  // the default: infinity for a supervisor, decided by the app layer
  REQUIRE(workers.supervisor->children.size() == 1);
  CHECK(workers.supervisor->children[0].shutdown->what == cfg::shutdown_config::kind::brutal_kill);
  CHECK(workers.supervisor->children[0].restart == cfg::restart_type::permanent);
  CHECK(workers.supervisor->children[0].args.empty());

  const cfg::child_config& sessions = sup.children[2];
  CHECK(sessions.type == cfg::child_type::dynamic_supervisor);
  REQUIRE(sessions.dynamic_supervisor);
  CHECK(sessions.dynamic_supervisor->intensity == 5);
  CHECK(sessions.dynamic_supervisor->period == 30s);
  CHECK(sessions.dynamic_supervisor->max_children == 100u);

  const cfg::app_config& logger = n.applications[1];
  CHECK(logger.start == cfg::start_type::temporary);
  CHECK(logger.supervisor.children.empty());
  CHECK(n.start_order == std::vector<std::string>{"logger", "bank"});
}

TEST_CASE("an empty file is a node with defaults and no applications", "[config]") {
  auto r = load("");
  REQUIRE(r.config);
  CHECK_FALSE(r.config->schedulers);
  CHECK(r.config->logging.level == cfg::log_level::info);
  CHECK(r.config->console.mode == cfg::console_mode::off);
  CHECK(r.config->console.max_sessions == 16);
  CHECK(r.config->applications.empty());
}

TEST_CASE("console addresses: off, stdio, host:port and [ipv6]:port", "[config]") {
  auto address = [](std::string a) {
    auto r = load("node: { console: { address: \"" + a + "\" } }");
    INFO(r.errors.to_string());
    REQUIRE(r.config);
    return r.config->console;
  };
  CHECK(address("off").mode == cfg::console_mode::off);
  CHECK(address("stdio").mode == cfg::console_mode::stdio);
  auto any = address("localhost:0");
  CHECK((any.mode == cfg::console_mode::tcp && any.host == "localhost" && any.port == 0));
  auto v6 = address("[::1]:7070");
  CHECK((v6.host == "::1" && v6.port == 7070));
  CHECK(errors("node: { console: { address: \"::1:7070\" } }") ==
        "test.yaml:1:29: error: node.console.address: got the string \"::1:7070\" (expected off, stdio or host:port "
        "with a port up to 65535, like 127.0.0.1:7070)\n");
}

TEST_CASE("a YAML syntax error names its line and column", "[config]") {
  // An unclosed '[' or '{' is found by yaml-cpp at the end of the file: the error points at it.
  CHECK(errors("node:\n  name: [a, b\n  schedulers: 2\n") ==
        "test.yaml:2:9: error: invalid YAML: this '[' is never closed\n"
        "  hint: close it with ']' (yaml-cpp: end of sequence flow not found)\n");
  CHECK(errors("applications:\n  - name: a\n    supervisor: { children: [ { id: c, kind: counter } ]\n\n") ==
        "test.yaml:3:17: error: invalid YAML: this '{' is never closed\n"
        "  hint: close it with '}' (yaml-cpp: end of map flow not found)\n");
  CHECK(errors("node: { name: \"a{b\" # a [ in a comment\n") ==
        "test.yaml:1:7: error: invalid YAML: this '{' is never closed\n"
        "  hint: close it with '}' (yaml-cpp: end of map flow not found)\n");
  CHECK(errors("node:\n  name: x\n   schedulers: 2\n") == "test.yaml:3:14: error: invalid YAML: illegal map value\n");
  // A tab in the indentation is named as such.
  CHECK(errors("applications:\n\t- name: a\n") ==
        "test.yaml:2:2: error: invalid YAML: a tab in the indentation\n"
        "  hint: YAML indents with spaces only (yaml-cpp: illegal block entry)\n");
}

TEST_CASE("a stray token yaml-cpp cannot parse is a syntax error, not an empty file", "[config]") {
  CHECK(errors(",node: {}\n") == "test.yaml:1:1: error: invalid YAML: unexpected ','\n");
  CHECK(errors("- a\n,\n") == "test.yaml:2:1: error: invalid YAML: unexpected ','\n");
  CHECK(errors("applications: []\n,\n") == "test.yaml:2:1: error: invalid YAML: end of map not found\n");
  CHECK(errors("node: { name: a }\n---\nnode: { name: b }\n") ==
        "test.yaml:2:1: error: a second YAML document (expected one document per file)\n"
        "  hint: remove the '---' separator, or put the second document in a file of its own\n");
}

TEST_CASE("anchors and aliases repeat a value", "[config]") {
  auto r = load(R"(applications:
  - name: app
    supervisor:
      backoff: &quick { min: 10ms, max: 1s }
      children:
        - { id: a, kind: counter, backoff: *quick }
        - { id: b, kind: counter, backoff: *quick }
)");
  INFO(r.errors.to_string());
  REQUIRE(r.config);
  const auto& children = r.config->applications[0].supervisor.children;
  CHECK(children[0].backoff->max == 1s);
  CHECK(children[1].backoff->min == 10ms);
}

TEST_CASE("an unknown key names the nearest valid key", "[config]") {
  CHECK(
      errors(with_child("        - id: worker\n"
                        "          kind: counter\n"
                        "          shutdwn: 5s\n")) ==
      "test.yaml:7:11: error: applications[0].supervisor.children[0].shutdwn: unknown key (expected one of: id, kind, "
      "supervisor, dynamic_supervisor, name, restart, shutdown, significant, backoff, stack_size, mailbox_capacity, "
      "overflow, args)\n  hint: did you mean 'shutdown'?\n");
  // Nothing close: no hint.
  CHECK(errors("node:\n  colour: blue\n") ==
        "test.yaml:2:3: error: node.colour: unknown key (expected one of: name, schedulers, logging, console, http, "
        "distribution)\n");
  CHECK(errors("nodes: {}\n") ==
        "test.yaml:1:1: error: nodes: unknown key (expected one of: include, node, applications)\n"
        "  hint: did you mean 'node'?\n");
}

TEST_CASE("a value of the wrong type says what it got and what was expected", "[config]") {
  CHECK(errors("node:\n  schedulers: two\n") ==
        "test.yaml:2:15: error: node.schedulers: got 'two' (expected an integer between 1 and 1024)\n");
  CHECK(errors("node:\n  schedulers: \"2\"\n") ==
        "test.yaml:2:15: error: node.schedulers: got the string \"2\" (expected an integer between 1 and 1024)\n"
        "  hint: remove the quotes\n");
  CHECK(errors("node: [1, 2]\n") == "test.yaml:1:7: error: node: got a list (expected a map)\n");
  CHECK(errors("node:\n  name: 12\n") ==
        "test.yaml:2:9: error: node.name: got 12 (expected a string)\n  hint: quote it: \"12\"\n");
  CHECK(errors(with_child("        - { id: w, kind: counter, significant: yes, restart: transient }\n")) ==
        "test.yaml:5:48: error: applications[0].supervisor.children[0].significant: got 'yes' (expected true or "
        "false)\n");
  CHECK(errors("applications: {}\n") ==
        "test.yaml:1:15: error: applications: got a map (expected a list of applications)\n");
  CHECK(
      errors("node:\n  logging: { level: verbose }\n") ==
      "test.yaml:2:21: error: node.logging.level: got 'verbose' (expected one of: trace, debug, info, warning, error, "
      "off)\n");
  CHECK(errors("node:\n  logging: { format: jsn }\n") ==
        "test.yaml:2:22: error: node.logging.format: got 'jsn' (expected one of: text, json)\n"
        "  hint: did you mean 'json'?\n");
}

TEST_CASE("bad durations and sizes", "[config]") {
  std::string app = "applications:\n  - name: app\n    supervisor:\n";
  // A period is a whole number of seconds, at least 1s (OTP counts restarts in whole seconds):
  // the loader says so, at the period's own line and column.
  CHECK(errors(app + "      period: 5 sec\n") ==
        "test.yaml:4:15: error: applications[0].supervisor.period: got '5 sec' (expected a whole number of seconds, "
        "at least 1s)\n");
  CHECK(errors(app + "      period: 5\n") ==
        "test.yaml:4:15: error: applications[0].supervisor.period: got 5 (expected a whole number of seconds, at "
        "least 1s)\n"
        "  hint: add a unit: 5s or 5ms\n");
  CHECK(errors(app + "      period: 0s\n") ==
        "test.yaml:4:15: error: applications[0].supervisor.period: got '0s' (expected a whole number of seconds, at "
        "least 1s)\n");
  CHECK(errors(app + "      period: 99999999999h\n") ==
        "test.yaml:4:15: error: applications[0].supervisor.period: got '99999999999h' (expected a whole number of "
        "seconds, at least 1s)\n");
  CHECK(errors(app + "      intensity: 3\n      period: 1500ms\n") ==
        "test.yaml:5:15: error: applications[0].supervisor.period: got 1500ms (expected a whole number of seconds, at "
        "least 1s)\n  hint: restarts are counted in whole seconds, as in OTP\n");
  CHECK(errors(app + "      period: 2000ms\n").empty());
  CHECK(errors(with_child("        - id: d\n          dynamic_supervisor: { period: 500ms }\n")) ==
        "test.yaml:6:41: error: applications[0].supervisor.children[0].dynamic_supervisor.period: got 500ms (expected "
        "a whole number of seconds, at least 1s)\n  hint: restarts are counted in whole seconds, as in OTP\n");
  CHECK(errors(with_child("        - id: d\n          dynamic_supervisor: { backoff: { min: 1s } }\n")) ==
        "test.yaml:6:33: error: applications[0].supervisor.children[0].dynamic_supervisor.backoff: not supported on a "
        "dynamic_supervisor yet\n  hint: declare backoff on a supervisor's children instead\n");
  CHECK(errors(app + "      backoff: { min: 1 s }\n") ==
        "test.yaml:4:23: error: applications[0].supervisor.backoff.min: got '1 s' (expected a duration, like 500ms or "
        "5s)\n");
  CHECK(errors(with_child("        - { id: w, kind: counter, shutdown: infinty }\n")) ==
        "test.yaml:5:45: error: applications[0].supervisor.children[0].shutdown: got 'infinty' (expected a duration "
        "like 5s, brutal_kill or infinity)\n  hint: did you mean 'infinity'?\n");
  CHECK(errors(with_child("        - { id: w, kind: counter, stack_size: 64KB }\n")) ==
        "test.yaml:5:47: error: applications[0].supervisor.children[0].stack_size: got '64KB' (expected a size of at "
        "least 16KiB: bytes, or a number with KiB or MiB)\n");
  CHECK(errors(with_child("        - { id: w, kind: counter, stack_size: 1024 }\n")) ==
        "test.yaml:5:47: error: applications[0].supervisor.children[0].stack_size: got 1024 (expected a size of at "
        "least 16KiB: bytes, or a number with KiB or MiB)\n");
  auto r = load(with_child("        - { id: w, kind: counter, stack_size: 1MiB, shutdown: 250us }\n"));
  REQUIRE(r.config);
  const auto& c = r.config->applications[0].supervisor.children[0];
  CHECK(c.stack_size == 1024u * 1024);
  CHECK(c.shutdown->timeout == 250us);
}

TEST_CASE("unknown kinds name the nearest registered kind", "[config]") {
  auto o = options();
  o.known_kinds = {"counter", "echo", "ticker"};
  CHECK(errors(with_child("        - { id: w, kind: countr }\n"), o) ==
        "test.yaml:5:26: error: applications[0].supervisor.children[0].kind: unknown kind 'countr' (expected one of: "
        "counter, echo, ticker)\n  hint: did you mean 'counter'?\n");
  // Without known kinds, any kind is accepted.
  CHECK(errors(with_child("        - { id: w, kind: countr }\n")) == "");
}

TEST_CASE("duplicate child ids, registered names and application names", "[config]") {
  CHECK(errors(with_child("        - { id: w, kind: counter }\n"
                          "        - { id: w, kind: echo }\n")) ==
        "test.yaml:6:17: error: applications[0].supervisor.children[1].id: duplicate child id 'w'\n"
        "  hint: first at test.yaml:5:17\n");
  // The same id in different supervisors is fine; a registered name is unique everywhere.
  CHECK(errors(R"(applications:
  - name: a
    supervisor:
      children:
        - { id: w, kind: counter, name: shared }
        - id: group
          supervisor: { children: [{ id: w, kind: counter }] }
  - name: b
    supervisor: { children: [{ id: x, kind: counter, name: shared }] }
  - name: a
    supervisor: {}
)") == "test.yaml:9:60: error: applications[1].supervisor.children[0].name: duplicate registered name 'shared'\n"
       "  hint: first registered by applications[0].supervisor.children[0].name at test.yaml:5:41\n"
       "test.yaml:10:11: error: applications[2].name: duplicate application name 'a'\n"
       "  hint: first at test.yaml:2:11\n");
}

TEST_CASE("a duplicate key in one map is an error", "[config]") {
  CHECK(errors("node:\n  name: one\n  name: two\n") ==
        "test.yaml:3:3: error: node.name: duplicate key\n  hint: first at line 2\n");
}

TEST_CASE("missing required keys", "[config]") {
  CHECK(errors("applications:\n  - start: permanent\n") ==
        "test.yaml:2:5: error: applications[0].name: missing required key (expected a string)\n"
        "test.yaml:2:5: error: applications[0].supervisor: missing required key (expected a map)\n");
  CHECK(errors(with_child("        - kind: counter\n")) ==
        "test.yaml:5:11: error: applications[0].supervisor.children[0].id: missing required key (expected a string)\n");
}

TEST_CASE("a child has exactly one of kind, supervisor and dynamic_supervisor", "[config]") {
  CHECK(errors(with_child("        - id: w\n          restart: temporary\n")) ==
        "test.yaml:5:11: error: applications[0].supervisor.children[0]: missing kind, supervisor or dynamic_supervisor "
        "(expected exactly one of: kind, supervisor, dynamic_supervisor)\n");
  CHECK(errors(with_child("        - id: w\n"
                          "          kind: counter\n"
                          "          supervisor: {}\n"
                          "          dynamic_supervisor: {}\n")) ==
        "test.yaml:7:11: error: applications[0].supervisor.children[0].supervisor: conflicts with 'kind' (expected "
        "exactly one of: kind, supervisor, dynamic_supervisor)\n"
        "test.yaml:8:11: error: applications[0].supervisor.children[0].dynamic_supervisor: conflicts with 'kind' "
        "(expected exactly one of: kind, supervisor, dynamic_supervisor)\n");
  CHECK(errors(with_child("        - id: g\n"
                          "          mailbox_capacity: 10\n"
                          "          supervisor: {}\n")) ==
        "test.yaml:6:11: error: applications[0].supervisor.children[0].mailbox_capacity: not allowed on a supervisor "
        "child\n  hint: args, stack_size, mailbox_capacity and overflow belong to a child with a kind\n");
}

TEST_CASE("invalid combinations: significant, auto_shutdown, overflow", "[config]") {
  std::string sup =
      "applications:\n  - name: app\n    supervisor:\n      auto_shutdown: any_significant\n"
      "      children:\n";
  CHECK(errors(sup + "        - { id: w, kind: counter, significant: true }\n") ==
        "test.yaml:6:48: error: applications[0].supervisor.children[0].significant: a permanent child cannot be "
        "significant\n  hint: restart defaults to permanent: use restart: transient or temporary\n");
  CHECK(errors(sup + "        - { id: w, kind: counter, restart: permanent, significant: true }\n") ==
        "test.yaml:6:68: error: applications[0].supervisor.children[0].significant: a permanent child cannot be "
        "significant\n  hint: use restart: transient or temporary\n");
  CHECK(errors(sup + "        - { id: w, kind: counter, restart: transient, significant: true }\n") == "");
  CHECK(errors(with_child("        - { id: w, kind: counter, restart: transient, significant: true }\n")) ==
        "test.yaml:5:68: error: applications[0].supervisor.children[0].significant: a significant child under a "
        "supervisor with auto_shutdown: never\n"
        "  hint: set the supervisor's auto_shutdown to any_significant or all_significant\n");
  CHECK(
      errors(with_child("        - id: d\n"
                        "          dynamic_supervisor: { auto_shutdown: any_significant, strategy: one_for_all }\n")) ==
      "test.yaml:6:33: error: applications[0].supervisor.children[0].dynamic_supervisor.auto_shutdown: not allowed "
      "on a dynamic_supervisor\n"
      "  hint: auto_shutdown needs significant children, which only a supervisor declares\n"
      "test.yaml:6:65: error: applications[0].supervisor.children[0].dynamic_supervisor.strategy: not allowed on a "
      "dynamic_supervisor\n  hint: a dynamic_supervisor is always one_for_one\n");
  CHECK(errors(with_child("        - { id: w, kind: counter, overflow: fail }\n")) ==
        "test.yaml:5:45: error: applications[0].supervisor.children[0].overflow: overflow without mailbox_capacity\n"
        "  hint: an unbounded mailbox never overflows: set mailbox_capacity\n");
  // The head word of a mailbox counts up to 524,287 messages: a larger capacity is refused here.
  CHECK(errors(with_child("        - { id: w, kind: counter, mailbox_capacity: 524288 }\n")) ==
        "test.yaml:5:53: error: applications[0].supervisor.children[0].mailbox_capacity: got 524288 (expected an "
        "integer from 1 to 524287)\n");
  CHECK(errors(with_child("        - { id: w, kind: counter, mailbox_capacity: 524287 }\n")).empty());
}

TEST_CASE("out-of-range numbers: intensity, period, backoff, schedulers", "[config]") {
  std::string app = "applications:\n  - name: app\n    supervisor:\n";
  CHECK(errors(app + "      intensity: -1\n") ==
        "test.yaml:4:18: error: applications[0].supervisor.intensity: got -1 (expected an integer >= 0)\n");
  CHECK(errors(app + "      backoff: { min: 20s, max: 10s }\n") ==
        "test.yaml:4:23: error: applications[0].supervisor.backoff.min: min (20s) is greater than max (10s)\n");
  CHECK(errors(app + "      backoff: { min: 20s }\n") ==
        "test.yaml:4:23: error: applications[0].supervisor.backoff.min: min (20s) is greater than max (10s)\n"
        "  hint: max defaults to 10s\n");
  CHECK(errors(app + "      backoff: { jitter: 1.5, multiplier: 0.5 }\n") ==
        "test.yaml:4:43: error: applications[0].supervisor.backoff.multiplier: got 0.5 (expected a number >= 1)\n"
        "test.yaml:4:26: error: applications[0].supervisor.backoff.jitter: got 1.5 (expected a number between 0 and "
        "1)\n");
  CHECK(errors("node: { schedulers: 0 }\n") ==
        "test.yaml:1:21: error: node.schedulers: got 0 (expected an integer between 1 and 1024)\n");
}

TEST_CASE("depends_on: unknown applications and cycles, named", "[config]") {
  CHECK(errors(R"(applications:
  - name: logger
    supervisor: {}
  - name: bank
    depends_on: [loger]
    supervisor: {}
)") == "test.yaml:5:18: error: applications[1].depends_on[0]: unknown application 'loger' (expected one of: logger, "
       "bank)\n  hint: did you mean 'logger'?\n");
  CHECK(errors(R"(applications:
  - name: web
    depends_on: [api]
    supervisor: {}
  - name: api
    depends_on: [db]
    supervisor: {}
  - name: db
    depends_on: [web]
    supervisor: {}
  - name: self
    depends_on: [self]
    supervisor: {}
  - name: behind
    depends_on: [db]
    supervisor: {}
)") == "test.yaml:3:18: error: applications[0].depends_on[0]: dependency cycle: web -> api -> db -> web\n"
       "test.yaml:12:18: error: applications[3].depends_on[0]: dependency cycle: self -> self\n");
}

TEST_CASE("start_order: dependencies first, otherwise file order", "[config]") {
  auto r = load(R"(applications:
  - { name: web, depends_on: [api, cache], supervisor: {} }
  - { name: api, depends_on: [store], supervisor: {} }
  - { name: store, supervisor: {} }
  - { name: cache, depends_on: [store], supervisor: {} }
  - { name: tools, supervisor: {} }
)");
  REQUIRE(r.config);
  CHECK(r.config->start_order == std::vector<std::string>{"store", "api", "cache", "web", "tools"});
}

TEST_CASE("every error is reported at once, in one pass", "[config]") {
  auto o = options();
  o.known_kinds = {"counter"};
  auto r = load(R"(node:
  schedulers: 0
  logging: { level: loud }
applications:
  - name: app
    depends_on: [nope]
    supervisor:
      strategy: one_for_al
      period: 1 s
      children:
        - { id: a, kind: countr }
        - { id: a, kind: counter, restrat: temporary }
)",
                o);
  CHECK_FALSE(r.config);
  REQUIRE(r.errors.size() == 8);
  CHECK(r.errors[0].path == "node.schedulers");
  CHECK(r.errors[1].path == "node.logging.level");
  CHECK(r.errors[2].path == "applications[0].supervisor.strategy");
  CHECK(r.errors[3].path == "applications[0].supervisor.period");
  CHECK(r.errors[4].path == "applications[0].supervisor.children[0].kind");
  CHECK(r.errors[5].path == "applications[0].supervisor.children[1].restrat");
  CHECK(r.errors[5].hint == "did you mean 'restart'?");
  CHECK(format(r.errors[6]) ==
        "test.yaml:12:17: error: applications[0].supervisor.children[1].id: duplicate child id 'a'\n"
        "  hint: first at test.yaml:11:17");
  // What spans the document comes last.
  CHECK(r.errors[7].path == "applications[0].depends_on[0]");
  CHECK(r.errors[7].message == "unknown application 'nope'");
  CHECK(r.errors[7].pos == cfg::source_pos{"test.yaml", 6, 18});
}

TEST_CASE("environment variables: ${NAME}, ${NAME:-default}, $$, typed by what they expand to", "[config]") {
  auto r = load(R"(node:
  name: ${NODE}-${SUFFIX:-x}
  schedulers: ${SCHEDULERS:-3}
  console: { address: "127.0.0.1:${PORT}", token: "${TOKEN:-}" }
applications:
  - name: app
    env: { price: "$$5", literal: a$b, empty: "${EMPTY:-fallback}" }
    supervisor:
      period: ${PERIOD:-2s}
)",
                options({{"NODE", "n1"}, {"PORT", "9000"}, {"EMPTY", ""}}));
  INFO(r.errors.to_string());
  REQUIRE(r.config);
  CHECK(r.config->name == "n1-x");
  CHECK(r.config->schedulers == 3);
  CHECK(r.config->console.port == 9000);
  CHECK(r.config->console.token == "");
  const auto& env = r.config->applications[0].env;
  CHECK(env.get<std::string>("price") == "$5");
  CHECK(env.get<std::string>("literal") == "a$b");
  CHECK(env.get<std::string>("empty") == "fallback");  // :- applies to an empty value too, as in the shell
  CHECK(r.config->applications[0].supervisor.period == 2s);
}

TEST_CASE("an unset environment variable without a default is an error where it is used", "[config]") {
  CHECK(errors("node:\n  name: ${NODE_NAME}\n  schedulers: ${N:-many}\n  console: { token: \"${T\" }\n") ==
        "test.yaml:2:9: error: node.name: environment variable NODE_NAME is not set\n"
        "  hint: set it, or give a default: ${NODE_NAME:-value}\n"
        "test.yaml:4:21: error: node.console.token: unterminated '${' (expected ${NAME} or ${NAME:-default})\n"
        "  hint: write $$ for a literal '$'\n"
        "test.yaml:3:15: error: node.schedulers: got 'many' (expected an integer between 1 and 1024)\n");
}

TEST_CASE("includes: deep-merged maps, the including file wins, lists replaced", "[config]") {
  std::map<std::string, std::string> files = {
      {"conf/base.yaml", R"(node:
  name: base
  schedulers: 1
  logging: { level: info, format: text }
applications:
  - name: base-app
    supervisor: {}
)"},
      {"conf/env/prod.yaml", R"(include: ../base.yaml
node:
  logging: { level: warning }
)"},
      {"conf/top.yaml", R"(include: ["env/${ENVIRONMENT:-prod}.yaml"]
node:
  name: top
applications:
  - name: top-app
    supervisor: {}
)"},
  };
  auto o = options();
  o.read_file = [&](const std::string& path) -> std::optional<std::string> {
    auto it = files.find(path);
    if (it == files.end()) return std::nullopt;
    return it->second;
  };
  auto r = cfg::load_file("conf/top.yaml", o);
  INFO(r.errors.to_string());
  REQUIRE(r.config);
  CHECK(r.config->name == "top");
  CHECK(r.config->schedulers == 1);
  CHECK(r.config->logging.level == cfg::log_level::warning);
  CHECK(r.config->logging.format == cfg::log_format::text);
  REQUIRE(r.config->applications.size() == 1);
  CHECK(r.config->applications[0].name == "top-app");
  CHECK(r.config->pos.file == "conf/top.yaml");
  CHECK(r.config->logging.pos.file == "conf/env/prod.yaml");

  SECTION("an error in an included file names that file") {
    files["conf/base.yaml"] = "node:\n  schedulers: none\n";
    CHECK(cfg::load_file("conf/top.yaml", o).errors.to_string() ==
          "conf/base.yaml:2:15: error: node.schedulers: got 'none' (expected an integer between 1 and 1024)\n");
  }
  SECTION("a missing include is an error at the include") {
    files["conf/env/prod.yaml"] = "include: [base.yaml]\n";
    CHECK(cfg::load_file("conf/top.yaml", o).errors.to_string() ==
          "conf/env/prod.yaml:1:11: error: include[0]: cannot read included file 'conf/env/base.yaml': cannot be "
          "read\n");
  }
  SECTION("an include cycle is an error") {
    files["conf/base.yaml"] = "include: top.yaml\n";
    CHECK(cfg::load_file("conf/top.yaml", o).errors.to_string() ==
          "conf/base.yaml:1:10: error: include: include cycle: conf/top.yaml -> conf/env/prod.yaml -> conf/base.yaml "
          "-> conf/top.yaml\n");
  }
  SECTION("a syntax error in an included file") {
    files["conf/base.yaml"] = "node: {\n";
    CHECK(cfg::load_file("conf/top.yaml", o)
              .errors.to_string()
              .starts_with("conf/base.yaml:1:7: error: invalid YAML: this '{' is never closed"));
  }
}

TEST_CASE("a file that cannot be read", "[config]") {
  auto r = cfg::load_file("/nonexistent/grove.yaml");
  CHECK_FALSE(r.config);
  CHECK(r.errors.to_string() == "/nonexistent/grove.yaml: error: cannot read file: No such file or directory\n");
}

TEST_CASE("limits: only regular files are read, and sizes, includes and aliases are capped", "[config][limits]") {
  namespace limits = grove::config::limits;
  SECTION("a device, a FIFO or a directory is refused at once, not read") {
    for (const char* path : {"/dev/zero", "/dev/urandom", "/tmp"}) {
      auto r = cfg::load_file(path);
      CHECK_FALSE(r.config);
      CHECK(r.errors.to_string().find("cannot read file") != std::string::npos);
    }
    const std::string fifo = "/tmp/grove-loader-test-fifo-" + std::to_string(::getpid());
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    auto r = cfg::load_file(fifo);  // opening a FIFO with no writer would block for ever
    std::remove(fifo.c_str());
    CHECK(r.errors.to_string().find("not a regular file") != std::string::npos);
    auto inc = load("include: /dev/zero\n");
    CHECK(inc.errors.to_string().find("include: cannot read included file '/dev/zero': not a regular file") !=
          std::string::npos);
  }
  SECTION("a file past the size cap") {
    auto r = load(std::string(limits::max_file_bytes + 1, '#'));
    CHECK(r.errors.to_string().find("larger than 4 MiB") != std::string::npos);
  }
  SECTION("an include chain where each file includes the next twice stops at the include cap") {
    auto o = options();
    o.read_file = [](const std::string& path) -> std::optional<std::string> {
      const int level = std::stoi(path.substr(path.find_first_of("0123456789")));
      const std::string next = "f" + std::to_string(level + 1) + ".yaml";
      return "include: [" + next + ", " + next + "]\n";
    };
    auto r = cfg::load_file("f0.yaml", o);
    CHECK_FALSE(r.config);
    const std::string e = r.errors.to_string();
    CHECK((e.find("nested deeper than 16 levels") != std::string::npos ||
           e.find("more than 256 includes") != std::string::npos));
  }
  SECTION("a 100 KB scalar aliased a million times is refused by bytes, not expanded") {
    std::string yaml = "x: &big \"" + std::string(100 * 1024, 'a') + "\"\ny: [";
    for (int i = 0; i < 1000; ++i) yaml += i ? ", *big" : "*big";
    yaml += "]\n";
    auto r = load(yaml);  // 1,000 copies of 100 KB: 100 MB, past the 32 MiB total
    CHECK(r.errors.to_string().find("document too large") != std::string::npos);
  }
}

TEST_CASE("a console beyond loopback needs a token, from the file or GROVE_CONSOLE_TOKEN", "[config][limits]") {
  const std::string open = "node:\n  console: { address: \"0.0.0.0:7070\" }\n";
  CHECK(errors(open).find("node.console.address: console address 0.0.0.0:7070 is not loopback: set a token") !=
        std::string::npos);
  CHECK(errors("node:\n  console: { address: \"0.0.0.0:7070\", token: s3cret }\n").empty());
  CHECK(errors(open, options({{"GROVE_CONSOLE_TOKEN", "s3cret"}})).empty());
  CHECK(errors("node:\n  console: { address: \"127.0.0.1:99999\" }\n").find("port up to 65535") != std::string::npos);
  CHECK(errors("node:\n  console: { address: \"[::1]:7070\" }\n").empty());
}

TEST_CASE("the HTTP endpoint beyond loopback needs a token, from the file or GROVE_HTTP_TOKEN", "[config][limits]") {
  const std::string open = "node:\n  http: { listen: \"0.0.0.0:8080\" }\n";
  CHECK(errors(open) ==
        "test.yaml:2:19: error: node.http.listen: http address 0.0.0.0:8080 is not loopback: set a token "
        "(node.http.token or GROVE_HTTP_TOKEN) to bind it\n");
  CHECK(errors("node:\n  http: { listen: \"0.0.0.0:8080\", token: s3cret }\n").empty());
  CHECK(errors(open, options({{"GROVE_HTTP_TOKEN", "s3cret"}})).empty());
  CHECK(errors(open, options({{"GROVE_CONSOLE_TOKEN", "s3cret"}})).find("not loopback") != std::string::npos);
  CHECK(errors("node:\n  http: { listen: stdio }\n").find("node.http.listen: got 'stdio' (expected off or host:port") !=
        std::string::npos);
  CHECK(errors("node:\n  http: { listen: off, max_connections: 0 }\n").find("node.http.max_connections") !=
        std::string::npos);
  CHECK(errors("node:\n  http: { listen: \"127.0.0.1:8080\", colour: 1 }\n").find("node.http.colour: unknown key") !=
        std::string::npos);
  auto r = load("node:\n  http: { listen: \"127.0.0.1:0\", max_connections: 8 }\n");
  REQUIRE(r.config);
  CHECK(r.config->http.listen == "127.0.0.1:0");
  CHECK(r.config->http.max_connections == 8);
}

TEST_CASE("enum names and durations print as in YAML", "[config]") {
  // The enums config shares with the layers below are theirs, named once (grove::to_string).
  STATIC_REQUIRE(std::is_same_v<cfg::strategy, grove::strategy>);
  STATIC_REQUIRE(std::is_same_v<cfg::overflow_policy, grove::overflow_policy>);
  CHECK(std::string_view(to_string(cfg::strategy::rest_for_one)) == "rest_for_one");
  CHECK(std::string_view(to_string(cfg::auto_shutdown::all_significant)) == "all_significant");
  CHECK(std::string_view(to_string(cfg::restart_type::temporary)) == "temporary");
  CHECK(cfg::to_string(cfg::start_type::transient) == "transient");
  CHECK(std::string_view(to_string(cfg::overflow_policy::drop_oldest)) == "drop_oldest");
  CHECK(std::string_view(to_string(cfg::log_format::json)) == "json");
  CHECK(cfg::to_string(cfg::log_level::warning) == "warning");
  CHECK(cfg::format_duration(5s) == "5s");
  CHECK(cfg::format_duration(1500ms) == "1500ms");
  CHECK(cfg::format_duration(2h) == "2h");
  CHECK(cfg::format_duration(0s) == "0s");
}

TEST_CASE("node.distribution: names as erl gives them, cookie file, hidden, tick time, ports", "[config]") {
  auto r = load(
      "node:\n  distribution:\n    sname: demo\n    cookie_file: /etc/grove/cookie\n    hidden: true\n"
      "    tick_time: 20s\n    port_range: 9100-9200\n");
  REQUIRE(r.config);
  const auto& dist = r.config->distribution;
  CHECK(dist.name == "demo");
  CHECK_FALSE(dist.longnames);
  CHECK(dist.cookie_file == "/etc/grove/cookie");
  CHECK(dist.hidden);
  CHECK(dist.tick_time == std::chrono::seconds(20));
  CHECK(dist.port_min == 9100);
  CHECK(dist.port_max == 9200);
  auto longname = load("node:\n  distribution:\n    name: demo@host.example.com\n    port_range: \"9100\"\n");
  REQUIRE(longname.config);
  CHECK(longname.config->distribution.longnames);
  CHECK(longname.config->distribution.port_min == 9100);
  CHECK(longname.config->distribution.port_max == 9100);
  // Without the section, no distribution: the default name is empty.
  REQUIRE(load("node:\n  name: x\n").config);
  CHECK(load("node:\n  name: x\n").config->distribution.name.empty());

  CHECK(errors("node:\n  distribution:\n    sname: a\n    name: a@b\n") ==
        "test.yaml:4:11: error: node.distribution.name: give sname (a short name, as erl -sname) or name (a long one, "
        "as erl -name), not both\n");
  CHECK(errors("node:\n  distribution:\n    sname: \"no spaces\"\n") ==
        "test.yaml:3:12: error: node.distribution.sname: 'no spaces' is not a node name: letters, digits, _ and - only "
        "(as erl's)\n");
  CHECK_THAT(
      errors("node:\n  distribution:\n    sname: a\n    tick_time: 10ms\n"),
      Catch::StartsWith("test.yaml:4:16: error: node.distribution.tick_time:") && Catch::Contains("at least 1s"));
  CHECK_THAT(errors("node:\n  distribution:\n    sname: a\n    port_range: 9200-9100\n"),
             Catch::StartsWith("test.yaml:4:17: error: node.distribution.port_range:") && Catch::Contains("9100-9200"));
  CHECK_THAT(errors("node:\n  distribution:\n    sname: a\n    cookie: secret\n"),
             Catch::StartsWith("test.yaml:4:5: error: node.distribution.cookie: unknown key") &&
                 Catch::Contains("cookie_file"));
}
