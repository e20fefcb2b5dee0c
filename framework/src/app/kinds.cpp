#include <grove/app/builtin_kinds.hpp>
#include <grove/app/kinds.hpp>

#include <grove/behaviours/command.hpp>
#include <grove/behaviours/partition_supervisor.hpp>
#include <grove/behaviours/pool.hpp>
#include <grove/config/limits.hpp>
#include <grove/dist/term.hpp>

#include <random>
#include <regex>
#include <stdexcept>

namespace grove {

child_start kind_context::make(const config::args& spec, std::optional<std::string> name, const std::string& id) const {
  spec.only({"kind", "args"});
  const std::string kind = spec.get<std::string>("kind");
  if (kind.empty()) return nullptr;  // recorded: missing required key
  const kind_factory* f = kinds_ ? kinds_->find(kind) : nullptr;
  if (!f) {
    std::string expected;
    if (kinds_) {
      for (auto& k : kinds_->names()) expected += (expected.empty() ? "one of: " : ", ") + k;
    }
    spec.sink()->add(spec.pos(), spec.path() + ".kind", "unknown kind '" + kind + "'", expected);
    return nullptr;
  }
  return (*f)(kind_context(spec.at("args"), id, std::move(name), env_, kinds_));
}

void kind_registry::add(std::string name, std::string summary, kind_factory factory) {
  kinds_.insert_or_assign(std::move(name), entry{std::move(summary), std::move(factory)});
}

const kind_factory* kind_registry::find(std::string_view name) const {
  auto it = kinds_.find(name);
  return it == kinds_.end() ? nullptr : &it->second.factory;
}

std::vector<std::string> kind_registry::names() const {
  std::vector<std::string> out;
  for (auto& [name, e] : kinds_) out.push_back(name);
  return out;
}

std::string kind_registry::summary(std::string_view name) const {
  auto it = kinds_.find(name);
  return it == kinds_.end() ? std::string() : it->second.summary;
}

namespace builtin {

// What a built-in kind throws when told to crash: its reason reads
// {error,"grove::builtin::induced_crash: <reason>"}.
class induced_crash : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace {

class echo final : public gen_server<echo> {
 public:
  using handles = types<std::string, crash_now, dist::term>;
  explicit echo(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string handle_call(const std::string& s, const from&) {
    ++answered_;
    return prefix_ + s;
  }
  // From another node of the cluster: gen_server:call({echo, Node}, Term) answers Term.
  dist::term handle_call(const dist::term& t, const from&) {
    ++answered_;
    return t;
  }
  void handle_cast(const crash_now& c) { throw induced_crash(c.reason); }
  std::string format_status() const { return "echo, " + std::to_string(answered_) + " calls answered"; }

 private:
  std::string prefix_;
  std::uint64_t answered_ = 0;
};

class counter final : public gen_server<counter> {
 public:
  using handles = types<add, get, reset, crash_now, tick>;
  explicit counter(std::int64_t start) : start_(start), value_(start) {}
  std::int64_t handle_call(const add& a, const from&) { return value_ += a.n; }
  std::int64_t handle_call(const get&, const from&) { return value_; }
  void handle_cast(const add& a) { value_ += a.n; }
  void handle_cast(const reset&) { value_ = start_; }
  void handle_info(const tick&) { ++value_; }  // a ticker aimed at a counter counts its ticks
  void handle_cast(const crash_now& c) { throw induced_crash(c.reason); }
  std::string format_status() const { return "counter = " + std::to_string(value_); }

 private:
  std::int64_t start_;
  std::int64_t value_;
};

struct next_tick {};

class ticker final : public gen_server<ticker> {
 public:
  using handles = types<next_tick, ticks, crash_now>;
  ticker(std::string id, duration interval, std::string target)
      : id_(std::move(id)), interval_(interval), target_(std::move(target)) {}
  init_result init() {
    send_after(interval_, self(), next_tick{});
    return init_result::ok();
  }
  void handle_info(const next_tick&) {
    ++count_;
    if (!target_.empty()) {
      if (auto to = whereis(target_)) send(*to, tick{count_, id_});
    }
    send_after(interval_, self(), next_tick{});
  }
  std::uint64_t handle_call(const ticks&, const from&) { return count_; }
  void handle_cast(const crash_now& c) { throw induced_crash(c.reason); }
  std::string format_status() const {
    return "ticker, " + std::to_string(count_) + " ticks" + (target_.empty() ? "" : " to " + target_);
  }

