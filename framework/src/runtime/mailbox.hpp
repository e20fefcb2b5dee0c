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
  // Frees every envelope; returns how many were mail (messages and replies).
  std::size_t clear() noexcept {
    std::size_t mail = 0;
    while (head) {
      envelope* n = head->next;
      mail += head->is_mail() ? 1 : 0;
      delete head;
      head = n;
    }
    tail = nullptr;
    return mail;
  }
};

class mailbox {
 public:
  enum class pushed : std::uint8_t {
    queued,       // appended; the owner runs or is already scheduled
    backlogged,   // a message appended, as queued, behind a backlog (at least `backlog` mail)
    woke_waiter,  // appended, ending the owner's wait: the pusher must wake it
    woke_idle,    // appended to an idle handler process: the pusher must schedule it
    closed,       // the process is gone; not appended
    dropped,      // a full mailbox (drop_newest) refused it
    full,         // a full mailbox (fail) refused it
  };

  // Mail already waiting at which a send pushes back on its sender (mailbox.cpp, deliver).
  static constexpr std::size_t backlog = 1024;

  // ---- any thread ----

  // Appends e (counting it if it is mail) and says what the pusher must do. The mailbox owns e
  // only when it returns queued or woke_*. Signals and replies bypass the capacity.
  pushed push(envelope* e) noexcept;

  // Calls visit(const envelope&) on what arrived but was not yet taken, oldest first.
  template <class F>
  void peek(F&& visit) const {
    std::vector<const envelope*> seen;
    peeking_.fetch_add(1, std::memory_order_seq_cst);
    {
      spinlock_lock lk(peek_lock_);
      std::uintptr_t h = head_.load(std::memory_order_seq_cst);
      for (auto* e = h > closed_tag ? reinterpret_cast<const envelope*>(h) : nullptr; e; e = e->next) {
        seen.push_back(e);
      }
      for (auto it = seen.rbegin(); it != seen.rend(); ++it) visit(**it);
    }
    peeking_.fetch_sub(1, std::memory_order_release);
  }

  // Mail waiting to be received, less what a drop_oldest mailbox is yet to drop (a sender
  // counts its message a moment before it marks the drop it owes: hence the cap).
  std::size_t size() const noexcept {
    const std::size_t n = length.load(std::memory_order_relaxed);
    const std::size_t d = drop_oldest_pending.load(std::memory_order_relaxed);
    const std::size_t visible = n > d ? n - d : 0;
    return capacity && overflow == overflow_policy::drop_oldest ? std::min(visible, capacity) : visible;
  }

  // ---- the owner ----

  // Everything that arrived since the last take, newest first (linked by `next`): the owner
  // reverses it while it walks it once (drain_impl).
  envelope* take_newest_first() noexcept;
  // Empty and running → waiting (the next push wakes the owner); false if mail is there.
  bool try_wait() noexcept { return to_state(waiting_tag); }
  // Empty and running → idle (the next push schedules the owner); false if mail is there.
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
  // Frees l's envelopes, uncounting its mail.
  void discard(envelope_list& l) noexcept { length.fetch_sub(l.clear(), std::memory_order_relaxed); }

  envelope_list queue;  // owner only: taken, not yet received

  // ---- counters, read by anyone ----
  // Mail in incoming + queue. Senders count a push before appending it and the owner uncounts
  // what it drops or frees, so the count stays balanced across a slot's generations (a sender
  // racing a death may append to the slot's next process, which drops it: mailbox.cpp).
  std::atomic<std::size_t> length{0};
  std::atomic<std::size_t> queued{0};  // messages in queue (written by the owner only)
  // Mail the owner took from incoming (written by the owner only; process_info adds what is
  // still incoming), so a push pays for no counter but length.
  std::atomic<std::uint64_t> messages_in{0};
  std::atomic<std::size_t> drop_oldest_pending{0};  // oldest messages the owner must drop
  std::size_t capacity = 0;                         // 0: unbounded
  overflow_policy overflow = overflow_policy::drop_newest;

 private:
  static constexpr std::uintptr_t running_tag = 0;
  static constexpr std::uintptr_t waiting_tag = 1;
  static constexpr std::uintptr_t idle_tag = 2;
  static constexpr std::uintptr_t closed_tag = 3;

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
  static envelope_list reversed(std::uintptr_t h) noexcept;

  std::atomic<std::uintptr_t> head_{closed_tag};
  mutable std::atomic<int> peeking_{0};
  mutable spinlock peek_lock_;
};

}  // namespace grove::detail
