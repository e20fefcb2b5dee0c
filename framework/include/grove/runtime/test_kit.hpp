// Test kit: a node with one scheduler thread and a manual clock. Time moves only when the test
// calls advance(), timers fire in deadline order, and processes run in a fixed order, so a run
// is deterministic. Usable by any user of the library, not only Grove's own tests.
//
//   grove::testing::deterministic_node n;
//   n.run([&] {
//     auto t = grove::send_after(5s, grove::self(), tick{});
//     n.advance(5s);                       // the timer fires now, not in five seconds
//     grove::receive([](tick) {});
//   });
#pragma once

#include <grove/runtime/node.hpp>

namespace grove::testing {

inline node_options deterministic_options() {
  node_options o;
  o.schedulers = 1;
  o.manual_clock = true;
  o.blocking_threads = 1;
  return o;
}

class deterministic_node : public node {
 public:
  deterministic_node() : node(deterministic_options()) {}
};

}  // namespace grove::testing
