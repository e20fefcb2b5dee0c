// The loader: reads a file and its includes into one tree, expands environment variables,
// then walks the tree once, filling the structs and recording every error; the checks that
// span the document (registered names, application dependencies) run at the end.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <grove/config/config.hpp>
#include <grove/config/limits.hpp>
#include <grove/dist/distribution.hpp>
#include <grove/observe/console.hpp>
#include <grove/observe/http.hpp>

#include "tree.hpp"
#include "values.hpp"

namespace grove::config {

namespace {

using detail::map_entry;
using detail::node_ptr;
using detail::tree_node;

const std::string kind_choice = "exactly one of: kind, supervisor, dynamic_supervisor";
const std::string duration_expected = "a duration, like 500ms or 5s";
const std::string positive_duration_expected = "a duration > 0, like 500ms or 5s";
const std::string period_expected = "a whole number of seconds, at least 1s";
const std::string shutdown_expected = "a duration like 5s, brutal_kill or infinity";
constexpr std::size_t min_stack_size = 16 * 1024;

struct registered {
  std::string path;
  source_pos pos;
};

class loader {
 public:
  loader(const load_options& options, diagnostics& errors) : options_(options), errors_(errors) {}

  // Reads a configuration file: only a regular file (not a device, a FIFO or a directory), of
  // at most limits::max_file_bytes, and within what is left of the total budget.
  std::optional<std::string> read_file(const std::string& path, std::string& error) {
    std::optional<std::string> text;
    if (options_.read_file) {
      text = options_.read_file(path);
      if (!text) error = "cannot be read";
    } else {
      text = read_regular_file(path, error);
    }
    if (!text) return text;
    if (text->size() > limits::max_file_bytes) {
      error = "larger than " + std::to_string(limits::max_file_bytes >> 20) + " MiB";
      return std::nullopt;
    }
    if (text->size() > budget_) {
      error = "the configuration's files together pass " + std::to_string(limits::max_total_bytes >> 20) + " MiB";
      return std::nullopt;
    }
    budget_ -= text->size();
    return text;
  }

  static std::optional<std::string> read_regular_file(const std::string& path, std::string& error) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);  // follows symlinks
    if (ec) {
      error = ec.message();
      return std::nullopt;
    }
    if (std::filesystem::is_directory(status)) {
      error = "is a directory";
      return std::nullopt;
    }
    if (!std::filesystem::is_regular_file(status)) {
      error = "not a regular file";
      return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      error = std::strerror(errno);
      return std::nullopt;
    }
    // Reads one byte past the cap at most: a file that grows while read still stops there.
    std::string text(limits::max_file_bytes + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (in.bad()) {
      error = std::strerror(errno);
      return std::nullopt;
    }
    return text;
  }

  // Parses `file` and merges its includes under it (each include first, in order, then the
  // file itself). Null when the file could not be parsed.
  node_ptr load_tree(const std::string& file, std::string_view text, std::vector<std::string>& stack) {
    node_ptr root = detail::parse_yaml(text, file, errors_, budget_);
    if (!root || !root->is_map()) return root;
    auto include =
        std::find_if(root->entries.begin(), root->entries.end(), [](const map_entry& e) { return e.key == "include"; });
    if (include == root->entries.end()) return root;
    node_ptr list = include->value;
    root->entries.erase(include);

    std::vector<std::pair<node_ptr, std::string>> items;
    if (list->is_sequence()) {
      for (std::size_t i = 0; i < list->items.size(); ++i)
        items.emplace_back(list->items[i], detail::index_path("include", i));
    } else if (list->is_scalar()) {
      items.emplace_back(list, "include");
    } else if (!list->is_null()) {
      detail::report_got(*list, "include", errors_, "a file name or a list of file names");
    }

    node_ptr merged;
    for (auto& [item, path] : items) {
      std::string name;
      if (!detail::read_string(*item, path, errors_, name, true)) continue;
      std::string expanded;
      bool substituted = false;
      if (!detail::expand_env(name, expanded, substituted, options_.getenv, item->pos, path, errors_)) continue;
      std::filesystem::path target(expanded);
      if (target.is_relative()) target = std::filesystem::path(file).parent_path() / target;
      std::string resolved = target.lexically_normal().string();
      if (stack.size() > static_cast<std::size_t>(limits::max_include_depth)) {
        errors_.add(item->pos, path,
                    "includes nested deeper than " + std::to_string(limits::max_include_depth) + " levels");
        continue;
      }
      if (++includes_ > limits::max_includes) {
        if (includes_ == limits::max_includes + 1)
          errors_.add(item->pos, path, "more than " + std::to_string(limits::max_includes) + " includes");
        continue;
      }
      if (std::find(stack.begin(), stack.end(), resolved) != stack.end()) {
        std::string cycle;
        for (auto it = std::find(stack.begin(), stack.end(), resolved); it != stack.end(); ++it) cycle += *it + " -> ";
        errors_.add(item->pos, path, "include cycle: " + cycle + resolved);
        continue;
      }
      std::string error;
      auto included_text = read_file(resolved, error);
      if (!included_text) {
        errors_.add(item->pos, path, "cannot read included file '" + resolved + "': " + error);
        continue;
      }
      stack.push_back(resolved);
      node_ptr sub = load_tree(resolved, *included_text, stack);
      stack.pop_back();
      if (!sub || sub->is_null()) continue;
      if (!sub->is_map()) {
        detail::report_got(*sub, "", errors_, "a map");
        continue;
      }
      merged = detail::merge(merged, sub);
    }
    return detail::merge(merged, root);
  }

