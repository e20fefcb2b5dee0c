// Local names, like OTP's register/whereis: one name per process and one process per name.
// A name is released when its process dies, before the process's exit and down signals go
// out, so a restarted process can register the same name at once.
//
// The functions act on the current process's node (call them from a process); the
// name_registry of any node is also reachable as node.service<grove::name_registry>().
#pragma once

#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <grove/runtime/node.hpp>
#include <grove/runtime/process.hpp>

namespace grove {

// Why a registration was refused.
class registry_error : public std::runtime_error {
 public:
  enum class kind { name_taken, already_named, dead_process, not_registered };
  registry_error(kind k, std::string name, pid holder);
  kind what_kind() const noexcept { return kind_; }
  const pid& holder() const noexcept { return holder_; }  // for name_taken and already_named

 private:
  kind kind_;
  pid holder_;
};

class name_registry {
 public:
  explicit name_registry(node& n);
  ~name_registry();
  name_registry(const name_registry&) = delete;
  name_registry& operator=(const name_registry&) = delete;

  // Registers p under name; throws registry_error if the name is taken, p already has a name,
  // or p is dead.
  void add(const std::string& name, const pid& p);
  // Removes the name; false if it was not registered.
  bool remove(std::string_view name);
  std::optional<pid> whereis(std::string_view name) const;
  std::optional<std::string> name_of(const pid& p) const;
  std::vector<std::string> registered() const;

 private:
  static void on_exit(void* self, const pid& who);
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  node& node_;
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, pid, string_hash, std::equal_to<>> by_name_;
  std::unordered_map<pid, std::string> by_pid_;
};

// The current process's node's names.
name_registry& names();

void register_name(const std::string& name, const pid& p);
bool unregister_name(std::string_view name);
std::optional<pid> whereis(std::string_view name);
std::vector<std::string> registered();

// Sends to a registered name. An unregistered name is an error (process_error with noproc),
// unlike a send to a dead pid, which is a no-op.
template <class T>
send_result send(std::string_view name, T&& msg) {
  auto p = whereis(name);
  if (!p) throw process_error(exit_reason::noproc(), "send to unregistered name '" + std::string(name) + "'");
  return send(*p, std::forward<T>(msg));
}

}  // namespace grove
