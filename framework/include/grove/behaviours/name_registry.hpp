// Local names, like OTP's register/whereis: one name per process and one process per name.
// A name is released when its process dies, before the process's exit and down signals go
// out, so a restarted process can register the same name at once.
//
// The functions act on the current process's node (call them from a process); the
// name_registry of any node is also reachable as node.service<grove::name_registry>().
//
// Lookups (whereis, name_of, registered) take no lock and write no shared memory, so they
// scale with the number of lookers. Registrations and releases are serialized and change the
// names in place: O(1) each, amortized (a table that fills up is rebuilt twice as large).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <grove/runtime/node.hpp>
#include <grove/runtime/process.hpp>

namespace grove {

namespace detail {
struct name_entry;
class name_index;
class name_view;
// Views and name entries not yet freed, over all nodes: tests check that what writes replace
// is reclaimed.
std::size_t live_name_views() noexcept;
std::size_t live_name_entries() noexcept;
// Replaced views are reclaimed in batches of this many (each reclaim fences every thread).
inline constexpr std::size_t name_reclaim_batch = 32;
}  // namespace detail

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
  // Under write_mutex_: releases e (a new view is published, e freed once unreachable); makes
  // a larger index without tombstones; publishes a view, reclaiming a batch of old ones.
  void release(const detail::name_entry* e);
  void rebuild();
  void publish(std::unique_ptr<const detail::name_view> next);
  void reclaim();
  // An entry released, or an index replaced, with the version of the last view that reaches it.
  struct dropped {
    explicit dropped(std::uint64_t v);
    ~dropped();
    dropped(dropped&&) noexcept;
    dropped& operator=(dropped&&) noexcept;
    std::uint64_t version;
    std::unique_ptr<const detail::name_entry> entry;
    std::unique_ptr<detail::name_index> index;
  };
  node& node_;
  std::mutex write_mutex_;
  std::unique_ptr<detail::name_index> index_;      // the names now; changed under write_mutex_
  std::atomic<const detail::name_view*> current_;  // what lookups read; replaced under write_mutex_
  std::vector<const detail::name_view*> retired_;  // replaced, perhaps still being read
  std::deque<dropped> dropped_;
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
