#include <grove/observe/http.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <set>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <grove/runtime/process.hpp>

#include "observe/console_impl.hpp"
#include "observe/dashboard_files.hpp"
#include "observe/metrics.hpp"

namespace grove {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;

std::string http_address_problem(const std::string& listen, const std::string& token) {
  auto a = parse_console_address(listen);
  if (!a || a->what != console_address::kind::tcp) {
    return "http address '" + listen + "' is not host:port with a port up to 65535, like 127.0.0.1:8080";
  }
  if (!a->loopback() && token.empty()) {
    return "http address " + listen + " is not loopback: set a token (node.http.token or GROVE_HTTP_TOKEN) to bind it";
  }
  return {};
}

namespace {

// Commands the API runs: read with GET, change with POST. Anything else is 404.
const std::set<std::string, std::less<>> read_verbs{"apps",   "tree",  "ps",   "info", "state",
                                                    "events", "stats", "help", "logs", "nodes"};
const std::set<std::string, std::less<>> change_verbs{"kill",  "exit",    "restart", "terminate", "delete",
                                                      "start", "suspend", "resume",  "sync"};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding of one query value; nullopt when malformed.
std::optional<std::string> url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The value of `key` in a query string (empty if absent); nullopt when malformed.
std::optional<std::string> query_value(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) != key) continue;
    return eq == std::string_view::npos ? std::string() : url_decode(pair.substr(eq + 1));
  }
  return std::string();
}

// Beast (Boost 1.74) speaks boost::string_view.
std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }
beast::string_view bsv(std::string_view s) { return {s.data(), s.size()}; }

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool has_word(std::string_view line, std::string_view word) {
  std::size_t i = 0;
  while ((i = line.find(word, i)) != std::string_view::npos) {
    const bool starts = i == 0 || line[i - 1] == ' ';
    const bool ends = i + word.size() == line.size() || line[i + word.size()] == ' ';
    if (starts && ends) return true;
    i += word.size();
  }
  return false;
}

// With no token, only a Host naming loopback is served: a page elsewhere cannot reach the
// endpoint through a DNS name it rebinds to 127.0.0.1.
bool loopback_host(std::string_view host) {
  if (host.starts_with("[")) {
    const std::size_t close = host.find(']');
    return close != std::string_view::npos && host.substr(1, close - 1) == "::1";
  }
  host = host.substr(0, host.find(':'));
  return host == "127.0.0.1" || host == "localhost";
}

std::string envelope_error(std::string_view command, std::string_view error) {
  nlohmann::ordered_json j{{"ok", false}, {"command", command}, {"error", error}};
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

// Held by a request process's body: closes its output when the body is destroyed, whether it
// ran or was killed before it first ran, so the connection always gets its answer.
struct closes_output {
  std::shared_ptr<detail::console_output> out;
  explicit closes_output(std::shared_ptr<detail::console_output> o) : out(std::move(o)) {}
  closes_output(closes_output&&) = default;
  closes_output& operator=(closes_output&&) = delete;
  ~closes_output() {
    if (out) out->close();
  }
};

}  // namespace

// Wakes the I/O thread from processes; closed before the io_context goes away.
struct http_waker {
  explicit http_waker(asio::io_context& c) : ioc(c) {}
  template <class F>
  void post(F&& f) {
    std::lock_guard lk(mu);
    if (open) asio::post(ioc, std::forward<F>(f));
  }
  void close() {
    std::lock_guard lk(mu);
    open = false;
  }
  std::mutex mu;
  bool open = true;
  asio::io_context& ioc;
};

class http_connection;

struct http_endpoint::impl {
  impl(node& nd, http_options o) : n(nd), opts(std::move(o)) {
    console_options c;
    c.command_timeout = opts.command_timeout;
    c.applications = opts.applications;
    c.child_template = opts.child_template;
    c.output_limit = opts.stream_limit;
    auto s = std::make_shared<detail::console_session_config>();
    s->opts = std::move(c);
    cfg = std::move(s);
  }
  bool start(std::string& error);
  void stop();
  void accept();
  void absorb_later();
  void forget(const std::shared_ptr<http_connection>& c) {
    conns.erase(c);
    count.store(conns.size());
  }

