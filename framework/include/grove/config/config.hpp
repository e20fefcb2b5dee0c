// config: a Grove node declared in YAML — its schedulers, logging and console, and its
// applications, each with a supervision tree nested to any depth — loaded into plain structs.
// The loader validates the whole file (and the files it includes) before anything starts and
// reports every error at once, each with file:line:column, the key path, what was expected and
// a hint; it returns a config only when there is no error. It starts nothing: the app layer
// turns these structs into runtime specs. The enums it shares with the layers below (restart
// types, strategies, overflow policies, log formats) are theirs, names included. The format is described in
// docs/config.md and, as a JSON Schema, in docs/schema/grove.schema.json.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <grove/behaviours/restart.hpp>
#include <grove/config/args.hpp>
#include <grove/config/diagnostics.hpp>
#include <grove/observe/logger.hpp>
#include <grove/runtime/process.hpp>

namespace grove::config {

using duration = std::chrono::nanoseconds;

using grove::auto_shutdown;
using grove::log_format;
using grove::overflow_policy;
using grove::restart_type;
using grove::strategy;
enum class start_type : unsigned char { permanent, transient, temporary };
enum class log_level : unsigned char { trace, debug, info, warning, error, off };
enum class console_mode : unsigned char { off, stdio, tcp };

// The names used in YAML, e.g. "temporary" (the shared enums' are grove::to_string's).
std::string_view to_string(start_type v);
std::string_view to_string(log_level v);
// "500ms", "5s", "90s": in the largest unit that represents `d` exactly.
std::string format_duration(duration d);

struct backoff_config {
  duration min = std::chrono::milliseconds(100);
  duration max = std::chrono::seconds(10);
  double multiplier = 2.0;  // >= 1
  double jitter = 0.0;      // a fraction, in [0, 1]
  duration reset_after = std::chrono::seconds(30);
  source_pos pos;
};

struct shutdown_config {
  enum class kind : unsigned char { brutal_kill, timeout, infinity };
  kind what = kind::timeout;
  duration timeout = std::chrono::seconds(5);  // for kind::timeout
  source_pos pos;
};

struct child_config;

struct supervisor_config {
  config::strategy strategy = config::strategy::one_for_one;
  int intensity = 1;                          // >= 0
  duration period = std::chrono::seconds(5);  // whole seconds, >= 1s
  config::auto_shutdown auto_shutdown = config::auto_shutdown::never;
  std::optional<backoff_config> backoff;  // for every child without its own
  std::vector<child_config> children;     // in start order
  source_pos pos;
};

struct child_config;

struct dynamic_supervisor_config {
  int intensity = 1;
  duration period = std::chrono::seconds(5);
  std::optional<std::size_t> max_children;  // none: no limit
  // The spec of the children the console (`start PATH [ARGS]`) starts under it, as OTP's
  // simple_one_for_one template: a worker whose id is optional and which has no name.
  std::shared_ptr<const child_config> child_template;
  source_pos pos;
};

enum class child_type : unsigned char { worker, supervisor, dynamic_supervisor };

// A child: a worker made by the factory registered as `kind`, or a nested supervisor, or a
// nested dynamic supervisor (exactly one of the three).
struct child_config {
  std::string id;  // unique among its siblings
  child_type type = child_type::worker;
  std::string kind;                                     // worker only
  std::shared_ptr<const supervisor_config> supervisor;  // child_type::supervisor only
  std::optional<dynamic_supervisor_config> dynamic_supervisor;
  std::optional<std::string> name;  // registered name, unique in the whole configuration
  restart_type restart = restart_type::permanent;
  std::optional<shutdown_config> shutdown;  // none: 5 s for a worker, infinity for a supervisor
  bool significant = false;
  std::optional<backoff_config> backoff;
  std::optional<std::size_t> stack_size;        // bytes (worker only)
  std::optional<std::size_t> mailbox_capacity;  // messages (worker only)
  overflow_policy overflow = overflow_policy::drop_newest;
  config::args args;  // worker only; an empty map when absent
  source_pos pos;
};

struct application_config {
  std::string name;
  start_type start = start_type::temporary;
  std::vector<std::string> depends_on;
  config::args env;  // an empty map when absent
  supervisor_config supervisor;
  source_pos pos;
};
using app_config = application_config;

struct logging_config {
  log_level level = log_level::info;
  log_format format = log_format::text;
  source_pos pos;
};

struct console_config {
  std::string address = "off";  // "off", "stdio" or "host:port"
  console_mode mode = console_mode::off;
  std::string host;  // tcp only
  int port = 0;      // tcp only; 0 asks the system for a free port
  std::string token;
  int max_sessions = 16;
  source_pos pos;
};

// node.http: the dashboard, its API and /metrics (docs/dashboard.md).
struct http_config {
  std::string listen = "off";  // "off" or "host:port"
  std::string token;           // else GROVE_HTTP_TOKEN
  int max_connections = 64;
  source_pos pos;
};

// node.distribution: this node in an Erlang cluster (docs/concepts/distribution.md). Off while
// `name` is empty.
struct distribution_config {
  std::string name;         // sname or name: NAME, or NAME@HOST
  bool longnames = false;   // given as `name` (erl -name) rather than `sname`
  std::string cookie_file;  // after --cookie-file and GROVE_COOKIE; none: ~/.erlang.cookie
  bool hidden = false;
  duration tick_time = std::chrono::seconds(60);
  int port_min = 0, port_max = 0;  // port_range; 0: any free port
  source_pos pos;
};

struct node_config {
  std::string name;
  std::optional<int> schedulers;  // none: one per core
  logging_config logging;
  console_config console;
  http_config http;
  distribution_config distribution;
  std::vector<application_config> applications;  // in file order
  // Application names in start order: each step starts the earliest-declared application whose
  // dependencies have all started. Stop in reverse.
  std::vector<std::string> start_order;
  source_pos pos;
};

struct load_options {
  std::vector<std::string> known_kinds;  // empty: kinds are not checked
  // Reads environment variables for ${NAME}; default std::getenv. Tests inject their own.
  std::function<const char*(const char*)> getenv = nullptr;
  // Reads a file (the top file of load_file and every include); nullopt when it cannot be
  // read. Default: the file system. Tests inject their own.
  std::function<std::optional<std::string>(const std::string& path)> read_file = nullptr;
};

struct load_result {
  std::optional<node_config> config;  // set exactly when errors is empty
  diagnostics errors;
  explicit operator bool() const noexcept { return config.has_value(); }
};

load_result load_file(const std::string& path, const load_options& options = {});
// `file_name` names the text in diagnostics; includes are resolved relative to its directory.
load_result load_string(std::string_view yaml, const std::string& file_name, const load_options& options = {});

}  // namespace grove::config
