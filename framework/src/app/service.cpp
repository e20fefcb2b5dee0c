#include <grove/app/service.hpp>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

#include <grove/behaviours/supervisor.hpp>
#include <grove/dist/distribution.hpp>
#include <grove/observe/console.hpp>
#include <grove/observe/events.hpp>
#include <grove/observe/http.hpp>
#include <grove/observe/logger.hpp>

#include "plan.hpp"

namespace grove {

const char* version() noexcept { return GROVE_VERSION; }

namespace {

struct stop_request {};

// What the controller tells the thread that runs the service.
struct outcome {
  exit_code code = exit_code::ok;
  std::string message;
};

void publish_application(const std::string& app, const char* what, const pid& sup, const exit_reason& r) {
  event e;
  e.kind = event_kind::application;
  e.child = app;
  e.label = what;
  if (std::string_view(what) == "started") {
    e.new_pid = sup;
  } else {
    e.old_pid = sup;
  }
  e.reason = r;
  events().publish(std::move(e));
}

std::string start_type_name(config::start_type t) { return std::string(config::to_string(t)); }

}  // namespace

struct service::impl {
  kind_registry kinds;
  service_options opts;
  config::diagnostics errors;
  std::optional<config::node_config> cfg;
  std::vector<detail::app_plan> plan;

  // ---- while running ----
  mutable std::mutex mu;
  std::condition_variable cv;
  grove::node* running = nullptr;
  pid controller;
  bool started = false;   // every application started
  bool finished = false;  // the controller ended
  bool stop_asked = false;
  bool waited = false;  // run() no longer waits for the controller
  outcome result;
  std::vector<std::pair<std::string, pid>> apps;  // running applications, in start order

  std::ostream& messages() const { return opts.messages ? *opts.messages : std::cerr; }

  bool load(config::load_result r) {
    errors = std::move(r.errors);
    cfg = std::move(r.config);
    plan.clear();
    if (!cfg) return false;
    plan = detail::build_plan(*cfg, kinds, errors);
    if (opts.console) {  // --console, over node.console.address: checked as the YAML's would be
      if (std::string problem = console_address_problem(*opts.console, console_token()); !problem.empty()) {
        errors.add({"--console", 0, 0}, "", problem);
      }
    }
    if (opts.http && *opts.http != "off") {  // --http, over node.http.listen
      if (std::string problem = http_address_problem(*opts.http, http_token()); !problem.empty()) {
        errors.add({"--http", 0, 0}, "", problem);
      }
    }
    if (!errors.empty()) {
      cfg.reset();
      plan.clear();
      return false;
    }
    return true;
  }

  config::load_options load_options() const {
    config::load_options o = opts.load;
    if (o.known_kinds.empty()) o.known_kinds = kinds.names();
    return o;
  }

  void finish(outcome o) {
    std::unique_lock lk(mu);
    result = std::move(o);
    finished = true;
    cv.notify_all();
  }

  // Stops the running applications in reverse start order. `parent_died`: the controller
  // died with that reason, which its applications (linked to it) took; one already gone when
  // asked to stop (noproc) is reported with it.
  void stop_all(const std::optional<exit_reason>& parent_died = std::nullopt) {
    std::vector<std::pair<std::string, pid>> list;
    {
      std::unique_lock lk(mu);
      list = apps;
    }
    for (auto it = list.rbegin(); it != list.rend(); ++it) {
      exit_reason how = detail::stop_child(it->second, shutdown_spec::infinity());
      if (parent_died && how == exit_reason::noproc()) how = *parent_died;
      publish_application(it->first, "stopped", it->second, how);
      std::unique_lock lk(mu);
      std::erase_if(apps, [&](const auto& a) { return a.second == it->second; });
    }
  }

  // The application controller: a process that starts the applications, watches their top
  // supervisors through links, and stops them. It ends by itself only once it has finished the
  // run. If it dies before (killed from the console, a bug), its applications die with it (their
  // top supervisors are linked to it) and nothing would be left to end the run: as OTP's node
  // goes down with its application_controller, the run then ends with exit code 3 once the
  // applications are stopped.
  void control() {
    try {
      control_applications();
    } catch (...) {
      controller_died(detail::reason_of_current_exception());
      throw;
    }
  }

