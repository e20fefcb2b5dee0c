// table's implementation (templates), included at the end of grove/behaviours/table.hpp,
// whose declarations it defines: the typed table_core and the handle's static functions. Not
// a public API.
#pragma once

#include <grove/behaviours/table.hpp>

namespace grove {

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