  std::optional<node_config> build(const node_ptr& root) {
    detail::expand_env_tree(*root, "", options_.getenv, errors_, budget_);
    node_config out;
    out.pos = root->pos;
    if (root->is_null()) return out;
    if (!root->is_map()) {
      detail::report_got(*root, "", errors_, "a map with node and applications");
      return std::nullopt;
    }
    check_keys(*root, "", {"include", "node", "applications"});
    if (auto n = field(*root, "node")) read_node(*n, "node", out);
    if (auto apps = field(*root, "applications")) read_applications(*apps, "applications", out);
    check_dependencies(out);
    return out;
  }

  std::shared_ptr<diagnostics> args_sink = std::make_shared<diagnostics>();

 private:
  static const tree_node* field(const tree_node& map, std::string_view key) {
    const map_entry* e = map.find(key);
    return e ? e->value.get() : nullptr;
  }

  static const map_entry* entry(const tree_node& map, std::string_view key) { return map.find(key); }

  struct forbidden_key {
    std::string_view key;
    std::string message;
    std::string hint;
  };

  // Records every key of `map` that is not allowed.
  void check_keys(const tree_node& map, const std::string& path, std::initializer_list<std::string_view> allowed,
                  const std::vector<forbidden_key>& forbidden = {}) {
    std::vector<std::string> names(allowed.begin(), allowed.end());
    for (const auto& e : map.entries) {
      if (std::find(allowed.begin(), allowed.end(), e.key) != allowed.end()) continue;
      auto f = std::find_if(forbidden.begin(), forbidden.end(), [&](const forbidden_key& k) { return k.key == e.key; });
      if (f != forbidden.end()) {
        errors_.add(e.key_pos, detail::join_path(path, e.key), f->message, {}, f->hint);
        continue;
      }
      errors_.add(e.key_pos, detail::join_path(path, e.key), "unknown key", detail::one_of(names),
                  detail::did_you_mean(e.key, names));
    }
  }

  bool expect_map(const tree_node& n, const std::string& path, bool null_ok = false) {
    if (n.is_map() || (null_ok && n.is_null())) return true;
    detail::report_got(n, path, errors_, "a map");
    return false;
  }

  void missing(const tree_node& map, const std::string& path, std::string_view key, std::string expected) {
    errors_.add(map.pos, detail::join_path(path, key), "missing required key", std::move(expected));
  }

  // A non-empty string that names something.
  bool read_name(const tree_node& n, const std::string& path, std::string& out) {
    if (!detail::read_string(n, path, errors_, out, true)) return false;
    if (!out.empty()) return true;
    detail::report_got(n, path, errors_, "a non-empty string");
    return false;
  }

  template <class T>
  bool read_int_field(const tree_node& map, const std::string& path, std::string_view key, T& out, std::int64_t min,
                      std::int64_t max, const std::string& expected) {
    const tree_node* n = field(map, key);
    if (!n) return false;
    std::int64_t v = 0;
    if (!detail::read_int(*n, detail::join_path(path, key), errors_, v, min, max, expected)) return false;
    out = static_cast<T>(v);
    return true;
  }

  bool read_duration_field(const tree_node& map, const std::string& path, std::string_view key, duration& out,
                           duration min, const std::string& expected) {
    const tree_node* n = field(map, key);
    return n && detail::read_duration(*n, detail::join_path(path, key), errors_, out, min, expected);
  }

  // A supervisor's intensity window: OTP counts restarts in whole seconds, and so does Grove.
  void read_period(const tree_node& map, const std::string& path, duration& out) {
    duration d{};
    if (!read_duration_field(map, path, "period", d, duration(1), period_expected)) return;
    if (d < std::chrono::seconds(1) || std::chrono::duration_cast<std::chrono::seconds>(d) != d) {
      errors_.add(field(map, "period")->pos, detail::join_path(path, "period"), "got " + format_duration(d),
                  period_expected, "restarts are counted in whole seconds, as in OTP");
      return;
    }
    out = d;
  }

