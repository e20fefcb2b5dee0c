// table: a concurrent table of (key, value) objects owned by a process, like Erlang's ETS.
// A table has a type (set, ordered_set, bag, duplicate_bag), an access mode checked against the
// calling process (private: the owner only; protected: others read; public: all), an optional
// name, and an optional heir. When the owner dies the table is deleted, or handed to its heir
// with a table_transfer message; either way before the owner's exit and down signals go out.
//
// Guarantees (see docs/concepts/tables.md):
//  - every single-object operation (insert, insert_new, erase, take, update_counter, update,
//    update_element, ...) is atomic and isolated; a batch insert is atomic and isolated as a whole;
//  - select, count_if, erase_if, to_vector and fold see one consistent snapshot of the table;
//  - first/next traverse without a snapshot: on an ordered_set every key present for the whole
//    traversal is visited once, in order; on hash tables concurrent writes may make it skip or
//    repeat keys, and next() of a key no longer in the table throws;
//  - keys and values are copied in and out: no reference into a table escapes an operation;
//  - the concurrency option changes speed, never meaning.
// Functions passed to update, select, count_if and erase_if run under the table's lock: they
// must be short, must not suspend (receive, sleep, call) and must not use the same table.
#pragma once

#include <any>
#include <array>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <grove/behaviours/detail/table_support.hpp>
#include <grove/runtime/message.hpp>
#include <grove/runtime/node.hpp>
#include <grove/runtime/pid.hpp>
#include <grove/runtime/process.hpp>

namespace grove {

// set: one object per key (hash); ordered_set: one object per key, kept in key order (tree);
// bag: many objects per key, no two identical; duplicate_bag: identical objects allowed.
enum class table_type : std::uint8_t { set, ordered_set, bag, duplicate_bag };

// Who may use the table besides its owner: nobody, readers, everybody.
enum class table_access : std::uint8_t { private_, protected_, public_ };

// How the table is locked. Changes speed only.
enum class table_concurrency : std::uint8_t {
  standard,          // one mutex: cheapest when few processes share the table
  read_heavy,        // one reader-biased lock: reads scale across schedulers, writes cost more
  write_heavy,       // 16 stripes by key hash, each a mutex: writes to different keys run in parallel
  read_write_heavy,  // 16 stripes by key hash, each a reader-writer lock
};

const char* to_string(table_type t) noexcept;
const char* to_string(table_access a) noexcept;
const char* to_string(table_concurrency c) noexcept;
std::ostream& operator<<(std::ostream& os, table_type t);
std::ostream& operator<<(std::ostream& os, table_access a);
std::ostream& operator<<(std::ostream& os, table_concurrency c);

struct table_options {
  table_type type = table_type::set;
  table_access access = table_access::protected_;
  std::string name;  // empty: an unnamed table, reachable only through its handles
  pid heir;          // none by default: the table dies with its owner
  std::any heir_data;
  table_concurrency concurrency = table_concurrency::standard;
};

// Why a table operation was refused (ETS's badarg, with the reason spelled out).
class table_error : public std::runtime_error {
 public:
  enum class kind : std::uint8_t {
    access_denied,  // the access mode forbids this process the operation
    no_table,       // the table was deleted (or the handle is empty)
    name_taken,     // create: another live table has the name
    wrong_type,     // whereis / as: the table's key or value type is not the one asked for
    not_owner,      // give_away / set_heir by a process that does not own the table
    bad_target,     // give_away to a dead, foreign or owning process; set_heir to a foreign one
    no_key,         // update_counter without default on a missing key; next() of a missing key
    unsupported,    // the operation does not fit the table's type (e.g. a counter in a bag)
    overflow,       // update_counter would overflow the counter's type (and no threshold was given)
  };
  table_error(kind k, const std::string& what) : std::runtime_error(what), kind_(k) {}
  kind what_kind() const noexcept { return kind_; }

