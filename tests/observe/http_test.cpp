// The HTTP endpoint (docs/dashboard.md, docs/metrics.md): the page, the API, the event
// stream, /metrics, and its security rules — over real sockets.
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <grove/grove.hpp>
#include <grove/observe/console.hpp>
#include <grove/observe/http.hpp>
#include <nlohmann/json.hpp>

#include "console_support.hpp"

using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

struct hold {};  // keeps the server busy until `release`
struct release {};

class worker final : public grove::gen_server<worker> {
 public:
  using handles = grove::types<int, hold>;
  int handle_call(const int& x, const grove::from&) { return x + 1; }
  void handle_cast(const hold&) {
    grove::receive_for(30s, [](release) {});
  }
  std::string format_status() const { return "worker ok"; }
};

grove::child_spec worker_spec(const std::string& id) {
  grove::child_spec s;
  s.id = id;
  s.start = [id] { return grove::start_link(std::make_unique<worker>(), {.name = id}); };
  return s;
}

// A node with one application, "app", whose supervisor has children w1 and w2, and an HTTP
// endpoint over it.
struct fixture {
  grove::node n{{.schedulers = 2, .name = "http-test"}};
  grove::pid top;
  std::unique_ptr<grove::http_endpoint> web;

  explicit fixture(grove::http_options o = {}) {
    top = n.run([] {
      return grove::start_supervisor({.intensity = 100}, {worker_spec("w1"), worker_spec("w2")},
                                     {.spawn = {.label = "app"}})
          .value();
    });
    if (o.listen.empty()) o.listen = "127.0.0.1:0";
    o.applications = [t = top] { return std::vector<grove::console_app>{{"app", "permanent", t}}; };
    web = std::make_unique<grove::http_endpoint>(n, o);
    std::string error;
    REQUIRE(web->start(error));
    REQUIRE(error.empty());
  }
  ~fixture() {
    web.reset();
    n.run([this] { grove::stop(top, grove::exit_reason::shutdown()); });
  }
  int port() const { return web->port(); }
  grove::pid child(const std::string& name) {
    return n.run([&] { return grove::whereis(name).value_or(grove::pid{}); });
  }
};

struct response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

// Reads one response (headers, then Content-Length bytes) from c.
response read_response(client& c) {
  response r;
  const std::string head = c.until("\r\n\r\n");
  REQUIRE_FALSE(head.empty());
  std::sscanf(head.c_str(), "HTTP/1.1 %d", &r.status);
  std::size_t at = head.find("\r\n") + 2;
  while (at < head.size() - 2) {
    const std::size_t end = head.find("\r\n", at);
    const std::string line = head.substr(at, end - at);
    const std::size_t colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    at = end + 2;
  }
  if (auto len = r.headers.find("content-length"); len != r.headers.end()) {
    r.body = c.take(std::stoul(len->second));
  }
  return r;
}

std::string request(const std::string& method, const std::string& target, const std::string& extra = {},
                    const std::string& body = {}) {
  return method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra +
         (body.empty() && method == "GET" ? "" : "Content-Length: " + std::to_string(body.size()) + "\r\n") + "\r\n" +
         body;
}

response get(int port, const std::string& target, const std::string& extra = {}) {
  client c(port);
  c.send_raw(request("GET", target, extra));
  return read_response(c);
}

response post(int port, const std::string& target, const std::string& args, const std::string& extra = {}) {
  client c(port);
  c.send_raw(request("POST", target, "Content-Type: application/json\r\n" + extra, json{{"args", args}}.dump()));
  return read_response(c);
}

template <class F>
bool eventually(F cond, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// The value of a metric line `name{labels} value` (exact label text), if present.
std::optional<double> metric(const std::string& text, const std::string& series) {
  const std::size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return std::nullopt;
  return std::stod(text.substr(at + series.size() + 2));
}

}  // namespace