  void read_node(const tree_node& n, const std::string& path, node_config& out) {
    if (!expect_map(n, path)) return;
    out.pos = n.pos;
    check_keys(n, path, {"name", "schedulers", "logging", "console", "http", "distribution"});
    if (auto v = field(n, "name")) detail::read_string(*v, detail::join_path(path, "name"), errors_, out.name, true);
    int schedulers = 0;
    if (read_int_field(n, path, "schedulers", schedulers, 1, limits::max_schedulers,
                       "an integer between 1 and " + std::to_string(limits::max_schedulers)))
      out.schedulers = schedulers;
    if (auto v = field(n, "logging")) {
      std::string p = detail::join_path(path, "logging");
      if (expect_map(*v, p)) {
        out.logging.pos = v->pos;
        check_keys(*v, p, {"level", "format"});
        if (auto l = field(*v, "level"))
          detail::read_enum(*l, detail::join_path(p, "level"), errors_,
                            {log_level::trace, log_level::debug, log_level::info, log_level::warning, log_level::error,
                             log_level::off},
                            out.logging.level);
        if (auto f = field(*v, "format"))
          detail::read_enum(*f, detail::join_path(p, "format"), errors_, {log_format::text, log_format::json},
                            out.logging.format);
      }
    }
    if (auto v = field(n, "console")) read_console(*v, detail::join_path(path, "console"), out.console);
    if (auto v = field(n, "http")) read_http(*v, detail::join_path(path, "http"), out.http);
    if (auto v = field(n, "distribution"))
      read_distribution(*v, detail::join_path(path, "distribution"), out.distribution);
  }

  void read_distribution(const tree_node& n, const std::string& path, distribution_config& out) {
    if (!expect_map(n, path)) return;
    out.pos = n.pos;
    check_keys(n, path, {"sname", "name", "cookie_file", "hidden", "tick_time", "port_range"});
    const tree_node* sname = field(n, "sname");
    const tree_node* lname = field(n, "name");
    if (sname && lname) {
      errors_.add(lname->pos, detail::join_path(path, "name"),
                  "give sname (a short name, as erl -sname) or name (a long one, as erl -name), not both");
    }
    if (const tree_node* v = sname ? sname : lname) {
      const std::string p = detail::join_path(path, sname ? "sname" : "name");
      if (detail::read_string(*v, p, errors_, out.name, true)) {
        out.longnames = !sname;
        if (std::string problem = dist::node_name_problem(out.name); !problem.empty()) errors_.add(v->pos, p, problem);
      }
    }
    if (auto v = field(n, "cookie_file"))
      detail::read_string(*v, detail::join_path(path, "cookie_file"), errors_, out.cookie_file, true);
    if (auto v = field(n, "hidden")) detail::read_bool(*v, detail::join_path(path, "hidden"), errors_, out.hidden);
    read_duration_field(n, path, "tick_time", out.tick_time, std::chrono::seconds(1),
                        "a duration of at least 1s, like 60s (Erlang's net_ticktime)");
    if (auto v = field(n, "port_range")) {
      const std::string p = detail::join_path(path, "port_range");
      std::string text;
      if (detail::read_string(*v, p, errors_, text, false)) {
        int lo = 0, hi = 0;
        char dash = 0, extra = 0;
        std::istringstream in(text);
        const bool one = text.find('-') == std::string::npos;
        bool ok = one ? static_cast<bool>(in >> lo) && !(in >> extra)
                      : (in >> lo >> dash >> hi) && dash == '-' && !(in >> extra);
        if (one) hi = lo;
        if (ok && lo >= 1 && lo <= hi && hi <= 65535) {
          out.port_min = lo;
          out.port_max = hi;
        } else {
          detail::report_got(*v, p, errors_, "a port or a range of ports, like 9100-9200");
        }
      }
    }
  }

  void read_http(const tree_node& n, const std::string& path, http_config& out) {
    if (!expect_map(n, path)) return;
    out.pos = n.pos;
    check_keys(n, path, {"listen", "token", "max_connections"});
    if (auto t = field(n, "token")) detail::read_string(*t, detail::join_path(path, "token"), errors_, out.token, true);
    if (auto a = field(n, "listen")) {
      std::string p = detail::join_path(path, "listen");
      std::string listen;
      if (detail::read_string(*a, p, errors_, listen, true)) {
        auto parsed = parse_console_address(listen);
        if (listen == "off") {
          out.listen = listen;
        } else if (parsed && parsed->what == console_address::kind::tcp) {
          out.listen = listen;
          // As for the console: nothing open beyond this machine without a token.
          if (std::string problem = http_address_problem(listen, env_token(out.token, "GROVE_HTTP_TOKEN"));
              !problem.empty()) {
            errors_.add(a->pos, p, problem);
          }
        } else {
          detail::report_got(*a, p, errors_, "off or host:port with a port up to 65535, like 127.0.0.1:8080");
        }
      }
    }
    read_int_field(n, path, "max_connections", out.max_connections, 1, limits::max_http_connections,
                   "an integer between 1 and " + std::to_string(limits::max_http_connections));
  }