  // In the dying controller: hands the stop to a process of its own (this one cannot wait).
  void controller_died(const exit_reason& why) {
    {
      std::unique_lock lk(mu);
      if (finished || waited) return;  // the run is over: the node is stopping
    }
    try {
      spawn(
          [this, why] {
            stop_all(why);  // they are ending already: wait for each, newest first
            finish({exit_code::application_failed,
                    "the application controller died with reason " + why.str() + "; the node stops"});
          },
          {.label = "application_controller_exit"});
    } catch (const std::exception&) {  // the node is stopping
    }
  }

  void control_applications() {
    trap_exit(true);
    for (auto& app : plan) {
      start_options so;
      so.spawn.label = app.name;
      so.name = app.name;  // the loader keeps application names apart from children's
      auto r = detail::start_supervisor_link_at(app.flags, app.children, app.name, so);
      if (!r) {
        publish_application(app.name, "failed", {}, r.reason());
        stop_all();
        finish({exit_code::start_failed, "application " + app.name + " failed to start: " + r.reason().str()});
        return;
      }
      publish_application(app.name, "started", r.pid(), exit_reason::normal());
      std::unique_lock lk(mu);
      apps.emplace_back(app.name, r.pid());
    }
    {
      std::unique_lock lk(mu);
      started = true;
      cv.notify_all();
    }
    for (;;) {
      std::optional<outcome> end;
      receive(
          [&](stop_request) {
            stop_all();
            end = outcome{exit_code::ok, "stopped"};
          },
          [&](const exit_signal& e) { end = on_application_exit(e); });
      if (end) {
        finish(std::move(*end));
        return;
      }
    }
  }

  std::optional<outcome> on_application_exit(const exit_signal& e) {
    std::string name;
    {
      std::unique_lock lk(mu);
      auto it = std::find_if(apps.begin(), apps.end(), [&](const auto& a) { return a.second == e.from; });
      if (it == apps.end()) return std::nullopt;
      name = it->first;
      apps.erase(it);
    }
    publish_application(name, "stopped", e.from, e.reason);
    config::start_type type = config::start_type::temporary;
    for (auto& p : plan) {
      if (p.name == name) type = p.type;
    }
    if (type == config::start_type::permanent || (type == config::start_type::transient && !e.reason.is_normal())) {
      stop_all();
      return outcome{exit_code::application_failed, "application " + name + " (" + start_type_name(type) +
                                                        ") exited with reason " + e.reason.str() + "; the node stops"};
    }
    messages() << "grove: application " << name << " (" << start_type_name(type) << ") exited with reason "
               << e.reason.str() << "\n";
    return std::nullopt;
  }

  int run() {
    if (!cfg) {
      messages() << "grove: no valid configuration loaded\n" << errors.to_string();
      return static_cast<int>(exit_code::config_error);
    }
    // Signals go to this thread only: block them before the node makes its threads, which
    // inherit the mask.
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    if (opts.handle_signals) pthread_sigmask(SIG_BLOCK, &sigs, &old);

    node_options no;
    no.name = cfg->name.empty() ? "grove" : cfg->name;
    if (opts.schedulers) {
      no.schedulers = *opts.schedulers;
    } else if (cfg->schedulers) {
      no.schedulers = static_cast<unsigned>(*cfg->schedulers);
    }
    int code = 0;
    {
      grove::node n(no);
      logger_options lo;
      lo.format = opts.log_format.value_or(cfg->logging.format);
      switch (cfg->logging.level) {
        case config::log_level::trace:
        case config::log_level::debug:
        case config::log_level::info:
          lo.level = "info";
          break;
        case config::log_level::warning:
          lo.level = "warning";
          break;
        case config::log_level::error:
          lo.level = "error";
          break;
        case config::log_level::off:
          lo.level = "off";
          break;
      }
      lo.stream = opts.log_stream;
      event_logger logger(n, lo);
      std::unique_ptr<console> con;
      std::unique_ptr<http_endpoint> web;
      std::unique_ptr<dist::distribution> cluster;
      if (std::string error;
          !start_distribution(n, cluster, error) || !start_console(n, con, error) || !start_http(n, web, error)) {
        messages() << "grove: " << error << "\n";
        code = static_cast<int>(exit_code::start_failed);
      } else {
        {
          std::unique_lock lk(mu);
          running = &n;
          started = finished = waited = false;
          result = {};
          controller = n.spawn([this] { control(); }, {.label = "application_controller"});
        }
        code = wait_until_finished(n, sigs);
        {
          std::unique_lock lk(mu);
          waited = true;
        }
        con.reset();  // no session outlives the applications' stop
        web.reset();
        cluster.reset();
        logger.flush();
        std::unique_lock lk(mu);
        running = nullptr;
        controller = pid{};
      }
    }
    if (opts.handle_signals) pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return code;
  }