 private:
  kind kind_;
};

// ETS's {Pos, Incr, Threshold, SetValue}: add incr; if a threshold is given and the result
// passes it (above it for incr >= 0, below it for incr < 0), the counter is set to set_value.
template <class C>
struct counter_op {
  C incr = 1;
  std::optional<C> threshold;
  C set_value = 0;
};

template <class K, class V>
class table;

namespace detail {

class table_registry;

// The untyped part of a table: identity, options, owner and heir, the deleted flag, and the
// access checks. The per-node table_registry (table.cpp) owns the live tables.
class table_base {
 public:
  table_base(table_options&& opts, const std::type_info& key, const std::type_info& value);
  table_base(const table_base&) = delete;
  table_base& operator=(const table_base&) = delete;
  virtual ~table_base();

  std::uint64_t id() const noexcept { return id_; }
  const std::string& name() const noexcept { return name_; }
  table_type type() const noexcept { return type_; }
  table_access access() const noexcept { return access_; }
  table_concurrency concurrency() const noexcept { return concurrency_; }
  const std::type_info& key_type() const noexcept { return key_; }
  const std::type_info& value_type() const noexcept { return value_; }
  pid owner() const noexcept;
  pid heir() const;
  bool deleted() const noexcept { return deleted_.load(std::memory_order_acquire); }
  // "table 'accounts' (#3)" or "table #3".
  std::string label() const;

  void check_read() const {
    if (access_ == table_access::private_) check_owner("read");
  }
  void check_write() const {
    if (access_ != table_access::public_) check_owner("write");
  }
  [[noreturn]] void throw_deleted() const;
  [[noreturn]] void throw_unsupported(const char* op, const char* hint) const;
  [[noreturn]] void throw_no_key(const char* op) const;
  [[noreturn]] void throw_overflow() const;

  void destroy();
  void give_away(const pid& to, std::any data);
  void set_heir(const pid& heir, std::any data);

  // Registers a new table as owned by the calling process (and under its name, if any).
  static void attach(const std::shared_ptr<table_base>& t);
  static std::shared_ptr<table_base> find(node& n, std::string_view name);
  [[noreturn]] void throw_wrong_type(const std::type_info& key, const std::type_info& value) const;

 protected:
  // Takes every stripe lock and empties the table; called once, after deleted_ is set.
  virtual void drop_contents() noexcept = 0;

 private:
  friend class table_registry;
  void check_owner(const char* what) const;
  void set_owner(const pid& p) noexcept;

  const std::uint64_t id_;
  const std::string name_;
  const table_type type_;
  const table_access access_;
  const table_concurrency concurrency_;
  const std::type_info& key_;
  const std::type_info& value_;
  std::atomic<std::uint64_t> owner_{0};  // slot << 32 | generation, on node node_id_
  std::uint32_t node_id_ = 0;
  table_registry* registry_ = nullptr;
  // Guarded by the registry's mutex:
  pid heir_;
  std::any heir_data_;

 protected:
  std::atomic<bool> deleted_{false};
};

template <class K, class V>
class table_core;

}  // namespace detail

// The message a process receives when it becomes a table's owner: from its dead owner (heir)
// or by give_away. as<K, V>() gives the typed handle back.
struct table_transfer {
  std::uint64_t id = 0;
  std::string name;
  pid from;       // the previous owner
  std::any data;  // heir_data, or give_away's gift
  std::shared_ptr<detail::table_base> handle;

  template <class K, class V>
  table<K, V> as() const;
};

// A handle to a table: a small copyable value (it may be sent in messages). Every operation
// acts on the shared table; operations on a deleted table throw table_error(no_table).
template <class K, class V>
class table {
  static_assert(std::copy_constructible<K> && std::copy_constructible<V>, "table keys and values are copied");

 public:
  using key_type = K;
  using value_type = V;
  using object = std::pair<K, V>;

  table() = default;  // an empty handle; every operation throws no_table

  // Creates a table owned by the calling process (throws not_in_process outside one).
  // set and the bags need a hashable key (std::hash<K>), ordered_set a key with operator<,
  // bag needs values with operator== (to refuse identical objects): otherwise unsupported.
  static table create(table_options opts = {});
  // The named table of the current process's node (or of n), if any; a table whose key or value
  // type differs from K, V throws table_error(wrong_type).
  static std::optional<table> whereis(std::string_view name) { return whereis(this_node(), name); }
  static std::optional<table> whereis(node& n, std::string_view name);

