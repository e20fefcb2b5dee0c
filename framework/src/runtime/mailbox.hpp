// A process's mailbox. Senders on any thread append without a lock; everything else (taking
// what arrived, acting on signals, selective receive over the queue) is its owner's.
//
// `incoming` is an intrusive stack (newest first) whose head word also carries the owner's
// state while it is empty: running (0), waiting in a receive, idle (a handler process with
// nothing to do), or closed (the process is gone). A sender appends with one compare-exchange;
// the one whose append ends a wait or an idle spell learns it from that same exchange and is
// the one that wakes or schedules the owner, so no wake-up is lost and none is doubled. The
// owner takes everything at once with an exchange and reverses it, which gives arrival order
// (a sender's own pushes stay in its order; causally ordered pushes from different senders
// too, since every push is ordered in the head's modification order).
//
// The head word also counts the messages in `incoming` and carries a "room wanted" bit, so a
// push touches no other shared word: [63..45] messages in incoming (saturating), [44] a sender
// waits for the backlog to shrink (back-pressure, mailbox.cpp), [43..0] the newest envelope's
// address divided by 8 (envelopes are 8-aligned, user addresses below 2^47), or a state.
// Messages the owner has taken are counted by the owner alone (`queued`).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <grove/detail/envelope.hpp>
#include <grove/runtime/process.hpp>

#include "spinlock.hpp"

namespace grove::detail {

// A singly linked FIFO of envelopes.
struct envelope_list {
  envelope* head = nullptr;
  envelope* tail = nullptr;
  void push_back(envelope* e) noexcept {
    e->next = nullptr;
    if (tail) {
      tail->next = e;
    } else {
      head = e;
    }
    tail = e;
  }
  // Removes e, whose predecessor is prev (null if e is the head).
  void unlink(envelope* prev, envelope* e) noexcept {
    if (prev) {
      prev->next = e->next;
    } else {
      head = e->next;
    }
    if (tail == e) tail = prev;
    e->next = nullptr;
  }
  void append(envelope_list&& o) noexcept {
    if (!o.head) return;
    if (tail) {
      tail->next = o.head;
    } else {
      head = o.head;
    }
    tail = o.tail;
    o.head = o.tail = nullptr;
  }
  // Frees every envelope.
  void clear() noexcept {
    while (head) {
      envelope* n = head->next;
      delete head;
      head = n;
    }
    tail = nullptr;
  }
};

class mailbox {
 public:
  enum class pushed : std::uint8_t {
    queued,       // appended; the owner runs or is already scheduled
    backlogged,   // a message appended, as queued, behind a backlog (at least `backlog` messages)
    woke_waiter,  // appended, ending the owner's wait: the pusher must wake it
    woke_idle,    // appended to an idle handler process: the pusher must schedule it
    closed,       // the process is gone; not appended
    dropped,      // a full mailbox (drop_newest) refused it
    full,         // a full mailbox (fail) refused it
  };

  // Messages already waiting at which a send pushes back on its sender (mailbox.cpp, deliver).
  static constexpr std::size_t backlog = 1024;
  // The most messages the head word counts: a capacity above it could not be enforced.
  static constexpr std::size_t max_capacity = max_mailbox_capacity;

  // ---- any thread ----

  // Appends e and says what the pusher must do. The mailbox owns e only when it returns queued,
  // backlogged or woke_*. Signals and replies bypass the capacity.
  pushed push(envelope* e) noexcept;
  // A sender is about to wait for the backlog to shrink: sets the head's room bit, which the
  // owner sees when it next takes its mail, waits, idles, yields or dies. False (nothing set)
  // if the owner has had its turn already (it waits or idles) or is gone: do not wait.
  bool want_room() noexcept;

  // Calls visit(const envelope&) on what arrived but was not yet taken, oldest first.
  template <class F>
  void peek(F&& visit) const {
    std::vector<const envelope*> seen;
    peeking_.fetch_add(1, std::memory_order_seq_cst);
    {
      spinlock_lock lk(peek_lock_);
      for (const envelope* e = top(head_.load(std::memory_order_seq_cst)); e; e = e->next) seen.push_back(e);
      for (auto it = seen.rbegin(); it != seen.rend(); ++it) visit(**it);
    }
    peeking_.fetch_sub(1, std::memory_order_release);
  }