TEST_CASE("http: the page and its files, then the API answers as the console does in JSON", "[http]") {
  fixture f;
  auto page = get(f.port(), "/");
  CHECK(page.status == 200);
  CHECK(page.headers["content-type"] == "text/html; charset=utf-8");
  CHECK(page.headers["content-security-policy"].find("default-src 'self'") != std::string::npos);
  CHECK(page.body.find("/dashboard.js") != std::string::npos);
  CHECK(get(f.port(), "/dashboard.js").headers["content-type"] == "text/javascript; charset=utf-8");
  CHECK(get(f.port(), "/dashboard.css").status == 200);
  CHECK(get(f.port(), "/nothing-here").status == 404);

  auto apps = get(f.port(), "/api/apps");
  REQUIRE(apps.status == 200);
  auto a = json::parse(apps.body);
  CHECK(a["ok"] == true);
  CHECK(a["result"][0]["name"] == "app");
  auto tree = json::parse(get(f.port(), "/api/tree").body);
  CHECK(tree["result"][0]["children"].size() == 2);
  auto info = json::parse(get(f.port(), "/api/info?args=w1").body);
  CHECK(info["result"]["pid"] == f.child("w1").str());
  auto state = json::parse(get(f.port(), "/api/state?args=app%2Fw2").body);  // a path, URL-encoded
  CHECK(state["result"]["state"] == "worker ok");
  CHECK(state["result"]["recent"].is_array());
  auto stats = json::parse(get(f.port(), "/api/stats").body);
  CHECK(stats["result"]["utilisation"].size() == 2);
  // A command's error: 400 with the console's envelope and its words.
  auto none = get(f.port(), "/api/info?args=nobody");
  CHECK(none.status == 400);
  CHECK(json::parse(none.body)["ok"] == false);
  CHECK(json::parse(none.body)["error"].get<std::string>().find("nobody") != std::string::npos);
  // Keep-alive: two requests on one connection.
  client c(f.port());
  c.send_raw(request("GET", "/api/apps"));
  CHECK(read_response(c).status == 200);
  c.send_raw(request("GET", "/api/stats"));
  CHECK(read_response(c).status == 200);
}

TEST_CASE("http: POST kill restarts a child through its supervisor; a GET or a form cannot change anything", "[http]") {
  fixture f;
  const grove::pid before = f.child("w1");
  auto wrong_method = get(f.port(), "/api/kill?args=w1");
  CHECK(wrong_method.status == 405);
  CHECK(wrong_method.headers["allow"] == "POST");
  CHECK(post(f.port(), "/api/exit", "").status == 400);  // `exit` alone would end a console session
  {                                                      // a cross-site form posts text/plain
    client c(f.port());
    c.send_raw(request("POST", "/api/kill", "Content-Type: text/plain\r\n", "{\"args\":\"w1\"}"));
    CHECK(read_response(c).status == 415);
  }
  CHECK(post(f.port(), "/api/kill", "w1", "Origin: http://evil.example\r\n").status == 403);
  CHECK(get(f.port(), "/api/info?args=--follow").status == 400);
  CHECK(f.child("w1") == before);  // nothing above changed anything

  auto r = post(f.port(), "/api/kill", "app/w1", "Origin: http://127.0.0.1\r\n");
  REQUIRE(r.status == 200);
  CHECK(json::parse(r.body)["result"]["pid"] == before.str());
  CHECK(eventually([&] {
    auto now = f.child("w1");
    return now && now != before;
  }));
  // terminate then restart, as the page's restart button does
  CHECK(post(f.port(), "/api/terminate", "app/w2").status == 200);
  CHECK_FALSE(f.child("w2"));
  CHECK(post(f.port(), "/api/restart", "app/w2").status == 200);
  CHECK(f.child("w2"));
  CHECK(post(f.port(), "/api/suspend", "w2").status == 200);
  CHECK(post(f.port(), "/api/resume", "w2").status == 200);
  CHECK(post(f.port(), "/api/launch", "w2").status == 404);
}

TEST_CASE("http: with a token, a request without it gets 401 and changes nothing; the page's files need none",
          "[http]") {
  fixture f({.token = "s3cret"});
  const grove::pid before = f.child("w1");
  auto denied = post(f.port(), "/api/kill", "w1");
  CHECK(denied.status == 401);
  CHECK(denied.headers["www-authenticate"].find("Bearer") != std::string::npos);
  CHECK(post(f.port(), "/api/kill", "w1", "Authorization: Bearer wrong\r\n").status == 401);
  CHECK(post(f.port(), "/api/kill", "w1", "Authorization: Bearer s3cret2\r\n").status == 401);
  CHECK(get(f.port(), "/api/tree").status == 401);
  CHECK(get(f.port(), "/metrics").status == 401);
  CHECK(get(f.port(), "/api/stream").status == 401);
  CHECK(f.child("w1") == before);
  CHECK(get(f.port(), "/").status == 200);
  CHECK(get(f.port(), "/api/tree", "Authorization: Bearer s3cret\r\n").status == 200);
  CHECK(get(f.port(), "/metrics", "Authorization: Bearer s3cret\r\n").status == 200);
  CHECK(post(f.port(), "/api/kill", "w1", "Authorization: Bearer s3cret\r\n").status == 200);
  CHECK(eventually([&] { return f.child("w1") && f.child("w1") != before; }));
}