  std::vector<console_app> console_apps() const {
    std::vector<console_app> out;
    std::unique_lock lk(mu);
    for (auto& p : plan) {
      console_app a{p.name, start_type_name(p.type), {}};
      for (auto& [name, sup] : apps) {
        if (name == p.name) a.top = sup;
      }
      out.push_back(std::move(a));
    }
    return out;
  }

  // A child spec from the template of the dynamic supervisor at `path`, with `args` (a YAML
  // map) merged onto the template's.
  std::optional<child_spec> from_template(const std::string& path, const std::string& args, std::string& error) const {
    const detail::template_fn* make = nullptr;
    for (auto& app : plan) {
      if (auto it = app.templates.find(path); it != app.templates.end()) make = &it->second;
    }
    if (!make) {
      error = path + " has no template: declare one in its dynamic_supervisor (docs/config.md)";
      return std::nullopt;
    }
    auto sink = std::make_shared<config::diagnostics>();
    config::args extra = config::args::parse(args.empty() ? "{}" : args, "args", sink);
    std::optional<child_spec> spec;
    if (sink->empty()) spec = (*make)(extra, *sink);
    if (!spec) {
      std::string text = sink->to_string();
      while (!text.empty() && text.back() == '\n') text.pop_back();
      error = "the template refused the args: " + (text.empty() ? std::string("no start function") : text);
    }
    return spec;
  }

  // The console's token: node.console.token, else GROVE_CONSOLE_TOKEN (the loader's rule).
  std::string console_token() const {
    if (!cfg->console.token.empty()) return cfg->console.token;
    const char* t = opts.load.getenv ? opts.load.getenv("GROVE_CONSOLE_TOKEN") : std::getenv("GROVE_CONSOLE_TOKEN");
    return t ? t : "";
  }

  // Starts the console the configuration (or --console) asks for. False on failure.
  bool start_console(grove::node& n, std::unique_ptr<console>& con, std::string& error) {
    const std::string address = opts.console.value_or(cfg->console.address);
    if (address.empty() || address == "off") return true;
    console_options co;
    co.address = address;
    co.token = console_token();
    co.max_sessions = cfg->console.max_sessions;
    co.applications = [this] { return console_apps(); };
    co.child_template = [this](const std::string& path, const std::string& args, std::string& error) {
      return from_template(path, args, error);
    };
    con = std::make_unique<console>(n, co);
    if (!con->start(error)) return false;
    if (address != "stdio") {
      const std::string host = address.substr(0, address.rfind(':'));
      const std::string where = host + ":" + std::to_string(con->port());
      messages() << "grove: console on " << where << " — connect with: " << opts.program << " console " << where
                 << "  (or nc " << host << " " << con->port() << ")\n";
    }
    return true;
  }

  // The endpoint's token: node.http.token, else GROVE_HTTP_TOKEN (the loader's rule).
  std::string http_token() const {
    if (!cfg->http.token.empty()) return cfg->http.token;
    const char* t = opts.load.getenv ? opts.load.getenv("GROVE_HTTP_TOKEN") : std::getenv("GROVE_HTTP_TOKEN");
    return t ? t : "";
  }