  // A token from the configuration, else from the environment variable `var`.
  std::string env_token(const std::string& configured, const char* var) const {
    if (!configured.empty()) return configured;
    const char* t = options_.getenv ? options_.getenv(var) : std::getenv(var);
    return t ? t : "";
  }

  void read_console(const tree_node& n, const std::string& path, console_config& out) {
    if (!expect_map(n, path)) return;
    out.pos = n.pos;
    check_keys(n, path, {"address", "token", "max_sessions"});
    if (auto t = field(n, "token")) detail::read_string(*t, detail::join_path(path, "token"), errors_, out.token, true);
    if (auto a = field(n, "address")) {
      std::string p = detail::join_path(path, "address");
      std::string address;
      if (detail::read_string(*a, p, errors_, address, true)) {
        if (auto parsed = parse_console_address(address)) {
          out.address = address;
          out.mode = parsed->what == console_address::kind::off     ? console_mode::off
                     : parsed->what == console_address::kind::stdio ? console_mode::stdio
                                                                    : console_mode::tcp;
          out.host = parsed->host;
          out.port = parsed->port;
          // What `run` would refuse, `check` refuses: a console open beyond this machine
          // without a token (from here or GROVE_CONSOLE_TOKEN).
          if (std::string problem = console_address_problem(address, console_token(out.token)); !problem.empty()) {
            errors_.add(a->pos, p, problem);
          }
        } else {
          detail::report_got(*a, p, errors_, "off, stdio or host:port with a port up to 65535, like 127.0.0.1:7070");
        }
      }
    }
    read_int_field(n, path, "max_sessions", out.max_sessions, 1, limits::max_console_sessions,
                   "an integer between 1 and " + std::to_string(limits::max_console_sessions));
  }

  // The token a console would use: the configured one, else GROVE_CONSOLE_TOKEN.
  std::string console_token(const std::string& configured) const {
    if (!configured.empty()) return configured;
    const char* t = options_.getenv ? options_.getenv("GROVE_CONSOLE_TOKEN") : std::getenv("GROVE_CONSOLE_TOKEN");
    return t ? t : "";
  }

  void read_applications(const tree_node& n, const std::string& path, node_config& out) {
    if (n.is_null()) return;
    if (!n.is_sequence()) {
      detail::report_got(n, path, errors_, "a list of applications");
      return;
    }
    std::map<std::string, source_pos> seen;
    for (std::size_t i = 0; i < n.items.size(); ++i) {
      const tree_node& a = *n.items[i];
      std::string p = detail::index_path(path, i);
      if (!expect_map(a, p)) continue;
      application_config app;
      app.pos = a.pos;
      check_keys(a, p, {"name", "start", "depends_on", "env", "supervisor"});
      if (auto v = field(a, "name")) {
        if (read_name(*v, detail::join_path(p, "name"), app.name)) {
          auto [it, fresh] = seen.emplace(app.name, v->pos);
          if (!fresh) {
            errors_.add(v->pos, detail::join_path(p, "name"), "duplicate application name '" + app.name + "'", {},
                        "first at " + to_string(it->second));
          } else {
            reserve_name(app.name, detail::join_path(p, "name"), v->pos);
          }
        }
      } else {
        missing(a, p, "name", "a string");
      }
      if (auto v = field(a, "start"))
        detail::read_enum(*v, detail::join_path(p, "start"), errors_,
                          {start_type::permanent, start_type::transient, start_type::temporary}, app.start);
      dependency_positions_.emplace_back();
      if (auto v = field(a, "depends_on")) {
        std::string dp = detail::join_path(p, "depends_on");
        if (v->is_sequence()) {
          for (std::size_t j = 0; j < v->items.size(); ++j) {
            std::string dep;
            if (read_name(*v->items[j], detail::index_path(dp, j), dep)) {
              app.depends_on.push_back(dep);
              dependency_positions_.back().push_back({detail::index_path(dp, j), v->items[j]->pos});
            }
          }
        } else if (!v->is_null()) {
          detail::report_got(*v, dp, errors_, "a list of application names");
        }
      }
      if (const map_entry* e = entry(a, "env")) {
        std::string ep = detail::join_path(p, "env");
        if (expect_map(*e->value, ep, true))
          app.env = detail::args_access::make(e->value, ep, e->value->pos, args_sink);
      } else {
        app.env = detail::args_access::make(nullptr, detail::join_path(p, "env"), a.pos, args_sink);
      }
      if (auto v = field(a, "supervisor")) {
        read_supervisor(*v, detail::join_path(p, "supervisor"), app.supervisor);
      } else {
        missing(a, p, "supervisor", "a map");
      }
      out.applications.push_back(std::move(app));
    }
  }

