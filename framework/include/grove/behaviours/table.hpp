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

template <class K>
concept table_hash_key = std::equality_comparable<K> && requires(const K& k) {
  { std::hash<K>{}(k) } -> std::convertible_to<std::size_t>;
};
template <class K>
concept table_ordered_key = requires(const K& a, const K& b) {
  { a < b } -> std::convertible_to<bool>;
};
template <class C>
concept table_counter = std::integral<C> && !std::same_as<C, bool>;

// A pointer to an integral (or any) data member of V, and the member's type.
template <class F, class V>
struct table_field {};
template <class C, class V>
struct table_field<C V::*, V> {
  using type = C;
};
template <class F, class V>
concept table_field_of = std::is_member_object_pointer_v<F> && requires {
  typename table_field<F, V>::type;
};
template <class F, class V>
using table_field_t = typename table_field<F, V>::type;

inline constexpr unsigned table_stripe_count = 16;

// A reader-writer lock whose readers touch only a cache line of their own thread's slot, so
// reads on several schedulers do not bounce a shared counter; a writer raises a flag and waits
// for every slot to drain. Neither side ever holds it across a suspension, so waiting spins.
class reader_biased_lock {
 public:
  static constexpr unsigned slots = 16;
  unsigned lock_shared() noexcept {
    const unsigned s = reader_slot();
    for (;;) {
      slots_[s].readers.fetch_add(1, std::memory_order_seq_cst);
      if (!writer_.load(std::memory_order_seq_cst)) return s;
      slots_[s].readers.fetch_sub(1, std::memory_order_release);
      wait_no_writer();
    }
  }
  void unlock_shared(unsigned s) noexcept { slots_[s].readers.fetch_sub(1, std::memory_order_release); }
  void lock();
  void unlock() noexcept;

 private:
  static unsigned reader_slot() noexcept {
    static std::atomic<unsigned> next{0};
    thread_local const unsigned mine = next.fetch_add(1, std::memory_order_relaxed) % slots;
    return mine;
  }
  void wait_no_writer() const noexcept;
  struct alignas(64) slot {
    std::atomic<long> readers{0};
  };
  std::array<slot, slots> slots_{};
  alignas(64) std::atomic<bool> writer_{false};
  std::mutex writers_;  // one writer at a time
};

// The lock of one stripe: a mutex, a reader-writer lock or a reader-biased lock.
class stripe_lock {
 public:
  enum class kind : std::uint8_t { mutex, shared, reader_biased };
  stripe_lock() = default;
  void init(kind k) {
    kind_ = k;
    if (k == kind::shared) locks_.emplace<1>();
    if (k == kind::reader_biased) locks_.emplace<2>(std::make_unique<reader_biased_lock>());
  }
  void lock() {
    switch (kind_) {
      case kind::mutex:
        std::get<0>(locks_).lock();
        break;
      case kind::shared:
        std::get<1>(locks_).lock();
        break;
      case kind::reader_biased:
        std::get<2>(locks_)->lock();
        break;
    }
  }
  void unlock() noexcept {
    switch (kind_) {
      case kind::mutex:
        std::get_if<0>(&locks_)->unlock();
        break;
      case kind::shared:
        std::get_if<1>(&locks_)->unlock();
        break;
      case kind::reader_biased:
        (*std::get_if<2>(&locks_))->unlock();
        break;
    }
  }
  // Returns what unlock_shared needs back.
  unsigned lock_shared() {
    switch (kind_) {
      case kind::mutex:
        std::get<0>(locks_).lock();
        return 0;
      case kind::shared:
        std::get<1>(locks_).lock_shared();
        return 0;
      case kind::reader_biased:
        return std::get<2>(locks_)->lock_shared();
    }
    return 0;
  }
  void unlock_shared(unsigned token) noexcept {
    switch (kind_) {
      case kind::mutex:
        std::get_if<0>(&locks_)->unlock();
        break;
      case kind::shared:
        std::get_if<1>(&locks_)->unlock_shared();
        break;
      case kind::reader_biased:
        (*std::get_if<2>(&locks_))->unlock_shared(token);
        break;
    }
  }