  // Messages waiting to be received (incoming and queued; a drop_oldest mailbox shows at most
  // its capacity: the owner drops the excess when it next takes its mail).
  std::size_t size() const noexcept {
    const std::size_t n = incoming() + queued.load(std::memory_order_relaxed);
    return capacity && overflow == overflow_policy::drop_oldest ? std::min(n, capacity) : n;
  }
  // Messages pushed and not yet taken by the owner.
  std::size_t incoming() const noexcept { return count_of(head_.load(std::memory_order_relaxed)); }

  // ---- the owner ----

  // Everything that arrived since the last take, newest first (linked by `next`): the owner
  // reverses it while it walks it once (drain_impl). `messages`: how many of them are
  // messages, as the head counted them (exact below max_capacity).
  envelope* take_newest_first(std::size_t& messages) noexcept;
  // Empty and running → waiting (the next push wakes the owner); false if mail (or a room
  // request) is there.
  bool try_wait() noexcept { return to_state(waiting_tag); }
  // Empty and running → idle (the next push schedules the owner); false if mail (or a room
  // request) is there.
  bool try_idle() noexcept { return to_state(idle_tag); }
  // At spawn: empty and running, with the process's capacity.
  void open(std::size_t cap, overflow_policy policy) noexcept;
  // At death: closed (pushes fail from now on); returns what had arrived.
  envelope_list close() noexcept;
  // The owner's counters: a plain load and store, no locked instruction (nobody else writes).
  void add_queued(std::size_t n) noexcept {
    queued.store(queued.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub_queued(std::size_t n) noexcept {
    queued.store(queued.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  // Whether a sender asked for room since the owner last let them go: seen when taking mail,
  // or still in the head.
  bool room_seen() const noexcept { return room_seen_; }
  bool room_wanted() const noexcept { return room_seen_ || (head_.load(std::memory_order_relaxed) & room_bit) != 0; }
  void forget_room() noexcept { room_seen_ = false; }

  envelope_list queue;  // owner only: taken, not yet received

  // ---- counters, read by anyone ----
  // Mail the owner took from incoming (written by the owner only; process_info adds what is
  // still incoming).
  std::atomic<std::uint64_t> messages_in{0};
  std::size_t capacity = 0;  // 0: unbounded
  overflow_policy overflow = overflow_policy::drop_newest;

 private:
  static constexpr std::uintptr_t running_tag = 0;
  static constexpr std::uintptr_t waiting_tag = 1;
  static constexpr std::uintptr_t idle_tag = 2;
  static constexpr std::uintptr_t closed_tag = 3;
  static constexpr int address_shift = 3;
  static constexpr int count_shift = 45;
  static constexpr std::uintptr_t room_bit = std::uintptr_t{1} << 44;
  static constexpr std::uintptr_t field_mask = room_bit - 1;
  static constexpr std::uintptr_t count_max = (std::uintptr_t{1} << (64 - count_shift)) - 1;
  static_assert(sizeof(std::uintptr_t) == 8, "the head word packs an address, a count and a bit");
  static_assert(max_mailbox_capacity == count_max);

  static envelope* top(std::uintptr_t h) noexcept {
    const std::uintptr_t f = h & field_mask;
    return f > closed_tag ? reinterpret_cast<envelope*>(f << address_shift) : nullptr;
  }
  static std::size_t count_of(std::uintptr_t h) noexcept { return h >> count_shift; }

  bool to_state(std::uintptr_t tag) noexcept {
    std::uintptr_t expected = running_tag;
    return head_.compare_exchange_strong(expected, tag, std::memory_order_seq_cst, std::memory_order_relaxed);
  }
  // The owner took a list it is about to walk: wait out a peek that may be walking it.
  void after_taking() const noexcept {
    if (peeking_.load(std::memory_order_seq_cst) != 0) {
      spinlock_lock lk(peek_lock_);
    }
  }
  static envelope_list reversed(envelope* newest) noexcept;

 public:
  // Messages in queue (written by the owner only). Beside the head, in one 16-byte block and
  // so one cache line: a push reads it on the line its compare-exchange takes anyway.
  alignas(16) std::atomic<std::size_t> queued{0};

 private:
  std::atomic<std::uintptr_t> head_{closed_tag};
  bool room_seen_ = false;  // owner only
  mutable std::atomic<int> peeking_{0};
  mutable spinlock peek_lock_;
};

}  // namespace grove::detail
