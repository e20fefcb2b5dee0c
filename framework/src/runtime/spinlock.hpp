// The spinlock under every control block, run queue and ready queue.
#pragma once

#include <mutex>
#include <thread>

#include <boost/fiber/detail/spinlock.hpp>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace grove::detail {

// Boost's spinlock, locked without Boost's lock(), which reads a thread_local random engine on
// every call: a TLS lookup through __tls_get_addr in position-independent code (a third of a
// call's time once measured), and a thread-local address a migrating fiber must not keep. It is
// still Boost's type, so a held lock can be handed to Boost's suspend(lk), which releases it
// once the switch is done (suspend_unlocking).
class spinlock : public boost::fibers::detail::spinlock {
 public:
  void lock() noexcept {
    for (unsigned spins = 0; !try_lock(); ++spins) {
      if (spins < 64) {
        for (unsigned k = 0; k < 4; ++k) pause();
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
};
using spinlock_lock = std::unique_lock<spinlock>;

// A fiber handed from one thread to another through Boost's compiled code (its remote ready
// queue), which ThreadSanitizer does not see: the waker announces the handoff, the thread that
// queues the fiber accepts it. Nothing without TSan.
inline void announce_handoff([[maybe_unused]] const void* fiber) noexcept {
#if defined(__SANITIZE_THREAD__)
  __tsan_release(const_cast<void*>(fiber));
#endif
}
inline void accept_handoff([[maybe_unused]] const void* fiber) noexcept {
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(const_cast<void*>(fiber));
#endif
}

// Suspends the running fiber through Boost (`s` is its context or its scheduler), handing over
// the held lock, which Boost releases once the switch away is done; lk no longer owns it.
// `blk` is the lock object Boost releases it through: the suspending thread's own
// (scheduler::switch_lock), never one on the fiber's stack. Boost's switch calls
// unique_lock::unlock(), which writes `owns = false` into the object *after* releasing the lock;
// by then a waker may have resumed the fiber on another thread, and an object on its stack is
// memory the fiber has reused (the write clobbered a later wait's lock object: an EPERM abort,
// or a crash). The switch runs on the suspending thread, which switches again only after it.
template <class Suspender>
void suspend_unlocking(Suspender* s, spinlock_lock& lk, boost::fibers::detail::spinlock_lock& blk) noexcept {
  blk = boost::fibers::detail::spinlock_lock(*lk.release(), std::adopt_lock);
#if defined(__SANITIZE_THREAD__)
  // Boost unlocks it inside its compiled library, which ThreadSanitizer does not see: the
  // release is announced here, after the last write before the switch, on the address of the
  // lock's state, which the next try_lock() acquires (docs/sanitizers.md).
  __tsan_release(blk.mutex());
#endif
  s->suspend(blk);
}

}  // namespace grove::detail
