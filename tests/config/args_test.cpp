// The args view: typed reads of a YAML map, and errors recorded (not thrown) with positions.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <grove/config/args.hpp>
#include <grove/config/config.hpp>

using namespace std::chrono_literals;
namespace cfg = grove::config;

namespace {

struct parsed {
  std::shared_ptr<cfg::diagnostics> sink = std::make_shared<cfg::diagnostics>();
  cfg::args a;
  explicit parsed(std::string_view yaml) : a(cfg::args::parse(yaml, "args.yaml", sink)) {}
};

}  // namespace

TEST_CASE("args reads every supported type", "[config]") {
  parsed p(R"(flag: true
off: False
count: 42
big: 9000000000
hex: 0x10
ratio: 0.25
whole: 3
name: ledger
number_as_text: 7
every: 500ms
tags: [a, b, 3]
ids: [1, -2, 3]
)");
  const cfg::args& a = p.a;
  CHECK(a.get<bool>("flag") == true);
  CHECK(a.get<bool>("off") == false);
  CHECK(a.get<int>("count") == 42);
  CHECK(a.get<std::int64_t>("big") == 9'000'000'000);
  CHECK(a.get<int>("hex") == 16);
  CHECK(a.get<double>("ratio") == 0.25);
  CHECK(a.get<double>("whole") == 3.0);
  CHECK(a.get<std::string>("name") == "ledger");
  CHECK(a.get<std::string>("number_as_text") == "7");  // any scalar reads as a string
  CHECK(a.get<std::chrono::nanoseconds>("every") == 500ms);
  CHECK(a.get<std::vector<std::string>>("tags") == std::vector<std::string>{"a", "b", "3"});
  CHECK(a.get<std::vector<std::int64_t>>("ids") == std::vector<std::int64_t>{1, -2, 3});
  CHECK(a.has("flag"));
  CHECK_FALSE(a.has("absent"));
  CHECK(a.keys().size() == 12);
  CHECK(p.sink->empty());
}

TEST_CASE("a missing key gives the fallback without an error; a required one records an error", "[config]") {
  parsed p("port: 7000\n");
  CHECK(p.a.get<int>("timeout_ms", 250) == 250);
  CHECK(p.a.get<std::string>("host", "localhost") == "localhost");
  CHECK(p.a.get<std::chrono::nanoseconds>("every", 1s) == 1s);
  CHECK(p.sink->empty());
  CHECK(p.a.get<std::string>("host").empty());
  CHECK(p.sink->to_string() == "args.yaml:1:1: error: host: missing required key (expected a string)\n");
}

TEST_CASE("find tells a missing key from a zero, require reports a missing one, error points at the value",
          "[config]") {
  // Issue 12 item 4: with get alone a kind could not tell an absent key from a zero, so its own
  // check fired after the loader's "missing required key".
  parsed p("every: 0s\nport: x\n");
  CHECK_FALSE(p.a.find<std::chrono::nanoseconds>("absent"));
  CHECK(p.sink->empty());
  CHECK(p.a.find<std::chrono::nanoseconds>("every") == 0s);
  CHECK_FALSE(p.a.find<int>("port"));        // present but not an integer: recorded
  CHECK_FALSE(p.a.require<int>("missing"));  // absent and required: recorded
  CHECK(p.a.require<std::chrono::nanoseconds>("every") == 0s);
  p.a.error("every", "must be more than 0", "a duration such as 500ms");
  p.a.error("nowhere", "needed here");
  CHECK(p.sink->to_string() ==
        "args.yaml:2:7: error: port: got 'x' (expected a 32-bit integer)\n"
        "args.yaml:1:1: error: missing: missing required key (expected an integer)\n"
        "args.yaml:1:8: error: every: must be more than 0 (expected a duration such as 500ms)\n"
        "args.yaml:1:1: error: nowhere: needed here\n");
}

TEST_CASE("a value of the wrong type is an error at its position, and the fallback is returned", "[config]") {
  parsed p(R"(port: "7000"
rate: fast
big: 3000000000
on: yes
every: 5
names: oops
ids: [1, x, 3]
)");
  CHECK(p.a.get<int>("port", 80) == 80);
  CHECK(p.a.get<double>("rate", 1.0) == 1.0);
  CHECK(p.a.get<int>("big", 1) == 1);
  CHECK(p.a.get<bool>("on", false) == false);
  CHECK(p.a.get<std::chrono::nanoseconds>("every", 1s) == 1s);
  CHECK(p.a.get<std::vector<std::string>>("names").empty());
  CHECK(p.a.get<std::vector<std::int64_t>>("ids", {9}) == std::vector<std::int64_t>{9});
  CHECK(p.sink->to_string() ==
        "args.yaml:1:7: error: port: got the string \"7000\" (expected a 32-bit integer)\n"
        "  hint: remove the quotes\n"
        "args.yaml:2:7: error: rate: got 'fast' (expected a number)\n"
        "args.yaml:3:6: error: big: got 3000000000 (expected a 32-bit integer)\n"
        "args.yaml:4:5: error: on: got 'yes' (expected true or false)\n"
        "args.yaml:5:8: error: every: got 5 (expected a duration, like 500ms or 5s)\n"
        "  hint: add a unit: 5s or 5ms\n"
        "args.yaml:6:8: error: names: got 'oops' (expected a list of strings)\n"
        "args.yaml:7:10: error: ids[1]: got 'x' (expected an integer)\n");
}

TEST_CASE("nested maps and lists of maps carry their key paths", "[config]") {
  parsed p(R"(http:
  port: 80
  tls: { cert: a.pem }
routes:
  - { path: /a, to: alpha }
  - { path: /b }
)");
  cfg::args http = p.a.at("http");
  CHECK(http.path() == "http");
  CHECK(http.pos() == cfg::source_pos{"args.yaml", 2, 3});
  CHECK(http.get<int>("port") == 80);
  CHECK(http.at("tls").get<std::string>("cert") == "a.pem");
  auto routes = p.a.list("routes");
  REQUIRE(routes.size() == 2);
  CHECK(routes[0].get<std::string>("to") == "alpha");
  CHECK(routes[1].get<std::string>("to").empty());
  // An absent sub-map is empty; its reads fall back, its required reads name the full path.
  cfg::args absent = p.a.at("metrics");
  CHECK(absent.empty());
  CHECK(absent.get<int>("interval", 10) == 10);
  absent.get<int>("interval");
  // A scalar where a map belongs.
  p.a.at("http").at("port");
  CHECK(p.sink->to_string() ==
        "args.yaml:6:5: error: routes[1].to: missing required key (expected a string)\n"
        "args.yaml:1:1: error: metrics.interval: missing required key (expected an integer)\n"
        "args.yaml:2:9: error: http.port: got 80 (expected a map)\n");
}

TEST_CASE("only() reports every other key with the nearest allowed one", "[config]") {
  parsed p("port: 1\nhots: x\ncolour: red\n");
  p.a.only({"port", "host"});
  CHECK(p.sink->to_string() ==
        "args.yaml:2:1: error: hots: unknown key (expected one of: port, host)\n  hint: did you mean 'host'?\n"
        "args.yaml:3:1: error: colour: unknown key (expected one of: port, host)\n");
}

TEST_CASE("with_sink sends a view's errors (and its sub-views') to another sink", "[config]") {
  parsed p("a: { b: x }\n");
  auto mine = std::make_shared<cfg::diagnostics>();
  cfg::args view = p.a.with_sink(mine);
  CHECK(view.sink() == mine);
  view.at("a").get<int>("b");
  CHECK(p.sink->empty());
  REQUIRE(mine->size() == 1);
  CHECK((*mine)[0].path == "a.b");
  CHECK((*mine)[0].pos == cfg::source_pos{"args.yaml", 1, 9});
}

TEST_CASE("an empty args view behaves as an empty map", "[config]") {
  cfg::args a;
  CHECK(a.empty());
  CHECK_FALSE(a.has("x"));
  CHECK(a.get<int>("x", 3) == 3);
  a.only({"y"});
  CHECK(a.sink()->empty());
  auto empty = cfg::args::parse("", "e.yaml");
  CHECK(empty.empty());
  CHECK(empty.sink()->empty());
  auto list = cfg::args::parse("[1, 2]", "l.yaml");
  CHECK(list.sink()->to_string() == "l.yaml:1:1: error: got a list (expected a map)\n");
}

TEST_CASE("a child's args in a loaded file report positions in that file", "[config]") {
  auto r = cfg::load_string(R"(applications:
  - name: app
    supervisor:
      children:
        - id: w
          kind: counter
          args: { opening: lots, step: 2 }
        - id: x
          kind: counter
)",
                            "bank.yaml");
  REQUIRE(r.config);
  const auto& children = r.config->applications[0].supervisor.children;
  auto sink = std::make_shared<cfg::diagnostics>();
  cfg::args a = children[0].args.with_sink(sink);
  CHECK(a.get<std::int64_t>("opening", 0) == 0);
  CHECK(a.get<int>("step") == 2);
  CHECK(sink->to_string() ==
        "bank.yaml:7:28: error: applications[0].supervisor.children[0].args.opening: got 'lots' (expected an "
        "integer)\n");
  // A child without args: an empty map, whose required reads point at the child.
  cfg::args none = children[1].args.with_sink(sink);
  CHECK(none.empty());
  none.get<std::string>("greeting");
  CHECK((*sink)[1].pos == cfg::source_pos{"bank.yaml", 8, 11});
  CHECK((*sink)[1].path == "applications[0].supervisor.children[1].args.greeting");
}

TEST_CASE("diagnostics format like a compiler's", "[config]") {
  // Built field by field: GCC 12 at -O3 warns (maybe-uninitialized) on the aggregate form.
  cfg::diagnostic d;
  d.pos = cfg::source_pos{"bank.yaml", 12, 15};
  d.path = "applications[0].supervisor.children[1].shutdwn";
  d.message = "unknown key";
  d.expected = "one of: id, kind";
  d.hint = "did you mean 'shutdown'?";
  CHECK(cfg::format(d) ==
        "bank.yaml:12:15: error: applications[0].supervisor.children[1].shutdwn: unknown key (expected one of: id, "
        "kind)\n  hint: did you mean 'shutdown'?");
  cfg::diagnostic unread;
  unread.pos.file = "x.yaml";
  unread.message = "cannot read file";
  CHECK(cfg::format(unread) == "x.yaml: error: cannot read file");
  cfg::diagnostics all;
  all.add({"a.yaml", 1, 2}, "k", "bad");
  all.append(all);
  CHECK(all.size() == 2);
  CHECK(all.to_string() == "a.yaml:1:2: error: k: bad\na.yaml:1:2: error: k: bad\n");
}