  // Starts the HTTP endpoint (dashboard, API, /metrics) the configuration or --http asks for.
  bool start_http(grove::node& n, std::unique_ptr<http_endpoint>& web, std::string& error) {
    const std::string listen = opts.http.value_or(cfg->http.listen);
    if (listen.empty() || listen == "off") return true;
    http_options ho;
    ho.listen = listen;
    ho.token = http_token();
    ho.max_connections = cfg->http.max_connections;
    ho.applications = [this] { return console_apps(); };
    ho.child_template = [this](const std::string& path, const std::string& args, std::string& error) {
      return from_template(path, args, error);
    };
    web = std::make_unique<http_endpoint>(n, ho);
    if (!web->start(error)) return false;
    const std::string host = listen.substr(0, listen.rfind(':'));
    messages() << "grove: dashboard on http://" << host << ":" << web->port() << "/  (metrics: /metrics)\n";
    return true;
  }

  // The cookie: --cookie-file, else GROVE_COOKIE, else node.distribution.cookie_file, else
  // ~/.erlang.cookie, made (20 random capitals, owner-only) when missing, as erl does. A cookie
  // file others can read is refused, as erl refuses it. Never logged.
  bool read_cookie(std::string& cookie, std::string& error) const {
    const char* env = opts.load.getenv ? opts.load.getenv("GROVE_COOKIE") : std::getenv("GROVE_COOKIE");
    std::string path = opts.cookie_file.value_or("");
    if (path.empty() && env && *env) {
      cookie = env;
      return true;
    }
    if (path.empty()) path = cfg->distribution.cookie_file;
    if (path.empty()) {
      const char* home = std::getenv("HOME");
      if (!home || !*home) {
        error = "no cookie: give --cookie-file PATH or GROVE_COOKIE (HOME is not set for ~/.erlang.cookie)";
        return false;
      }
      path = std::string(home) + "/.erlang.cookie";
      if (::access(path.c_str(), F_OK) != 0) {
        std::string made;
        std::random_device rd;
        for (int i = 0; i < 20; ++i) made += static_cast<char>('A' + rd() % 26);
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
        if (fd < 0 || ::write(fd, made.data(), made.size()) != static_cast<ssize_t>(made.size())) {
          if (fd >= 0) ::close(fd);
          error = "cannot create the cookie file " + path + ": " + std::strerror(errno);
          return false;
        }
        ::close(fd);
      }
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      error = "cannot read the cookie file " + path + ": " + std::strerror(errno);
      return false;
    }
    if (st.st_mode & 077) {
      error = "the cookie file " + path + " must be accessible by its owner only (chmod 400 " + path + ")";
      return false;
    }
    std::ifstream in(path);
    std::getline(in, cookie);
    while (!cookie.empty() && std::isspace(static_cast<unsigned char>(cookie.back()))) cookie.pop_back();
    if (cookie.empty()) {
      error = "the cookie file " + path + " is empty";
      return false;
    }
    return true;
  }

  // Joins the Erlang cluster when --sname/--name or node.distribution names the node.
  bool start_distribution(grove::node& n, std::unique_ptr<dist::distribution>& out, std::string& error) {
    const auto& dc = cfg->distribution;
    dist::dist_options o;
    if (opts.sname || opts.name) {
      o.name = opts.sname ? *opts.sname : *opts.name;
      o.longnames = !opts.sname;
    } else {
      o.name = dc.name;
      o.longnames = dc.longnames;
    }
    if (o.name.empty()) return true;
    if (!read_cookie(o.cookie, error)) return false;
    o.hidden = dc.hidden;
    o.tick_time = std::chrono::duration_cast<std::chrono::milliseconds>(dc.tick_time);
    o.port_min = dc.port_min;
    o.port_max = dc.port_max;
    try {
      out = std::make_unique<dist::distribution>(n, std::move(o));
    } catch (const dist::dist_error& e) {
      error = std::string("cannot join the Erlang cluster: ") + e.what();
      return false;
    }
    // One write: the console may be writing to the same terminal.
    messages() << ("grove: node " + out->name() + (dc.hidden ? " (hidden)" : "") +
                   " in the Erlang cluster — from erl: net_adm:ping('" + out->name() + "').\n")
               << std::flush;
    return true;
  }

