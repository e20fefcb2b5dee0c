// http: a node's HTTP endpoint — the dashboard page (docs/dashboard.md), its JSON API (the
// console's commands, answered as the console answers them in JSON) with a stream of events,
// and /metrics in Prometheus's text format (docs/metrics.md).
//
// One I/O thread (Boost.Beast) serves every connection; each API request runs in a process of
// its own, as a console session does. Bounded everywhere: connections, request line and
// headers, body, the time a connection may stay silent; an event stream whose client reads too
// slowly loses events (and is told how many), never slowing the node. Loopback by default; any
// other address needs a token, and with a token every request but the page's own files must
// carry it (`Authorization: Bearer TOKEN`).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grove/behaviours/supervisor.hpp>
#include <grove/observe/console.hpp>
#include <grove/runtime/node.hpp>

namespace grove {

struct http_options {
  std::string listen = "127.0.0.1:0";               // host:port (port 0: any free port)
  std::string token;                                // required when the address is not loopback
  int max_connections = 64;                         // more are closed as they come
  std::size_t max_header = 8 * 1024;                // request line and headers; longer: 431
  std::size_t max_body = 16 * 1024;                 // longer: 413
  std::chrono::milliseconds idle_timeout{30'000};   // a connection silent this long (outside a stream) is closed
  std::chrono::milliseconds command_timeout{2000};  // for commands that talk to a process
  std::size_t stream_limit = 256 * 1024;            // bytes an event stream may lag before events are dropped
  // As console_options: the applications, and templates for POST /api/start. Called from
  // request processes, which may outlive the endpoint by a command's time: keep what they use
  // alive as long as the node runs (grove::service does).
  std::function<std::vector<console_app>()> applications;
  std::function<std::optional<child_spec>(const std::string& path, const std::string& args, std::string& error)>
      child_template;
};

// Why a node cannot serve HTTP at `listen` with `token` (empty: it can).
std::string http_address_problem(const std::string& listen, const std::string& token);

class http_endpoint {
 public:
  http_endpoint(node& n, http_options opts);
  ~http_endpoint();  // closes every connection and stops the I/O thread
  http_endpoint(const http_endpoint&) = delete;
  http_endpoint& operator=(const http_endpoint&) = delete;

  // Binds and starts serving. False with `error` set on failure (a bad address, a port in use,
  // a non-loopback address without a token).
  bool start(std::string& error);
  int port() const noexcept;  // after start
  std::size_t connection_count() const;

  struct impl;  // http_server.cpp

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace grove