  void read_supervisor(const tree_node& n, const std::string& path, supervisor_config& out) {
    if (!expect_map(n, path)) return;
    out.pos = n.pos;
    check_keys(n, path, {"strategy", "intensity", "period", "auto_shutdown", "backoff", "children"});
    if (auto v = field(n, "strategy"))
      detail::read_enum(*v, detail::join_path(path, "strategy"), errors_,
                        {strategy::one_for_one, strategy::one_for_all, strategy::rest_for_one}, out.strategy);
    read_int_field(n, path, "intensity", out.intensity, 0, std::numeric_limits<int>::max(), "an integer >= 0");
    read_period(n, path, out.period);
    const tree_node* shutdown_node = field(n, "auto_shutdown");
    if (shutdown_node)
      detail::read_enum(*shutdown_node, detail::join_path(path, "auto_shutdown"), errors_,
                        {auto_shutdown::never, auto_shutdown::any_significant, auto_shutdown::all_significant},
                        out.auto_shutdown);
    if (auto v = field(n, "backoff")) out.backoff = read_backoff(*v, detail::join_path(path, "backoff"));
    if (auto v = field(n, "children")) {
      std::string cp = detail::join_path(path, "children");
      if (v->is_sequence()) {
        std::map<std::string, source_pos> ids;
        for (std::size_t i = 0; i < v->items.size(); ++i) {
          child_config c;
          if (read_child(*v->items[i], detail::index_path(cp, i), out.auto_shutdown, c, ids))
            out.children.push_back(std::move(c));
        }
      } else if (!v->is_null()) {
        detail::report_got(*v, cp, errors_, "a list of children");
      }
    }
  }

  void read_dynamic_supervisor(const tree_node& n, const std::string& path, dynamic_supervisor_config& out) {
    if (!expect_map(n, path)) return;
    out.pos = n.pos;
    check_keys(
        n, path, {"intensity", "period", "max_children", "template"},
        {{"backoff", "not supported on a dynamic_supervisor yet", "declare backoff on a supervisor's children instead"},
         {"auto_shutdown", "not allowed on a dynamic_supervisor",
          "auto_shutdown needs significant children, which only a supervisor declares"},
         {"strategy", "not allowed on a dynamic_supervisor", "a dynamic_supervisor is always one_for_one"},
         {"children", "not allowed on a dynamic_supervisor",
          "a dynamic_supervisor's children are started at run time"}});
    read_int_field(n, path, "intensity", out.intensity, 0, std::numeric_limits<int>::max(), "an integer >= 0");
    read_period(n, path, out.period);
    std::size_t max_children = 0;
    if (read_int_field(n, path, "max_children", max_children, 1, std::numeric_limits<std::int64_t>::max(),
                       "an integer >= 1"))
      out.max_children = max_children;
    if (auto v = field(n, "template")) {
      auto t = std::make_shared<child_config>();
      std::map<std::string, source_pos> ids;
      if (read_child(*v, detail::join_path(path, "template"), auto_shutdown::never, *t, ids, true))
        out.child_template = std::move(t);
    }
  }

  std::optional<backoff_config> read_backoff(const tree_node& n, const std::string& path) {
    if (!expect_map(n, path)) return std::nullopt;
    backoff_config b;
    b.pos = n.pos;
    check_keys(n, path, {"min", "max", "multiplier", "jitter", "reset_after"});
    auto dur = [&](std::string_view key, duration& out) {
      const tree_node* v = field(n, key);
      return !v ||
             detail::read_duration(*v, detail::join_path(path, key), errors_, out, duration::zero(), duration_expected);
    };
    bool min_ok = dur("min", b.min);
    bool max_ok = dur("max", b.max);
    dur("reset_after", b.reset_after);
    if (auto v = field(n, "multiplier"))
      detail::read_double(*v, detail::join_path(path, "multiplier"), errors_, b.multiplier, 1.0, 1e9, "a number >= 1");
    if (auto v = field(n, "jitter"))
      detail::read_double(*v, detail::join_path(path, "jitter"), errors_, b.jitter, 0.0, 1.0,
                          "a number between 0 and 1");
    if (min_ok && max_ok && b.min > b.max) {
      const tree_node* at = field(n, "min") ? field(n, "min") : &n;
      errors_.add(at->pos, detail::join_path(path, "min"),
                  "min (" + format_duration(b.min) + ") is greater than max (" + format_duration(b.max) + ")", {},
                  field(n, "max") ? std::string{} : "max defaults to 10s");
    }
    return b;
  }

