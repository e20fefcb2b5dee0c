// console: a node's debug console — the live tree, processes, events as they happen, and ways
// to poke them (kill, restart, suspend, trace), over TCP (works with nc and telnet) or on the
// terminal. docs/console.md lists the commands and their text and JSON answers.
//
// One I/O thread serves every session with non-blocking sockets; each session's commands run
// in a process of its own. A session's output and input are bounded: a client that stops
// reading loses streamed events (and is told how many) and is no longer read from; it never
// slows the node or another session. A closed connection ends its session at once, dropping
// the lines it had not run; idle and unauthenticated sessions time out. Commands that talk to
// a process time out instead of hanging. Loopback by default; any other address needs a token.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <grove/behaviours/supervisor.hpp>
#include <grove/runtime/node.hpp>
#include <grove/runtime/pid.hpp>

namespace grove {

// An application as the console lists it.
struct console_app {
  std::string name;
  std::string start_type;  // permanent, transient, temporary
  pid top;                 // its top supervisor (empty when not running)
};

// A console address, checked once for everyone who takes one (YAML, --console, the console
// itself, `grove console`): "off", "stdio", or host:port with a port of 0..65535 (0: any free
// port) and an IPv6 host in brackets ([::1]:7070).
struct console_address {
  enum class kind { off, stdio, tcp } what = kind::off;
  std::string host;                // tcp: without brackets
  int port = 0;                    // tcp
  bool loopback() const noexcept;  // tcp: 127.0.0.1, localhost or ::1
};
// The address, or nullopt if it is none of the forms above.
std::optional<console_address> parse_console_address(std::string_view text);
// Why a node cannot serve a console at `address` with `token` (empty: it can): an address
// that does not parse, or one that is not loopback without a token.
std::string console_address_problem(std::string_view address, std::string_view token);

struct console_options {
  std::string address = "127.0.0.1:0";  // host:port (port 0: any free port), or "stdio"
  std::string token;                    // required when the address is not loopback
  int max_sessions = 16;
  std::size_t max_line = 4096;                      // longer lines are refused
  std::size_t output_limit = 256 * 1024;            // bytes a session may lag behind before events are dropped
  std::chrono::milliseconds command_timeout{2000};  // for commands that talk to a process
  // Lines received and not yet run (each counts 64 bytes more than its length) a session may
  // hold; past it the node stops reading the connection until the session catches up.
  std::size_t input_limit = 64 * 1024;
  std::chrono::milliseconds idle_timeout{10 * 60 * 1000};  // TCP: nothing either way this long ends it; 0: never
  std::chrono::milliseconds auth_timeout{10 * 1000};       // with a token: no `auth` that long ends it
  std::chrono::milliseconds auth_delay{1000};              // before answering a wrong token; doubles with each one
  // The applications (called from session processes); default: none.
  std::function<std::vector<console_app>()> applications;
  // For `start PATH [ARGS]`: the spec of a child to start under the dynamic supervisor at PATH
  // (app/.../jobs), made from its declared template with ARGS (a YAML map, possibly empty)
  // merged onto the template's; nullopt with `error` set when there is no template or the args
  // are refused. Default: none (the command answers that the node has no templates).
  std::function<std::optional<child_spec>(const std::string& path, const std::string& args, std::string& error)>
      child_template;
};

class console {
 public:
  console(node& n, console_options opts);
  ~console();  // closes every session and stops the I/O thread
  console(const console&) = delete;
  console& operator=(const console&) = delete;

  // Binds (or takes the terminal) and starts serving. False with `error` set on failure (a
  // bad address, a port in use, a non-loopback address without a token).
  bool start(std::string& error);
  // The TCP port it listens on (after start; 0 for stdio).
  int port() const noexcept;
  // Sessions counted against max_sessions: from accept until the connection is closed, which
  // waits for the session's process to end.
  std::size_t session_count() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace grove
