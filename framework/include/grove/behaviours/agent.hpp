// agent<T>: a value owned by a process, read and changed only by functions run inside it
// (Elixir's Agent). The simplest shared state: every get and update is serialized.
//
//   auto counter = grove::agent<int>::start(0).value();
//   counter.update([](int& n) { ++n; });
//   int now = counter.get([](const int& n) { return n; });
#pragma once

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include <grove/behaviours/gen_server.hpp>

namespace grove {

template <class T>
class agent {
 public:
  struct get_req {
    std::function<std::shared_ptr<void>(const T&)> fn;
  };
  struct update_req {
    std::function<void(T&)> fn;
  };
  struct get_and_update_req {
    std::function<std::shared_ptr<void>(T&)> fn;
  };

  class server final : public gen_server<server> {
   public:
    using handles = types<get_req, update_req, get_and_update_req>;
    explicit server(T initial) : value_(std::move(initial)) {}
    std::shared_ptr<void> handle_call(const get_req& r, const from&) { return r.fn(value_); }
    void handle_call(const update_req& r, const from&) { r.fn(value_); }
    void handle_cast(const update_req& r) { r.fn(value_); }
    std::shared_ptr<void> handle_call(const get_and_update_req& r, const from&) { return r.fn(value_); }

   private:
    T value_;
  };

  struct started {
    start_result result;
    agent value() const { return agent(result.value()); }
    explicit operator bool() const noexcept { return static_cast<bool>(result); }
  };

  // Starts an agent holding `initial` (call from a process).
  static started start(T initial, const start_options& opts = {}) {
    return {grove::start(std::make_unique<server>(std::move(initial)), opts)};
  }
  static started start_link(T initial, const start_options& opts = {}) {
    return {grove::start_link(std::make_unique<server>(std::move(initial)), opts)};
  }

  explicit agent(server_ref ref) : ref_(std::move(ref)) {}

  // Runs fn on the value inside the agent and returns its result.
  template <class F>
  auto get(F fn, duration timeout = std::chrono::seconds(5)) const {
    using R = std::invoke_result_t<F&, const T&>;
    auto out = call<std::shared_ptr<void>>(
        ref_, get_req{[fn](const T& v) -> std::shared_ptr<void> { return std::make_shared<R>(fn(v)); }}, timeout);
    return std::move(*static_cast<R*>(out.get()));
  }
  // Runs fn on the value inside the agent; returns when it has run.
  void update(std::function<void(T&)> fn, duration timeout = std::chrono::seconds(5)) const {
    call<void>(ref_, update_req{std::move(fn)}, timeout);
  }
  // Like update, without waiting.
  void cast_update(std::function<void(T&)> fn) const { cast(ref_, update_req{std::move(fn)}); }
  // Runs fn, which may change the value, and returns its result, in one step.
  template <class F>
  auto get_and_update(F fn, duration timeout = std::chrono::seconds(5)) const {
    using R = std::invoke_result_t<F&, T&>;
    auto out = call<std::shared_ptr<void>>(
        ref_, get_and_update_req{[fn](T& v) -> std::shared_ptr<void> { return std::make_shared<R>(fn(v)); }}, timeout);
    return std::move(*static_cast<R*>(out.get()));
  }
  void stop(exit_reason reason = exit_reason::normal()) const { grove::stop(ref_, std::move(reason)); }
  const server_ref& ref() const noexcept { return ref_; }

 private:
  server_ref ref_;
};

}  // namespace grove
