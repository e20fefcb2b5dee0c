#include "stack_pool.hpp"

#include "asan_fiber.hpp"

#include <sys/mman.h>

#include <bit>
#include <new>

namespace grove::detail {

stack_pool::~stack_pool() {
  for (auto& [base, size] : slabs_) ::munmap(base, size);
}

std::size_t stack_pool::round(std::size_t size) noexcept {
  if (size < min_size) size = min_size;
  return std::bit_ceil(size);
}

std::size_t stack_pool::class_of(std::size_t rounded) noexcept {
  return static_cast<std::size_t>(std::countr_zero(rounded) - std::countr_zero(min_size));
}

void* stack_pool::allocate(std::size_t rounded) {
  std::size_t c = class_of(rounded);
  if (c < classes) {
    auto& sc = classes_[c];
    std::lock_guard lk(sc.lock);
    if (!sc.warm.empty()) {
      void* p = sc.warm.back();
      sc.warm.pop_back();
      warm_bytes_.fetch_sub(rounded, std::memory_order_relaxed);
      return p;
    }
    if (!sc.released.empty()) {
      void* p = sc.released.back();
      sc.released.pop_back();
      return p;
    }
  }
  std::lock_guard lk(slab_mutex_);
  // Align each stack to its size (a gap costs address space only), so a fiber can find its
  // stack's bounds from any address on it.
  std::size_t skip = (rounded - reinterpret_cast<std::uintptr_t>(cursor_) % rounded) % rounded;
  if (cursor_ && left_ >= skip) {
    cursor_ += skip;
    left_ -= skip;
  }
  if (left_ < rounded || reinterpret_cast<std::uintptr_t>(cursor_) % rounded != 0) {
    std::size_t size = (rounded > slab_size ? rounded : slab_size) + rounded;  // room to align
    void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    slabs_.emplace_back(m, size);
    cursor_ = static_cast<char*>(m);
    left_ = size;
    skip = (rounded - reinterpret_cast<std::uintptr_t>(cursor_) % rounded) % rounded;
    cursor_ += skip;
    left_ -= skip;
  }
  void* p = cursor_;
  cursor_ += rounded;
  left_ -= rounded;
  return p;
}

void stack_pool::deallocate(void* base, std::size_t rounded) noexcept {
  std::size_t c = class_of(rounded);
  if (c >= classes) return;      // stays mapped with its slab until the pool goes
  asan_unpoison(base, rounded);  // no stale poison from the last fiber reaches the next
  // Above the high-water mark the pages go back to the OS (outside the lock: a system call).
  const bool warm = warm_bytes_.fetch_add(rounded, std::memory_order_relaxed) + rounded <= warm_limit;
  if (!warm) {
    warm_bytes_.fetch_sub(rounded, std::memory_order_relaxed);
    ::madvise(base, rounded, MADV_DONTNEED);
  }
  auto& sc = classes_[c];
  std::lock_guard lk(sc.lock);
  try {
    (warm ? sc.warm : sc.released).push_back(base);
  } catch (...) {
    // Out of memory growing the free list: the stack stays mapped, unused, until the pool goes.
    if (warm) warm_bytes_.fetch_sub(rounded, std::memory_order_relaxed);
  }
}

std::size_t stack_pool::released_bytes() const noexcept {
  std::size_t n = 0;
  for (std::size_t c = 0; c < classes; ++c) {
    auto& sc = classes_[c];
    std::lock_guard lk(sc.lock);
    n += sc.released.size() * (min_size << c);
  }
  return n;
}

std::size_t stack_pool::mapped_bytes() const noexcept {
  std::lock_guard lk(slab_mutex_);
  std::size_t n = 0;
  for (auto& s : slabs_) n += s.second;
  return n;
}

boost::context::stack_context pooled_stack::allocate() {
  boost::context::stack_context sc;
  sc.size = size;
  sc.sp = static_cast<char*>(pool->allocate(size)) + size;
  return sc;
}

void pooled_stack::deallocate(boost::context::stack_context& sc) noexcept {
  pool->deallocate(static_cast<char*>(sc.sp) - sc.size, sc.size);
}

}  // namespace grove::detail