  explicit operator bool() const noexcept { return core_ != nullptr; }
  friend bool operator==(const table& a, const table& b) noexcept { return a.core_ == b.core_; }

  // ---- information -------------------------------------------------------------------------
  std::uint64_t id() const { return base().id(); }
  const std::string& name() const { return base().name(); }
  table_type type() const { return base().type(); }
  table_access access() const { return base().access(); }
  table_concurrency concurrency() const { return base().concurrency(); }
  pid owner() const { return base().owner(); }
  pid heir() const { return base().heir(); }
  bool exists() const noexcept { return core_ && !core_->deleted(); }
  // Number of objects. Exact with one stripe; with stripes each is counted under its own lock.
  std::size_t size() const { return core().size(); }

  // ---- writes --------------------------------------------------------------------------------
  // set/ordered_set: replaces the key's object; bag: adds it unless an identical one exists;
  // duplicate_bag: adds it.
  void insert(K key, V value) const { core().insert(std::move(key), std::move(value)); }
  // Inserts every object atomically: no reader sees part of the batch. For a set, a key given
  // twice keeps the later value.
  void insert(std::span<const object> objects) const { core().insert_batch(objects, false); }
  void insert(std::initializer_list<object> objects) const {
    core().insert_batch(std::span<const object>(objects.begin(), objects.size()), false);
  }
  // Inserts only if the key is absent (for a batch: only if every key is absent; then all).
  bool insert_new(K key, V value) const { return core().insert_new(std::move(key), std::move(value)); }
  bool insert_new(std::span<const object> objects) const { return core().insert_batch(objects, true); }
  bool insert_new(std::initializer_list<object> objects) const {
    return core().insert_batch(std::span<const object>(objects.begin(), objects.size()), true);
  }
  // Removes the key's objects; returns how many.
  std::size_t erase(const K& key) const { return core().erase(key); }
  // Removes the objects equal to (key, value) (every duplicate in a duplicate_bag).
  std::size_t erase_object(const K& key, const V& value) const requires std::equality_comparable<V> {
    return core().erase_object(key, value);
  }
  // set/ordered_set: removes the key's object and returns its value.
  std::optional<V> take(const K& key) const { return core().take(key); }
  // Any type: removes and returns the key's values.
  std::vector<V> take_all(const K& key) const { return core().take_all(key); }
  // Removes every object, atomically.
  void clear() const { core().clear(); }
  // Deletes the table (write access needed); its name is released.
  void destroy() const { base().destroy(); }

  // Atomic counters (set/ordered_set). Returns the new value. Without a default a missing key
  // throws no_key; with one, the default is inserted first and then updated.
  V update_counter(const K& key, V incr) const requires detail::table_counter<V> {
    return core().counter(key, counter_op<V>{.incr = incr, .threshold = std::nullopt, .set_value = 0}, nullptr);
  }
  V update_counter(const K& key, V incr, V default_value) const requires detail::table_counter<V> {
    return core().counter(key, counter_op<V>{.incr = incr, .threshold = std::nullopt, .set_value = 0}, &default_value);
  }
  V update_counter(const K& key, const counter_op<V>& op) const requires detail::table_counter<V> {
    return core().counter(key, op, nullptr);
  }
  V update_counter(const K& key, const counter_op<V>& op, V default_value) const requires detail::table_counter<V> {
    return core().counter(key, op, &default_value);
  }
  // A counter field of a struct value (ETS's Pos): update_counter(k, &account::balance, {.incr = 5}).
  template <class F>
  requires detail::table_field_of<F, V> && detail::table_counter<detail::table_field_t<F, V>>
      detail::table_field_t<F, V> update_counter(const K& key, F field,
                                                 const counter_op<detail::table_field_t<F, V>>& op,
                                                 std::optional<V> default_object = std::nullopt)
  const { return core().counter_field(key, field, op, default_object ? &*default_object : nullptr); }

