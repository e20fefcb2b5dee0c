// A service that links Grove (docs/guides/embedding.md): kinds of its own, the built-in kinds,
// the `grove` command line (`service run service.yaml`, `service check service.yaml`), and a
// thread of its own that calls in once the tree is up, as an HTTP server's thread would.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <thread>
#include <utility>

#include <grove/app/builtin_kinds.hpp>
#include <grove/app/kinds.hpp>
#include <grove/app/service.hpp>
#include <grove/behaviours/client.hpp>
#include <grove/behaviours/dynamic_supervisor.hpp>
#include <grove/behaviours/gen_server.hpp>
#include <grove/behaviours/typed_ref.hpp>

namespace bank {

struct greet {
  std::string who;
};  // call: answers "<greeting>, <who>!"

// Answers greet calls; a ticker that targets it (see service.yaml) makes it greet the ticker.
class greeter final : public grove::gen_server<greeter> {
 public:
  using handles = grove::types<greet, grove::builtin::tick>;
  explicit greeter(std::string greeting) : greeting_(std::move(greeting)) {}

  std::string handle_call(const greet& g, const grove::from&) {
    ++greeted_;
    return greeting_ + ", " + g.who + "!";
  }
  void handle_info(const grove::builtin::tick& t) {
    ++greeted_;
    std::cout << "greeter: " << greeting_ << ", " << t.from << " (tick " << t.n << ")" << std::endl;
  }
  std::string format_status() const { return "greeter, " + std::to_string(greeted_) + " greeted"; }

 private:
  std::string greeting_;
  std::uint64_t greeted_ = 0;
};

struct count_q {};  // call: the sum a teller counted, 1 + 2 + ... + n

// A job started at run time under the `tellers` dynamic supervisor: from the service's thread
// in C++, or from the console out of the YAML template (`start front/tellers {n: 3}`).
class teller final : public grove::gen_server<teller> {
 public:
  using handles = grove::types<count_q>;
  explicit teller(std::int64_t n) : n_(n) {}
  std::int64_t handle_call(const count_q&, const grove::from&) { return n_ * (n_ + 1) / 2; }
  std::string format_status() const { return "teller counting to " + std::to_string(n_); }

 private:
  std::int64_t n_;
};

// The factories read and check `args` while the configuration is checked, before anything
// starts; errors go to the same list as the loader's, with file:line:column.
grove::child_start make_greeter(const grove::kind_context& k) {
  k.args().only({"greeting"});
  auto greeting = k.args().get<std::string>("greeting", "Hello");
  if (greeting.empty()) k.args().error("greeting", "must not be empty", "a word, e.g. Hello");
  return k.gen_server<greeter>(greeting);
}

grove::child_start make_teller(const grove::kind_context& k) {
  k.args().only({"n"});
  auto n = k.args().find<std::int64_t>("n");
  if (n && (*n < 1 || *n > 1'000'000)) k.args().error("n", "must be from 1 to 1000000");
  return k.gen_server<teller>(n.value_or(1));
}

// The service's own thread: a front desk that calls into the tree through a grove::client,
// typed, and starts a teller under the dynamic supervisor the YAML names `tellers`.
class front_desk {
 public:
  void start(grove::node& node) {
    thread_ = std::thread([this, &node] { serve(node); });
  }
  void stop() {
    quit_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void serve(grove::node& node) {
    grove::client c(node);
    const grove::typed_ref<greeter> greeter_ref{"greeter"};
    std::cout << "desk: " << c.run([&] { return greeter_ref.call(greet{"desk"}); }) << std::endl;
    grove::child_spec job;
    job.id = "teller";
    job.restart = grove::restart_type::temporary;
    job.start = [] { return grove::start_link(std::make_unique<teller>(10)); };
    const grove::child_result started = c.run([&] { return grove::start_dynamic_child("tellers", job); });
    if (!started) {
      std::cout << "desk: no teller: " << grove::to_string(started.error) << std::endl;
      return;
    }
    const grove::typed_ref<teller> t{started.who};
    std::cout << "desk: teller " << started.who << " counted " << c.run([&] { return t.call(count_q{}); }) << std::endl;
    while (!quit_) {  // a real desk would serve requests here
      c.receive<int>(std::chrono::milliseconds(100));
    }
  }

  std::thread thread_;
  std::atomic<bool> quit_{false};
};

}  // namespace bank

int main(int argc, char** argv) {
  grove::kind_registry kinds;
  grove::add_builtin_kinds(kinds);
  kinds.add("greeter", "answers greet calls, greets each tick it is sent (args: greeting)", bank::make_greeter);
  kinds.add("teller", "counts 1 + ... + n and answers count_q (args: n)", bank::make_teller);
  bank::front_desk desk;
  grove::service_hooks hooks;
  hooks.started = [&](grove::node& n) { desk.start(n); };
  hooks.stopping = [&](grove::node&) { desk.stop(); };
  return grove::cli_main(argc, argv, std::move(kinds), std::move(hooks));
}
