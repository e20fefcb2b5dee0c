// Fiber stacks carved from large anonymous mappings ("slabs"), recycled through free lists per
// size class. One mapping serves thousands of stacks, so vm.max_map_count (65,530 here) does
// not cap the number of processes. Untouched stack pages cost no memory.
//
// Freed stacks are kept warm (their touched pages resident, so a new process starts without
// page faults) up to warm_limit bytes in all; past it a freed stack's pages go back to the OS
// (madvise MADV_DONTNEED) and only its address range is kept. Warm stacks are reused first.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <mutex>
#include <vector>

#include <boost/context/stack_context.hpp>

#include "spinlock.hpp"

namespace grove::detail {

class stack_pool {
 public:
  static constexpr std::size_t min_size = 8 * 1024;
  static constexpr std::size_t slab_size = 256 * 1024 * 1024;
  static constexpr std::size_t warm_limit = 64 * 1024 * 1024;

  stack_pool() = default;
  ~stack_pool();
  stack_pool(const stack_pool&) = delete;
  stack_pool& operator=(const stack_pool&) = delete;

  // The size a request is served with: a power of two, at least min_size.
  static std::size_t round(std::size_t size) noexcept;
  void* allocate(std::size_t rounded);  // returns the lowest address of the stack
  void deallocate(void* base, std::size_t rounded) noexcept;
  std::size_t mapped_bytes() const noexcept;
  std::size_t warm_bytes() const noexcept { return warm_bytes_.load(std::memory_order_relaxed); }
  std::size_t released_bytes() const noexcept;  // freed stacks whose pages went back to the OS

 private:
  static constexpr std::size_t classes = 16;  // 8 KiB .. 256 MiB
  static std::size_t class_of(std::size_t rounded) noexcept;
  struct size_class {
    spinlock lock;
    std::vector<void*> warm;      // pages resident: reused first
    std::vector<void*> released;  // pages returned to the OS
  };
  mutable std::array<size_class, classes> classes_;
  mutable std::mutex slab_mutex_;
  std::vector<std::pair<void*, std::size_t>> slabs_;
  char* cursor_ = nullptr;
  std::size_t left_ = 0;
  std::atomic<std::size_t> warm_bytes_{0};
};

// The StackAllocator Boost.Fiber takes: a pool and a size.
struct pooled_stack {
  stack_pool* pool;
  std::size_t size;  // rounded
  boost::context::stack_context allocate();
  void deallocate(boost::context::stack_context& sc) noexcept;
};

}  // namespace grove::detail
