// A counter GenServer under a supervisor, with grove::core alone: it crashes once on purpose,
// is restarted, and answers again.
#include <chrono>
#include <iostream>
#include <memory>
#include <stdexcept>

#include <grove/behaviours/gen_server.hpp>
#include <grove/behaviours/supervisor.hpp>
#include <grove/runtime/node.hpp>

struct add {
  int n;
};
struct crash {};

class counter final : public grove::gen_server<counter> {
 public:
  using handles = grove::types<add, crash>;
  int handle_call(const add& a, const grove::from&) { return total_ += a.n; }
  int handle_call(const crash&, const grove::from&) { throw std::runtime_error("asked to"); }

 private:
  int total_ = 0;
};

int main() {
  grove::node node({.schedulers = 1});
  const int answer = node.run([] {
    std::vector<grove::child_spec> children;
    children.push_back(
        {.id = "counter", .start = [] { return grove::start_link(std::make_unique<counter>(), {.name = "counter"}); }});
    const grove::pid sup = grove::start_supervisor({}, std::move(children)).value();
    grove::call<int>("counter", add{40});
    try {
      grove::call<int>("counter", crash{});
    } catch (const grove::call_error&) {  // the counter died: its supervisor starts a new one
    }
    // The supervisor heard of the death before this call (a link's EXIT goes out before a
    // monitor's DOWN), so once it answers the new counter is registered.
    grove::count_children(sup);
    return grove::call<int>("counter", add{2}, std::chrono::seconds(5));
  });
  std::cout << "core_only: the restarted counter answered " << answer << "\n";
  return answer == 2 ? 0 : 1;
}
