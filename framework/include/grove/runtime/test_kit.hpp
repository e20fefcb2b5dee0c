// Test kit: a deterministic node (one scheduler thread, a manual clock), expectations on the
// next message, and waits that fail with a clear message once a real-time budget is spent
// instead of hanging. For any user of the library, not only Grove's own tests; failures are
// exceptions (expectation_failed), which every test framework reports.
//
//   grove::testing::deterministic_node n;
//   n.run([&] {
//     auto t = grove::send_after(5s, grove::self(), tick{});
//     n.advance(5s);                         // the timer fires now, not in five seconds
//     grove::testing::expect<tick>();        // the next message is a tick
//     grove::testing::disallow<tick>();      // and there is no second one
//   });
//
// Time on a deterministic node moves only when the test calls advance(), timers fire in
// deadline order and processes run in a fixed order, so a run is deterministic; a receive
// timeout never fires by itself there, which is why the waits below count real time. Messages
// do not record their sender: put it in the message when a test must check it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <utility>

#include <grove/runtime/events.hpp>
#include <grove/runtime/message.hpp>
#include <grove/runtime/node.hpp>
#include <grove/runtime/process.hpp>

namespace grove::testing {

inline node_options deterministic_options() {
  node_options o;
  o.schedulers = 1;
  o.manual_clock = true;
  o.blocking_threads = 1;
  o.record_messages = true;
  return o;
}

class deterministic_node : public node {
 public:
  deterministic_node() : node(deterministic_options()) {}
};

// An expectation the next message did not meet, or a wait whose real-time budget ran out.
class expectation_failed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a wait may take in real time before it fails.
inline constexpr std::chrono::milliseconds default_budget{10'000};

namespace detail {
struct budget_spent {
  std::uint64_t token;
};
inline std::uint64_t next_budget_token() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}
// Sends budget_spent{token} to `who` once `budget` of real time has passed, unless destroyed
// first (it joins its thread: after it, nothing more is sent).
class real_time_budget {
 public:
  real_time_budget(pid who, std::chrono::milliseconds budget, std::uint64_t token)
      : thread_([this, who, budget, token] {
          std::unique_lock lk(mutex_);
          if (!cv_.wait_for(lk, budget, [&] { return done_; })) grove::send(who, budget_spent{token});
        }) {}
  ~real_time_budget() {
    {
      std::lock_guard lk(mutex_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  real_time_budget(const real_time_budget&) = delete;
  real_time_budget& operator=(const real_time_budget&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: starts once the rest is built
};
inline std::string budget_text(std::chrono::milliseconds budget) {
  return std::to_string(budget.count()) + " ms of real time";
}
}  // namespace detail

// As grove::receive (in a process), but throws expectation_failed if no handler took a message
// within `budget` of real time, on any clock.
template <class... H>
auto receive_within(std::chrono::milliseconds budget, H&&... handlers) {
  using R = grove::detail::receive_result_t<H...>;
  const std::uint64_t token = detail::next_budget_token();
  auto spent = when<detail::budget_spent>(
      [token](const detail::budget_spent& b) { return b.token == token; },
      [budget](const detail::budget_spent&) -> R {
        throw expectation_failed("nothing expected came within " + detail::budget_text(budget));
      });
  struct cleanup {
    std::uint64_t token;
    std::optional<detail::real_time_budget> budget;
    ~cleanup() {
      budget.reset();  // nothing is sent from here on; one sent already is dropped (not while
                       // unwinding: a fiber must not suspend then, and the test fails anyway)
      if (std::uncaught_exceptions() > 0) return;
      while (grove::receive_for(
          duration::zero(),
          when<detail::budget_spent>([t = token](const detail::budget_spent& b) { return b.token == t; },
                                     [](const detail::budget_spent&) {}))) {
      }
    }
  } guard{token, std::nullopt};
  guard.budget.emplace(self(), budget, token);
  return grove::receive(std::move(spent), std::forward<H>(handlers)...);
}

// The next message (in arrival order) must be a T: takes and returns it. Throws
// expectation_failed, naming both types, if another comes first, or if none comes in `budget`.
template <class T>
T expect(std::chrono::milliseconds budget = default_budget) {
  return receive_within(budget, [](message& m) -> T {
    if (T* v = m.template get<T>()) return std::move(*v);
    throw expectation_failed("expected a " + grove::detail::demangle(typeid(T).name()) + ", the next message is a " +
                             m.type_name());
  });
}

// The next message must be a T for which pred holds.
template <class T, class P>
T expect(P&& pred, std::chrono::milliseconds budget = default_budget) {
  T v = expect<T>(budget);
  if (!pred(std::as_const(v))) {
    throw expectation_failed("the next message, a " + grove::detail::demangle(typeid(T).name()) +
                             ", did not satisfy the condition");
  }
  return v;
}

namespace detail {
// Looks at the first message of the calling process's mailbox without waiting: its type (null
// if there is none); takes it if it is a T and `take`.
template <class T>
const std::type_info* first_message(bool take, std::unique_ptr<grove::detail::envelope>& taken) {
  struct state {
    bool take;
    bool seen = false;
    const std::type_info* type = nullptr;
  } s{take};
  auto match = [](const grove::detail::envelope& e, void* c) {
    auto& st = *static_cast<state*>(c);
    if (!e.is_message() || st.seen) return false;
    st.seen = true;
    st.type = e.type;
    return st.take && grove::detail::same_type(e.type, typeid(T));
  };
  taken.reset(grove::detail::receive_match(match, &s, 0));
  return s.type;
}
}  // namespace detail

// If the next message is a T, takes it and returns true; otherwise leaves the mailbox as it is.
// Does not wait.
template <class T>
bool allow() {
  std::unique_ptr<grove::detail::envelope> taken;
  detail::first_message<T>(true, taken);
  return taken != nullptr;
}

// Throws expectation_failed if the next message is a T. Takes nothing, does not wait.
template <class T>
void disallow() {
  std::unique_ptr<grove::detail::envelope> none;
  const std::type_info* t = detail::first_message<T>(false, none);
  if (t && grove::detail::same_type(t, typeid(T))) {
    throw expectation_failed("the next message is a " + grove::detail::demangle(typeid(T).name()) +
                             ", which was not allowed");
  }
}

// The down message of monitor r (other messages stay queued), within `budget`.
inline down await_down(const monitor_ref& r, std::chrono::milliseconds budget = default_budget) {
  return receive_within(budget, when<down>([r](const down& d) { return d.ref == r; }, [](down d) { return d; }));
}

// Between two other processes, as CAF's expect((T), from(a).to(b)): the oldest message sent to
// `to` that no such expectation took yet must be a T sent by `from` (a call's or cast's request
// counts as its request type; `from` is a null pid for a send from outside the node). Needs a
// node that records messages (node_options::record_messages; a deterministic_node does). Call
// from a process: it yields while it waits, so the others run. Throws expectation_failed naming
// what was sent instead, or that nothing was within `budget`.
template <class T>
void expect(const pid& from, const pid& to, std::chrono::milliseconds budget = default_budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (;;) {
    if (auto m = grove::detail::take_sent(this_node(), to, std::chrono::milliseconds(0))) {
      const bool type_ok = grove::detail::same_type(m->type, typeid(T));
      if (type_ok && m->from == from) return;
      throw expectation_failed("expected a " + grove::detail::demangle(typeid(T).name()) + " from " + from.str() +
                               " to " + to.str() + ", the next message to it is a " +
                               grove::detail::demangle(m->type->name()) + " from " + m->from.str());
    }
    if (std::chrono::steady_clock::now() > deadline) {
      throw expectation_failed(
          "expected a " + grove::detail::demangle(typeid(T).name()) + " from " + from.str() + " to " + to.str() +
          ": nothing was sent to it within " + detail::budget_text(budget) +
          (grove::detail::records_messages(this_node()) ? "" : " (the node does not record messages)"));
    }
    grove::yield();
  }
}

// Waits, from a process, until cond() holds: checks it after each message or timer (or yield)
// and throws expectation_failed naming `what` once `budget` of real time is spent. For state
// no message announces; prefer waiting on a message, a monitor or an event.
inline void eventually(const std::function<bool()>& cond, const std::string& what,
                       std::chrono::milliseconds budget = default_budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw expectation_failed(what + ": not so within " + detail::budget_text(budget));
    }
    grove::yield();
  }
}

// Reads the node's events from a process: next() returns the next event for which pred holds,
// skipping those before it, within `budget`. Subscribe before causing what you wait for.
class event_reader {
 public:
  explicit event_reader(std::size_t capacity = 256) : sub_(events().subscribe(capacity, self())) {}
  event next(const std::function<bool(const event&)>& pred, std::chrono::milliseconds budget = default_budget) {
    const auto deadline = std::chrono::steady_clock::now() + budget;
    for (;;) {
      for (auto& e : sub_->take()) pending_.push_back(std::move(e));
      while (!pending_.empty()) {
        event e = std::move(pending_.front());
        pending_.pop_front();
        if (pred(e)) return e;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) throw expectation_failed("no matching event within " + detail::budget_text(budget));
      try {
        receive_within(left, [](subscription::ready) {});
      } catch (const expectation_failed&) {
        throw expectation_failed("no matching event within " + detail::budget_text(budget));
      }
    }
  }

 private:
  std::shared_ptr<subscription> sub_;
  std::deque<event> pending_;
};

}  // namespace grove::testing