  bool read_shutdown(const tree_node& n, const std::string& path, shutdown_config& out) {
    out.pos = n.pos;
    if (n.is_scalar() && detail::classify(n) == detail::scalar_class::string) {
      if (n.text == "brutal_kill" || n.text == "infinity") {
        out.what = n.text == "infinity" ? shutdown_config::kind::infinity : shutdown_config::kind::brutal_kill;
        out.timeout = duration::zero();
        return true;
      }
      if (auto d = detail::parse_duration(n.text)) {
        out.what = shutdown_config::kind::timeout;
        out.timeout = *d;
        return true;
      }
      detail::report_got(n, path, errors_, shutdown_expected,
                         detail::did_you_mean(n.text, {"brutal_kill", "infinity"}));
      return false;
    }
    diagnostics scratch;
    duration d{};
    detail::read_duration(n, path, scratch, d, duration::zero(), shutdown_expected);
    for (auto e : scratch) errors_.add(std::move(e));
    return false;
  }

  // `templ`: a dynamic supervisor's template, the spec of the children started from it at run
  // time: a worker, its id optional, without a name (each child would register the same one).
  bool read_child(const tree_node& n, const std::string& path, auto_shutdown parent_auto_shutdown, child_config& out,
                  std::map<std::string, source_pos>& ids, bool templ = false) {
    if (!expect_map(n, path)) return false;
    out.pos = n.pos;
    check_keys(n, path,
               {"id", "kind", "supervisor", "dynamic_supervisor", "name", "restart", "shutdown", "significant",
                "backoff", "stack_size", "mailbox_capacity", "overflow", "args"});
    bool ok = true;
    if (auto v = field(n, "id")) {
      std::string p = detail::join_path(path, "id");
      if (read_name(*v, p, out.id)) {
        auto [it, fresh] = ids.emplace(out.id, v->pos);
        if (!fresh) {
          errors_.add(v->pos, p, "duplicate child id '" + out.id + "'", {}, "first at " + to_string(it->second));
          ok = false;
        }
      }
    } else if (!templ) {
      missing(n, path, "id", "a string");
    }

    // Exactly one of kind / supervisor / dynamic_supervisor; the first present decides the type.
    const map_entry* first = nullptr;
    for (const auto& e : n.entries) {
      if (e.key != "kind" && e.key != "supervisor" && e.key != "dynamic_supervisor") continue;
      if (!first) {
        first = &e;
        out.type = e.key == "kind"         ? child_type::worker
                   : e.key == "supervisor" ? child_type::supervisor
                                           : child_type::dynamic_supervisor;
      } else {
        errors_.add(e.key_pos, detail::join_path(path, e.key), "conflicts with '" + first->key + "'", kind_choice);
        ok = false;
      }
    }
    if (!first) {
      errors_.add(n.pos, path, "missing kind, supervisor or dynamic_supervisor", kind_choice);
      ok = false;
    }
    if (auto v = field(n, "kind")) {
      std::string p = detail::join_path(path, "kind");
      if (read_name(*v, p, out.kind) && !options_.known_kinds.empty() &&
          std::find(options_.known_kinds.begin(), options_.known_kinds.end(), out.kind) == options_.known_kinds.end()) {
        errors_.add(v->pos, p, "unknown kind '" + out.kind + "'", detail::one_of(options_.known_kinds, 20),
                    detail::did_you_mean(out.kind, options_.known_kinds));
      }
    }
    if (auto v = field(n, "supervisor")) {
      auto sup = std::make_shared<supervisor_config>();
      read_supervisor(*v, detail::join_path(path, "supervisor"), *sup);
      out.supervisor = std::move(sup);
    }
    if (auto v = field(n, "dynamic_supervisor")) {
      out.dynamic_supervisor.emplace();
      read_dynamic_supervisor(*v, detail::join_path(path, "dynamic_supervisor"), *out.dynamic_supervisor);
    }

    if (templ && first && out.type != child_type::worker) {
      errors_.add(first->key_pos, detail::join_path(path, first->key), "a template is a worker", {},
                  "give the template a kind; nest supervisors in a supervisor instead");
      ok = false;
    }
    for (std::string_view key : {"name", "significant", "backoff"}) {
      const map_entry* e = templ ? entry(n, key) : nullptr;
      if (!e) continue;
      errors_.add(e->key_pos, detail::join_path(path, key), "not allowed on a template", {},
                  key == "name"          ? "every child started from the template would register the same name"
                  : key == "significant" ? "a dynamic supervisor has no auto_shutdown for significant children"
                                         : "a dynamic supervisor restarts its children at once, without backoff");
      ok = false;
    }
    if (auto v = templ ? nullptr : field(n, "name")) {
      std::string p = detail::join_path(path, "name");
      std::string name;
      if (read_name(*v, p, name)) {
        out.name = name;
        reserve_name(name, p, v->pos);
      }
    }
    const tree_node* restart = field(n, "restart");
    if (restart)
      detail::read_enum(*restart, detail::join_path(path, "restart"), errors_,
                        {restart_type::permanent, restart_type::transient, restart_type::temporary}, out.restart);
    if (auto v = field(n, "shutdown")) {
      shutdown_config s;
      if (read_shutdown(*v, detail::join_path(path, "shutdown"), s)) out.shutdown = s;
    }
    if (auto v = templ ? nullptr : field(n, "significant")) {
      std::string p = detail::join_path(path, "significant");
      if (detail::read_bool(*v, p, errors_, out.significant) && out.significant) {
        if (out.restart == restart_type::permanent)
          errors_.add(v->pos, p, "a permanent child cannot be significant", {},
                      restart ? "use restart: transient or temporary"
                              : "restart defaults to permanent: use restart: transient or temporary");
        if (parent_auto_shutdown == auto_shutdown::never)
          errors_.add(v->pos, p, "a significant child under a supervisor with auto_shutdown: never", {},
                      "set the supervisor's auto_shutdown to any_significant or all_significant");
      }
    }
    if (auto v = templ ? nullptr : field(n, "backoff"))
      out.backoff = read_backoff(*v, detail::join_path(path, "backoff"));

    // What only a worker has.
    if (first && out.type != child_type::worker) {
      for (std::string_view key : {"args", "stack_size", "mailbox_capacity", "overflow"})
        if (const map_entry* e = entry(n, key))
          errors_.add(e->key_pos, detail::join_path(path, key),
                      std::string("not allowed on a ") +
                          (out.type == child_type::supervisor ? "supervisor" : "dynamic_supervisor") + " child",
                      {}, "args, stack_size, mailbox_capacity and overflow belong to a child with a kind");
      return ok;
    }
    if (auto v = field(n, "stack_size")) {
      std::size_t size = 0;
      if (detail::read_size(*v, detail::join_path(path, "stack_size"), errors_, size, min_stack_size,
                            "a size of at least 16KiB: bytes, or a number with KiB or MiB"))
        out.stack_size = size;
    }
    const tree_node* capacity = field(n, "mailbox_capacity");
    std::size_t cap = 0;
    if (read_int_field(n, path, "mailbox_capacity", cap, 1, static_cast<std::int64_t>(max_mailbox_capacity),
                       "an integer from 1 to 524287"))
      out.mailbox_capacity = cap;
    if (auto v = field(n, "overflow")) {
      std::string p = detail::join_path(path, "overflow");
      if (detail::read_enum(*v, p, errors_,
                            {overflow_policy::drop_newest, overflow_policy::drop_oldest, overflow_policy::fail},
                            out.overflow) &&
          !capacity)
        errors_.add(v->pos, p, "overflow without mailbox_capacity", {},
                    "an unbounded mailbox never overflows: set mailbox_capacity");
    }
    if (const map_entry* e = entry(n, "args")) {
      std::string p = detail::join_path(path, "args");
      if (expect_map(*e->value, p, true)) out.args = detail::args_access::make(e->value, p, e->value->pos, args_sink);
    } else {
      out.args = detail::args_access::make(nullptr, detail::join_path(path, "args"), n.pos, args_sink);
    }
    return ok;
  }

