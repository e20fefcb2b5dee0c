// Envelope memory: per-thread caches of free blocks by size class, balanced through a global
// stack of batches, so a steady flow of messages does no malloc and no free.
//
// A sender allocates on its thread and the receiver frees on its own, so one thread's cache
// fills while the other's empties: a cache that grows past two batches hands one batch to the
// global stack, and an empty cache takes a batch from there (one spinlock round trip per
// `batch` envelopes). What the global stack cannot hold goes back to malloc, so a burst (a
// mailbox that grew to millions) is returned once it is consumed. A thread's cache is handed
// back when the thread ends. Under AddressSanitizer a cached block is poisoned past its two link
// words (which LeakSanitizer must be able to follow), so a use after free of a message's
// payload is still reported.
#include <grove/detail/envelope.hpp>

#include <atomic>
#include <cstddef>
#include <new>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "asan_fiber.hpp"
#include "spinlock.hpp"

#ifdef GROVE_ASAN
#define GROVE_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define GROVE_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define GROVE_POISON(p, n) ((void)(p), (void)(n))
#define GROVE_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace grove::detail {

namespace {

constexpr std::size_t granule = 16;
constexpr std::size_t classes = 16;  // blocks of 16, 32, ..., 256 bytes; larger ones use malloc
constexpr std::uint32_t batch = 64;
constexpr std::uint32_t local_limit = 2 * batch;
constexpr std::size_t global_limit = 256;  // batches kept per class

// A free block: `next` links a cache's list or a batch; `next_batch` links the global stack
// (valid in a batch's first block). Every block is at least 16 bytes.
struct block {
  block* next;
  block* next_batch;
};

block* next_of(block* b) noexcept { return b->next; }

void link(block* b, block* next, block* next_batch, std::size_t size) noexcept {
  b->next = next;
  b->next_batch = next_batch;
  GROVE_POISON(reinterpret_cast<char*>(b) + sizeof(block), size - sizeof(block));
}

struct alignas(64) global_class {
  spinlock lock;
  block* batches = nullptr;
  std::size_t count = 0;
};
global_class globals[classes];

struct local_class {
  block* head;
  std::uint32_t count;
};
// Constant-initialized, so reaching it needs no thread_local guard.
struct local_cache {
  local_class c[classes];
  bool registered;  // the flusher below is armed
  bool gone;        // the thread is ending: blocks go straight to free
};
thread_local local_cache cache{};

constexpr std::size_t size_of(std::size_t cls) noexcept { return (cls + 1) * granule; }

// Bytes given back to malloc since the last trim. glibc keeps freed memory in its heap (only
// the top is returned by itself): after a burst (a mailbox that grew to millions and drained),
// every 32 MiB handed back also trims the heap, which returns free pages to the OS (madvise).
// (Not under ASan, whose allocator keeps its own quarantine.)
#if defined(__GLIBC__) && !defined(GROVE_ASAN)
std::atomic<std::size_t> freed_since_trim{0};
constexpr std::size_t trim_every = std::size_t{32} << 20;
#endif

void note_freed(std::size_t bytes) noexcept {
#if defined(__GLIBC__) && !defined(GROVE_ASAN)
  if (freed_since_trim.fetch_add(bytes, std::memory_order_relaxed) + bytes >= trim_every) {
    freed_since_trim.store(0, std::memory_order_relaxed);
    ::malloc_trim(0);
  }
#else
  (void)bytes;
#endif
}

void release_batch(std::size_t cls, block* first) noexcept {
  global_class& g = globals[cls];
  {
    spinlock_lock lk(g.lock);
    if (g.count < global_limit) {
      first->next_batch = g.batches;
      g.batches = first;
      ++g.count;
      return;
    }
  }
  std::size_t freed = 0;
  for (block* b = first; b;) {
    block* n = next_of(b);
    GROVE_UNPOISON(b, size_of(cls));
    ::operator delete(b);
    freed += size_of(cls);
    b = n;
  }
  note_freed(freed);
}

void flush(local_cache& c) noexcept {
  for (std::size_t cls = 0; cls < classes; ++cls) {
    for (block* b = c.c[cls].head; b;) {
      block* n = next_of(b);
      GROVE_UNPOISON(b, size_of(cls));
      ::operator delete(b);
      b = n;
    }
    c.c[cls] = {};
  }
}

struct flusher {
  ~flusher() {
    flush(cache);
    cache.gone = true;
  }
};

void arm() {
  thread_local flusher f;
  (void)f;
  cache.registered = true;
}

void* refill(std::size_t cls) {
  if (cache.gone) return ::operator new(size_of(cls));
  if (!cache.registered) arm();
  global_class& g = globals[cls];
  block* got = nullptr;
  {
    spinlock_lock lk(g.lock);
    if (g.batches) {
      got = g.batches;
      g.batches = got->next_batch;
      --g.count;
    }
  }
  if (!got) return ::operator new(size_of(cls));
  local_class& l = cache.c[cls];
  l.head = next_of(got);
  l.count = batch - 1;
  GROVE_UNPOISON(got, size_of(cls));
  return got;
}

}  // namespace

void* envelope::operator new(std::size_t n) {
  const std::size_t cls = (n - 1) / granule;
  if (cls >= classes) return ::operator new(n);
  local_class& l = cache.c[cls];
  if (block* b = l.head) {
    l.head = next_of(b);
    --l.count;
    GROVE_UNPOISON(b, size_of(cls));
    return b;
  }
  return refill(cls);
}

void envelope::operator delete(void* p, std::size_t n) noexcept {
  const std::size_t cls = (n - 1) / granule;
  if (cls >= classes || cache.gone) {
    ::operator delete(p);
    if (cls >= classes) note_freed(n);
    return;
  }
  if (!cache.registered) arm();
  local_class& l = cache.c[cls];
  auto* b = static_cast<block*>(p);
  link(b, l.head, nullptr, size_of(cls));
  l.head = b;
  if (++l.count <= local_limit) return;
  // Hand the newest `batch` blocks to the global stack.
  block* last = b;
  for (std::uint32_t i = 1; i < batch; ++i) last = next_of(last);
  l.head = next_of(last);
  l.count -= batch;
  link(last, nullptr, nullptr, size_of(cls));
  release_batch(cls, b);
}

}  // namespace grove::detail
