// blocking(fn): runs blocking work (a syscall, a library that blocks) on the node's thread
// pool and suspends only the calling process, so its scheduler thread keeps running others.
// Exit signals take effect while it waits; the work itself runs to completion regardless.
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include <grove/detail/unique_function.hpp>

namespace grove {

namespace detail {
// Queues job on the current process's node pool; returns the token its completion carries.
std::uint64_t blocking_submit(unique_function job);
// Waits (as a receive) for the completion of the job with this token.
void blocking_wait(std::uint64_t token);
}  // namespace detail

template <class F>
auto blocking(F&& fn) -> std::invoke_result_t<F&> {
  using R = std::invoke_result_t<F&>;
  struct state {
    std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> value{};
    std::exception_ptr error;
  };
  auto st = std::make_shared<state>();
  auto token = detail::blocking_submit([st, f = std::forward<F>(fn)]() mutable {
    try {
      if constexpr (std::is_void_v<R>) {
        f();
      } else {
        st->value.emplace(f());
      }
    } catch (...) {
      st->error = std::current_exception();
    }
  });
  detail::blocking_wait(token);
  if (auto e = std::exchange(st->error, nullptr)) std::rethrow_exception(e);  // the only reference
  if constexpr (!std::is_void_v<R>) return std::move(*st->value);
}

}  // namespace grove
