// pool: a worker pool with poolboy's semantics. `size` workers are started with the pool and
// kept; when all are checked out, up to `max_overflow` more are started on demand and stopped
// when checked back in. Idle workers are handed out last-in-first-out (lifo, the default: warm
// workers stay warm) or first-in-first-out. A checkout blocks (with a timeout) or fails at once
// when the pool is full. The pool monitors borrowers: if one dies holding a worker, that worker
// is killed and replaced (by default), so a worker in the middle of someone's work never goes
// back to the pool. A worker that dies is replaced.
//
//   auto w = grove::checkout("db_pool");                 // blocks up to 5 s
//   grove::call<row>(*w, query{...});
//   grove::checkin("db_pool", *w);
//   auto r = grove::transaction("db_pool", [](grove::pid w) { return grove::call<row>(w, query{}); });
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <type_traits>

#include <grove/behaviours/gen_server.hpp>

namespace grove {

enum class pool_strategy : unsigned char { lifo, fifo };

struct pool_options {
  std::size_t size = 5;
  std::size_t max_overflow = 10;
  pool_strategy strategy = pool_strategy::lifo;
  // When a borrower dies holding a worker: kill and replace the worker (true), or take it
  // back as it is (false, poolboy's own behaviour).
  bool kill_on_borrower_death = true;
  // Starts one worker linked to its caller (the pool), as a child spec's start does.
  std::function<start_result()> worker;
};

struct pool_status {
  std::string state;  // "ready" (idle workers), "overflow" (overflow workers out), "full"
  std::size_t idle = 0, busy = 0, overflow = 0, waiting = 0;
};

class pool_server final : public gen_server<pool_server> {
 public:
  struct checkout_q {
    bool block = true;
    std::uint64_t ref = 0;
    duration timeout{};
  };
  struct checkin_c {
    pid worker;
  };
  struct cancel_c {  // a checkout that timed out on the client's side
    std::uint64_t ref = 0;
  };
  struct status_q {};
  using handles = types<checkout_q, checkin_c, cancel_c, status_q, down, exit_signal>;

  explicit pool_server(pool_options o) : opts_(std::move(o)) {}
  init_result init();
  void terminate(const exit_reason&);
  deferred_t handle_call(const checkout_q& q, const from& f);  // replies at once, or when a worker is free
  void handle_cast(const checkin_c& c);
  void handle_cast(const cancel_c& c);
  pool_status handle_call(const status_q&, const from&);
  void handle_info(const down& d);
  void handle_info(const exit_signal& e);
  std::string format_status() const;

 private:
  struct loan {
    pid borrower;
    monitor_ref m;
    std::uint64_t ref = 0;
  };
  struct waiter {
    from f;
    monitor_ref m;
    std::uint64_t ref = 0;
    std::chrono::steady_clock::time_point deadline;
  };
  pid new_worker();
  void lend(const pid& w, const pid& borrower, std::uint64_t ref, monitor_ref m);
  void take_back(const pid& w);  // a checked-in (or newly free) worker
  void dismiss(const pid& w);    // stop an overflow worker

  pool_options opts_;
  std::deque<pid> idle_;
  std::map<pid, loan> busy_;
  std::deque<waiter> waiting_;
  std::size_t overflow_ = 0;
  std::set<pid> killed_;  // killed after their borrower died; their exit brings a replacement
};

start_result start_pool(pool_options opts, const start_options& so = {});
start_result start_pool_link(pool_options opts, const start_options& so = {});

// A worker, or nullopt when block is false and the pool is full. A blocking checkout that
// times out throws call_error(timeout) and leaves nothing checked out.
std::optional<pid> checkout(const server_ref& pool, bool block = true, duration timeout = std::chrono::seconds(5));
void checkin(const server_ref& pool, const pid& worker);
pool_status pool_status_of(const server_ref& pool);

// Checks a worker out, runs fn(worker), checks it back in — also when fn throws. When the
// calling process is being ended (process_exit), the worker is not checked in: the pool sees
// the borrower die and kills the worker, which may still be busy with its work.
template <class F>
auto transaction(const server_ref& pool, F&& fn, duration timeout = std::chrono::seconds(5))
    -> std::invoke_result_t<F&, pid> {
  const pid w = *checkout(pool, true, timeout);
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<F&, pid>>) {
      fn(w);
      checkin(pool, w);
    } else {
      auto r = fn(w);
      checkin(pool, w);
      return r;
    }
  } catch (const process_exit&) {
    throw;
  } catch (...) {
    checkin(pool, w);
    throw;
  }
}

}  // namespace grove