  // A registered name, unique in the whole configuration: a child's `name`, and each
  // application's name (its top supervisor is registered under it).
  void reserve_name(const std::string& name, const std::string& path, source_pos pos) {
    auto [it, fresh] = names_.emplace(name, registered{path, pos});
    if (fresh) return;
    // An application's name is at applications[i].name, a child's deeper, under .supervisor.
    const bool app =
        it->second.path.find(".supervisor") == std::string::npos || path.find(".supervisor") == std::string::npos;
    errors_.add(pos, path, "duplicate registered name '" + name + "'", {},
                "first registered by " + it->second.path + " at " + to_string(it->second.pos) +
                    (app ? " (an application registers its top supervisor under its name)" : ""));
  }

  struct dependency_pos {
    std::string path;
    source_pos pos;
  };

  // Unknown dependencies and cycles; then the start order.
  void check_dependencies(node_config& out) {
    auto& apps = out.applications;
    std::map<std::string, std::size_t> index;
    std::vector<std::string> names;
    for (std::size_t i = 0; i < apps.size(); ++i) {
      if (apps[i].name.empty()) continue;
      if (index.emplace(apps[i].name, i).second) names.push_back(apps[i].name);
    }
    // deps[i]: (application index, position of the entry) of each known dependency of i.
    std::vector<std::vector<std::pair<std::size_t, std::size_t>>> deps(apps.size());
    for (std::size_t i = 0; i < apps.size(); ++i) {
      for (std::size_t j = 0; j < apps[i].depends_on.size(); ++j) {
        const std::string& d = apps[i].depends_on[j];
        const dependency_pos& where = dependency_positions_[i][j];
        auto it = index.find(d);
        if (it == index.end()) {
          errors_.add(where.pos, where.path, "unknown application '" + d + "'", detail::one_of(names),
                      detail::did_you_mean(d, names));
          continue;
        }
        deps[i].emplace_back(it->second, j);
      }
    }
    // Kahn's algorithm, the earliest-declared ready application first.
    std::vector<bool> started(apps.size(), false);
    std::vector<bool> skip(apps.size(), false);  // a duplicate name: its first declaration stands for it
    for (std::size_t i = 0; i < apps.size(); ++i) skip[i] = apps[i].name.empty() || index.at(apps[i].name) != i;
    for (bool progress = true; progress;) {
      progress = false;
      for (std::size_t i = 0; i < apps.size(); ++i) {
        if (started[i] || skip[i]) continue;
        bool ready = std::all_of(deps[i].begin(), deps[i].end(), [&](auto& d) { return started[d.first]; });
        if (!ready) continue;
        started[i] = true;
        out.start_order.push_back(apps[i].name);
        progress = true;
        break;
      }
    }
    // What did not start is on a cycle or behind one: walk each remaining application's first
    // unstarted dependency until an application repeats; that loop is a cycle.
    std::vector<bool> reported(apps.size(), false);
    for (std::size_t s = 0; s < apps.size(); ++s) {
      if (started[s] || skip[s] || reported[s]) continue;
      std::vector<std::size_t> walk;
      std::size_t at = s;
      while (std::find(walk.begin(), walk.end(), at) == walk.end()) {
        walk.push_back(at);
        auto next = std::find_if(deps[at].begin(), deps[at].end(), [&](auto& d) { return !started[d.first]; });
        at = next->first;
      }
      std::vector<std::size_t> cycle(std::find(walk.begin(), walk.end(), at), walk.end());
      if (std::any_of(cycle.begin(), cycle.end(), [&](std::size_t i) { return reported[i]; })) continue;
      for (std::size_t i : cycle) reported[i] = true;
      // Name it from its earliest-declared application.
      std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
      std::string text;
      for (std::size_t i : cycle) text += apps[i].name + " -> ";
      text += apps[cycle.front()].name;
      std::size_t second = cycle.size() > 1 ? cycle[1] : cycle[0];
      auto edge = std::find_if(deps[cycle.front()].begin(), deps[cycle.front()].end(),
                               [&](auto& d) { return d.first == second; });
      const dependency_pos& where = dependency_positions_[cycle.front()][edge->second];
      errors_.add(where.pos, where.path, "dependency cycle: " + text);
    }
  }