  // The service's hooks: `started` once every application has; `stopping` once, if `started`
  // ran, before the applications stop on request, or after an application ended the run.
  int wait_until_finished(grove::node& n, const sigset_t& sigs) {
    std::optional<std::chrono::steady_clock::time_point> deadline;
    bool hook_started = false, hook_stopping = false;
    auto stopping = [&] {
      if (hook_started && !hook_stopping && opts.hooks.stopping) opts.hooks.stopping(n);
      hook_stopping = true;
    };
    for (;;) {
      bool ask_stop = false, run_started = false, done = false;
      {
        std::unique_lock lk(mu);
        // Without signals to watch, wait on the condition alone; else look at both, 50 ms apart.
        const auto step = opts.handle_signals ? std::chrono::milliseconds(50) : std::chrono::milliseconds(500);
        cv.wait_for(lk, step,
                    [&] { return finished || (stop_asked && !deadline) || (started && !hook_started && !stop_asked); });
        done = finished;
        run_started = started && !hook_started && !stop_asked && !finished;
        if (stop_asked && !deadline) {
          deadline = std::chrono::steady_clock::now() + opts.shutdown_timeout;
          ask_stop = true;
        }
      }
      if (run_started) {
        hook_started = true;
        if (opts.hooks.started) opts.hooks.started(n);
      }
      if (ask_stop) {
        stopping();  // before the applications stop: the service's threads still find them
        std::unique_lock lk(mu);
        send(controller, stop_request{});
      }
      if (done) {
        stopping();
        break;
      }
      if (opts.handle_signals) {
        timespec zero{0, 0};
        siginfo_t info;
        if (sigtimedwait(&sigs, &info, &zero) > 0) {
          messages() << "grove: " << (info.si_signo == SIGINT ? "SIGINT" : "SIGTERM")
                     << " received, stopping the applications\n";
          request_stop();
        }
      }
      if (deadline && std::chrono::steady_clock::now() > *deadline) {
        messages() << "grove: the applications did not stop within "
                   << std::chrono::duration_cast<std::chrono::milliseconds>(opts.shutdown_timeout).count()
                   << " ms; stopping the node\n";
        return static_cast<int>(exit_code::shutdown_timeout);
      }
    }
    std::unique_lock lk(mu);
    if (result.code != exit_code::ok) messages() << "grove: " << result.message << "\n";
    return static_cast<int>(result.code);
  }

