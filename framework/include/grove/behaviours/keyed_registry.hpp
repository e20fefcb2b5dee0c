// keyed_registry: processes registered under keys, each registration carrying a value, like
// Elixir's Registry. A registry has unique keys (a key names at most one process) or duplicate
// keys (a key gathers any number of registrations, several of them by the same process if it
// likes: a pub/sub topic). It is a C++ object the user creates on a node and shares with the
// processes that use it; registration acts on the calling process, queries work from any thread.
//
// Guarantees (see docs/concepts/registry.md):
//  - the entries of a process are removed when it ends, before its exit and down signals go out:
//    whoever hears of the death (a monitor's down, a link's exit signal) finds the key free;
//  - a query never returns a process already known dead: an entry whose process has begun to
//    end is filtered out even in the instant before its removal (Elixir's cleanup is only
//    eventually consistent);
//  - registering a process that is not alive fails with noproc, and a process that dies while
//    another registers it leaves no entry behind.
// Keys are hashed to N partitions, each behind its own reader-writer lock: queries take a
// shared lock only, registrations an exclusive one, and neither ever suspends the process.
#pragma once

#include <algorithm>
#include <any>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <grove/runtime/errors.hpp>
#include <grove/runtime/node.hpp>
#include <grove/runtime/pid.hpp>
#include <grove/runtime/process.hpp>

namespace grove {

// Whether a key names one process (unique) or gathers any number of registrations (duplicate).
enum class keys : std::uint8_t { unique, duplicate };

struct keyed_registry_options {
  grove::keys keys = grove::keys::unique;
  unsigned partitions = 0;  // 0 = one per scheduler thread of the node
};

enum class register_status : std::uint8_t {
  ok,
  already_registered,  // unique keys: another live process holds the key (see holder)
  noproc,              // the process is not alive (or died while being registered)
};
const char* to_string(register_status s) noexcept;
std::ostream& operator<<(std::ostream& os, register_status s);

// The outcome of a registration: true when it succeeded, otherwise why not.
struct [[nodiscard]] register_result {
  register_status status = register_status::ok;
  pid holder;  // already_registered: the process that holds the key (possibly the caller itself)

  explicit operator bool() const noexcept { return status == register_status::ok; }
  // "ok", "{already_registered, <1.4.1>}" or "noproc".
  std::string str() const;
};
std::ostream& operator<<(std::ostream& os, const register_result& r);

namespace detail {
// The untyped part of a keyed registry: its node, its exit hook and its metadata.
class keyed_registry_core {
 public:
  keyed_registry_core(node& n, const keyed_registry_options& opts);
  keyed_registry_core(const keyed_registry_core&) = delete;
  keyed_registry_core& operator=(const keyed_registry_core&) = delete;
  ~keyed_registry_core();

  grove::keys kind() const noexcept { return kind_; }
  std::size_t partitions() const noexcept { return partitions_; }

  // Installs the hook run at the death of every process marked by detail::mark_owner, or
  // removes it (waiting for a run in progress to finish). The typed registry removes it first
  // thing in its destructor, while its tables still exist.
  void watch_exits(node::exit_hook fn, void* ctx);
  void unwatch_exits() noexcept;

  // Throws std::invalid_argument unless p is a process of this registry's node.
  void check_local(const pid& p) const;
  // Throws std::logic_error when the registry has duplicate keys.
  void require_unique(const char* operation) const;

  void put_meta(std::string key, std::any value);
  std::optional<std::any> meta(std::string_view key) const;
  bool delete_meta(std::string_view key);

 private:
  node* node_;
  grove::keys kind_;
  std::size_t partitions_;
  node::exit_hook hook_ = nullptr;
  void* hook_ctx_ = nullptr;
  mutable std::shared_mutex meta_mutex_;
  std::map<std::string, std::any, std::less<>> meta_;
};

// Spreads a hash over the partitions (std::hash of an integer is the integer itself).
constexpr std::size_t spread(std::size_t h) noexcept {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}
}  // namespace detail

// Key: copyable, hashable with Hash. Value: copyable (it is copied out by every query).
// The registry must be destroyed before its node; processes may still be running then (their
// later deaths no longer reach it), but none may be using it.
template <class Key, class Value = std::monostate, class Hash = std::hash<Key>, class KeyEqual = std::equal_to<Key>>
class keyed_registry {
 public:
  // One registration: the process and the value it registered with.
  struct entry {
    pid who;
    Value value;
  };

  explicit keyed_registry(node& n, keyed_registry_options opts = {});
  ~keyed_registry();
  keyed_registry(const keyed_registry&) = delete;
  keyed_registry& operator=(const keyed_registry&) = delete;

  // ---- registration (acts on the calling process; throws not_in_process outside one) ----