  const load_options& options_;
  diagnostics& errors_;
  std::size_t budget_ = limits::max_total_bytes;  // bytes the whole configuration may still take
  int includes_ = 0;
  std::map<std::string, registered> names_;
  std::vector<std::vector<dependency_pos>> dependency_positions_;  // per application, per depends_on entry
};

load_result finish(loader& l, const node_ptr& root, diagnostics& errors) {
  load_result result;
  std::optional<node_config> config;
  if (root) config = l.build(root);
  result.errors = std::move(errors);
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

}  // namespace

load_result load_string(std::string_view yaml, const std::string& file_name, const load_options& options) {
  diagnostics errors;
  loader l(options, errors);
  if (yaml.size() > limits::max_file_bytes) {
    errors.add({file_name, 0, 0}, "", "larger than " + std::to_string(limits::max_file_bytes >> 20) + " MiB");
    return finish(l, nullptr, errors);
  }
  std::vector<std::string> stack{std::filesystem::path(file_name).lexically_normal().string()};
  node_ptr root = l.load_tree(file_name, yaml, stack);
  return finish(l, root, errors);
}

load_result load_file(const std::string& path, const load_options& options) {
  diagnostics errors;
  loader l(options, errors);
  std::string error;
  auto text = l.read_file(path, error);
  if (!text) {
    errors.add({path, 0, 0}, "", "cannot read file: " + error);
    load_result result;
    result.errors = std::move(errors);
    return result;
  }
  std::vector<std::string> stack{std::filesystem::path(path).lexically_normal().string()};
  node_ptr root = l.load_tree(path, *text, stack);
  return finish(l, root, errors);
}

}  // namespace grove::config
