#include <grove/behaviours/client.hpp>

#include <stdexcept>
#include <utility>

#include <grove/runtime/errors.hpp>

namespace grove {

namespace {
struct client_quit {};

void run_job(detail::client_job job) {
  std::shared_ptr<detail::client_task> t = std::move(job.task);
  try {
    t->fn();
  } catch (const process_exit&) {  // killed mid-operation (the node stops): the caller is told
    t->finish(false);
    throw;
  } catch (...) {
    t->error = std::current_exception();
  }
  t->finish(true);
}

void check_outside(const char* what) {
  if (in_process()) {
    throw std::logic_error(std::string("grove::client::") + what +
                           " blocks its thread: inside a process, call grove's functions directly");
  }
}
}  // namespace

client::client(node& n) {
  check_outside("client");
  self_ = n.spawn(
      [] {
        for (bool more = true; more;) {
          grove::receive([&](detail::client_job j) { run_job(std::move(j)); }, [&](client_quit) { more = false; });
        }
      },
      {.label = "client"});
}

client::~client() { grove::send(self_, client_quit{}); }

void client::post(std::function<void()> fn) {
  check_outside("operation");
  auto t = std::make_shared<detail::client_task>();
  t->fn = std::move(fn);
  if (grove::send(self_, detail::client_job{t}) != send_result::ok) throw node_stopping();
  std::unique_lock lk(t->m);
  t->cv.wait(lk, [&] { return t->done; });
  if (t->abandoned) throw node_stopping();
  // Take the exception out: the process may drop its share of the task later, and the thread
  // that rethrows should hold the exception's only reference.
  if (auto e = std::exchange(t->error, nullptr)) std::rethrow_exception(e);
}

}  // namespace grove