  node& n;
  const http_options opts;
  std::shared_ptr<const detail::console_session_config> cfg;
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  asio::steady_timer absorb_timer{ioc};
  asio::steady_timer accept_timer{ioc};  // after a failed accept (out of descriptors): a pause
  std::shared_ptr<http_waker> waker = std::make_shared<http_waker>(ioc);
  std::thread io;
  std::atomic<int> bound_port{0};
  std::atomic<std::size_t> count{0};
  std::set<std::shared_ptr<http_connection>> conns;  // I/O thread only
  std::unique_ptr<detail::node_metrics> metrics;     // I/O thread only (after start)
};

// One client connection: requests one at a time (keep-alive), or one event stream.
class http_connection : public std::enable_shared_from_this<http_connection> {
  using headers = std::vector<std::pair<std::string, std::string>>;

 public:
  http_connection(http_endpoint::impl& s, tcp::socket sock)
      : srv_(s), stream_(std::move(sock)), buf_(s.opts.max_header + s.opts.max_body), keepalive_(s.ioc) {}

  void start() { read_request(); }

  // The endpoint stops, or the connection failed: the request's process runs nothing more.
  void close() {
    if (closed_) return;
    closed_ = true;
    if (proc_) {
      link_->set_gone();
      send(proc_, detail::console_closed{});
    }
    keepalive_.cancel();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

 private:
  void finish() {
    close();
    srv_.forget(shared_from_this());
  }

  void read_request() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(srv_.opts.max_header));
    parser_->body_limit(srv_.opts.max_body);
    stream_.expires_after(srv_.opts.idle_timeout);
    bhttp::async_read(stream_, buf_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (closed_) return;
    if (ec == bhttp::error::header_limit || ec == beast::error_code(bhttp::error::buffer_overflow)) {
      return refuse(bhttp::status::request_header_fields_too_large, "request line or headers too long");
    }
    if (ec == bhttp::error::body_limit) return refuse(bhttp::status::payload_too_large, "request body too long");
    if (ec && ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
        ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
      return refuse(bhttp::status::bad_request, "malformed request");
    }
    if (ec) return finish();  // closed, reset or silent too long
    stream_.expires_never();
    try {
      handle(parser_->get());
    } catch (const std::exception& e) {  // a bug, or no memory: this connection ends, not the node
      refuse(bhttp::status::internal_server_error, std::string("internal error: ") + e.what());
    }
  }

  // An error answer, then the connection is closed.
  void refuse(bhttp::status status, std::string_view why, headers extra = {}) {
    keep_alive_ = false;
    respond(status, "application/json", envelope_error("", why), std::move(extra));
  }
  void not_allowed(const char* method) {
    refuse(bhttp::status::method_not_allowed, std::string(method) + " only", {{"Allow", method}});
  }

  bool authorized(const bhttp::request<bhttp::string_body>& req) const {
    if (srv_.opts.token.empty()) return true;
    const std::string_view h = sv(req[bhttp::field::authorization]);
    if (!h.starts_with("Bearer ")) return false;
    return detail::same_secret(h.substr(7), srv_.opts.token);
  }