 private:
  std::string id_;
  duration interval_;
  std::string target_;
  std::uint64_t count_ = 0;
};

struct crash_timer {};

// How a crasher ends when its time comes: by raising (a crash), or by stopping with normal or
// shutdown (so that a tree can stage a transient child ending normally, say).
enum class crasher_end : unsigned char { raise, normal, shutdown };

class crasher final : public gen_server<crasher> {
 public:
  using handles = types<crash_timer, crash_now>;
  crasher(bool at_start, duration after, double rate, std::string reason, std::uint64_t seed, crasher_end end,
          bool trap, duration terminate_sleep)
      : at_start_(at_start),
        after_(after),
        rate_(rate),
        reason_(std::move(reason)),
        rng_(seed),
        end_(end),
        trap_(trap),
        terminate_sleep_(terminate_sleep) {}
  init_result init() {
    if (trap_) trap_exit(true);  // its supervisor's shutdown then runs terminate
    if (at_start_) return init_result::stop(exit_reason::other(reason_));  // fails to start
    if (after_ > duration::zero()) {
      send_after(after_, self(), crash_now{reason_});
    } else if (rate_ > 0) {
      // Exponential waits: on average `rate` crashes per second, at random moments.
      std::exponential_distribution<double> wait(rate_);
      send_after(std::chrono::duration_cast<duration>(std::chrono::duration<double>(wait(rng_))), self(),
                 crash_now{reason_});
    }
    return init_result::ok();
  }
  void handle_info(const crash_now& c) { end(c.reason); }
  void handle_info(const crash_timer&) {}
  void handle_cast(const crash_now& c) { end(c.reason); }
  // Slow to stop, if asked: a terminate that outlasts the shutdown time is killed (shutdown_error).
  void terminate(const exit_reason&) {
    if (terminate_sleep_ > duration::zero()) sleep(terminate_sleep_);
  }
  std::string format_status() const {
    if (after_ > duration::zero())
      return "crasher, crashes " + std::to_string(after_.count() / 1000000) + " ms after start";
    if (rate_ > 0) return "crasher, " + std::to_string(rate_) + " crashes per second";
    return "crasher, crashes on command";
  }

 private:
  bool at_start_;
  duration after_;
  double rate_;
  std::string reason_;
  std::mt19937_64 rng_;
  crasher_end end_;
  bool trap_;
  duration terminate_sleep_;

