// The spinlock under every control block, run queue and ready queue.
#pragma once

#include <mutex>
#include <thread>

#include <boost/fiber/detail/spinlock.hpp>

namespace grove::detail {

// Boost's spinlock, locked without Boost's lock(), which reads a thread_local random engine on
// every call: a TLS lookup through __tls_get_addr in position-independent code (a third of a
// call's time once measured), and a thread-local address a migrating fiber must not keep. It is
// still Boost's type, so a held lock can be handed to Boost's suspend(lk), which releases it
// once the switch is done (to_boost).
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

// Hands a held lock to Boost (suspend(lk) unlocks it after the switch); lk no longer owns it.
inline boost::fibers::detail::spinlock_lock to_boost(spinlock_lock& lk) noexcept {
  boost::fibers::detail::spinlock& m = *lk.release();
  return boost::fibers::detail::spinlock_lock(m, std::adopt_lock);
}

}  // namespace grove::detail
