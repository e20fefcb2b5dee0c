// What table.hpp stands on and does not depend on it (not a public API): the key concepts,
// field access for update_element, and the locks a table's stripes use.
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

namespace grove::detail {

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

}  // namespace grove::detail