 private:
  kind kind_ = kind::mutex;
  std::variant<std::mutex, std::shared_mutex, std::unique_ptr<reader_biased_lock>> locks_;
};

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

// ---- implementation ----------------------------------------------------------------------------

namespace detail {

template <class K, class V>
class table_core final : public table_base {
  static constexpr bool hashed = table_hash_key<K>;
  static constexpr bool ordered = table_ordered_key<K>;
  struct none {};
  using set_map = std::conditional_t<hashed, std::unordered_map<K, V>, none>;
  using bag_map = std::conditional_t<hashed, std::unordered_map<K, std::vector<V>>, none>;
  using tree_map = std::conditional_t<ordered, std::map<K, V>, none>;
  using object = std::pair<K, V>;

  struct alignas(64) stripe {
    stripe_lock lock;
    set_map set{};
    bag_map bag{};
    tree_map tree{};
    std::size_t objects = 0;
  };

  struct shared_guard {
    explicit shared_guard(stripe& s) : s_(s), token_(s.lock.lock_shared()) {}
    ~shared_guard() { s_.lock.unlock_shared(token_); }
    shared_guard(const shared_guard&) = delete;
    shared_guard& operator=(const shared_guard&) = delete;
    stripe& s_;
    unsigned token_;
  };
  struct unique_guard {
    explicit unique_guard(stripe& s) : s_(s) { s.lock.lock(); }
    ~unique_guard() { s_.lock.unlock(); }
    unique_guard(const unique_guard&) = delete;
    unique_guard& operator=(const unique_guard&) = delete;
    stripe& s_;
  };
  // Locks the stripes of `mask` in index order (the one order every multi-stripe lock uses).
  class multi_guard {
   public:
    multi_guard(const table_core& t, std::uint32_t mask, bool exclusive) : t_(t), mask_(mask), exclusive_(exclusive) {
      for (unsigned i = 0; i < t.n_; ++i) {
        if (!(mask & (1u << i))) continue;
        try {
          if (exclusive) {
            t.stripes_[i].lock.lock();
          } else {
            tokens_[i] = t.stripes_[i].lock.lock_shared();
          }
        } catch (...) {
          mask_ = mask & ((1u << i) - 1);
          release();
          throw;
        }
      }
    }
    ~multi_guard() { release(); }
    multi_guard(const multi_guard&) = delete;
    multi_guard& operator=(const multi_guard&) = delete;

   private:
    void release() noexcept {
      for (unsigned i = t_.n_; i-- > 0;) {
        if (!(mask_ & (1u << i))) continue;
        if (exclusive_) {
          t_.stripes_[i].lock.unlock();
        } else {
          t_.stripes_[i].lock.unlock_shared(tokens_[i]);
        }
      }
    }
    const table_core& t_;
    std::uint32_t mask_;
    bool exclusive_;
    std::array<unsigned, table_stripe_count> tokens_{};
  };

 public:
  explicit table_core(table_options&& opts) : table_base(std::move(opts), typeid(K), typeid(V)) {
    const auto c = concurrency();
    const bool striped = (c == table_concurrency::write_heavy || c == table_concurrency::read_write_heavy) &&
                         type() != table_type::ordered_set;
    n_ = striped ? table_stripe_count : 1;
    stripes_ = std::make_unique<stripe[]>(n_);
    stripe_lock::kind k = stripe_lock::kind::mutex;
    if (c == table_concurrency::read_heavy) k = stripe_lock::kind::reader_biased;
    if (c == table_concurrency::read_write_heavy) k = stripe_lock::kind::shared;
    for (unsigned i = 0; i < n_; ++i) stripes_[i].lock.init(k);
  }
  ~table_core() override = default;