  // The thread that runs the service sends the stop, after the `stopping` hook.
  void request_stop() {
    std::unique_lock lk(mu);
    stop_asked = true;
    cv.notify_all();
  }
};

service::service(kind_registry kinds, service_options opts) : impl_(std::make_unique<impl>()) {
  impl_->kinds = std::move(kinds);
  impl_->opts = std::move(opts);
}

service::~service() = default;

bool service::load_file(const std::string& path) { return impl_->load(config::load_file(path, impl_->load_options())); }

bool service::load_string(std::string_view yaml, const std::string& file_name) {
  return impl_->load(config::load_string(yaml, file_name, impl_->load_options()));
}

const config::diagnostics& service::errors() const noexcept { return impl_->errors; }

const config::node_config& service::config() const {
  if (!impl_->cfg) throw std::logic_error("service::config: no valid configuration loaded");
  return *impl_->cfg;
}

int service::run() { return impl_->run(); }

void service::stop() { impl_->request_stop(); }

bool service::wait_started(std::chrono::milliseconds timeout) {
  std::unique_lock lk(impl_->mu);
  return impl_->cv.wait_for(lk, timeout, [&] { return impl_->started || impl_->finished; }) && impl_->started &&
         !impl_->finished;
}

grove::node* service::running_node() noexcept {
  std::unique_lock lk(impl_->mu);
  return impl_->running;
}

std::optional<pid> service::application(std::string_view name) const {
  std::unique_lock lk(impl_->mu);
  for (auto& [n, p] : impl_->apps) {
    if (n == name) return p;
  }
  return std::nullopt;
}

std::vector<std::string> service::applications() const {
  std::vector<std::string> out;
  if (impl_->cfg) out = impl_->cfg->start_order;
  return out;
}

// ---- describe ---------------------------------------------------------------------------------

namespace {

void describe_children(std::ostringstream& os, const std::vector<config::child_config>& children, int depth);

std::string sup_line(const config::supervisor_config& s) {
  std::string line = "supervisor " + std::string(to_string(s.strategy)) + ", intensity " + std::to_string(s.intensity) +
                     " in " + config::format_duration(s.period);
  if (s.auto_shutdown != config::auto_shutdown::never) {
    line += ", auto_shutdown " + std::string(to_string(s.auto_shutdown));
  }
  if (s.backoff)
    line += ", backoff " + config::format_duration(s.backoff->min) + ".." + config::format_duration(s.backoff->max);
  return line;
}

void describe_children(std::ostringstream& os, const std::vector<config::child_config>& children, int depth) {
  const std::string indent(static_cast<std::size_t>(depth) * 2, ' ');
  for (const auto& c : children) {
    os << indent << c.id << "  ";
    switch (c.type) {
      case config::child_type::worker:
        os << "kind " << c.kind;
        break;
      case config::child_type::supervisor:
        os << sup_line(*c.supervisor);
        break;
      case config::child_type::dynamic_supervisor:
        os << "dynamic_supervisor, intensity " << c.dynamic_supervisor->intensity << " in "
           << config::format_duration(c.dynamic_supervisor->period);
        if (c.dynamic_supervisor->max_children) os << ", max_children " << *c.dynamic_supervisor->max_children;
        if (const auto& t = c.dynamic_supervisor->child_template) {
          os << ", template kind " << t->kind << " (" << to_string(t->restart) << ")";
        }
        break;
    }
    if (c.name) os << ", name " << *c.name;
    os << ", " << to_string(c.restart);
    if (c.significant) os << ", significant";
    if (c.shutdown) {
      switch (c.shutdown->what) {
        case config::shutdown_config::kind::brutal_kill:
          os << ", shutdown brutal_kill";
          break;
        case config::shutdown_config::kind::infinity:
          os << ", shutdown infinity";
          break;
        case config::shutdown_config::kind::timeout:
          os << ", shutdown " << config::format_duration(c.shutdown->timeout);
          break;
      }
    }
    if (c.backoff)
      os << ", backoff " << config::format_duration(c.backoff->min) << ".." << config::format_duration(c.backoff->max);
    if (c.stack_size) os << ", stack " << *c.stack_size << " B";
    if (c.mailbox_capacity) os << ", mailbox " << *c.mailbox_capacity << " (" << to_string(c.overflow) << ")";
    os << "\n";
    if (c.type == config::child_type::supervisor) describe_children(os, c.supervisor->children, depth + 1);
  }
}

}  // namespace

std::string service::describe() const {
  std::ostringstream os;
  if (!impl_->cfg) return "(no valid configuration)\n";
  const auto& c = *impl_->cfg;
  os << "node " << (c.name.empty() ? "grove" : c.name) << ": ";
  if (c.schedulers) {
    os << *c.schedulers << " schedulers";
  } else {
    os << "one scheduler per core";
  }
  os << ", log " << config::to_string(c.logging.level) << " " << to_string(c.logging.format) << ", console "
     << c.console.address << "\n";
  for (const std::string& name : c.start_order) {
    for (const auto& a : c.applications) {
      if (a.name != name) continue;
      os << "application " << a.name << " (" << config::to_string(a.start);
      if (!a.depends_on.empty()) {
        os << ", after";
        for (auto& d : a.depends_on) os << " " << d;
      }
      os << ")\n  " << a.name << "  " << sup_line(a.supervisor) << "\n";
      describe_children(os, a.supervisor.children, 2);
    }
  }
  return os.str();
}

}  // namespace grove
