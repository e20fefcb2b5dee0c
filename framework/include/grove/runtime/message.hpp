// message: one received message of any type, owned, matched by C++ type. Handler processes
// get every message this way; `dispatch` routes it to the first overload that takes its type.
//
// Messages are moved into the receiver's mailbox. Nothing shared travels unless you send it:
// a pointer into your own state breaks the isolation every guarantee here rests on.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>

#include <grove/detail/envelope.hpp>
#include <grove/runtime/exit_reason.hpp>
#include <grove/runtime/pid.hpp>

namespace grove {

// Delivered as a message to a process that traps exits, instead of killing it.
struct exit_signal {
  pid from;
  exit_reason reason;
};

// Delivered to the owner of a monitor when the monitored process ends (once per monitor).
struct down {
  monitor_ref ref;
  pid who;
  exit_reason reason;
};

class message {
 public:
  message() = default;
  explicit message(std::unique_ptr<detail::envelope> e) noexcept : env_(std::move(e)) {}

  explicit operator bool() const noexcept { return env_ != nullptr; }

  template <class T>
  bool is() const noexcept {
    return env_ && detail::same_type(env_->type, typeid(T));
  }
  // The payload if it is a T, else nullptr.
  template <class T>
  T* get() noexcept {
    return is<T>() ? &static_cast<detail::message_envelope<T>*>(env_.get())->value : nullptr;
  }
  template <class T>
  const T* get() const noexcept {
    return is<T>() ? &static_cast<const detail::message_envelope<T>*>(env_.get())->value : nullptr;
  }
  const std::type_info& type() const noexcept { return env_ ? *env_->type : typeid(void); }
  std::string type_name() const;

  detail::envelope* envelope() const noexcept { return env_.get(); }
  std::unique_ptr<detail::envelope> release() noexcept { return std::move(env_); }

 private:
  std::unique_ptr<detail::envelope> env_;
};

namespace detail {
std::string demangle(const char* name);

template <class F>
struct callable_traits : callable_traits<decltype(&F::operator())> {};
template <class C, class R, class A>
struct callable_traits<R (C::*)(A) const> {
  using arg = std::remove_cvref_t<A>;
  using result = R;
};
template <class C, class R, class A>
struct callable_traits<R (C::*)(A)> {
  using arg = std::remove_cvref_t<A>;
  using result = R;
};
template <class R, class A>
struct callable_traits<R (*)(A)> {
  using arg = std::remove_cvref_t<A>;
  using result = R;
};
}  // namespace detail

// Calls the first handler whose argument type is the message's type. Returns false if none
// took it. A handler taking `message&` takes anything.
template <class... H>
bool dispatch(message& m, H&&... handlers) {
  bool done = false;
  auto try_one = [&](auto&& h) {
    if (done) return;
    using arg = typename detail::callable_traits<std::remove_cvref_t<decltype(h)>>::arg;
    if constexpr (std::is_same_v<arg, message>) {
      done = true;
      h(m);
    } else if (auto* v = m.get<arg>()) {
      done = true;
      h(*v);
    }
  };
  (try_one(handlers), ...);
  return done;
}

}  // namespace grove