  // What the table's type needs of K and V, checked at creation.
  static const char* unsupported_reason(table_type t) {
    if (t == table_type::ordered_set) return ordered ? nullptr : "an ordered_set needs keys with operator<";
    if (!hashed) return "set and bag tables need keys with std::hash and operator==";
    if (t == table_type::bag && !std::equality_comparable<V>) return "a bag needs values with operator==";
    return nullptr;
  }

  std::size_t size() const {
    check_read();
    std::size_t n = 0;
    for (unsigned i = 0; i < n_; ++i) {
      shared_guard g(stripes_[i]);
      if (deleted_.load(std::memory_order_relaxed)) throw_deleted();
      n += stripes_[i].objects;
    }
    return n;
  }

  void insert(K&& key, V&& value) {
    check_write();
    stripe& s = stripe_of(key);
    unique_guard g(s);
    live();
    put(s, std::move(key), std::move(value));
  }

  bool insert_new(K&& key, V&& value) {
    check_write();
    stripe& s = stripe_of(key);
    unique_guard g(s);
    live();
    if (contains(s, key)) return false;
    put(s, std::move(key), std::move(value));
    return true;
  }

  bool insert_batch(std::span<const object> objects, bool only_new) {
    check_write();
    std::vector<object> copies(objects.begin(), objects.end());  // copied before locking
    std::vector<unsigned> where(copies.size());
    std::uint32_t mask = 0;
    for (std::size_t i = 0; i < copies.size(); ++i) {
      where[i] = index_of(copies[i].first);
      mask |= 1u << where[i];
    }
    multi_guard g(*this, mask, true);
    live();
    if (only_new) {
      for (std::size_t i = 0; i < copies.size(); ++i) {
        if (contains(stripes_[where[i]], copies[i].first)) return false;
      }
    }
    for (std::size_t i = 0; i < copies.size(); ++i) {
      put(stripes_[where[i]], std::move(copies[i].first), std::move(copies[i].second));
    }
    return true;
  }

  std::size_t erase(const K& key) {
    check_write();
    stripe& s = stripe_of(key);
    unique_guard g(s);
    live();
    std::size_t n = 0;
    if (is_bag()) {
      if constexpr (hashed) {
        if (auto it = s.bag.find(key); it != s.bag.end()) {
          n = it->second.size();
          s.bag.erase(it);
        }
      }
    } else {
      n = single(s, [&](auto& m) { return static_cast<std::size_t>(m.erase(key)); });
    }
    s.objects -= n;
    return n;
  }

  std::size_t erase_object(const K& key, const V& value) requires std::equality_comparable<V> {
    check_write();
    stripe& s = stripe_of(key);
    unique_guard g(s);
    live();
    std::size_t n = 0;
    if (is_bag()) {
      if constexpr (hashed) {
        if (auto it = s.bag.find(key); it != s.bag.end()) {
          n = std::erase(it->second, value);
          if (it->second.empty()) s.bag.erase(it);
        }
      }
    } else {
      n = single(s, [&](auto& m) -> std::size_t {
        auto it = m.find(key);
        if (it == m.end() || !(it->second == value)) return 0;
        m.erase(it);
        return 1;
      });
    }
    s.objects -= n;
    return n;
  }

  std::optional<V> take(const K& key) {
    check_write();
    if (is_bag()) throw_unsupported("take", "use take_all on a bag");
    stripe& s = stripe_of(key);
    unique_guard g(s);
    live();
    return single(s, [&](auto& m) -> std::optional<V> {
      auto it = m.find(key);
      if (it == m.end()) return std::nullopt;
      std::optional<V> v(std::move(it->second));
      m.erase(it);
      --s.objects;
      return v;
    });
  }