  void handle(bhttp::request<bhttp::string_body>& req) {
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    const std::string_view target = sv(req.target());
    const std::size_t q = target.find('?');
    const std::string_view path = target.substr(0, q);
    const std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    if (srv_.opts.token.empty() && !loopback_host(sv(req[bhttp::field::host]))) {
      return refuse(bhttp::status::forbidden, "this endpoint answers only requests to a loopback host");
    }
    // The page and its files: no data, no token needed.
    const std::string_view file = path == "/" ? std::string_view("/index.html") : path;
    for (const auto& f : detail::dashboard_files()) {
      if (f.path != file) continue;
      if (req.method() != bhttp::verb::get) return not_allowed("GET");
      return respond(bhttp::status::ok, f.type, std::string(f.body));
    }
    if (path == "/favicon.ico") return respond(bhttp::status::no_content, "image/x-icon", {});  // none: no 404 noise
    if (path != "/metrics" && !path.starts_with("/api/")) return refuse(bhttp::status::not_found, "not found");
    if (!authorized(req)) {
      keep_alive_ = false;
      return respond(bhttp::status::unauthorized, "application/json",
                     envelope_error("", "unauthorized: send the node's token as Authorization: Bearer TOKEN"),
                     {{"WWW-Authenticate", "Bearer realm=\"grove\""}});
    }
    if (path == "/metrics") {
      if (req.method() != bhttp::verb::get) return not_allowed("GET");
      return respond(bhttp::status::ok, "text/plain; version=0.0.4; charset=utf-8", srv_.metrics->scrape());
    }
    const std::string verb(path.substr(5));
    const bool stream = verb == "stream";
    std::optional<std::string> args;
    if (stream || read_verbs.contains(verb)) {
      if (req.method() != bhttp::verb::get) return not_allowed("GET");
      args = query_value(query, "args");
    } else if (change_verbs.contains(verb)) {
      if (req.method() != bhttp::verb::post) return not_allowed("POST");
      // A JSON body cannot come from a plain form of another site, and an Origin, when given,
      // must be this endpoint's.
      if (!sv(req[bhttp::field::content_type]).starts_with("application/json")) {
        return refuse(bhttp::status::unsupported_media_type,
                      "send Content-Type: application/json and a body {\"args\":\"...\"}");
      }
      const std::string_view origin = sv(req[bhttp::field::origin]);
      if (!origin.empty() && origin != "http://" + std::string(sv(req[bhttp::field::host]))) {
        return refuse(bhttp::status::forbidden, "cross-origin request refused");
      }
      const auto body = nlohmann::json::parse(req.body(), nullptr, false);
      if (body.is_object() && body.contains("args") && body["args"].is_string()) args = body["args"].get<std::string>();
      if (body.is_object() && !body.contains("args")) args = std::string();
    } else {
      return refuse(bhttp::status::not_found, "no such API command: " + verb);
    }
    if (!args || has_control(*args)) return refuse(bhttp::status::bad_request, "malformed args");
    if (!stream && has_word(*args, "--follow")) {
      return refuse(bhttp::status::bad_request, "--follow streams: use /api/stream");
    }
    if (has_word(*args, "--json")) return refuse(bhttp::status::bad_request, "answers are JSON already");
    if (verb == "exit" && args->empty()) return refuse(bhttp::status::bad_request, "usage: exit TARGET REASON");
    if (stream) return run("events --follow" + (args->empty() ? "" : " " + *args), true);
    run(verb + (args->empty() ? "" : " " + *args), false);
  }

  // Runs a console command line in a process of its own; its answer (or stream) is sent as it
  // comes (on_output).
  void run(const std::string& line, bool stream) {
    streaming_ = stream;
    std::weak_ptr<http_connection> me = shared_from_this();
    auto wake = [w = srv_.waker, me] {
      w->post([me] {
        if (auto c = me.lock()) c->on_output();
      });
    };
    // An answer may be 4 × the limit: a big node's `ps` or `tree` fits in 16 MiB.
    out_ = std::make_shared<detail::console_output>(stream ? srv_.opts.stream_limit : 4 * 1024 * 1024, wake);
    link_ = std::make_shared<detail::console_link>(64 * 1024, true, wake);
    try {
      proc_ = srv_.n.spawn([guard = closes_output(out_), link = link_, cfg = srv_.cfg,
                            line] { detail::run_console_request(guard.out, link, cfg, line); },
                           {.stack_size = 256 * 1024, .label = "http_request"});
    } catch (const std::exception&) {  // the node is stopping
      keep_alive_ = false;
      return respond(bhttp::status::service_unavailable, "application/json",
                     envelope_error("", "the node is stopping"));
    }
    if (stream) start_stream();
  }

