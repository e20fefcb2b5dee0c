// client: Grove from a thread that is not a process — a service's HTTP thread, its main loop, a
// test — as CAF's scoped_actor or Akka's ask from outside:
//
//   grove::client c(node);                                        // any thread of the service
//   auto cents = c.call<std::int64_t>("ledger", balance{"alice"});  // throws call_error on failure
//   c.cast("ledger", deposit{"bob", 100});
//   grove::send(*grove::whereis("audit"), hello{c.self()});        // replies come to c.self()
//   std::optional<ack> a = c.receive<ack>(std::chrono::seconds(1));
//
// A client owns a process on the node (labelled "client"); what must run in a process (a call,
// a receive, a monitor) runs there while the calling thread waits, so a call has OTP's
// semantics exactly: its timeout, noproc for a dead name, the server's exit reason. One
// operation runs at a time per client: give each thread its own. When the node stops, an
// operation under way fails instead of hanging (node_stopping, or a call's server's exit
// reason if the stop ended the server first); one begun later throws node_stopping.
//
// A client must not outlive its node, and is not for use inside a process of the node (there,
// call grove::call and friends directly): its operations block their thread.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#include <grove/behaviours/gen_server.hpp>
#include <grove/runtime/node.hpp>
#include <grove/runtime/process.hpp>

namespace grove {

namespace detail {
// One operation handed to a client's process; its caller waits for `done`.
struct client_task {
  std::function<void()> fn;
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  bool abandoned = false;  // never ran to its end: the node stopped
  std::exception_ptr error;
  void finish(bool ran) {
    std::lock_guard lk(m);
    if (done) return;
    done = true;
    abandoned = !ran;
    cv.notify_all();
  }
};
// The message carrying a task. Move-only: a job destroyed before it ran (a mailbox freed by the
// node's stop) tells its caller.
struct client_job {
  std::shared_ptr<client_task> task;
  explicit client_job(std::shared_ptr<client_task> t) : task(std::move(t)) {}
  client_job(client_job&&) noexcept = default;
  client_job& operator=(client_job&&) = delete;
  client_job(const client_job&) = delete;
  ~client_job() {
    if (task) task->finish(false);
  }
};
}  // namespace detail

class client {
 public:
  // Spawns the client's process; throws node_stopping if the node is stopping.
  explicit client(node& n);
  // Ends the client's process (messages left in its mailbox are dropped).
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // The client's process: messages sent to it wait there for receive().
  const pid& self() const noexcept { return self_; }

  // grove::call from the client's process: the reply, or call_error (noproc, timeout, the
  // server's exit reason). node_stopping if the node stops first.
  template <class R = void, class Req>
  R call(const server_ref& target, Req&& req, duration timeout = std::chrono::seconds(5)) {
    if constexpr (std::is_void_v<R>) {
      run([&] { grove::call<void>(target, std::forward<Req>(req), timeout); });
    } else {
      return run([&] { return grove::call<R>(target, std::forward<Req>(req), timeout); });
    }
  }
  // A call that returns the failure instead of throwing it (node_stopping is still thrown).
  template <class R = void, class Req>
  call_result<R> try_call(const server_ref& target, Req&& req, duration timeout = std::chrono::seconds(5)) {
    return run([&] { return grove::try_call<R>(target, std::forward<Req>(req), timeout); });
  }
  // grove::cast from the client's process, so it stays in order with the client's calls; fire
  // and forget (a name is resolved on the node).
  template <class T>
  void cast(const server_ref& target, T&& msg) {
    run([&] { grove::cast(target, std::forward<T>(msg)); });
  }
  // The oldest message of type T in the client's mailbox, waiting up to `timeout` (the node's
  // clock) for one; others stay queued.
  template <class T>
  std::optional<T> receive(duration timeout) {
    return run([&] {
      std::optional<T> out;
      grove::receive_for(timeout, [&](T v) { out.emplace(std::move(v)); });
      return out;
    });
  }
  // Runs fn in the client's process and returns what it returns (or throws what it throws):
  // several calls in a row, a monitor, a selective receive.
  template <class F>
  auto run(F&& fn) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    if constexpr (std::is_void_v<R>) {
      post([&] { fn(); });
    } else {
      std::optional<R> out;
      post([&] { out.emplace(fn()); });
      return std::move(*out);
    }
  }

 private:
  // Runs fn in the process and waits for it to end; rethrows what it threw.
  void post(std::function<void()> fn);

  pid self_;
};

}  // namespace grove
