#include "hazard_pointer.hpp"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <new>

#if defined(__linux__) && __has_include(<linux/membarrier.h>)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#define GROVE_HAS_MEMBARRIER 1
#endif

namespace grove::detail {

thread_local constinit hazard_slot* this_thread_hazard = nullptr;
constinit bool hazard_light_reads = false;

namespace {
bool register_membarrier() noexcept {
#ifdef GROVE_HAS_MEMBARRIER
  long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  return cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
         syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
  return false;
#endif
}

// Settles hazard_light_reads once; both readers (take_hazard_slot) and writers
// (announced_hazards) pass here first, so they agree on it.
bool light_reads() noexcept {
  static const bool light = hazard_light_reads = register_membarrier();
  return light;
}

void writer_fence() noexcept {
#ifdef GROVE_HAS_MEMBARRIER
  if (light_reads()) {
    // Cannot fail once registered; if it did, readers would be unprotected.
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) std::abort();
    return;
  }
#endif
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

std::atomic<hazard_slot*> all_slots{nullptr};  // never freed: one per thread alive at once, reused

// A thread's slot goes back to the pool when the thread ends. A lookup made by a later
// thread-exit destructor takes a slot for good (no second releaser can be made then).
thread_local constinit bool slot_released = false;
struct slot_release {
  hazard_slot* slot = nullptr;
  ~slot_release() {
    this_thread_hazard = nullptr;
    slot_released = true;
    if (slot) slot->taken.store(false, std::memory_order_release);
  }
};
}  // namespace

hazard_slot& take_hazard_slot() {
  light_reads();
  hazard_slot* s = nullptr;
  for (hazard_slot* c = all_slots.load(std::memory_order_acquire); c && !s; c = c->next) {
    bool expected = false;
    if (!c->taken.load(std::memory_order_relaxed) &&
        c->taken.compare_exchange_strong(expected, true, std::memory_order_acquire))
      s = c;
  }
  if (!s) {
    // aligned_alloc, not new: the slot's 128-byte alignment is then guaranteed under every
    // allocator (AddressSanitizer's operator new returned 64-byte-aligned blocks for it).
    void* mem = std::aligned_alloc(alignof(hazard_slot), sizeof(hazard_slot));
    if (!mem) throw std::bad_alloc();
    s = new (mem) hazard_slot;
    s->taken.store(true, std::memory_order_relaxed);
    s->next = all_slots.load(std::memory_order_relaxed);
    while (!all_slots.compare_exchange_weak(s->next, s, std::memory_order_release, std::memory_order_relaxed)) {
    }
  }
  if (!slot_released) {
    static thread_local slot_release release;
    release.slot = s;
  }
  this_thread_hazard = s;
  return *s;
}

std::vector<const void*> announced_hazards() {
  writer_fence();
  std::vector<const void*> out;
  for (hazard_slot* c = all_slots.load(std::memory_order_acquire); c; c = c->next) {
    if (const void* p = c->announced.load(std::memory_order_acquire)) out.push_back(p);
  }
  std::sort(out.begin(), out.end(), std::less<const void*>{});
  return out;
}

bool is_announced(const std::vector<const void*>& sorted, const void* p) noexcept {
  return std::binary_search(sorted.begin(), sorted.end(), p, std::less<const void*>{});
}

}  // namespace grove::detail