  std::vector<V> take_all(const K& key) {
    check_write();
    stripe& s = stripe_of(key);
    unique_guard g(s);
    live();
    std::vector<V> out;
    if (is_bag()) {
      if constexpr (hashed) {
        if (auto it = s.bag.find(key); it != s.bag.end()) {
          out = std::move(it->second);
          s.bag.erase(it);
        }
      }
    } else {
      single(s, [&](auto& m) {
        if (auto it = m.find(key); it != m.end()) {
          out.push_back(std::move(it->second));
          m.erase(it);
        }
      });
    }
    s.objects -= out.size();
    return out;
  }

  void clear() {
    check_write();
    multi_guard g(*this, all(), true);
    live();
    for (unsigned i = 0; i < n_; ++i) wipe(stripes_[i]);
  }

  V counter(const K& key, const counter_op<V>& op, const V* dflt) requires table_counter<V> {
    return counter_field(key, static_cast<V*>(nullptr), op, dflt);
  }

  // field: a member pointer into V, or a null V* for "the value itself".
  template <class F, class C>
  C counter_field(const K& key, F field, const counter_op<C>& op, const V* dflt) {
    check_write();
    if (is_bag()) throw_unsupported("update_counter", "counters live in set and ordered_set tables");
    stripe& s = stripe_of(key);
    unique_guard g(s);
    live();
    return single(s, [&](auto& m) -> C {
      auto it = m.find(key);
      if (it == m.end()) {
        if (!dflt) throw_no_key("update_counter");
        C next = step(static_cast<C>(counter_ref(*dflt, field)), op);
        it = m.emplace(key, *dflt).first;  // may throw: the table is still unchanged
        ++s.objects;
        counter_ref(it->second, field) = next;
        return next;
      }
      C& c = counter_ref(it->second, field);
      c = step(c, op);
      return c;
    });
  }

  template <class F>
  bool update(const K& key, F&& fn) {
    check_write();
    if (is_bag()) throw_unsupported("update", "objects of a bag are replaced by erase_object and insert");
    stripe& s = stripe_of(key);
    unique_guard g(s);
    live();
    return single(s, [&](auto& m) {
      auto it = m.find(key);
      if (it == m.end()) return false;
      V copy = it->second;
      fn(copy);
      it->second = std::move(copy);
      return true;
    });
  }

  std::optional<V> lookup(const K& key) const {
    check_read();
    if (is_bag()) throw_unsupported("lookup", "use lookup_all on a bag");
    stripe& s = stripe_of(key);
    shared_guard g(s);
    live();
    return single(s, [&](auto& m) -> std::optional<V> {
      auto it = m.find(key);
      if (it == m.end()) return std::nullopt;
      return it->second;
    });
  }

  std::vector<V> lookup_all(const K& key) const {
    check_read();
    stripe& s = stripe_of(key);
    shared_guard g(s);
    live();
    std::vector<V> out;
    if (is_bag()) {
      if constexpr (hashed) {
        if (auto it = s.bag.find(key); it != s.bag.end()) out = it->second;
      }
    } else {
      single(s, [&](auto& m) {
        if (auto it = m.find(key); it != m.end()) out.push_back(it->second);
      });
    }
    return out;
  }

  bool member(const K& key) const {
    check_read();
    stripe& s = stripe_of(key);
    shared_guard g(s);
    live();
    return contains(s, key);
  }

  template <class P>
  std::vector<object> select(P&& pred) const {
    check_read();
    std::vector<object> out;
    multi_guard g(*this, all(), false);
    live();
    for (unsigned i = 0; i < n_; ++i) {
      each(stripes_[i], [&](const K& k, const V& v) {
        if (pred(k, v)) out.emplace_back(k, v);
      });
    }
    return out;
  }

  template <class P>
  std::size_t count_if(P&& pred) const {
    check_read();
    std::size_t n = 0;
    multi_guard g(*this, all(), false);
    live();
    for (unsigned i = 0; i < n_; ++i) {
      each(stripes_[i], [&](const K& k, const V& v) { n += pred(k, v) ? 1 : 0; });
    }
    return n;
  }