  void end(const std::string& reason) {
    switch (end_) {
      case crasher_end::raise:
        throw induced_crash(reason);
      case crasher_end::normal:
        stop_after(exit_reason::normal());
        break;
      case crasher_end::shutdown:
        stop_after(exit_reason::shutdown());
        break;
    }
  }
};

}  // namespace

// The `command` kind's args, checked as the rest of the file is.
child_start command_kind(const kind_context& k) {
  const auto& a = k.args();
  a.only({"argv", "env", "inherit_env", "cwd", "user", "group", "limits", "kill_group", "stop_signal", "max_line",
          "log_lines", "lines_per_second", "stdout_level", "stderr_level", "protocol", "deliver_to", "ready"});
  command_options o;
  os_command& c = o.command;
  c.argv = a.get<std::vector<std::string>>("argv");
  if (a.has("argv") && (c.argv.empty() || c.argv[0].empty())) {
    a.error("argv", "must name a program", "a list such as [sh, -c, \"exec my-worker\"]");
  }
  const auto env = a.at("env");
  for (const auto& key : env.keys()) c.env[key] = env.get<std::string>(key, "");
  c.inherit_env = a.get<bool>("inherit_env", true);
  c.cwd = a.get<std::string>("cwd", "");
  c.user = a.get<std::string>("user", "");
  c.group = a.get<std::string>("group", "");
  const auto limits = a.at("limits");
  limits.only({"address_space", "open_files", "cpu_seconds"});
  auto limit = [&](const char* key) -> std::optional<std::uint64_t> {
    auto v = limits.find<std::int64_t>(key);
    if (!v) return std::nullopt;
    if (*v <= 0) {
      limits.error(key, "must be more than 0", {}, "got " + std::to_string(*v));
      return std::nullopt;
    }
    return static_cast<std::uint64_t>(*v);
  };
  c.limits.address_space = limit("address_space");
  c.limits.open_files = limit("open_files");
  c.limits.cpu_seconds = limit("cpu_seconds");
  c.kill_group = a.get<bool>("kill_group", true);
  if (auto sig = a.find<std::string>("stop_signal")) {
    c.stop_signal = signal_by_name(*sig);
    if (c.stop_signal == 0)
      a.error("stop_signal", "no signal '" + *sig + "'", "a name such as SIGTERM, SIGINT, SIGHUP");
  }
  auto positive = [&](const char* key, std::int64_t fallback, std::int64_t most) {
    const auto v = a.get<std::int64_t>(key, fallback);
    if (v < 1 || v > most) {
      a.error(key, "must be between 1 and " + std::to_string(most), {}, "got " + std::to_string(v));
      return fallback;
    }
    return v;
  };
  c.max_line = static_cast<std::size_t>(positive("max_line", 4096, 1 << 20));
  c.log_lines = static_cast<std::size_t>(positive("log_lines", 1000, 100000));
  c.lines_per_second = static_cast<std::uint32_t>(positive("lines_per_second", 1000, 1000000));
  for (const char* key : {"stdout_level", "stderr_level"}) {
    const auto level = a.get<std::string>(key, key[3] == 'o' ? "info" : "warning");
    if (level != "error" && level != "warning" && level != "info" && level != "debug") {
      a.error(key, "got '" + level + "'", "one of: error, warning, info, debug");
    }
    (key[3] == 'o' ? c.stdout_level : c.stderr_level) = level;
  }
  const auto protocol = a.get<std::string>("protocol", "none");
  if (protocol != "none" && protocol != "lines") a.error("protocol", "got '" + protocol + "'", "one of: none, lines");
  o.lines = protocol == "lines";
  o.deliver_to = a.get<std::string>("deliver_to", "");
  if (!o.deliver_to.empty() && !o.lines) a.error("deliver_to", "needs protocol: lines");
  const auto ready = a.at("ready");
  ready.only({"line", "port", "host", "timeout"});
  c.ready_line = ready.get<std::string>("line", "");
  if (!c.ready_line.empty()) {
    try {
      std::regex check(c.ready_line, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      ready.error("line", std::string("not a regular expression: ") + e.what(), "an ECMAScript pattern");
    }
  }
  if (auto port = ready.find<std::int64_t>("port")) {
    if (*port < 1 || *port > 65535) {
      ready.error("port", "must be between 1 and 65535", {}, "got " + std::to_string(*port));
    } else {
      o.ready_port = static_cast<std::uint16_t>(*port);
    }
  }
  o.ready_host = ready.get<std::string>("host", "127.0.0.1");
  if (auto t = ready.find<duration>("timeout")) {
    if (*t <= duration::zero()) ready.error("timeout", "must be more than 0", "a duration such as 10s");
    o.start_timeout = *t;
  }
  start_options so;
  if (k.name()) so.name = *k.name();
  return [o, so] { return start_command_link(o, so); };
}

}  // namespace builtin

void add_builtin_kinds(kind_registry& kinds) {
  kinds.add("command",
            "an OS process as a child: the program's exit is the child's (args: argv, env, inherit_env, cwd, user, "
            "group, limits, kill_group, stop_signal, max_line, log_lines, lines_per_second, stdout_level, "
            "stderr_level, protocol, deliver_to, ready: {line, port, host, timeout})",
            builtin::command_kind);
  kinds.add("echo", "answers a call with a string by the same string (args: prefix)", [](const kind_context& k) {
    k.args().only({"prefix"});
    return k.gen_server<builtin::echo>(k.args().get<std::string>("prefix", ""));
  });
  kinds.add("counter", "holds an integer: add, get, reset (args: start)", [](const kind_context& k) {
    k.args().only({"start"});
    return k.gen_server<builtin::counter>(k.args().get<std::int64_t>("start", 0));
  });
  kinds.add("ticker", "ticks every interval, counts, forwards to target (args: interval, target)",
            [](const kind_context& k) {
              k.args().only({"interval", "target"});
              // find: an absent interval is the default, not a zero to complain about.
              const auto given = k.args().find<duration>("interval");
              if (given && *given <= duration::zero()) {
                k.args().error("interval", "must be more than 0", "a duration such as 500ms");
              }
              const duration interval = given.value_or(std::chrono::seconds(1));
              return k.gen_server<builtin::ticker>(k.id(), interval, k.args().get<std::string>("target", ""));
            });
  kinds.add(
      "pool",
      "a worker pool with poolboy's semantics (args: size, max_overflow, strategy, on_borrower_death, "
      "worker: {kind, args})",
      [](const kind_context& k) -> child_start {
        const auto& a = k.args();
        a.only({"size", "max_overflow", "strategy", "on_borrower_death", "worker"});
        pool_options o;
        const auto size = a.get<std::int64_t>("size", 5);
        const auto overflow = a.get<std::int64_t>("max_overflow", 10);
        if (size < 0 || overflow < 0) {
          a.error(size < 0 ? "size" : "max_overflow", "must not be negative");
        } else if (size > config::limits::max_pool_workers || overflow > config::limits::max_pool_workers - size) {
          a.sink()->add(a.pos(), a.path(),
                        "size + max_overflow must be at most " + std::to_string(config::limits::max_pool_workers), {},
                        "got " + std::to_string(size) + " + " + std::to_string(overflow));
          return nullptr;
        }
        o.size = static_cast<std::size_t>(std::max<std::int64_t>(size, 0));
        o.max_overflow = static_cast<std::size_t>(std::max<std::int64_t>(overflow, 0));
        const auto strategy = a.get<std::string>("strategy", "lifo");
        if (strategy != "lifo" && strategy != "fifo") {
          a.error("strategy", "got '" + strategy + "'", "one of: lifo, fifo");
        }
        o.strategy = strategy == "fifo" ? pool_strategy::fifo : pool_strategy::lifo;
        const auto on_death = a.get<std::string>("on_borrower_death", "kill");
        if (on_death != "kill" && on_death != "checkin") {
          a.error("on_borrower_death", "got '" + on_death + "'", "one of: kill, checkin");
        }
        o.kill_on_borrower_death = on_death == "kill";
        if (!a.has("worker")) {
          a.sink()->add(a.pos(), a.path() + ".worker", "missing required key", "{kind: K, args: {...}}");
          return nullptr;
        }
        o.worker = k.make(a.at("worker"), std::nullopt, k.id() + "/worker");
        start_options so;
        if (k.name()) so.name = *k.name();
        return [o, so] { return start_pool_link(o, so); };
      });
  kinds.add("partition_supervisor",
            "N copies of one kind, registered as NAME.0..NAME.N-1, routed by key hash (args: partitions, "
            "child: {kind, args}; needs a name)",
            [](const kind_context& k) -> child_start {
              const auto& a = k.args();
              a.only({"partitions", "child"});
              const auto n = a.get<std::int64_t>("partitions", 4);
              if (n < 1 || n > config::limits::max_partitions) {
                a.error("partitions", "must be between 1 and " + std::to_string(config::limits::max_partitions), {},
                        "got " + std::to_string(n));
                return nullptr;
              }
              if (!k.name()) {
                a.sink()->add(a.pos(), a.path(), "a partition_supervisor needs a name",
                              "name: the prefix of its partitions' names");
                return nullptr;
              }
              if (!a.has("child")) {
                a.sink()->add(a.pos(), a.path() + ".child", "missing required key", "{kind: K, args: {...}}");
                return nullptr;
              }
              std::vector<child_start> starts;
              for (std::int64_t i = 0; i < std::max<std::int64_t>(n, 1); ++i) {
                const std::string name = *k.name() + "." + std::to_string(i);
                starts.push_back(k.make(a.at("child"), name, k.id() + "/" + std::to_string(i)));
                if (!starts.back()) return nullptr;
              }
              const std::string name = *k.name();
              return [starts, name] {
                return start_partition_supervisor_link(name, starts.size(),
                                                       [&starts](std::size_t i, const std::string&) {
                                                         child_spec s;
                                                         s.start = starts[i];
                                                         return s;
                                                       },
                                                       {}, {});
              };
            });
  kinds.add(
      "crasher",
      "crashes on command, after a delay, at a random rate, or fails to start; or stops normal or shutdown "
      "instead; may trap exits and be slow to terminate (args: after, rate, at_start, reason, seed, stop, "
      "trap_exit, terminate_sleep)",
      [](const kind_context& k) {
        k.args().only({"after", "rate", "at_start", "reason", "seed", "stop", "trap_exit", "terminate_sleep"});
        auto after = k.args().get<duration>("after", duration::zero());
        auto rate = k.args().get<double>("rate", 0.0);
        if (!(rate >= 0 && rate <= config::limits::max_crash_rate)) {  // also refuses .nan and .inf
          k.args().error("rate",
                         "must be between 0 and " + std::to_string(static_cast<long>(config::limits::max_crash_rate)),
                         "crashes per second, e.g. 0.5");
        }
        auto seed = k.args().get<std::int64_t>("seed", static_cast<std::int64_t>(std::random_device{}()));
        const auto stop = k.args().get<std::string>("stop", "raise");
        if (stop != "raise" && stop != "normal" && stop != "shutdown") {
          k.args().error("stop", "got '" + stop + "'", "one of: raise, normal, shutdown");
        }
        const auto end = stop == "normal"     ? builtin::crasher_end::normal
                         : stop == "shutdown" ? builtin::crasher_end::shutdown
                                              : builtin::crasher_end::raise;
        const auto slow = k.args().get<duration>("terminate_sleep", duration::zero());
        if (slow < duration::zero()) k.args().error("terminate_sleep", "must not be negative");
        return k.gen_server<builtin::crasher>(
            k.args().get<bool>("at_start", false), after, rate, k.args().get<std::string>("reason", "induced crash"),
            static_cast<std::uint64_t>(seed), end, k.args().get<bool>("trap_exit", false), slow);
      });
}

}  // namespace grove