  void on_output() {
    if (closed_ || !out_) return;
    if (!streaming_) {
      if (!out_->closing()) return;  // the answer is complete when the process ends
      std::string body;
      out_->send_some(SIZE_MAX, [&](const char* d, std::size_t n) {
        body.append(d, n);
        return static_cast<long>(n);
      });
      out_.reset();
      proc_ = pid{};
      if (body.empty() || body.front() != '{') {  // killed before it answered, or an answer too big to keep
        keep_alive_ = false;
        return respond(
            bhttp::status::internal_server_error, "application/json",
            envelope_error("",
                           "the request's process ended without an answer (killed, or the answer was over 16 MiB)"));
      }
      const bool ok = body.starts_with("{\"ok\":true");
      return respond(ok ? bhttp::status::ok : bhttp::status::bad_request, "application/json", std::move(body));
    }
    pump();
  }

  // ---- event streams (server-sent events) ----

  void start_stream() {
    keep_alive_ = false;
    writing_ = true;
    pending_ =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n";
    write_pending();
    watch_for_close();
    tick();
  }

  // The client sends nothing on a stream: a read that ends means it left.
  void watch_for_close() {
    stream_.socket().async_read_some(asio::buffer(scratch_),
                                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                       if (self->closed_) return;
                                       if (ec) return self->finish();
                                       self->watch_for_close();
                                     });
  }

  // A comment every 15 s: proxies keep the stream open and a vanished client is found.
  void tick() {
    keepalive_.expires_after(std::chrono::seconds(15));
    keepalive_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) return;
      self->heartbeat_ = true;
      self->pump();
      self->tick();
    });
  }

  void pump() {
    if (closed_ || writing_ || !out_) return;
    const bool ended = out_->closing();  // read before taking: nothing written before it is lost
    std::string taken;
    out_->send_some(SIZE_MAX, [&](const char* d, std::size_t n) {
      taken.append(d, n);
      return static_cast<long>(n);
    });
    for (std::size_t at = 0; at < taken.size();) {
      std::size_t nl = taken.find('\n', at);
      if (nl == std::string::npos) nl = taken.size();
      if (nl > at) pending_ += "data: " + taken.substr(at, nl - at) + "\n\n";
      at = nl + 1;
    }
    if (pending_.empty() && heartbeat_) pending_ = ": keepalive\n\n";
    heartbeat_ = false;
    if (!pending_.empty()) {
      writing_ = true;
      return write_pending();
    }
    if (ended) finish();  // the command ended (an error, or the node stops)
  }

  void write_pending() {
    sending_ = std::move(pending_);
    pending_.clear();
    // A client that does not read for a minute is given up.
    stream_.expires_after(std::chrono::seconds(60));
    asio::async_write(stream_, asio::buffer(sending_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->writing_ = false;
      if (self->closed_) return;
      if (ec) return self->finish();
      self->stream_.expires_never();
      self->pump();
    });
  }

  // ---- plain answers ----

  void respond(bhttp::status status, std::string_view type, std::string body, headers extra = {}) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(status, version_);
    res->set(bhttp::field::server, "grove");
    res->set(bhttp::field::content_type, bsv(type));
    res->set(bhttp::field::cache_control, "no-store");
    res->set("X-Content-Type-Options", "nosniff");
    res->set("Referrer-Policy", "no-referrer");
    if (type.starts_with("text/html")) {
      res->set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'");
      res->set("X-Frame-Options", "DENY");
    }
    for (const auto& [name, value] : extra) res->set(bsv(name), bsv(value));
    res->keep_alive(keep_alive_);
    res->body() = std::move(body);
    res->prepare_payload();
    stream_.expires_after(std::chrono::seconds(60));
    bhttp::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
      if (self->closed_) return;
      if (ec) return self->finish();
      if (!self->keep_alive_) return self->linger();
      self->read_request();
    });
  }

  // After a last answer: close the sending side, then read what the client still sends (an
  // unread body, a request it pipelined) for up to a second before closing, so that the close
  // does not reset the connection before the client read the answer.
  void linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(1));
    drain();
  }
  void drain() {
    stream_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (self->closed_) return;
      if (ec) return self->finish();
      self->drain();
    });
  }

  http_endpoint::impl& srv_;
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  asio::steady_timer keepalive_;
  std::shared_ptr<detail::console_output> out_;
  std::shared_ptr<detail::console_link> link_;
  pid proc_;
  std::string pending_, sending_;
  std::array<char, 64> scratch_{};
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool streaming_ = false;
  bool writing_ = false;
  bool heartbeat_ = false;
  bool closed_ = false;
};