  template <class P>
  std::size_t erase_if(P&& pred) {
    check_write();
    std::size_t n = 0;
    multi_guard g(*this, all(), true);
    live();
    for (unsigned i = 0; i < n_; ++i) {
      stripe& s = stripes_[i];
      std::size_t gone = 0;
      if (is_bag()) {
        if constexpr (hashed) {
          for (auto it = s.bag.begin(); it != s.bag.end();) {
            gone += std::erase_if(it->second, [&](const V& v) { return static_cast<bool>(pred(it->first, v)); });
            it = it->second.empty() ? s.bag.erase(it) : std::next(it);
          }
        }
      } else {
        single(s, [&](auto& m) {
          gone += std::erase_if(m, [&](const auto& kv) { return static_cast<bool>(pred(kv.first, kv.second)); });
        });
      }
      s.objects -= gone;
      n += gone;
    }
    return n;
  }

  std::optional<K> first() const {
    check_read();
    if (type() == table_type::ordered_set) return tree_first(false);
    return hash_from(0);
  }
  std::optional<K> last() const {
    check_read();
    if (type() == table_type::ordered_set) return tree_first(true);
    return hash_from(0);
  }

  std::optional<K> next(const K& key) const {
    check_read();
    if (type() == table_type::ordered_set) return tree_step(key, false);
    if constexpr (hashed) {
      const unsigned i = index_of(key);
      {
        stripe& s = stripes_[i];
        shared_guard g(s);
        live();
        std::optional<K> found;
        bool present = false;
        keys_of(s, [&](auto& m) {
          auto it = m.find(key);
          if (it == m.end()) return;
          present = true;
          if (++it != m.end()) found = it->first;
        });
        if (!present) throw_no_key("next");
        if (found) return found;
      }
      return hash_from(i + 1);
    } else {
      return std::nullopt;
    }
  }
  std::optional<K> prev(const K& key) const {
    if (type() == table_type::ordered_set) {
      check_read();
      return tree_step(key, true);
    }
    return next(key);
  }

 protected:
  void drop_contents() noexcept override {
    multi_guard g(*this, all(), true);
    for (unsigned i = 0; i < n_; ++i) wipe(stripes_[i]);
  }

 private:
  bool is_bag() const noexcept { return type() == table_type::bag || type() == table_type::duplicate_bag; }
  std::uint32_t all() const noexcept { return (1u << n_) - 1; }
  void live() const {
    if (deleted_.load(std::memory_order_relaxed)) throw_deleted();
  }

  unsigned index_of(const K& key) const {
    if (n_ == 1) return 0;
    if constexpr (hashed) {
      // The high bits of a multiplicative mix: std::hash of an integer is the integer itself.
      const std::uint64_t h = static_cast<std::uint64_t>(std::hash<K>{}(key)) * 0x9E3779B97F4A7C15ull;
      return static_cast<unsigned>(h >> 60) % n_;
    } else {
      return 0;
    }
  }
  stripe& stripe_of(const K& key) const { return stripes_[index_of(key)]; }

  // fn(map) on the stripe's single-object map (set or ordered_set).
  template <class F>
  decltype(auto) single(stripe& s, F&& fn) const {
    if constexpr (ordered && hashed) {
      if (type() == table_type::ordered_set) return fn(s.tree);
      return fn(s.set);
    } else if constexpr (ordered) {
      return fn(s.tree);
    } else {
      return fn(s.set);
    }
  }
  // fn(map) on whichever map holds the keys of this table type.
  template <class F>
  void keys_of(stripe& s, F&& fn) const {
    if (is_bag()) {
      if constexpr (hashed) fn(s.bag);
    } else {
      single(s, fn);
    }
  }

  bool contains(stripe& s, const K& key) const {
    bool found = false;
    keys_of(s, [&](auto& m) { found = m.find(key) != m.end(); });
    return found;
  }

