// AddressSanitizer and fiber stacks. Boost.Context switches stacks without telling ASan, so
// ASan keeps believing a fiber runs on its thread's stack; when an exception is thrown on a
// fiber stack it then cannot clean up the frames it skips, and stale poison on reused stacks
// produces false reports. Every point where one of our fibers starts or resumes tells ASan
// which stack it is on (a "switch" to the stack it is already on), so each throw unwinds with
// the right bounds. Compiles to nothing without ASan.
#pragma once

#include <cstddef>
#include <cstdint>

// GCC defines __SANITIZE_ADDRESS__ under -fsanitize=address; clang 14 only answers
// __has_feature(address_sanitizer).
#if defined(__SANITIZE_ADDRESS__)
#define GROVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GROVE_ASAN 1
#endif
#endif
#ifdef GROVE_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace grove::detail {

struct stack_bounds {
  const void* bottom = nullptr;
  std::size_t size = 0;
};

// Stacks are aligned to their (power of two) size, so a fiber finds its stack from the address
// of any of its locals.
inline stack_bounds bounds_of_stack(const void* inside, std::size_t size) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(inside) & ~(static_cast<std::uintptr_t>(size) - 1);
  return {reinterpret_cast<const void*>(a), size};
}

inline void asan_on_stack([[maybe_unused]] const stack_bounds& b) noexcept {
#ifdef GROVE_ASAN
  if (!b.bottom) return;
  __sanitizer_start_switch_fiber(nullptr, b.bottom, b.size);
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
}

inline void asan_unpoison([[maybe_unused]] void* base, [[maybe_unused]] std::size_t size) noexcept {
#ifdef GROVE_ASAN
  ASAN_UNPOISON_MEMORY_REGION(base, size);
#endif
}

}  // namespace grove::detail
