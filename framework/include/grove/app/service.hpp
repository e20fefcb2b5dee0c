// service: a Grove node run from a YAML file — what `grove run` does, and what a service that
// links Grove does in a few lines of main:
//
//   int main(int argc, char** argv) {
//     grove::kind_registry kinds;
//     grove::add_builtin_kinds(kinds);
//     kinds.add("ledger", "the bank's ledger", make_ledger);
//     return grove::cli_main(argc, argv, std::move(kinds));  // run / check / --help / --version
//   }
//
// Applications start in dependency order and stop in reverse; each one's start type decides
// what the death of its top supervisor does to the node (OTP's rules, docs/config.md):
// permanent — the node stops; transient — the node stops unless it ended `normal`;
// temporary — reported, nothing else. If the application controller process itself dies, the
// node stops as for a permanent application. SIGINT and SIGTERM stop the node in reverse order
// within the shutdown deadline. See docs/cli.md and docs/guides/embedding.md.
#pragma once

#include <chrono>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <grove/app/kinds.hpp>
#include <grove/config/config.hpp>
#include <grove/runtime/node.hpp>

namespace grove {

// How a run ended: the process's exit code.
enum class exit_code : int {
  ok = 0,                  // stopped on request (signal or stop()); every application stopped cleanly
  config_error = 1,        // the configuration is invalid (nothing started)
  usage = 2,               // bad command line
  application_failed = 3,  // a permanent (or abnormally ended transient) application, or the death of
                           // the application controller, stopped the node
  start_failed = 4,        // an application failed to start
  shutdown_timeout = 5     // stopping took longer than the deadline
};

// The service's own code, run by service::run on its thread (and so by cli_main's `run`).
struct service_hooks {
  // Once every application has started: start the service's threads here (a grove::client on
  // the node lets them call in). Keep it short: the run waits for it.
  std::function<void(node&)> started;
  // Once, if `started` ran: when a stop is asked (a signal, stop()), before the applications
  // stop, so the service's threads still find them; when an application ends the run, after.
  // Stop and join the service's threads here: a client must not outlive the node.
  std::function<void(node&)> stopping;
};

struct service_options {
  std::optional<unsigned> schedulers;  // over node.schedulers
  std::optional<std::string> console;  // over node.console.address
  std::optional<std::string> http;     // over node.http.listen
  // The node in an Erlang cluster, over node.distribution: --sname NAME or --name NAME[@HOST],
  // and --cookie-file PATH (else GROVE_COOKIE, else node.distribution.cookie_file, else
  // ~/.erlang.cookie, created as erl does when missing).
  std::optional<std::string> sname, name, cookie_file;
  std::optional<config::log_format> log_format;  // over node.logging.format
  std::ostream* log_stream = nullptr;            // where events are logged; nullptr = stderr
  std::ostream* messages = nullptr;              // how the run ended, for people; nullptr = stderr
  std::chrono::milliseconds shutdown_timeout = std::chrono::seconds(30);
  bool handle_signals = true;     // run() stops the node on SIGINT and SIGTERM
  std::string program = "grove";  // how to run the grove command, in the console's "connect with" hint
  config::load_options load;      // environment and file access for the loader (tests inject)
  service_hooks hooks;
};

class service {
 public:
  explicit service(kind_registry kinds, service_options opts = {});
  ~service();
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  // Loads and checks a configuration: YAML, the tree, every kind and its args. All errors at
  // once in errors(); false if there is any. Nothing starts.
  bool load_file(const std::string& path);
  bool load_string(std::string_view yaml, const std::string& file_name);
  const config::diagnostics& errors() const noexcept;
  const config::node_config& config() const;  // after a successful load
  // The node, its applications and their trees, as `grove check` prints them.
  std::string describe() const;

  // Starts the node and the applications, then blocks until stop(), a signal (if handled), or
  // an application's end stops the node. Returns the exit code (see exit_code).
  int run();
  // Asks a run to stop (any thread, not a signal handler). Idempotent.
  void stop();

  // While running, once every application has started (false on timeout or failure).
  bool wait_started(std::chrono::milliseconds timeout);
  grove::node* running_node() noexcept;
  // An application's top supervisor, while it runs.
  std::optional<pid> application(std::string_view name) const;
  // The application names in start order.
  std::vector<std::string> applications() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// The `grove` command line, for the grove binary and for services that link Grove:
// `run FILE [--schedulers N] [--console ADDR] [--http ADDR] [--log-format text|json]`, `check FILE`,
// `console [ADDR]` (a client for a node's console), `--help`, `--version`. Returns the exit code.
// `hooks` run in `run` (service_hooks).
int cli_main(int argc, const char* const* argv, kind_registry kinds, service_hooks hooks = {});

// Grove's version, e.g. "0.5.0".
const char* version() noexcept;

}  // namespace grove
