// Hazard pointers: lock-free reads of an immutable object published through an atomic pointer,
// with safe reclamation once the writer has replaced it.
//
// A reader announces the object it is about to read in its thread's slot, then checks that the
// object is still the published one (if not, it announces the new one and checks again). A
// writer replaces the pointer, keeps the old object as retired, and frees a retired object only
// when no slot announces it.
//
// Why that is safe: a reader's announcement and its check are separated by a fence, and so are
// the writer's replacement and its scan of the slots (announce; fence; check — replace; fence;
// scan, a Dekker pattern). Of two such fences one comes first: if the reader's, the scan sees
// the announcement (or a later store of that reader's, made only after it finished reading, a
// release store the scan acquires); if the writer's, the check sees the replacement and the
// reader tries again with the new object. So an object that no slot announces after its
// replacement has no reader left, and none can start.
//
// The fences are asymmetric where Linux offers membarrier(2): the reader's is a compiler
// barrier only, the writer's a membarrier, which makes every running thread of the process
// execute a full barrier (a thread that is not running passed one when it was switched out).
// Elsewhere the reader's announcement is a seq_cst store and the writer's fence a seq_cst fence.
//
// The read path writes only its own thread's slot (its own cache line). A guard lives for one
// lookup, which never suspends, so a fiber holds its thread's slot only while it runs on that
// thread: fibers that move between threads are fine. One guard per thread at a time.
//
// Slots are never freed (one per thread alive at once; a thread's slot is reused after it
// ends), so the writer's scan costs O(threads).
#pragma once

#include <atomic>
#include <cassert>
#include <vector>

namespace grove::detail {

struct alignas(128) hazard_slot {  // two cache lines: no false sharing through the adjacent-line prefetcher
  std::atomic<const void*> announced{nullptr};
  std::atomic<bool> taken{false};  // by a live thread; released at its exit for reuse
  hazard_slot* next = nullptr;     // slots form a list that only grows; fixed once linked
};

extern thread_local constinit hazard_slot* this_thread_hazard;
// Whether writers fence with membarrier, so readers need only a compiler barrier. Settled once,
// before the first slot is taken and before the first scan; never changes after.
extern constinit bool hazard_light_reads;
hazard_slot& take_hazard_slot();  // slow path: the thread's first lookup

// The writer's side, after it replaced the published pointer: its fence, then what every slot
// announces right now, sorted (for is_announced).
std::vector<const void*> announced_hazards();
bool is_announced(const std::vector<const void*>& sorted, const void* p) noexcept;

// Reads *src's object safely for the guard's lifetime.
template <class T>
class hazard_guard {
 public:
  explicit hazard_guard(const std::atomic<const T*>& src)
      : slot_(this_thread_hazard ? *this_thread_hazard : take_hazard_slot()) {
    assert(!slot_.announced.load(std::memory_order_relaxed) && "one hazard_guard per thread at a time");
    const T* p = src.load(std::memory_order_relaxed);
    for (;;) {
      if (hazard_light_reads) {
        slot_.announced.store(p, std::memory_order_relaxed);
        std::atomic_signal_fence(std::memory_order_seq_cst);
      } else {
        slot_.announced.store(p, std::memory_order_seq_cst);
      }
      const T* now = src.load(std::memory_order_seq_cst);
      if (now == p) break;
      p = now;
    }
    object_ = p;
  }
  ~hazard_guard() { slot_.announced.store(nullptr, std::memory_order_release); }
  hazard_guard(const hazard_guard&) = delete;
  hazard_guard& operator=(const hazard_guard&) = delete;

  const T& operator*() const noexcept { return *object_; }
  const T* operator->() const noexcept { return object_; }

 private:
  hazard_slot& slot_;
  const T* object_;
};

}  // namespace grove::detail