  // Registers the calling process under key with value. Unique keys: fails with
  // already_registered (naming the holder) while a live process holds the key; a holder that
  // has already begun to end is replaced. Duplicate keys: always adds one more registration.
  register_result register_self(Key key, Value value = Value{});
  // Registers p (a process of this node) on its behalf, e.g. a supervisor naming a child. Fails
  // with noproc if p is not alive, including when p dies during the call: no entry remains.
  register_result register_process(const pid& p, Key key, Value value = Value{});
  // Removes every registration of the calling process under key; returns how many.
  std::size_t unregister_self(const Key& key);
  // Removes the calling process's registrations under key whose value satisfies pred.
  template <class Pred>
  std::size_t unregister_match(const Key& key, Pred pred);
  // Unique keys only (std::logic_error otherwise): calls fn(Value&), under the partition's lock,
  // on the calling process's own value under key. False (fn not called) if it does not hold key.
  template <class F>
  bool update_value(const Key& key, F&& fn);

  // ---- queries (any thread; only live processes are returned) ----
  // Predicates run under the partition's lock: they must be quick, must not suspend (no
  // receive, sleep, send with a `fail` mailbox...) and must not use the registry.

  // The registrations under key, in no particular order.
  std::vector<entry> lookup(const Key& key) const;
  // Unique keys only (std::logic_error otherwise): the registration under key, if any.
  std::optional<entry> find(const Key& key) const;
  // The registrations under key whose value satisfies pred(const Value&).
  template <class Pred>
  std::vector<entry> match(const Key& key, Pred pred) const;
  // All registrations, keys of every process included. A process that has begun to end is
  // counted until its entries are removed (before anyone hears of its death). Constant time
  // in the number of entries (one relaxed load per partition).
  std::size_t count() const noexcept;
  // The registrations under key.
  std::size_t count(const Key& key) const;
  template <class Pred>
  std::size_t count_match(const Key& key, Pred pred) const;
  // The keys p registered, once per registration, in no particular order.
  std::vector<Key> keys(const pid& p) const;
  // The values p registered under key.
  std::vector<Value> values(const Key& key, const pid& p) const;

  // Calls fn(std::span<const entry>) once, in the caller, with the registrations under key,
  // outside any lock (fn may use the registry and suspend). Not called if there are none.
  // Returns the number of entries fn was given.
  template <class F>
  std::size_t dispatch(const Key& key, F&& fn) const;
  // Sends a copy of msg to each registration under key (a process registered twice gets two),
  // in the calling thread. Returns how many were delivered: dead processes, dropping bounded
  // mailboxes and full mailboxes with the `fail` policy do not count (publish never throws
  // mailbox_full: one full subscriber does not stop the others).
  template <class T>
  std::size_t publish(const Key& key, const T& msg) const;

  // ---- registry-level metadata (any thread) ----

  template <class T>
  void put_meta(std::string key, T value) {
    core_.put_meta(std::move(key), std::any(std::move(value)));
  }
  // The metadata under key; throws std::bad_any_cast if it is not a T.
  template <class T>
  std::optional<T> meta(std::string_view key) const {
    auto v = core_.meta(key);
    if (!v) return std::nullopt;
    return std::any_cast<T>(std::move(*v));
  }
  bool delete_meta(std::string_view key) { return core_.delete_meta(key); }

  grove::keys kind() const noexcept { return core_.kind(); }
  std::size_t partitions() const noexcept { return core_.partitions(); }

 private:
  struct key_slot {
    std::vector<entry> entries;
    // Duplicate keys: where each process's entries are in `entries`, so that a process leaves
    // a key of many registrants in time proportional to its own entries.
    std::unordered_multimap<pid, std::uint32_t> where;
  };
  struct alignas(64) partition {
    mutable std::shared_mutex mutex;
    std::unordered_map<Key, key_slot, Hash, KeyEqual> slots;
    std::atomic<std::size_t> size{0};
  };
  // The keys of each process, sharded by pid: what its exit hook must remove.
  struct alignas(64) pid_shard {
    mutable std::shared_mutex mutex;
    std::unordered_map<pid, std::vector<Key>> keys;
  };

  static void on_exit(void* ctx, const pid& who) { static_cast<keyed_registry*>(ctx)->forget(who); }
  void forget(const pid& who);

  partition& partition_of(const Key& k) const { return parts_[detail::spread(hash_(k)) % core_.partitions()]; }
  pid_shard& shard_of(const pid& p) const { return shards_[detail::spread(std::hash<pid>{}(p)) % core_.partitions()]; }

  bool unique() const noexcept { return core_.kind() == grove::keys::unique; }
  void add_entry(key_slot& s, const pid& p, Value&& v);
  // Removes p's entries of s whose value satisfies pred; returns how many.
  template <class Pred>
  std::size_t remove_entries(key_slot& s, const pid& p, Pred&& pred);
  // Removes n occurrences of k from p's keys. Called with k's partition locked.
  void drop_keys(const pid& p, const Key& k, std::size_t n);
  template <class Pred>
  std::size_t remove_own(const pid& p, const Key& key, Pred&& pred);
  template <class Pred>
  std::vector<entry> copy_live(const Key& key, Pred&& pred) const;

  detail::keyed_registry_core core_;
  Hash hash_;
  std::unique_ptr<partition[]> parts_;
  std::unique_ptr<pid_shard[]> shards_;
};

}  // namespace grove

#include <grove/behaviours/detail/keyed_registry-inl.hpp>
