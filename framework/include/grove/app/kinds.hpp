// kinds: how a YAML tree names C++ code. A kind is a factory registered by name; for each child
// of that kind the loader calls it with the child's `args` (a typed view that records errors
// with file:line:column), its id and its registered name, and the factory returns the child's
// start function. Factories run while the configuration is checked, before anything starts, so
// a bad `args` is reported with the other configuration errors.
//
//   grove::kind_registry kinds;
//   grove::add_builtin_kinds(kinds);
//   kinds.add("ledger", "the bank's ledger", [](const grove::kind_context& k) {
//     auto opening = k.args().get<std::int64_t>("opening", 0);
//     k.args().only({"opening"});
//     return k.gen_server<bank::ledger>(opening);
//   });
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <grove/behaviours/gen_server.hpp>
#include <grove/config/args.hpp>

namespace grove {

using child_start = std::function<start_result()>;
class kind_registry;

// What a factory knows of the child it makes.
class kind_context {
 public:
  kind_context(config::args args, std::string id, std::optional<std::string> name, config::args env,
               const kind_registry* kinds = nullptr)
      : args_(std::move(args)), id_(std::move(id)), name_(std::move(name)), env_(std::move(env)), kinds_(kinds) {}

  // The start function of another kind, for a kind made of others (a pool's workers, a
  // partition's copies): `spec` is a map {kind: K, args: {...}}; errors are recorded like args
  // errors (an unknown kind included). Null when it cannot be made.
  child_start make(const config::args& spec, std::optional<std::string> name, const std::string& id) const;

  const config::args& args() const noexcept { return args_; }
  const std::string& id() const noexcept { return id_; }
  // The registered name the YAML gives the child, if any.
  const std::optional<std::string>& name() const noexcept { return name_; }
  // The `env` of the child's application.
  const config::args& env() const noexcept { return env_; }

  // A start function for a GenServer S constructed from copies of `a`, registered under name().
  template <class S, class... A>
  child_start gen_server(A&&... a) const {
    start_options opts;
    if (name_) opts.name = *name_;
    return [opts, tup = std::make_tuple(std::decay_t<A>(std::forward<A>(a))...)]() {
      auto server = std::apply([](const auto&... v) { return std::make_unique<S>(v...); }, tup);
      return start_link(std::move(server), opts);
    };
  }

  // A start function for a body process running a copy of `body`, registered under name().
  template <class F>
  child_start process(F body) const {
    return [name = name_, body = std::move(body)]() -> start_result {
      pid p = spawn_link(body);
      if (!name) return start_result::started(p);
      try {
        register_name(*name, p);
      } catch (const registry_error&) {
        exit(p, exit_reason::kill());
        if (auto holder = whereis(*name)) return start_result::already_started(*holder);
        return start_result::failed(exit_reason::other("{name_taken," + *name + "}"));
      }
      return start_result::started(p);
    };
  }

 private:
  config::args args_;
  std::string id_;
  std::optional<std::string> name_;
  config::args env_;
  const kind_registry* kinds_;
};

using kind_factory = std::function<child_start(const kind_context&)>;

class kind_registry {
 public:
  // Adds (or replaces) a kind. `summary` is one line for `grove check` and docs.
  void add(std::string name, std::string summary, kind_factory factory);
  const kind_factory* find(std::string_view name) const;
  std::vector<std::string> names() const;  // sorted
  std::string summary(std::string_view name) const;

 private:
  struct entry {
    std::string summary;
    kind_factory factory;
  };
  std::map<std::string, entry, std::less<>> kinds_;
};

// Registers the built-in kinds (see <grove/app/builtin_kinds.hpp>): echo, counter, ticker,
// crasher, pool, partition_supervisor and command (an OS process, <grove/behaviours/command.hpp>).
void add_builtin_kinds(kind_registry& kinds);

}  // namespace grove
