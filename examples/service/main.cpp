// A service that links Grove (docs/guides/embedding.md): one kind of its own, the built-in
// kinds, and the `grove` command line — `service run service.yaml`, `service check service.yaml`.
#include <cstdint>
#include <iostream>
#include <string>
#include <utility>

#include <grove/app/builtin_kinds.hpp>
#include <grove/app/kinds.hpp>
#include <grove/app/service.hpp>
#include <grove/behaviours/gen_server.hpp>

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

// The factory: reads and checks `args` while the configuration is checked, before anything
// starts; errors go to the same list as the loader's, with file:line:column.
grove::child_start make_greeter(const grove::kind_context& k) {
  k.args().only({"greeting"});
  auto greeting = k.args().get<std::string>("greeting", "Hello");
  if (greeting.empty()) {
    k.args().sink()->add(k.args().pos(), k.args().path() + ".greeting", "must not be empty", "a word, e.g. Hello");
  }
  return k.gen_server<greeter>(greeting);
}

}  // namespace bank

int main(int argc, char** argv) {
  grove::kind_registry kinds;
  grove::add_builtin_kinds(kinds);
  kinds.add("greeter", "answers greet calls, greets each tick it is sent (args: greeting)", bank::make_greeter);
  return grove::cli_main(argc, argv, std::move(kinds));
}