TEST_CASE("http: a non-loopback address without a token refuses to start; with no token only loopback hosts are served",
          "[http]") {
  grove::node n({.schedulers = 1});
  {
    grove::http_endpoint web(n, {.listen = "0.0.0.0:0"});
    std::string error;
    CHECK_FALSE(web.start(error));
    CHECK(error.find("not loopback: set a token") != std::string::npos);
  }
  {
    grove::http_endpoint web(n, {.listen = "nonsense"});
    std::string error;
    CHECK_FALSE(web.start(error));
    CHECK(error.find("is not host:port") != std::string::npos);
  }
  grove::http_endpoint web(n, {});
  std::string error;
  REQUIRE(web.start(error));
  client c(web.port());
  c.send_raw("GET /api/apps HTTP/1.1\r\nHost: rebound.example:8080\r\n\r\n");
  CHECK(read_response(c).status == 403);  // a page elsewhere reaching 127.0.0.1 through DNS
  CHECK(get(web.port(), "/api/apps", "").status == 200);
}

TEST_CASE("http: an over-long request line or header is refused, as is an over-long body; the endpoint goes on",
          "[http]") {
  fixture f({.max_header = 2048, .max_body = 1024});
  {
    client c(f.port());
    c.send_raw("GET /api/apps?args=" + std::string(4096, 'a') + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    CHECK(read_response(c).status == 431);
    CHECK(c.closed());
  }
  {
    client c(f.port());
    c.send_raw("GET /api/apps HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(4096, 'b') + "\r\n\r\n");
    CHECK(read_response(c).status == 431);
  }
  {
    client c(f.port());
    c.send_raw(request("POST", "/api/kill", "Content-Type: application/json\r\n", std::string(2048, ' ')));
    CHECK(read_response(c).status == 413);
  }
  {
    client c(f.port());
    c.send_raw("NOT HTTP AT ALL\r\n\r\n");
    CHECK(read_response(c).status == 400);
  }
  {  // bytes that are not UTF-8 in the path, then in the arguments: an error line, no crash
    client c(f.port());
    c.send_raw("GET /api/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    auto r = read_response(c);
    CHECK(r.status == 404);
    CHECK(json::parse(r.body)["ok"] == false);
    CHECK(get(f.port(), "/api/info?args=%FF%FE").status == 400);
  }
  CHECK(get(f.port(), "/api/apps").status == 200);
}

TEST_CASE("http: a request whose process is killed before it answers gets a 500, not a hang", "[http]") {
  fixture f;
  f.n.run([] { grove::cast("w1", hold{}); });  // `state w1` waits for it: up to the command timeout, 2 s
  client c(f.port());
  c.send_raw(request("GET", "/api/state?args=w1"));
  grove::pid request_process;
  REQUIRE(eventually([&] {
    for (const grove::pid& p : f.n.processes()) {
      if (auto i = grove::info(p); i && i->label == "http_request") request_process = p;
    }
    return static_cast<bool>(request_process);
  }));
  f.n.run([&] { grove::exit(request_process, grove::exit_reason::kill()); });
  auto r = read_response(c);
  CHECK(r.status == 500);
  CHECK(json::parse(r.body)["error"].get<std::string>().find("ended without an answer") != std::string::npos);
  CHECK(get(f.port(), "/api/apps").status == 200);
  f.n.run([] { grove::send(grove::whereis("w1").value(), release{}); });
}

TEST_CASE("http: 500 idle connections do not stop the node from answering the console", "[http]") {
  fixture f({.max_connections = 64});
  grove::console_options co;
  co.address = "127.0.0.1:0";
  grove::console con(f.n, co);
  std::string error;
  REQUIRE(con.start(error));
  std::vector<std::unique_ptr<client>> idle;
  for (int i = 0; i < 500; ++i) idle.push_back(std::make_unique<client>(f.port()));
  // The endpoint keeps at most max_connections; the rest are closed as they come.
  CHECK(eventually([&] { return f.web->connection_count() == 64; }));
  CHECK(f.web->connection_count() <= 64);
  client console_client(con.port());
  console_client.until("grove> ");
  CHECK(console_client.ask("stats").find("processes") != std::string::npos);
  CHECK(f.n.run([] { return grove::call<int>("w1", 41); }) == 42);
  // Closed idle connections give their places back.
  idle.clear();
  CHECK(eventually([&] { return f.web->connection_count() == 0; }));
  CHECK(get(f.port(), "/api/apps").status == 200);
}

TEST_CASE("http: /metrics is Prometheus text that promtool accepts, and counts restarts and crashes", "[http]") {
  fixture f;
  constexpr int kills = 3;
  for (int i = 0; i < kills; ++i) {
    const grove::pid before = f.child("w1");
    REQUIRE(post(f.port(), "/api/kill", "w1").status == 200);
    REQUIRE(eventually([&] { return f.child("w1") && f.child("w1") != before; }));
  }
  f.n.run([] { grove::call<int>("w1", 1); });
  std::string text;
  const std::string restarts = "grove_restarts_total{child=\"w1\",supervisor=\"app\"}";
  // The supervisor's events reach the metrics through the bus: wait for the third restart.
  REQUIRE(eventually([&] {
    auto r = get(f.port(), "/metrics");
    text = r.body;
    return r.status == 200 && metric(text, restarts) == kills;
  }));
  CHECK(get(f.port(), "/metrics").headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(metric(text, "grove_child_terminations_total{child=\"w1\",supervisor=\"app\"}") == kills);
  CHECK_FALSE(metric(text, "grove_restarts_total{child=\"w2\",supervisor=\"app\"}"));
  CHECK(metric(text, "grove_processes") >= 3);
  CHECK(metric(text, "grove_processes_spawned_total") >= 3 + kills);
  CHECK(metric(text, "grove_calls_total") >= 1);
  CHECK(metric(text, "grove_schedulers") == 2);
  CHECK(metric(text, "grove_scheduler_busy_seconds_total{scheduler=\"1\"}"));
  CHECK(metric(text, "grove_run_queue_length{scheduler=\"0\"}"));
  CHECK(metric(text, "grove_event_bus_dropped_total"));
  CHECK(text.find("# TYPE grove_call_duration_seconds histogram") != std::string::npos);

  // A crash counted by the kind of its reason.
  f.n.run([] { grove::spawn([] { throw std::runtime_error("boom"); }); });
  REQUIRE(eventually([&] {
    text = get(f.port(), "/metrics").body;
    return metric(text, "grove_crashes_total{kind=\"error\"}") == 1;
  }));

  // promtool (Debian's prometheus package) checks the whole exposition.
  const std::string file = "/tmp/grove-metrics-" + std::to_string(::getpid()) + ".txt";
  {
    std::FILE* out = std::fopen(file.c_str(), "w");
    REQUIRE(out);
    std::fwrite(text.data(), 1, text.size(), out);
    std::fclose(out);
  }
  const int rc = std::system(("promtool check metrics < " + file + " > " + file + ".out 2>&1").c_str());
  std::remove(file.c_str());
  std::remove((file + ".out").c_str());
  CHECK(rc == 0);
}

TEST_CASE("http: the event stream sends events as they happen; a client that stops reading loses events, not the node",
          "[http]") {
  fixture f({.stream_limit = 16 * 1024});
  client watcher(f.port());
  watcher.send_raw(request("GET", "/api/stream?args=--last%200"));
  const std::string head = watcher.until("\r\n\r\n");
  CHECK(head.find("Content-Type: text/event-stream") != std::string::npos);
  CHECK(watcher.until("data: {\"ok\":true,\"command\":\"events\"") != "");
  const grove::pid before = f.child("w2");
  REQUIRE(post(f.port(), "/api/kill", "w2").status == 200);
  const std::string seen = watcher.until("\"kind\":\"progress\"");
  CHECK(seen.find("\"kind\":\"child_terminated\"") != std::string::npos);
  CHECK(seen.find(before.str()) != std::string::npos);

  // A client that does not read: the node publishes on, the stream drops what does not fit.
  client stalled(f.port(), 4096);
  stalled.send_raw(request("GET", "/api/stream?args=--last%200"));
  REQUIRE(stalled.until("\"command\":\"events\"") != "");
  auto& bus = grove::events(f.n);
  for (int i = 0; i < 20000; ++i) {
    grove::event e;
    e.kind = grove::event_kind::application;
    e.child = "flood-" + std::to_string(i) + std::string(100, 'x');
    bus.publish(e);
  }
  CHECK(f.n.run([] { return grove::call<int>("w1", 1); }) == 2);  // the node is not held up
  CHECK(get(f.port(), "/api/apps").status == 200);
  stalled.grow_receive_buffer();
  CHECK(stalled.until("data: {\"dropped\":") != "");
}