bool http_endpoint::impl::start(std::string& error) {
  if (error = http_address_problem(opts.listen, opts.token); !error.empty()) return false;
  const console_address a = *parse_console_address(opts.listen);
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto found = resolver.resolve(a.host, std::to_string(a.port), tcp::resolver::passive, ec);
  if (ec || found.empty()) {
    error = "http address " + opts.listen + ": " + (ec ? ec.message() : "no such host");
    return false;
  }
  const tcp::endpoint where = found.begin()->endpoint();
  acceptor.open(where.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(where, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error = "cannot listen on " + opts.listen + ": " + ec.message();
    return false;
  }
  bound_port.store(acceptor.local_endpoint().port());
  metrics = std::make_unique<detail::node_metrics>(n);
  accept();
  absorb_later();
  io = std::thread([this] { ioc.run(); });
  return true;
}

void http_endpoint::impl::accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket sock) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {  // EMFILE and the like: the listening socket stays readable, so wait before retrying
      accept_timer.expires_after(std::chrono::milliseconds(100));
      accept_timer.async_wait([this](beast::error_code e) {
        if (!e) accept();
      });
      return;
    }
    if (conns.size() >= static_cast<std::size_t>(std::max(opts.max_connections, 0))) {
      static constexpr std::string_view busy =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      beast::error_code ignored;
      sock.non_blocking(true, ignored);
      sock.write_some(asio::buffer(busy), ignored);  // best effort, never waits
      sock.close(ignored);
    } else {
      sock.set_option(tcp::no_delay(true), ec);
      auto c = std::make_shared<http_connection>(*this, std::move(sock));
      conns.insert(c);
      count.store(conns.size());
      c->start();
    }
    accept();
  });
}

void http_endpoint::impl::absorb_later() {
  absorb_timer.expires_after(std::chrono::seconds(1));
  absorb_timer.async_wait([this](beast::error_code ec) {
    if (ec) return;
    metrics->absorb();
    absorb_later();
  });
}

void http_endpoint::impl::stop() {
  if (io.joinable()) {
    asio::post(ioc, [this] {
      beast::error_code ec;
      acceptor.close(ec);
      absorb_timer.cancel();
      accept_timer.cancel();
      for (auto& c : std::vector<std::shared_ptr<http_connection>>(conns.begin(), conns.end())) c->close();
      conns.clear();
      count.store(0);
      ioc.stop();
    });
    io.join();
  }
  waker->close();
  conns.clear();
  metrics.reset();
}

http_endpoint::http_endpoint(node& n, http_options opts) : impl_(std::make_shared<impl>(n, std::move(opts))) {}

http_endpoint::~http_endpoint() { impl_->stop(); }

bool http_endpoint::start(std::string& error) { return impl_->start(error); }

int http_endpoint::port() const noexcept { return impl_->bound_port.load(); }

std::size_t http_endpoint::connection_count() const { return impl_->count.load(); }

}  // namespace grove