  void put(stripe& s, K&& key, V&& value) {
    if (is_bag()) {
      if constexpr (hashed) {
        auto& vs = s.bag[std::move(key)];
        if constexpr (std::equality_comparable<V>) {
          if (type() == table_type::bag) {
            for (auto& v : vs) {
              if (v == value) return;
            }
          }
        }
        vs.push_back(std::move(value));
        ++s.objects;
      }
    } else {
      single(s, [&](auto& m) {
        if (m.insert_or_assign(std::move(key), std::move(value)).second) ++s.objects;
      });
    }
  }

  void wipe(stripe& s) noexcept {
    if constexpr (hashed) {
      s.set.clear();
      s.bag.clear();
    }
    if constexpr (ordered) s.tree.clear();
    s.objects = 0;
  }

  template <class F>
  void each(stripe& s, F&& fn) const {
    if (is_bag()) {
      if constexpr (hashed) {
        for (auto& [k, vs] : s.bag) {
          for (auto& v : vs) fn(k, v);
        }
      }
    } else {
      single(s, [&](auto& m) {
        for (auto& [k, v] : m) fn(k, v);
      });
    }
  }

  // The counter inside a value: the value itself (field is a null V*) or one of its members.
  template <class T, class F>
  static auto& counter_ref(T& v, F field) {
    if constexpr (std::is_member_object_pointer_v<F>) {
      return v.*field;
    } else {
      (void)field;
      return v;
    }
  }

  template <class C>
  C step(C current, const counter_op<C>& op) const {
    C r{};
    const bool overflow = __builtin_add_overflow(current, op.incr, &r);
    if (op.threshold) {
      const bool up = !(op.incr < C{0});
      if (up ? (overflow || r > *op.threshold) : (overflow || r < *op.threshold)) return op.set_value;
      return r;
    }
    if (overflow) throw_overflow();
    return r;
  }

  std::optional<K> tree_first(bool from_end) const {
    if constexpr (ordered) {
      stripe& s = stripes_[0];
      shared_guard g(s);
      live();
      if (s.tree.empty()) return std::nullopt;
      return from_end ? std::prev(s.tree.end())->first : s.tree.begin()->first;
    } else {
      return std::nullopt;
    }
  }
  std::optional<K> tree_step(const K& key, bool backwards) const {
    if constexpr (ordered) {
      stripe& s = stripes_[0];
      shared_guard g(s);
      live();
      if (!backwards) {
        auto it = s.tree.upper_bound(key);
        if (it == s.tree.end()) return std::nullopt;
        return it->first;
      }
      auto it = s.tree.lower_bound(key);
      if (it == s.tree.begin()) return std::nullopt;
      return std::prev(it)->first;
    } else {
      return std::nullopt;
    }
  }
  // The first key of the first non-empty stripe at or after i.
  std::optional<K> hash_from(unsigned i) const {
    for (; i < n_; ++i) {
      stripe& s = stripes_[i];
      shared_guard g(s);
      live();
      std::optional<K> found;
      keys_of(s, [&](auto& m) {
        if (!m.empty()) found = m.begin()->first;
      });
      if (found) return found;
    }
    return std::nullopt;
  }

  unsigned n_ = 1;
  std::unique_ptr<stripe[]> stripes_;
};

}  // namespace detail

template <class K, class V>
table<K, V> table<K, V>::create(table_options opts) {
  if (const char* why = detail::table_core<K, V>::unsupported_reason(opts.type)) {
    throw table_error(table_error::kind::unsupported, std::string("cannot create a ") + to_string(opts.type) +
                                                          " table of " + detail::demangle(typeid(K).name()) + " -> " +
                                                          detail::demangle(typeid(V).name()) + ": " + why);
  }
  auto core = std::make_shared<detail::table_core<K, V>>(std::move(opts));
  detail::table_base::attach(core);
  return table(std::move(core));
}

template <class K, class V>
std::optional<table<K, V>> table<K, V>::whereis(node& n, std::string_view name) {
  auto b = detail::table_base::find(n, name);
  if (!b) return std::nullopt;
  return from_base(b);
}

}  // namespace grove