  // Applies fn(V&) to the key's value atomically (set/ordered_set); false if the key is absent.
  // fn works on a copy that replaces the stored value when fn returns: if fn throws, the table
  // is unchanged. fn runs under the lock (see the header comment).
  template <class F>
  requires std::invocable<F&, V&>
  bool update(const K& key, F&& fn) const { return core().update(key, fn); }
  // ETS's update_element: sets one field of the key's value; false if the key is absent.
  template <class F>
  requires detail::table_field_of<F, V>
  bool update_element(const K& key, F field, detail::table_field_t<F, V> value) const {
    return core().update(key, [&](V& v) { v.*field = std::move(value); });
  }

  // ---- reads ---------------------------------------------------------------------------------
  // set/ordered_set: the key's value (a copy).
  std::optional<V> lookup(const K& key) const { return core().lookup(key); }
  // Any type: the key's values, oldest first.
  std::vector<V> lookup_all(const K& key) const { return core().lookup_all(key); }
  bool member(const K& key) const { return core().member(key); }

  // The objects for which pred(key, value) holds, from one snapshot; key order for ordered_set.
  template <class P>
  requires std::predicate<P&, const K&, const V&> std::vector<object> select(P&& pred)
  const { return core().select(pred); }
  template <class P>
  requires std::predicate<P&, const K&, const V&> std::size_t count_if(P&& pred)
  const { return core().count_if(pred); }
  // ETS's select_delete: removes the objects for which pred holds, atomically; returns how many.
  template <class P>
  requires std::predicate<P&, const K&, const V&> std::size_t erase_if(P&& pred)
  const { return core().erase_if(pred); }
  // Every object, from one snapshot (ETS's tab2list).
  std::vector<object> to_vector() const {
    return core().select([](const K&, const V&) { return true; });
  }
  // fn(acc, key, value) -> acc over a snapshot; fn runs outside the lock and may do anything.
  template <class A, class F>
  requires std::invocable<F&, A, const K&, const V&> A fold(A acc, F&& fn)
  const {
    for (auto& [k, v] : to_vector()) acc = fn(std::move(acc), k, v);
    return acc;
  }

  // Traversal without a snapshot (see the header comment). ordered_set: key order, and next(k)
  // works for any k. Other types: an unspecified order; last/prev are first/next, as in ETS.
  std::optional<K> first() const { return core().first(); }
  std::optional<K> next(const K& key) const { return core().next(key); }
  std::optional<K> last() const { return core().last(); }
  std::optional<K> prev(const K& key) const { return core().prev(key); }

  // ---- ownership -----------------------------------------------------------------------------
  // Makes `to` the owner and sends it table_transfer{.., from = caller, data}. The caller must
  // own the table; `to` must be alive, on this node and not the caller. The heir is unchanged.
  void give_away(const pid& to, std::any data = {}) const { base().give_away(to, std::move(data)); }
  // The process that inherits the table when its owner dies (an empty pid: none). Owner only.
  void set_heir(const pid& heir, std::any data = {}) const { base().set_heir(heir, std::move(data)); }

 private:
  friend struct table_transfer;
  explicit table(std::shared_ptr<detail::table_core<K, V>> c) : core_(std::move(c)) {}
  static table from_base(const std::shared_ptr<detail::table_base>& b) {
    if (b->key_type() != typeid(K) || b->value_type() != typeid(V)) b->throw_wrong_type(typeid(K), typeid(V));
    return table(std::static_pointer_cast<detail::table_core<K, V>>(b));
  }
  detail::table_core<K, V>& core() const {
    if (!core_) throw table_error(table_error::kind::no_table, "empty table handle");
    return *core_;
  }
  detail::table_base& base() const { return core(); }
  std::shared_ptr<detail::table_core<K, V>> core_;
};

template <class K, class V>
table<K, V> table_transfer::as() const {
  if (!handle) throw table_error(table_error::kind::no_table, "table_transfer without a table");
  return table<K, V>::from_base(handle);
}

}  // namespace grove

#include <grove/behaviours/detail/table-inl.hpp>
